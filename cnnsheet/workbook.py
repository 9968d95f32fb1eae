"""The walkthrough workbook: one sheet per tensor of the pass, every number a live formula.

`build_walkthrough` plans the sheets (cnnsheet/sheets/: one module per step of the maths, forward
and backward side by side) and records, for every formula cell, what the engine says it must
evaluate to; `Walkthrough.save` hands the plan to the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
from PIL import Image

from cnnsheet import budget, names, printing, writer
from cnnsheet.images import Occlusion
from cnnsheet.layers import Conv, MaxPool
from cnnsheet.layout import bounds, split_target
from cnnsheet.model import Model
from cnnsheet.plan import WorkbookPlan
from cnnsheet.sheets import image, output, overview, passes, zoom
from cnnsheet.sheets.common import OVERVIEW, Book, channel_names
from cnnsheet.sheets.passes import DEFAULT_LEARNING_RATE
from cnnsheet.texts import Texts
from cnnsheet.untrained import brightest


@dataclass
class Walkthrough:
    """The plan, and where the numbers it was built from landed (what `cnnsheet check` reads back
    from a saved worksheet, whose student may have edited them): the Image sheet's pixels by
    (row, col, channel), each weight and bias of the first pass by (layer, "weight"/"bias", index),
    and every other cell a student may change by its defined name (choice_names); each as a cell
    (sheet, row, col). Where they land follows from the network's shape and the options alone,
    never from the values."""

    plan: WorkbookPlan
    pixels: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)

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
                      occlusion: Occlusion | None = None, paper: str = "a4") -> Walkthrough:
    """The workbook for one photo's uint8 pixels (H, W, 3) and what every formula must give.

    The target class (Loss sheet) and the class of the saliency map default to the predicted
    one; `with_backward` adds the gradients, the gradient-descent step and the saliency map.
    `untrained` (random weights) and `bundled` (the bundled shapes model) change what the texts
    say about the weights and the classes. `saliency_mode` (one of layers.RELU_RULES) is the rule
    the saliency pass follows back through each ReLU. `occlusion` is the grey square over the
    photo that the network sees (by default none). `paper` (printing.PAPER_SIZES) is the paper the
    workbook's pages are set for. `zoom_choices` maps a conv's number to the 0-based
    (filter, row, col) its Zoom sheet shows first (by default filter 1 at its strongest cell)."""
    texts = texts or Texts("en")
    budgeted = budget.check_workbook(model, with_backward)
    # by default no square, and a middle grey ready for when a student gives it a side
    occlusion = occlusion or Occlusion(value=(brightest(model) + 1) // 2)
    uncovered, pixels = pixels, occlusion.apply(pixels)
    predicted = int(model.predict(pixels).probabilities[0].argmax())
    book = Book(model, pixels, texts, predicted if target_index is None else target_index,
                learning_rate, predicted if saliency_index is None else saliency_index,
                untrained=untrained, saliency_mode=saliency_mode,
                occlusion=occlusion, photo=uncovered, budgeted=budgeted,
                drawings=bundled)
    # The pipeline: each sheet function plans its sheets and returns what later ones read, with
    # the rows of the Overview's table that describe its sheets.
    overview_ws = book.plan.sheet(OVERVIEW)  # shown first, filled last
    image_maps, occlusion_flags, image_row = image.image_sheet(book)
    input_maps, input_row = image.input_sheet(book, image_maps, occlusion_flags)
    first = passes.forward(book, book.first, input_maps)
    first.probabilities, softmax_row = output.softmax_sheet(book, book.first, first.logits)
    rows = [image_row, input_row, *first.rows, softmax_row, output.loss_sheet(book, first.probabilities)]
    outlines, zoom_rows = zoom.zoom_sheets(book, first, image_maps, zoom_choices)
    book.add_outlines(outlines)
    rows += zoom_rows
    descent = None
    if with_backward:
        descent, backward_rows = passes.backward(book, first)
        rows += backward_rows
    overview.overview_sheet(book, overview_ws, first, descent, rows, photo, photo_name,
                            bundled and not untrained)
    # the page fields: filled in when the sheet prints
    footer = texts("labels", "footer", page=printing.THIS_PAGE, pages=printing.PAGE_COUNT)
    for sheet in book.plan.sheets:
        printing.lay_out(sheet, header=sheet.cells[1, 1][1], footer=footer,
                         landscape=True if sheet.title == "Overview" else None, paper=paper)
    book.plan.paper = dict(texts.paper)
    pixels = {(i, j, c): (image_maps.sheet, *block.cell(i, j))
              for c, block in enumerate(image_maps.blocks)
              for i in range(block.height) for j in range(block.width)}
    params = {where: cell_of(ref) for where, ref in first.params.items()}
    chosen = choice_names(model)
    return Walkthrough(book.plan, pixels, params,
                       {name: cell_of(ref) for name, ref in book.plan.names.items() if name in chosen})


def choice_names(model: Model) -> set:
    """The names of the cells besides pixels and weights that a walkthrough's formulas read and a
    student may change: the classes, the learning rate, the saliency rule, the grey square, each
    Zoom and pool choice, and the input's mean and std (which only a teacher would change)."""
    convs = sum(isinstance(layer, Conv) for layer in model.layers)
    pools = sum(isinstance(layer, MaxPool) for layer in model.layers)
    channels = channel_names(model.channels, True)
    return {names.TARGET_CLASS, names.LEARNING_RATE, names.SALIENCY_CLASS, names.SALIENCY_MODE,
            *(names.occlusion(key) for key in names.OCCLUSION_KEYS),
            *(names.choice(prefix, key) for key in names.CHOICE_KEYS
              for prefix in [names.zoom(n) for n in range(1, convs + 1)]
              + [names.pool_choice(n) for n in range(1, pools + 1)]),
            *(names.mean(c) for c in channels), *(names.std(c) for c in channels)}


def cell_of(ref: str) -> tuple[str, int, int]:
    """"'New Dense1'!$B$3" (a cell as formulas and defined names write it) -> ("New Dense1", 3, 2)."""
    sheet, cell = split_target(ref)
    top, left, _, _ = bounds(cell)
    return sheet, top, left
