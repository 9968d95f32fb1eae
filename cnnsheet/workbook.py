"""The walkthrough workbook: one sheet per tensor of the pass, every number a live formula.

`build_walkthrough` plans the sheets (cnnsheet/sheets/: one module per step of the maths, forward
and backward side by side) and records, for every formula cell, what the engine says it must
evaluate to; `Walkthrough.save` hands the plan to the writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

import numpy as np
from PIL import Image

from cnnsheet import budget, printing, writer
from cnnsheet.images import Occlusion
from cnnsheet.model import Model
from cnnsheet.plan import WorkbookPlan
from cnnsheet.sheets import image, output, overview, passes, zoom
from cnnsheet.sheets.common import OVERVIEW, Book
from cnnsheet.sheets.passes import DEFAULT_LEARNING_RATE
from cnnsheet.texts import Texts
from cnnsheet.untrained import brightest


@dataclass
class Walkthrough:
    plan: WorkbookPlan

    @property
    def expected(self) -> dict:
        """(sheet, row, col) -> the engine's value of every formula cell."""
        return self.plan.expected()

    @property
    def formula_count(self) -> int:
        count = 0
        for sheet in self.plan.sheets:
            formulas = list(map(itemgetter(0), sheet.cells.values()))  # formula or None, in C
            count += len(formulas) - formulas.count(None)
        return count

    @property
    def names(self) -> dict:
        """Defined name -> "Sheet!$A$1"."""
        return self.plan.names

    @property
    def sheetnames(self) -> list[str]:
        return self.plan.sheetnames

    def save(self, path, cached_values: bool = True) -> None:
        """Write the .xlsx atomically: never a half-written file."""
        writer.save(self.plan, path, cached_values)


def build_walkthrough(model: Model, pixels: np.ndarray, texts: Texts | None = None,
                      target_index: int | None = None, photo: Image.Image | None = None,
                      photo_name: str = "", with_backward: bool = False,
                      learning_rate: float = DEFAULT_LEARNING_RATE,
                      saliency_index: int | None = None, untrained: bool = False,
                      bundled: bool = False, zoom_choices: dict | None = None,
                      saliency_mode: str = "gradient",
                      occlusion: Occlusion | None = None) -> Walkthrough:
    """The workbook for one photo's uint8 pixels (H, W, 3) and what every formula must give.

    The target class (Loss sheet) and the class of the saliency map default to the predicted
    one; `with_backward` adds the gradients, the gradient-descent step and the saliency map.
    `untrained` (random weights) and `bundled` (the bundled shapes model) change what the texts
    say about the weights and the classes. `saliency_mode` (one of layers.RELU_RULES) is the rule
    the saliency pass follows back through each ReLU. `occlusion` is the grey square over the
    photo that the network sees (by default none). `zoom_choices` maps a conv's number to the 0-based
    (filter, row, col) its Zoom sheet shows first (by default filter 1 at its strongest cell)."""
    texts = texts or Texts("en")
    budget.check_workbook(model, with_backward)
    # by default no square, and a middle grey ready for when a student gives it a side
    occlusion = occlusion or Occlusion(value=(brightest(model) + 1) // 2)
    uncovered, pixels = pixels, occlusion.apply(pixels)
    predicted = int(model.predict(pixels).probabilities[0].argmax())
    book = Book(model, pixels, texts, predicted if target_index is None else target_index,
                learning_rate, predicted if saliency_index is None else saliency_index,
                untrained=untrained, saliency_mode=saliency_mode,
                occlusion=occlusion, photo=uncovered, drawings=bundled)
    # The pipeline: each sheet function plans its sheets and returns what later ones read.
    overview_ws = book.plan.sheet(OVERVIEW)  # shown first, filled last
    image_maps, occlusion_flags = image.image_sheet(book)
    first = passes.forward(book, book.first, image.input_sheet(book, image_maps, occlusion_flags))
    first.probabilities = output.softmax_sheet(book, book.first, first.logits)
    output.loss_sheet(book, first.probabilities)
    book.add_outlines(zoom.zoom_sheets(book, first, image_maps, zoom_choices))
    descent = passes.backward(book, first) if with_backward else None
    overview.overview_sheet(book, overview_ws, first, descent, photo, photo_name, bundled and not untrained)
    # the page fields: filled in when the sheet prints
    footer = texts("labels", "footer", page=printing.THIS_PAGE, pages=printing.PAGE_COUNT)
    for sheet in book.plan.sheets:
        printing.lay_out(sheet, header=sheet.cells[1, 1][1], footer=footer,
                         landscape=True if sheet.title == "Overview" else None)
    return Walkthrough(book.plan)
