"""The walkthrough workbook: one sheet per tensor of the forward pass, every number a live formula.

`build_walkthrough` lays each tensor out as blocks (see layout.py), writes the formula of every
cell with the layer's own formula function (see layers.py), and records what the engine says that
cell must evaluate to, so that a spreadsheet program's results can be checked cell by cell.
"""

from __future__ import annotations

import io
from copy import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.drawing.image import Image as SheetImage
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.hyperlink import Hyperlink
from PIL import Image

from cnnsheet import style
from cnnsheet.backsheets import DEFAULT_LEARNING_RATE, BackwardSheets
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import write_atomically
from cnnsheet.layers import (
    Conv,
    Dense,
    Flatten,
    MaxPool,
    ReLU,
    cross_entropy_formula,
    exp_formula,
    normalise_formula,
    onehot_formula,
    true_probability_formula,
)
from cnnsheet.layout import (
    LEFT,
    MAX_FORMULA,
    Block,
    Vector,
    a1,
    absolute,
    area,
    blocks_per_row,
    grid,
    on,
    valid_name,
)
from cnnsheet.model import Model, Trace
from cnnsheet.texts import Texts

OVERVIEW = "Overview"
SINGLE_SHEETS = ("Image", "Input", "Flatten", "Softmax", "Loss", "dLogits", "Step", "Saliency")


@dataclass
class Walkthrough:
    workbook: Workbook
    expected: dict = field(default_factory=dict)  # (sheet, row, col) -> number or text
    names: dict = field(default_factory=dict)  # defined name -> "Sheet!$A$1"


@dataclass
class Step:
    """One row of the overview's table: a sheet and what it holds."""

    sheet: str
    layer: str
    shape: tuple
    size_formula: str | None = None  # live arithmetic of the output height
    size_rule: str = ""
    params_formula: str | None = None
    params: int = 0
    note: str = ""


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


class _Builder(BackwardSheets):
    def __init__(self, model: Model, pixels: np.ndarray, texts: Texts, true_index: int,
                 photo: Image.Image | None, photo_name: str, with_backward: bool,
                 learning_rate: float, saliency_index: int):
        self.model, self.pixels, self.texts = model, pixels, texts
        self.true_index, self.photo, self.photo_name = true_index, photo, photo_name
        self.trace = model.predict(pixels)
        self.first = Pass(self.trace, model.params())
        self.with_backward = with_backward
        self.learning_rate, self.saliency_index = learning_rate, saliency_index
        self.result = Walkthrough(Workbook())
        self.steps: list[Step] = []
        self.counts: dict[str, int] = {}
        self.at: dict = {}  # tensor name -> (blocks or Vector, sheet) in the first pass
        self.param_at: dict = {}  # (layer, "weight" or "bias", index) -> "Sheet!B3"
        self.kernels: dict = {}  # conv layer -> [filter][channel] Block on its Filters sheet
        self.dense_at: dict = {}  # dense layer -> DenseGeometry
        self.styles: dict = {}  # named style -> the style array openpyxl gave its first cell

    # ---- cells ------------------------------------------------------------------------------
    def styled(self, cell, kind: str = "number", fmt: str = "General"):
        name = f"cnnsheet {kind} {fmt}"
        if name not in self.styles:
            self.result.workbook.add_named_style(style.named_style(name, kind, fmt))
            cell.style = name
            self.styles[name] = cell._style
        else:  # what `cell.style = name` does, without looking the name up again (measured: 2x)
            cell._style = copy(self.styles[name])
        return cell

    def number(self, ws, row, col, value, kind="number", fmt="General"):
        return self.styled(ws.cell(row, col, value), kind, fmt)

    def formula(self, ws, row, col, text, expected, kind="number", fmt="General"):
        if len(text) > MAX_FORMULA:
            raise CnnsheetError(f"a formula on sheet {ws.title} would be {len(text):,} characters "
                                f"long; Excel allows {MAX_FORMULA:,}")
        value = expected.item() if isinstance(expected, np.generic) else expected
        self.result.expected[ws.title, row, col] = value
        return self.styled(ws.cell(row, col, text), kind, fmt)

    def text(self, ws, row, col, value, kind=None):
        """User text (class names) stays text, even when it starts with '=' or '@'."""
        cell = ws.cell(row, col)
        cell.value = value
        cell.data_type = "s"
        return self.styled(cell, kind) if kind else cell

    def label(self, ws, row, col, value):
        return self.styled(ws.cell(row, col, value), "heading")

    def name(self, name: str, sheet: str, ref: str) -> str:
        if not valid_name(name):
            raise CnnsheetError(f"internal: {name!r} is not a valid defined name")
        target = on(sheet, absolute(ref))
        self.result.workbook.defined_names[name] = DefinedName(name, attr_text=target)
        self.result.names[name] = target
        return name

    def sheet(self, kind: str, section: str, body_keys=("body",), fp: Pass | None = None,
              title: str | None = None, **values):
        """A new sheet with its title, the link back, and the explanation; returns (ws, first free row).

        Sheets of the pass after the gradient step are called New...; they say so in one line."""
        prefix = fp.sheet_prefix if fp else ""
        self.counts[prefix + kind] = self.counts.get(prefix + kind, 0) + 1
        single = kind in SINGLE_SHEETS
        title = title or prefix + (kind if single else f"{kind}{self.counts[prefix + kind]}")
        ws = self.result.workbook.create_sheet(title)
        heading = self.texts(section, "title", **values)
        if prefix:
            heading = self.texts("step", "after_title", title=heading)
            body_keys, section, values = ("after_body",), "step", {"sheet": title[len(prefix):]}
        ws.cell(1, 1, heading).font = style.TITLE
        link = ws.cell(2, 1, self.texts("labels", "back"))
        link.hyperlink = Hyperlink(ref="A2", location=f"'{OVERVIEW}'!A1")
        link.font = style.LINK
        row = 3
        for key in body_keys:  # a key, or a (section, key) pair from another section
            where, key = key if isinstance(key, tuple) else (section, key)
            for line in self.texts.lines(where, key, **values):
                ws.cell(row, 1, line)
                row += 1
        ws.freeze_panes = "A3"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        return ws, row + 1

    @staticmethod
    def square_cells(ws, top: int, bottom: int, right: int, size=style.TENSOR_CELL):
        width, height = size
        for col in range(1, right + 2):
            ws.column_dimensions[get_column_letter(col)].width = width
        for row in range(top, bottom + 1):
            ws.row_dimensions[row].height = height
        ws.sheet_view.zoomScale = style.zoom_to_fit(right + 1, width)

    def blocks(self, ws, top: int, values: np.ndarray, labels, border: int = 0) -> list[Block]:
        """Lay out a (C, H, W) tensor as labelled blocks with their zero borders drawn."""
        C, H, W = values.shape
        per_row = blocks_per_row(C, W, border)
        blocks = grid(ws.title, C, H, W, top, LEFT, per_row, border, labels)
        for block in blocks:
            self.label(ws, block.top - border - 1, block.left - border, block.label)
            if border:
                top_, left_, bottom_, right_ = block.outer
                for row in range(top_, bottom_ + 1):
                    for col in range(left_, right_ + 1):
                        inside = block.top <= row < block.top + H and block.left <= col < block.left + W
                        if not inside:
                            self.number(ws, row, col, 0, "zero", "0")
        last = blocks[-1].outer
        self.square_cells(ws, top, last[2], max(b.outer[3] for b in blocks))
        return blocks

    def tensor(self, ws, blocks: list[Block], values: np.ndarray, formula_of, scale=None, fmt=None):
        """Write every element of a (C, H, W) tensor: formula_of(c, i, j) gives its formula, or
        None for a cell that is 0 whatever the inputs (written as a grey constant)."""
        fmt = fmt or style.number_format(values)
        for c, block in enumerate(blocks):
            for i in range(block.height):
                for j in range(block.width):
                    formula = formula_of(c, i, j)
                    if formula is None:
                        self.number(ws, *block.cell(i, j), 0, "zero", "0")
                    else:
                        self.formula(ws, *block.cell(i, j), formula, values[c, i, j], fmt=fmt)
        ranges = " ".join(block.data for block in blocks)
        ws.conditional_formatting.add(ranges, scale or style.scale_for(values))

    def border_for(self, index: int) -> int:
        """Zero padding to draw around a tensor: that of the conv which reads it next, if any."""
        layers = self.model.layers
        return layers[index].padding if index < len(layers) and isinstance(layers[index], Conv) else 0

    def step(self, fp: Pass, sheet: str, layer: str, shape: tuple, **details):
        """A row of the overview's table (the first pass's sheets describe the network)."""
        if fp is self.first:
            self.steps.append(Step(sheet, layer, shape, **details))

    # ---- sheets -----------------------------------------------------------------------------
    def build(self) -> Walkthrough:
        overview = self.result.workbook.active
        overview.title = OVERVIEW
        self.input_sheet(self.image_sheet())
        probabilities = self.softmax_sheet(self.first, self.forward(self.first))
        self.loss_sheet(probabilities)
        if self.with_backward:
            self.backward_sheets(probabilities)
        self.overview_sheet(overview)
        return self.result

    def image_sheet(self) -> list[Block]:
        size = self.model.input_size
        ws, top = self.sheet("Image", "image", size=size)
        pixels = self.pixels.transpose(2, 0, 1)  # (3, H, W)
        blocks = self.blocks(ws, top, pixels, ["R", "G", "B"])
        for channel, block in zip("RGB", blocks):
            for i in range(size):
                for j in range(size):
                    self.number(ws, *block.cell(i, j), int(self.pixels[i, j, "RGB".index(channel)]),
                                "pixel", "0")
            ws.conditional_formatting.add(block.data, style.channel_scale(channel))
            self.name(f"image_{channel}", ws.title, block.data)
        self.square_cells(ws, top, blocks[-1].top + size, blocks[-1].left + size, style.PIXEL_CELL)
        self.steps.append(Step(ws.title, self.texts("overview", "image_row"), (3, size, size)))
        return blocks

    def input_sheet(self, image_blocks):
        model = self.model
        names = channel_names(model.channels, True)
        border = self.border_for(0)
        keys = ("body", "body_padding") if border else ("body",)
        ws, top = self.sheet("Input", "input", keys, padding=border)
        # a small table of the normalisation constants, named mean_R, std_R, ...
        self.label(ws, top, LEFT, self.texts("labels", "mean"))
        self.label(ws, top + 1, LEFT, self.texts("labels", "std"))
        for c, channel in enumerate(names):
            col = LEFT + 1 + c
            self.label(ws, top - 1, col, channel)
            self.number(ws, top, col, float(model.mean[c]), fmt="0.0000")
            self.number(ws, top + 1, col, float(model.std[c]), fmt="0.0000")
            self.name(f"mean_{channel}", ws.title, a1(top, col))
            self.name(f"std_{channel}", ws.title, a1(top + 1, col))
        values = self.trace.tensors["input"][0]
        blocks = self.blocks(ws, top + 3, values, names, border)

        def formula(c, i, j):
            pixels = [on("Image", block.ref(i, j)) for block in image_blocks]
            return model.input_formula(c, pixels, f"mean_{names[c]}", f"std_{names[c]}")

        self.tensor(ws, blocks, values, formula)
        self.steps.append(Step(ws.title, self.texts("overview", "input_row"), values.shape))
        self.at["input"] = (blocks, ws.title)

    def forward(self, fp: Pass) -> Vector:
        """The sheets of one pass from the input to the logits; returns where the logits are."""
        blocks, sheet = self.at["input"]
        vector = None
        layers = self.model.layers
        for index, layer in enumerate(layers):
            border = self.border_for(index + 1)
            values = fp.trace.tensors[layer.name][0]
            if isinstance(layer, Conv):
                self.filters_sheet(fp, layer)
                blocks, sheet = self.conv_sheet(fp, layer, values, blocks, sheet, border)
            elif isinstance(layer, ReLU) and vector is None:
                blocks, sheet = self.relu_sheet(fp, layer, values, blocks, sheet, border)
            elif isinstance(layer, MaxPool):
                blocks, sheet = self.pool_sheet(fp, layer, values, blocks, sheet, border)
            elif isinstance(layer, Flatten):
                vector = self.flatten_sheet(fp, values, blocks, sheet)
            elif isinstance(layer, Dense):
                relu_next = index + 1 < len(layers) and isinstance(layers[index + 1], ReLU)
                vector = self.dense_sheet(fp, layer, vector, relu_next, last=index == len(layers) - 1)
            if fp is self.first:
                self.at[layer.name] = (vector, sheet) if vector is not None else (blocks, sheet)
        return vector

    def param(self, fp: Pass, ws, row, col, layer, key: str, index: tuple, fmt: str):
        """A weight or bias: a number in the first pass, `old - learning_rate * gradient` after."""
        value = fp.params[f"{layer.name}.{key}"][index]
        if fp.step is None:
            self.number(ws, row, col, float(value), fmt=fmt)
            self.param_at[layer.name, key, index] = on(ws.title, a1(row, col))
        else:
            self.formula(ws, row, col, fp.step(layer, key, index), value, fmt=fmt)

    def filter_bands(self, ws, top: int, layer: Conv, write_tap, write_bias):
        """The layout of a Filters sheet (or of its gradients): one band per filter holding a
        kernel per input channel, spread with zero holes when dilated, and the bias on the right.
        write_tap(row, col, (f, c, a, b)) and write_bias(row, col, f) fill the cells; returns the
        kernel blocks [f][c] and the bias cells."""
        F, C, span, d = layer.filters, layer.in_channels, layer.span, layer.dilation
        names = channel_names(C, layer is self.model.layers[0])
        kernels, bias_cells = [], []
        for f in range(F):
            band = top + f * (span + 2)
            row_blocks = []
            for c in range(C):
                block = Block(ws.title, band + 1, LEFT + c * (span + 1), span, span, label=names[c])
                filter_name = self.texts("labels", "filter", number=f + 1)
                self.label(ws, band, block.left, f"{filter_name}: {names[c]}" if c == 0 else names[c])
                for i in range(span):
                    for j in range(span):
                        if i % d == 0 and j % d == 0:
                            write_tap(*block.cell(i, j), (f, c, i // d, j // d))
                        else:  # the hole of a dilated kernel
                            self.number(ws, *block.cell(i, j), 0, "zero", "0")
                row_blocks.append(block)
            bias_col = LEFT + C * (span + 1)
            self.label(ws, band, bias_col, self.texts("labels", "bias"))
            write_bias(band + 1, bias_col, f)
            bias_cells.append(a1(band + 1, bias_col))
            kernels.append(row_blocks)
        self.square_cells(ws, top, top + F * (span + 2), LEFT + C * (span + 1))
        return kernels, bias_cells

    def filters_sheet(self, fp: Pass, layer: Conv):
        """Weights, one row of kernels per filter (spread with zeros when dilated), and biases."""
        F, C, k = layer.filters, layer.in_channels, layer.kernel
        span, d = layer.span, layer.dilation
        keys = ("body", "body_dilation") if d > 1 else ("body",)
        per_filter = C * k * k + 1
        ws, top = self.sheet("Filters", "filters", keys, fp, layer=layer.name, filters=F, channels=C,
                             kernel=k, weights=per_filter, total=F * per_filter, dilation=d, span=span)
        weights = fp.params[f"{layer.name}.weight"]
        fmt = style.number_format(weights)
        kernels, bias_cells = self.filter_bands(
            ws, top, layer,
            lambda row, col, tap: self.param(fp, ws, row, col, layer, "weight", tap, fmt),
            lambda row, col, f: self.param(fp, ws, row, col, layer, "bias", (f,), fmt))
        prefix = f"{fp.name_prefix}conv{self.counts[fp.sheet_prefix + 'Filters']}"
        for f, (row_blocks, bias) in enumerate(zip(kernels, bias_cells)):
            for block in row_blocks:
                self.name(f"{prefix}_f{f + 1}_{block.label}", ws.title, block.data)
            self.name(f"{prefix}_f{f + 1}_bias", ws.title, bias)
        ranges = [b.data for row_blocks in kernels for b in row_blocks] + bias_cells
        if fp is self.first:
            self.kernels[layer.name] = kernels
        everything = np.concatenate([weights.ravel(), fp.params[f"{layer.name}.bias"]])
        ws.conditional_formatting.add(" ".join(ranges), style.diverging(everything))
        self.step(fp, ws.title, layer.name, layer.weight.shape, params_formula=f"={F}*{C}*{k}*{k}+{F}",
                  params=layer.weight.size + layer.bias.size)

    def conv_sheet(self, fp: Pass, layer: Conv, values, in_blocks, in_sheet, border):
        F, Ho, Wo = values.shape
        in_h = in_blocks[0].height
        k, s, p, d = layer.kernel, layer.stride, layer.padding, layer.dilation
        ws, top = self.sheet("Conv", "conv", fp=fp, layer=layer.name, filters=F, out_h=Ho, out_w=Wo,
                             stride=s, kernel=k, products=layer.in_channels * k * k, in_h=in_h,
                             padding=p, dilation=d)
        labels = [self.texts("labels", "filter", number=f + 1) for f in range(F)]
        blocks = self.blocks(ws, top, values, labels, border)
        prefix = f"{fp.name_prefix}conv{self.counts[fp.sheet_prefix + 'Conv']}"
        names = channel_names(layer.in_channels, in_sheet == "Input")

        def formula(f, i, j):
            r0, c0 = layer.receptive_field(i, j)
            windows = [on(in_sheet, block.window(r0, c0, layer.span, layer.span)) for block in in_blocks]
            kernels = [f"{prefix}_f{f + 1}_{name}" for name in names]
            return Conv.formula(windows, kernels, f"{prefix}_f{f + 1}_bias")

        self.tensor(ws, blocks, values, formula)
        self.step(fp, ws.title, layer.name, values.shape,
                  size_formula=f"=INT(({in_h}+2*{p}-{d}*({k}-1)-1)/{s})+1",
                  size_rule=f"floor(({in_h} + 2x{p} - {d}x({k}-1) - 1) / {s}) + 1")
        return blocks, ws.title

    def relu_sheet(self, fp: Pass, layer: ReLU, values, in_blocks, in_sheet, border):
        ws, top = self.sheet("ReLU", "relu", fp=fp, layer=in_sheet)
        blocks = self.blocks(ws, top, values, [b.label for b in in_blocks], border)
        self.tensor(ws, blocks, values,
                    lambda c, i, j: ReLU.formula(on(in_sheet, in_blocks[c].ref(i, j))))
        self.step(fp, ws.title, layer.name, values.shape)
        return blocks, ws.title

    def pool_sheet(self, fp: Pass, layer: MaxPool, values, in_blocks, in_sheet, border):
        C, H, W = len(in_blocks), in_blocks[0].height, in_blocks[0].width
        rows, cols = layer.dropped((C, H, W))
        keys = ("body", "body_dropped") if rows or cols else ("body",)
        q, t = layer.size, layer.stride
        ws, top = self.sheet("Pool", "pool", keys, fp, layer=in_sheet, size=q, stride=t,
                             factor=round(H * W / (values.shape[1] * values.shape[2]), 1),
                             rows=rows, cols=cols)
        blocks = self.blocks(ws, top, values, [b.label for b in in_blocks], border)
        self.tensor(ws, blocks, values,
                    lambda c, i, j: MaxPool.formula(on(in_sheet, in_blocks[c].window(i * t, j * t, q, q))))
        note = self.texts("pool", "body_dropped", rows=rows, cols=cols) if rows or cols else ""
        self.step(fp, ws.title, layer.name, values.shape, size_formula=f"=INT(({H}-{q})/{t})+1",
                  size_rule=f"floor(({H} - {q}) / {t}) + 1", note=note)
        return blocks, ws.title

    def flatten_sheet(self, fp: Pass, values, in_blocks, in_sheet) -> Vector:
        C, H, W = len(in_blocks), in_blocks[0].height, in_blocks[0].width
        count = C * H * W
        ws, top = self.sheet("Flatten", "flatten", fp=fp, count=count, channels=C, height=H, width=W)
        for col, key in enumerate(["index", "map", "row", "column", "value"], LEFT):
            self.label(ws, top, col, self.texts("labels", key))
        vector = Vector(ws.title, top + 1, LEFT + 4, count)
        fmt = style.number_format(values)
        for n in range(count):
            c, rest = divmod(n, H * W)
            i, j = divmod(rest, W)
            row = top + 1 + n
            for col, label in enumerate((n + 1, in_blocks[c].label, i + 1, j + 1), LEFT):
                ws.cell(row, col, label)
            self.formula(ws, row, LEFT + 4, Flatten.formula(on(in_sheet, in_blocks[c].ref(i, j))),
                         values[n], fmt=fmt)
        ws.conditional_formatting.add(vector.data, style.scale_for(values))
        self.name(f"{fp.name_prefix}flatten", ws.title, vector.data)
        ws.freeze_panes = a1(top + 1, LEFT)
        for col, width in zip("ABCDEF", (3, 8, 10, 6, 8, 10)):
            ws.column_dimensions[col].width = width
        self.step(fp, ws.title, "flatten", (count,), size_formula=f"={C}*{H}*{W}",
                  size_rule=f"{C} x {H} x {W}")
        return vector

    def dense_sheet(self, fp: Pass, layer: Dense, source: Vector, relu_next: bool, last: bool) -> Vector:
        """Inputs down column C, one column of weights per output, the outputs in a row on top."""
        m, n = layer.units, layer.inputs
        keys = ("body",) + (("body_relu",) if relu_next else ()) + (("body_logits",) if last else ())
        ws, top = self.sheet("Dense", "dense", keys, fp, layer=layer.name, units=m, inputs=n,
                             weights=m * n)
        prefix = f"{fp.name_prefix}dense{self.counts[fp.sheet_prefix + 'Dense']}"
        geometry = DenseGeometry(ws.title, top + 1, top + 2, top + 3, top + 5, LEFT + 1, LEFT + 2)
        g = geometry
        outputs = fp.trace.tensors[layer.name][0]
        for row, key in ((g.bias_row, "bias"), (g.out_row, "output"), (g.data_top - 1, "index")):
            self.label(ws, row, LEFT, self.texts("labels", key))
        inputs_values = fp.trace.tensors[self.previous_name(layer)][0]
        fmt_in = style.number_format(inputs_values)
        self.label(ws, g.data_top - 1, g.in_col, self.texts("labels", "input"))
        for i in range(n):
            ws.cell(g.data_top + i, LEFT, i + 1)
            self.formula(ws, g.data_top + i, g.in_col, Flatten.formula(on(source.sheet, source.ref(i))),
                         inputs_values[i], fmt=fmt_in)
        inputs = self.name(f"{prefix}_in", ws.title, g.input_column(n))
        weights_now = fp.params[f"{layer.name}.weight"]
        fmt_w, fmt_out = style.number_format(weights_now), style.number_format(outputs)
        for j in range(m):
            col = g.first + j
            self.text(ws, top, col, self.output_name(layer, j), "heading")
            self.param(fp, ws, g.bias_row, col, layer, "bias", (j,), fmt_w)
            for i in range(n):
                self.param(fp, ws, g.data_top + i, col, layer, "weight", (j, i), fmt_w)
            column = area(g.data_top, col, g.data_top + n - 1, col)
            weights = self.name(f"{prefix}_w{j + 1}", ws.title, column)
            bias_name = self.name(f"{prefix}_b{j + 1}", ws.title, a1(g.bias_row, col))
            self.formula(ws, g.out_row, col, Dense.formula(inputs, weights, bias_name), outputs[j],
                         kind="heading", fmt=fmt_out)
        out = Vector(ws.title, g.out_row, g.first, m, across=True)
        ws.conditional_formatting.add(area(g.data_top, g.first, g.data_top + n - 1, g.first + m - 1),
                                      style.diverging(weights_now))
        ws.conditional_formatting.add(out.data, style.diverging(outputs))
        if relu_next:
            self.label(ws, g.relu_row, LEFT, self.texts("labels", "relu"))
            after = np.maximum(outputs, 0)
            for j in range(m):
                self.formula(ws, g.relu_row, g.first + j, ReLU.formula(out.ref(j)), after[j], fmt=fmt_out)
            out = Vector(ws.title, g.relu_row, g.first, m, across=True)
            ws.conditional_formatting.add(out.data, style.sequential(after))
        if last:
            self.name(f"{fp.name_prefix}logits", ws.title, out.data)
        if fp is self.first:
            self.dense_at[layer.name] = geometry
        ws.freeze_panes = a1(g.data_top, g.first)
        for col, width in zip("ABC", (3, 8, 9)):
            ws.column_dimensions[col].width = width
        for j in range(m):
            ws.column_dimensions[get_column_letter(g.first + j)].width = 10 if last else 7
        self.step(fp, ws.title, layer.name, (m,), params_formula=f"={m}*{n}+{m}", params=m * n + m)
        return out

    def output_name(self, layer: Dense, j: int) -> str:
        """A dense output's column heading: the class name for the last layer, else 'unit j'."""
        if layer is self.model.layers[-1]:
            return self.model.classes[j]
        return self.texts("labels", "unit", number=j + 1)

    def previous_name(self, layer) -> str:
        """The tensor a layer reads: the output of the layer before it, or the input."""
        names = list(self.trace.tensors)
        return names[names.index(layer.name) - 1]

    def softmax_sheet(self, fp: Pass, logits: Vector) -> Vector:
        classes = self.model.classes
        K = len(classes)
        ws, top = self.sheet("Softmax", "softmax", fp=fp)
        for col, key in enumerate(["class", "logit", "exp", "probability"], LEFT):
            self.label(ws, top, col, self.texts("labels", key))
        first = top + 1
        z = fp.trace.logits[0]
        exps = np.exp(z - z.max())
        p = fp.trace.probabilities[0]
        exp_range = area(first, LEFT + 2, first + K - 1, LEFT + 2)
        for k, name in enumerate(classes):
            row = first + k
            self.text(ws, row, LEFT, name)
            self.formula(ws, row, LEFT + 1, Flatten.formula(on(logits.sheet, logits.ref(k))), z[k],
                         kind="value", fmt="0.000")
            self.formula(ws, row, LEFT + 2, exp_formula(a1(row, LEFT + 1), f"{fp.name_prefix}logits"),
                         exps[k], kind="value", fmt="0.0000")
            self.formula(ws, row, LEFT + 3, normalise_formula(a1(row, LEFT + 2), exp_range), p[k],
                         kind="value", fmt="0.0000")
        self.label(ws, first + K, LEFT + 1, self.texts("labels", "sum"))
        self.formula(ws, first + K, LEFT + 2, f"=SUM({exp_range})", exps.sum(), kind="value", fmt="0.0000")
        self.formula(ws, first + K, LEFT + 3, f"=SUM({area(first, LEFT + 3, first + K - 1, LEFT + 3)})",
                     p.sum(), kind="value", fmt="0.0000")
        probabilities = Vector(ws.title, first, LEFT + 3, K)
        if fp is self.first:
            self.name("class_names", ws.title, Vector(ws.title, first, LEFT, K).data)
        self.name(f"{fp.name_prefix}probabilities", ws.title, probabilities.data)
        ws.conditional_formatting.add(probabilities.data, style.sequential(np.ones(1)))
        for col, width in zip("ABCDE", (3, 18, 14, 18, 16)):
            ws.column_dimensions[col].width = width
        chart = BarChart()
        chart.title = self.texts("labels", "probability")
        chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 1
        chart.y_axis.majorUnit, chart.y_axis.number_format = 0.25, "0%"
        chart.legend = None
        chart.add_data(Reference(ws, min_col=LEFT + 3, min_row=first, max_row=first + K - 1))
        chart.set_categories(Reference(ws, min_col=LEFT, min_row=first, max_row=first + K - 1))
        chart.height, chart.width = 7, 12
        ws.add_chart(chart, a1(first + K + 2, LEFT))
        self.step(fp, ws.title, "softmax", (K,))
        return probabilities

    def loss_sheet(self, probabilities: Vector):
        classes = self.model.classes
        K = len(classes)
        ws, top = self.sheet("Loss", "loss")
        self.label(ws, top, LEFT, self.texts("labels", "true_class"))
        choice = self.text(ws, top, LEFT + 1, classes[self.true_index], "input")
        self.name("true_class", ws.title, a1(top, LEFT + 1))
        drop_down = DataValidation(type="list", formula1="class_names", allow_blank=False)
        ws.add_data_validation(drop_down)
        drop_down.add(choice)
        header = top + 2
        for col, key in enumerate(["class", "probability", "onehot"], LEFT):
            self.label(ws, header, col, self.texts("labels", key))
        p = self.trace.probabilities[0]
        for k, name in enumerate(classes):
            row = header + 1 + k
            self.text(ws, row, LEFT, name)
            self.formula(ws, row, LEFT + 1, Flatten.formula(on(probabilities.sheet, probabilities.ref(k))),
                         p[k], kind="value", fmt="0.0000")
            self.formula(ws, row, LEFT + 2, onehot_formula(a1(row, LEFT), "true_class"),
                         float(k == self.true_index), kind="value", fmt="0")
        onehot = area(header + 1, LEFT + 2, header + K, LEFT + 2)
        self.name("onehot", ws.title, onehot)
        p_row, loss_row = header + K + 2, header + K + 3
        self.label(ws, p_row, LEFT, self.texts("labels", "p_true"))
        self.label(ws, loss_row, LEFT, self.texts("labels", "loss"))
        self.formula(ws, p_row, LEFT + 1, true_probability_formula("onehot", "probabilities"),
                     p[self.true_index], kind="value", fmt="0.0000")
        self.formula(ws, loss_row, LEFT + 1, cross_entropy_formula(a1(p_row, LEFT + 1)),
                     -np.log(p[self.true_index]), kind="big")
        self.name("loss", ws.title, a1(loss_row, LEFT + 1))
        for col, width in zip("ABCD", (3, 24, 14, 10)):
            ws.column_dimensions[col].width = width
        self.steps.append(Step(ws.title, "cross-entropy", (1,)))

    def overview_sheet(self, ws):
        t = self.texts
        photo = self.photo_name or t("overview", "photo")
        ws.cell(1, 1, t("overview", "title", photo=photo)).font = style.TITLE
        row = 3
        for line in t.lines("overview", "body"):
            ws.cell(row, 1, line)
            row += 1
        row += 1
        # the prediction, live
        p = self.trace.probabilities[0]
        predicted = self.model.classes[int(p.argmax())]
        summary = [
            ("predicted", "=INDEX(class_names,MATCH(MAX(probabilities),probabilities,0))", predicted, None),
            ("probability", "=MAX(probabilities)", p.max(), "0.0%"),
            ("true_class", "=true_class", self.model.classes[self.true_index], None),
            ("loss", "=loss", -np.log(p[self.true_index]), "0.0000"),
        ]
        if self.with_backward:
            summary += [("learning_rate", "=learning_rate", self.learning_rate, "0.000"),
                        ("loss_after_step", "=loss_after_step", self.loss_after, "0.0000"),
                        ("saliency_class", "=saliency_class", self.model.classes[self.saliency_index], None)]
        for key, text, expected, fmt in summary:
            self.label(ws, row, 1, t("overview", key))
            self.formula(ws, row, 2, text, expected, kind="heading", fmt=fmt or "General")
            row += 1
        row += 1
        headers = ["table_step", "table_layer", "table_shape", "table_size", "table_size_rule",
                   "table_params", "table_note"]
        for col, key in enumerate(headers, 1):
            self.label(ws, row, col, t("overview", key))
        first = row + 1
        for step in self.steps:
            row += 1
            link = ws.cell(row, 1, step.sheet)
            link.hyperlink = Hyperlink(ref=a1(row, 1), location=f"'{step.sheet}'!A1")
            link.font = style.LINK
            ws.cell(row, 2, step.layer)
            ws.cell(row, 3, " x ".join(str(n) for n in step.shape))
            if step.size_formula:
                self.formula(ws, row, 4, step.size_formula, step.shape[1] if len(step.shape) == 3
                             else step.shape[0], kind="heading")
                ws.cell(row, 5, step.size_rule)
            if step.params_formula:
                self.formula(ws, row, 6, step.params_formula, step.params, kind="heading")
            ws.cell(row, 7, step.note)
        row += 1
        self.label(ws, row, 5, t("overview", "total"))
        total = sum(s.params for s in self.steps)
        self.formula(ws, row, 6, f"=SUM({area(first, 6, row - 1, 6)})", total, kind="big")
        for col, width in zip("ABCDEFG", (20, 16, 14, 14, 36, 12, 30)):
            ws.column_dimensions[col].width = width
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        self._pictures(ws, anchor_col="H")

    def _pictures(self, ws, anchor_col: str):
        size = self.model.input_size
        view = Image.fromarray(self.pixels).resize((224, 224), Image.Resampling.NEAREST)
        pictures = [(view, t) for t in [self.texts("overview", "network_view", size=size)]]
        if self.photo is not None:
            photo = self.photo.copy()
            photo.thumbnail((224, 224))
            pictures.insert(0, (photo, self.texts("overview", "photo")))
        row = 3
        for picture, caption in pictures:
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            self.label(ws, row, ord(anchor_col) - 64, caption)
            ws.add_image(SheetImage(buffer), f"{anchor_col}{row + 1}")
            row += 14


def check_size(model: Model, with_backward: bool) -> None:
    """Refuse, before any work, a network whose workbook breaks Excel's limits or any patience."""
    from cnnsheet import budget

    budget.check_workbook(model, with_backward)


def build_walkthrough(model: Model, pixels: np.ndarray, texts: Texts | None = None,
                      true_index: int | None = None, photo: Image.Image | None = None,
                      photo_name: str = "", with_backward: bool = False,
                      learning_rate: float = DEFAULT_LEARNING_RATE,
                      saliency_index: int | None = None) -> Walkthrough:
    """The workbook for one photo's uint8 pixels (H, W, 3) and what every formula must give.

    The true class (Loss sheet) and the class of the saliency map default to the predicted one;
    `with_backward` adds the gradients, the gradient-descent step and the saliency map."""
    texts = texts or Texts("en")
    check_size(model, with_backward)
    predicted = int(model.predict(pixels).probabilities[0].argmax())
    true_index = predicted if true_index is None else true_index
    saliency_index = predicted if saliency_index is None else saliency_index
    return _Builder(model, pixels, texts, true_index, photo, photo_name, with_backward,
                    learning_rate, saliency_index).build()


def save_atomically(workbook: Workbook, path) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    write_atomically(path, workbook.save)
