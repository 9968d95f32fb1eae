"""The convolution, forward and back: its kernels (Filters), its output (Conv), and the gradients
of its kernels (dFilters), of its input (through Spread and Rotated)."""

from __future__ import annotations

import functools

import numpy as np

from cnnsheet import names, style
from cnnsheet.layers import Conv
from cnnsheet.layout import LEFT, Block, a1
from cnnsheet.sheets.common import (
    Backward,
    Book,
    Filters,
    Maps,
    OverviewRow,
    Pass,
    PassSheets,
    channel_names,
    place_param,
    square_cells,
    tensor,
)


def filter_bands(book: Book, ws, top: int, layer: Conv, write_tap, write_bias):
    """The layout of a Filters sheet (or of its gradients): one band per filter holding a kernel
    per input channel, spread with zero holes when dilated, and the bias on the right.
    write_tap(row, col, (f, c, a, b)) and write_bias(row, col, f) fill the cells; returns the
    kernel blocks [f][c] and the bias cells."""
    F, C, span, d = layer.filters, layer.in_channels, layer.span, layer.dilation
    channels = channel_names(C, layer is book.model.layers[0])
    zero = style.key("zero", "0")
    kernels, bias_cells = [], []
    for f in range(F):
        band = top + f * (span + 2)
        row_blocks = []
        for c in range(C):
            block = Block(ws.title, band + 1, LEFT + c * (span + 1), span, span, label=channels[c])
            filter_name = book.texts("labels", "filter", number=f + 1)
            ws.label(band, block.left, f"{filter_name}: {channels[c]}" if c == 0 else channels[c])
            for i in range(span):
                for j in range(span):
                    if i % d == 0 and j % d == 0:
                        write_tap(*block.cell(i, j), (f, c, i // d, j // d))
                    else:  # the hole of a dilated kernel
                        ws.number(*block.cell(i, j), 0, zero)
            row_blocks.append(block)
        bias_col = LEFT + C * (span + 1)
        ws.keep.append((band, LEFT, band + span, bias_col))
        ws.label(band, bias_col, book.texts("labels", "bias"))
        write_bias(band + 1, bias_col, f)
        bias_cells.append(a1(band + 1, bias_col))
        kernels.append(row_blocks)
    square_cells(ws, top, top + F * (span + 2), LEFT + C * (span + 1))
    return kernels, bias_cells


def filters_sheet(book: Book, fp: Pass, made: PassSheets, layer: Conv) -> tuple[Filters, OverviewRow]:
    """Weights, one row of kernels per filter (spread with zeros when dilated), and biases."""
    F, C, k = layer.filters, layer.in_channels, layer.kernel
    span, d = layer.span, layer.dilation
    keys = ("body_untrained" if book.untrained else "body",) + (("body_dilation",) if d > 1 else ())
    per_filter = C * k * k + 1
    ws, top = book.sheet("Filters", "filters", keys, fp, colours=(style.DIVERGING,), layer=layer.name,
                         filters=F, channels=C, kernel=k, weights=f"{per_filter:,}",
                         total=f"{F * per_filter:,}", dilation=d, span=span)
    fmt = style.number_format(fp.params[f"{layer.name}.weight"])
    kernels, bias_cells = filter_bands(
        book, ws, top, layer,
        lambda row, col, tap: place_param(fp, made, ws, row, col, layer, "weight", tap, fmt),
        lambda row, col, f: place_param(fp, made, ws, row, col, layer, "bias", (f,), fmt))
    number = book.counts[fp.sheet_prefix + "Filters"]
    for f, (row_blocks, bias) in enumerate(zip(kernels, bias_cells)):
        for block in row_blocks:
            book.name(names.conv_kernel(number, f + 1, block.label, fp.name_prefix), ws, block.data)
        book.name(names.conv_bias(number, f + 1, fp.name_prefix), ws, bias)
    bias_col = LEFT + C * (span + 1)  # as filter_bands puts it: right of the last kernel
    biases = [Block(ws.title, row_blocks[0].top, bias_col, 1, 1) for row_blocks in kernels]
    ws.scale([b.data for row_blocks in kernels for b in row_blocks] + bias_cells, style.DIVERGING)
    row = book.forward_row(fp, ws.title, layer.name, layer.weight.shape,
                           params_formula=f"={F}*{C}*{k}*{k}+{F}", params=layer.weight.size + layer.bias.size)
    return Filters(ws.title, kernels, biases), row


def conv_sheet(book: Book, fp: Pass, layer: Conv, values, in_blocks, in_sheet,
               border) -> tuple[Maps, OverviewRow]:
    """Each output cell: one SUMPRODUCT of a window and a kernel per input channel, plus the bias."""
    F, Ho, Wo = values.shape
    in_h = in_blocks[0].height
    k, s, p, d = layer.kernel, layer.stride, layer.padding, layer.dilation
    ws, top = book.sheet("Conv", "conv", fp=fp, colours=(style.DIVERGING,), layer=layer.name,
                         filters=F, out_h=Ho, out_w=Wo, stride=s, step=book.texts.count("pixels", s),
                         kernel=k, products=f"{layer.in_channels * k * k:,}", in_h=in_h,
                         padding=p, dilation=d)
    labels = [book.texts("labels", "filter", number=f + 1) for f in range(F)]
    blocks = book.blocks(ws, top, values, labels, border)
    number = book.counts[fp.sheet_prefix + "Conv"]
    channels = channel_names(layer.in_channels, in_sheet == "Input")

    kernels = [[names.conv_kernel(number, f + 1, channel, fp.name_prefix) for channel in channels]
               for f in range(F)]

    @functools.cache
    def windows(i, j):  # the same for every filter
        r0, c0 = layer.window_origin(i, j)
        return [block.window_address(r0, c0, layer.span, layer.span) for block in in_blocks]

    def formula(f, i, j):
        return Conv.formula(windows(i, j), kernels[f], names.conv_bias(number, f + 1, fp.name_prefix))

    tensor(ws, blocks, values, formula, style.DIVERGING)
    row = book.forward_row(fp, ws.title, layer.name, values.shape,
                           size_formula=f"=INT(({in_h}+2*{p}-{d}*({k}-1)-1)/{s})+1",
                           size_rule=f"floor(({in_h} + 2x{p} - {d}x({k}-1) - 1) / {s}) + 1",
                           window=(layer.span, s), field=book.field_of(layer))
    return Maps(blocks, ws.title), row


# ---- backward --------------------------------------------------------------------------------
def conv_backward(book: Book, back: Backward, layer: Conv, incoming, with_params: bool,
                  need_input: bool) -> tuple[Maps | None, list[OverviewRow]]:
    """db = sum of dZ; dW = input windows x dZ; d input = dZ (spread) fully convolved with the
    kernels turned by 180 degrees. Returns d input (None when not needed) and the sheets' rows."""
    dz = back.grads.tensors[layer.name][0]
    grad_blocks, _ = incoming
    bordered = grad_blocks[0].border >= layer.span - 1 or not need_input
    rows = []
    if layer.stride > 1 or not bordered:
        spread_map, row = spread(book, back, layer, incoming, dz, layer.span - 1 if need_input else 0)
        rows.append(row)
    else:
        spread_map = incoming
    if with_params:
        rows.append(weight_gradients(book, back, layer, incoming, spread_map))
    if need_input:
        dinput, more = input_gradient(book, back, layer, spread_map)
        return dinput, rows + more
    return None, rows


def spread(book: Book, back: Backward, layer: Conv, incoming, dz: np.ndarray,
           border: int) -> tuple[Maps, OverviewRow]:
    """dZ with stride - 1 zeros between its cells: the map that a strided conv's gradient slides
    over (the transposed convolution), framed by zeros for the full convolution."""
    grad_blocks, grad_sheet = incoming
    s = layer.stride
    values = layer.spread(dz)  # (F, Hd, Wd)
    F, Hd, Wd = values.shape
    number = back.first.maps[layer.name].sheet[len("Conv"):]
    ws, top = book.sheet("Spread", "spread", title=f"{back.tag}Spread{number}", numbering=back.tag,
                         colours=(style.DIVERGING,), stride=s, sheet=grad_sheet)
    blocks = book.blocks(ws, top, values, [b.label for b in grad_blocks], border)
    tensor(ws, blocks, values, lambda f, i, j: (
        f"={grad_blocks[f].address(i // s, j // s)}" if i % s == 0 and j % s == 0 else None),
        style.DIVERGING, fmt=style.number_format(dz))
    return Maps(blocks, ws.title), OverviewRow(ws.title, layer.name, (F, Hd, Wd))


def weight_gradients(book: Book, back: Backward, layer: Conv, incoming, spread_map) -> OverviewRow:
    """dW of each tap: SUMPRODUCT of the input window it met and the (spread) gradient map."""
    grad_blocks, grad_sheet = incoming
    spread_blocks, spread_sheet = spread_map
    in_blocks, in_sheet = back.first.maps[book.previous_name(layer)]
    d, p = layer.dilation, layer.padding
    Hd, Wd = spread_blocks[0].height, spread_blocks[0].width
    dw, db = back.grads.params[f"{layer.name}.weight"], back.grads.params[f"{layer.name}.bias"]
    filters_sheet = back.first.filters[layer.name].sheet
    ws, top = book.gradient_sheet(back.tag, filters_sheet, "dfilters", layer=layer.name, height=Hd, width=Wd)
    look_w = style.key("number", style.number_format(dw))
    look_b = style.key("number", style.number_format(db))

    def weight_gradient(row, col, tap):
        f, c, a, b = tap
        window = in_blocks[c].window_address(a * d - p, b * d - p, Hd, Wd)
        ws.formula(row, col, f"=SUMPRODUCT({window},{spread_blocks[f].data_address})",
                   dw[tap], look_w)
        back.record(layer, "weight", tap, ws.title, row, col)

    def bias_gradient(row, col, f):
        ws.formula(row, col, f"=SUM({grad_blocks[f].data_address})", db[f], look_b)
        back.record(layer, "bias", (f,), ws.title, row, col)

    kernels, bias_cells = filter_bands(book, ws, top, layer, weight_gradient, bias_gradient)
    ws.scale([b.data for row_blocks in kernels for b in row_blocks] + bias_cells, style.DIVERGING)
    return OverviewRow(ws.title, layer.name, dw.shape)


def rotated_kernels(book: Book, back: Backward, layer: Conv) -> tuple[Maps, list[OverviewRow]]:
    """Each kernel turned by 180 degrees (spread when dilated), read live from its Filters sheet;
    one sheet for both backward passes (the rows: its row if this call made it)."""
    if ("Rotated", layer.name) in back.shared:
        return back.shared["Rotated", layer.name], []
    F, C, span = layer.filters, layer.in_channels, layer.span
    kernels = back.first.filters[layer.name].kernels
    number = back.first.maps[layer.name].sheet[len("Conv"):]
    turned = layer.turned_kernels()  # (F * C, span, span)
    labels = [f"{book.texts('labels', 'filter', number=f + 1)}: {kernels[f][c].label}"
              for f in range(F) for c in range(C)]
    ws, top = book.sheet("Rotated", "rotated", title=f"Rotated{number}", numbering=back.tag,
                         colours=(style.DIVERGING,), layer=layer.name)
    blocks = book.blocks(ws, top, turned, labels, group=C)
    # a filter's kernels print together, never split between pages: one unit per filter
    ws.keep[:] = [(ws.keep[f * C][0], ws.keep[f * C][1], ws.keep[f * C + C - 1][2], ws.keep[f * C + C - 1][3])
                  for f in range(F)]
    tensor(ws, blocks, turned, lambda n, u, v: (
        f"={kernels[n // C][n % C].address(span - 1 - u, span - 1 - v)}"),
        style.DIVERGING)
    back.shared["Rotated", layer.name] = Maps(blocks, ws.title)
    return back.shared["Rotated", layer.name], [OverviewRow(ws.title, layer.name, (F, C, span, span))]


def input_gradient(book: Book, back: Backward, layer: Conv, spread_map) -> tuple[Maps, list[OverviewRow]]:
    """d input: the zero-framed gradient map convolved with the turned kernels, summed over filters."""
    spread_blocks, spread_sheet = spread_map
    (rot_blocks, rot_sheet), rows = rotated_kernels(book, back, layer)
    previous = book.previous_name(layer)
    in_blocks, in_sheet = back.first.maps[previous]
    values = back.grads.tensors[previous][0]
    F, C, span, p = layer.filters, layer.in_channels, layer.span, layer.padding
    Hd, Wd = spread_blocks[0].height, spread_blocks[0].width
    ws, top = book.gradient_sheet(back.tag, in_sheet, "dinput", layer=layer.name, span=span)
    blocks = book.blocks(ws, top, values, [b.label for b in in_blocks])

    rotated = [[rot_blocks[f * C + c].data_address for f in range(F)] for c in range(C)]

    @functools.cache
    def windows(y, x):  # the same for every channel
        yp, xp = y + p, x + p  # in the padded input
        if yp > Hd + span - 2 or xp > Wd + span - 2:  # no window reached this cell
            return None
        top, left = yp - span + 1, xp - span + 1  # the window of the zero-framed map
        return [block.window_address(top, left, span, span) for block in spread_blocks]

    def formula(c, y, x):
        spread_windows = windows(y, x)
        if spread_windows is None:
            return None
        return "=" + "+".join(f"SUMPRODUCT({window},{kernel})"
                              for window, kernel in zip(spread_windows, rotated[c]))

    tensor(ws, blocks, values, formula, style.DIVERGING)
    return Maps(blocks, ws.title), rows + [OverviewRow(ws.title, previous, values.shape)]

