"""What every sheet of the walkthrough shares: the book being planned and its small helpers.

The forward, backward, step and saliency sheets all call these; none of them inherits another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from cnnsheet import names, style
from cnnsheet.errors import CnnsheetError
from cnnsheet.fields import receptive_field_size
from cnnsheet.images import Occlusion
from cnnsheet.layers import Conv
from cnnsheet.layout import LEFT, Block, Vector, a1, area, blocks_per_row, grid, on, quote_sheet
from cnnsheet.model import Gradients, Model, Trace
from cnnsheet.plan import Highlight, Scale, SheetPlan, WorkbookPlan
from cnnsheet.texts import Texts

OVERVIEW = "Overview"
SINGLE_SHEETS = ("Image", "Input", "Flatten", "Softmax", "Loss", "dLogits", "Step", "Saliency")


@dataclass
class OverviewRow:
    """One row of the Overview's table: a sheet and what it holds. Each sheet function returns
    the rows of the sheets it made; the Overview lists them in the workbook's order."""

    sheet: str
    layer: str
    shape: tuple
    size_formula: str | None = None  # live arithmetic of the output height
    size_rule: str = ""
    params_formula: str | None = None
    params: int = 0
    note: str = ""
    window: tuple | None = None  # (span, stride) of a conv or pool: how it widens the field
    field: tuple | None = None  # the engine's (size, jump) of the receptive field of a cell here


@dataclass
class Pass:
    """One forward pass through the layers: its engine values, and how its sheets and names are
    called. The first pass has the model's weights as numbers; the pass after the gradient step
    has `step(layer, key, index)`, the formula of each new weight."""

    trace: Trace
    params: dict
    sheet_prefix: str = ""
    name_prefix: str = ""
    step: Callable | None = None


class Maps(NamedTuple):
    """A (C, H, W) tensor on a sheet: one block per channel."""

    blocks: list[Block]
    sheet: str


@dataclass(frozen=True)
class Filters:
    """Where a Filters sheet put a conv's kernels, [filter][channel], and its biases, one 1 x 1
    block per filter."""

    sheet: str
    kernels: list
    biases: list


@dataclass
class PassSheets:
    """What the sheets of one forward pass made, for the sheets planned after them: where each
    tensor landed ("input" and each layer's name -> Maps, or a Vector after flatten), each conv's
    Filters and each dense layer's DenseGeometry by layer name, the cell of each parameter of the
    first pass by (layer, "weight"/"bias", index), and the logits and probabilities."""

    maps: dict = field(default_factory=dict)
    filters: dict = field(default_factory=dict)
    dense: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    logits: Vector | None = None
    probabilities: Vector | None = None
    rows: list[OverviewRow] = field(default_factory=list)  # the Overview's rows of these sheets


@dataclass
class Backward:
    """One backward pass being planned: its tag ("d" from the loss, "s" from a class score), the
    engine's gradients, the first pass's sheets it reads, the Mask and Rotated sheets that the two
    backward passes share (layer name -> Maps, made by the first that needs one), and where each
    d loss / d parameter landed (tag "d"), for the gradient step."""

    tag: str
    grads: Gradients
    first: PassSheets
    shared: dict
    grad_at: dict = field(default_factory=dict)

    @property
    def relu_rule(self) -> str | None:
        """The cell naming the saliency pass's ReLU rule, or None where the gradient is plain."""
        return names.SALIENCY_RULE if self.tag == "s" else None

    def record(self, layer, key: str, index: tuple, sheet: str, row: int, col: int):
        """Remember where d loss / d parameter landed."""
        if self.tag == "d":
            self.grad_at[layer.name, key, index] = on(sheet, a1(row, col))


@dataclass(frozen=True)
class Outline:
    """A highlight one sheet asks for on another (a Zoom sheet outlines what its choice reads and
    feeds); the pipeline adds it, in the order asked."""

    sheet: str
    highlight: Highlight


@dataclass(frozen=True)
class DenseGeometry:
    """Where a dense sheet puts things: bias, output and ReLU rows; inputs and weights below."""

    sheet: str
    bias_row: int
    out_row: int
    relu_row: int
    data_top: int
    in_col: int
    first: int  # the column of the first output's weights

    def input_column(self, n: int) -> str:
        return area(self.data_top, self.in_col, self.data_top + n - 1, self.in_col)

    def weight_row(self, i: int, m: int) -> str:
        """The weights that input i meets, one per output: row i of W transposed."""
        return area(self.data_top + i, self.first, self.data_top + i, self.first + m - 1)


def channel_names(count: int, first_layer: bool) -> list[str]:
    if first_layer:
        return ["R", "G", "B"] if count == 3 else ["grey"]
    return [f"c{c + 1}" for c in range(count)]


@dataclass
class Book:
    """The walkthrough being planned: the model and photo, the plan, and where things landed."""

    model: Model
    pixels: np.ndarray
    texts: Texts
    target_index: int
    learning_rate: float
    saliency_index: int
    plan: WorkbookPlan = field(default_factory=WorkbookPlan)
    counts: dict = field(default_factory=dict)  # sheet kind -> how many so far
    untrained: bool = False  # random weights: the texts must not speak of training
    saliency_mode: str = "gradient"  # one of layers.RELU_RULES: the saliency pass's ReLU rule
    occlusion: Occlusion = field(default_factory=Occlusion)  # the grey square over the photo
    photo: np.ndarray | None = None  # the pixels before the square covers them (default: pixels)
    drawings: bool = False  # the bundled shapes model: its pictures are drawings, not photos
    numbers: dict = field(default_factory=dict)  # numbering ("step", "d", "s", "Newstep") -> last
    budgeted: dict = field(default_factory=dict)  # every sheet's title -> its cells, as the budget counted

    def __post_init__(self):
        self.photo = self.pixels if self.photo is None else self.photo
        self.trace = self.model.predict(self.pixels)
        self.loss = float(self.model.loss(self.trace, [self.target_index])[0])  # finite where p is 0
        self.first = Pass(self.trace, self.model.params())
        self.plan.lang = self.texts.lang
        self.class_names = self.texts.class_names(self.model.classes)  # as the workbook shows them

    def numbered(self, heading: str, numbering: str | None, prefix: str = "") -> str:
        """"Step 4 - ...", "Backward 3 - ...", "Saliency pass 2 - ...": numbered in the order the
        sheets are planned, which is the order of the workbook. The New... sheets repeat the
        numbers of the first pass, whose Image and Input sheets (1 and 2) they do not repeat."""
        if numbering is None:
            return heading
        counter = prefix + numbering
        self.numbers[counter] = self.numbers.get(counter, 2 if prefix else 0) + 1
        number = self.numbers[counter]
        if numbering == "step":
            return self.texts("labels", "step_title", number=number, title=heading)
        if numbering == "d":
            return self.texts("labels", "backward_title", number=number, title=heading)
        return self.texts("gradients", "saliency_title", number=number, title=heading)

    def legend(self, scale) -> str:
        """What the colours of a sheet mean, from its Scale, or a (Scale, grids) pair: a sheet of
        two scales names the grids each colours."""
        scale, grids = scale if isinstance(scale, tuple) else (scale, None)
        kind = {"fixed": "probability"}.get(scale.kind, scale.kind)
        if kind == "channel" and scale.high != 255:  # a tiny network's grey levels
            kind = "channel_levels"
        if grids is None:
            return self.texts("colours", kind)
        return self.texts("colours", f"{kind}_of", grids=grids)

    # ---- sheets ------------------------------------------------------------------------------
    def sheet(self, kind: str, section: str, body_keys=("body",), fp: Pass | None = None,
              title: str | None = None, numbering: str | None = "step", colours=(),
              after: str | None = None, **values) -> tuple[SheetPlan, int]:
        """A new sheet with its numbered title, the link back, the explanation and what its
        colours (Scales) mean; returns (sheet, first free row). It goes at the end of the
        workbook, or just after the sheet `after`. Sheets of the pass after the gradient step are
        called New...; they say so."""
        prefix = fp.sheet_prefix if fp else ""
        self.counts[prefix + kind] = self.counts.get(prefix + kind, 0) + 1
        single = kind in SINGLE_SHEETS
        title = title or prefix + (kind if single else f"{kind}{self.counts[prefix + kind]}")
        if title not in self.budgeted:  # the refusal of a too large workbook must count every sheet
            raise CnnsheetError(f"internal: sheet {title} is not counted in budget.workbook_sheets")
        ws = self.plan.sheet(title)
        if after is not None:
            self.plan.sheets.insert(self.plan.sheetnames.index(after) + 1, self.plan.sheets.pop())
        heading = self.numbered(self.texts(section, "title", **values), numbering, prefix)
        if prefix:
            heading = self.texts("step", "after_title", title=heading)
            body_keys, section, values = ("after_body",), "step", {"sheet": title[len(prefix):]}
        ws.text(1, 1, heading, style.key("title"))
        ws.link(2, 1, self.texts("labels", "back"), OVERVIEW)
        row = 3
        for key in body_keys:  # a key, or a (section, key) pair from another section
            where, key = key if isinstance(key, tuple) else (section, key)
            for line in self.texts.lines(where, key, **values):
                ws.text(row, 1, line)
                row += 1
        for scale in colours:
            ws.text(row, 1, self.legend(scale))
            row += 1
        ws.freeze = "A3"
        return ws, row + 1

    def add_outlines(self, outlines: list[Outline]):
        """The highlights that sheets asked for on other sheets, in the order asked."""
        for outline in outlines:
            self.plan[outline.sheet].highlights.append(outline.highlight)

    def name(self, name: str, sheet: SheetPlan | str, ref: str) -> str:
        return self.plan.name(name, sheet if isinstance(sheet, str) else sheet.title, ref)

    def blocks(self, ws: SheetPlan, top: int, values: np.ndarray, labels, border: int = 0,
               group: int = 1) -> list[Block]:
        """Lay out a (C, H, W) tensor as labelled blocks with their zero borders drawn; a row of
        blocks holds whole groups of `group` (a filter's kernels stay on one row)."""
        C, H, W = values.shape
        per_row = max(group, blocks_per_row(C, W, border) // group * group)
        blocks = grid(ws.title, C, H, W, top, LEFT, per_row, border, labels)
        zero = style.key("zero", "0")
        for block in blocks:
            ws.label(block.top - border - 1, block.left - border, block.label)
            ws.keep.append((block.top - border - 1, block.left - border, *block.outer[2:]))
            if border:
                top_, left_, bottom_, right_ = block.outer
                for row in range(top_, bottom_ + 1):
                    for col in range(left_, right_ + 1):
                        inside = block.top <= row < block.top + H and block.left <= col < block.left + W
                        if not inside:
                            ws.number(row, col, 0, zero)
        last = blocks[-1].outer
        square_cells(ws, top, last[2], max(b.outer[3] for b in blocks))
        return blocks

    def border_for(self, index: int) -> int:
        """Zero padding to draw around a tensor: that of the conv which reads it next, if any."""
        layers = self.model.layers
        return layers[index].padding if index < len(layers) and isinstance(layers[index], Conv) else 0

    def forward_row(self, fp: Pass, sheet: str, layer: str, shape: tuple, **details) -> OverviewRow:
        """The Overview's row of a forward sheet; only the first pass's rows count parameters and
        work out sizes (they describe the network)."""
        return OverviewRow(sheet, layer, shape, **(details if fp is self.first else {}))

    def previous_name(self, layer) -> str:
        """The tensor a layer reads: the output of the layer before it, or the input."""
        tensors = list(self.trace.tensors)
        return tensors[tensors.index(layer.name) - 1]

    def field_of(self, layer) -> tuple[int, int]:
        """The engine's (size, jump) of the receptive field of a cell of a layer's output."""
        layers = self.model.layers
        return receptive_field_size(layers[:layers.index(layer) + 1])

    def output_name(self, layer, j: int) -> str:
        """A dense output's column heading: the class name for the last layer, else 'unit j'."""
        if layer is self.model.layers[-1]:
            return self.class_names[j]
        return self.texts("labels", "unit", number=j + 1)

    def gradient_sheet(self, tag: str, forward_sheet: str, section: str, keys=("body",),
                       colours=(style.DIVERGING,), **values):
        """A sheet for the gradient of a forward sheet's tensor: dConv1 for Conv1, or sConv1 in the
        saliency pass, whose title and first line say that it starts from a class score."""
        if tag == "s":
            keys = (("gradients", "saliency_body"), *keys)
        return self.sheet(tag + forward_sheet, section, keys, title=tag + forward_sheet,
                          numbering=tag, colours=colours, sheet=forward_sheet, **values)


# ---- placing values: the helpers every sheet calls ------------------------------------------
def square_cells(ws: SheetPlan, top: int, bottom: int, right: int, size=style.TENSOR_CELL):
    """Square cells from column B on; column A, which only holds text, stays a narrow margin
    (a printed page then holds a whole 24-wide block)."""
    width, height = size
    ws.widths[1] = style.MARGIN_WIDTH
    for col in range(2, right + 2):
        ws.widths[col] = width
    for row in range(top, bottom + 1):
        ws.heights[row] = height
    ws.zoom = style.zoom_to_fit(right + 1, width)


def tensor(ws: SheetPlan, blocks: list[Block], values: np.ndarray, formula_of, scale: Scale,
           fmt: str | None = None):
    """Every element of a (C, H, W) tensor: formula_of(c, i, j) gives its formula, or None
    for a cell that is 0 whatever the inputs (written as a grey constant)."""
    if not np.isfinite(values).all():
        raise CnnsheetError(f"sheet {ws.title}: the engine computed values that are not finite "
                            f"numbers")
    look = style.key("number", fmt or style.number_format(values))
    zero = style.key("zero", "0")
    ws.formulas((((block.top + i, block.left + j), formula_of(c, i, j), value)
                 for c, block in enumerate(blocks)
                 for i, row_values in enumerate(values[c].tolist())
                 for j, value in enumerate(row_values)), look, zero)
    ws.scale([block.data for block in blocks], scale)


def place_param(fp: Pass, made: PassSheets, ws: SheetPlan, row, col, layer, key: str, index: tuple, fmt: str):
    """A weight or bias: a number in the first pass (its cell noted in `made`), and
    `old - learning_rate * gradient` after."""
    place_params(fp, made, ws, layer, key, [(row, col, index)], fmt)

def place_params(fp: Pass, made: PassSheets, ws: SheetPlan, layer, key: str, cells, fmt: str):
    """Weights or biases of a layer at (row, col, index) each, as `param` places one."""
    values = fp.params[f"{layer.name}.{key}"]
    look = style.key("number", fmt)
    if fp.step is None:
        sheet = quote_sheet(ws.title) + "!"
        for row, col, index in cells:
            ws.number(row, col, values[index], look)
            made.params[layer.name, key, index] = sheet + a1(row, col)
    else:
        for row, col, index in cells:
            ws.formula(row, col, fp.step(layer, key, index), values[index], look)
