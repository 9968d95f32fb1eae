"""One neuron up close: a Zoom sheet after each Conv sheet of the first pass.

The student picks a filter, a row and a column (three named yellow cells). The sheet pulls the
window that output cell reads, channel by channel, live from the sheet the layer reads (INDEX
into the area framed by the zero padding), sets the chosen filter's kernel beside it, multiplies
them one cell per weight, adds the bias, and checks the total against the Conv sheet. Colour
rules driven by the same names outline the window, the chosen cell and what it feeds, and the
pixels of the photo that can reach it (the receptive field), which a small table of 0/1 flags
carries down through every earlier conv and pool.
"""

from __future__ import annotations

import math

from cnnsheet import names, printing, style
from cnnsheet.errors import CnnsheetError
from cnnsheet.fields import reached_by, receptive_field
from cnnsheet.layers import Conv, MaxPool, ReLU
from cnnsheet.layout import Block, a1, area, quote_sheet
from cnnsheet.plan import Highlight
from cnnsheet.sheets.choice import (
    choice_cells,
    colour_name,
    from_chosen_block,
    grid_position,
    indexed,
    outline,
    sheet_scale,
    strongest,
)
from cnnsheet.sheets.common import Book, Maps, Outline, OverviewRow, PassSheets, channel_names, square_cells
from cnnsheet.sheets.pool import earlier_in_window

LABELS, VALUES, GRID = 2, 3, 4  # columns: labels, values, then the square cells of the grids


def zoom_sheets(book: Book, first: PassSheets, image_maps: Maps,
                choices: dict | None = None) -> tuple[list[Outline], list[OverviewRow]]:
    """A Zoom sheet after every Conv sheet of the first pass, and a choice of one cell on every
    Pool sheet; returns their outlines on the sheets they read and feed, for the pipeline to add,
    and the Overview's rows of the Zoom sheets.
    `choices` maps "zoom1", "pool1", ... to a 0-based (filter, row, col); by default filter 1 at
    its strongest cell."""
    choices = choices or {}
    convs = pools = 0
    outlines, rows = [], []
    for index, layer in enumerate(book.model.layers):
        if isinstance(layer, Conv):
            convs += 1
            zoom_outlines, row = zoom_sheet(book, first, image_maps, index, layer, convs,
                                            choices.get(names.zoom(convs)))
            outlines += zoom_outlines
            rows.append(row)
        elif isinstance(layer, MaxPool):
            pools += 1
            outlines += pool_choice(book, first, layer, pools, choices.get(names.pool_choice(pools)))
    return outlines, rows


def zoom_sheet(book: Book, first: PassSheets, image_maps: Maps, index: int, layer: Conv, n: int,
               choice) -> tuple[list[Outline], OverviewRow]:
    """The Zoom sheet of a conv, just after its Conv sheet; returns its outlines on other sheets
    and its Overview row."""
    t = book.texts
    trace = book.trace
    F, C, k = layer.filters, layer.in_channels, layer.kernel
    s, p, d, span = layer.stride, layer.padding, layer.dilation, layer.span
    previous = book.previous_name(layer)
    x = trace.tensors[previous][0]  # (C, H, W)
    out = trace.tensors[layer.name][0]  # (F, Ho, Wo)
    _, Ho, Wo = out.shape
    f, i, j = choice or strongest(out)
    in_blocks, in_sheet = first.maps[previous]
    out_blocks, conv_title = first.maps[layer.name]
    if in_blocks[0].border != p:
        raise CnnsheetError(f"internal: {in_sheet} is framed by {in_blocks[0].border} zeros, "
                            f"{layer.name} pads by {p}")
    channels = channel_names(C, previous == "input")
    title = f"Zoom{n}"
    keys = ["body"] + (["body_stride"] if s > 1 else []) + (["body_padding"] if p else []) + (
        ["body_dilation"] if d > 1 else [])
    ws, top = book.sheet("Zoom", "zoom", tuple(keys), title=title, numbering=None, after=conv_title,
                         colours=tuple(dict.fromkeys((sheet_scale(book, in_sheet), style.DIVERGING))),
                         number=n, conv=conv_title,
                         input=in_sheet, layer=layer.name, channels=C, kernel=k, span=span,
                         stride=s, padding=p, dilation=d, products=C * k * k, colour=colour_name(book, n))
    ws.label(top, LABELS, t("zoom", "choose", conv=conv_title))
    pick, row_name, col_name = choice_cells(book, ws, top + 1, LABELS, VALUES, names.zoom(n), (f, i, j),
                                            (F, Ho, Wo))

    # ---- the window, the kernel and the products, one band of rows per channel -----------------
    # band c: its labels, then its window, kernel and products side by side ("window x kernel =
    # products"), the bands one under another, so the sheet is three grids wide at any channel
    # count; the products of every channel stay one rectangle (the named range the sum reads),
    # each channel's k rows level with its band, the rows between bands empty
    weight = layer.weight  # (F, C, k, k)
    neuron = layer.one_output(x, f, i, j)
    window, kernel, products = neuron.window, neuron.kernel, neuron.products
    grid_top = top + 12
    band = span + 2  # rows of a band: its labels, its grids, an empty row
    kernel_left, product_left = GRID + span + 1, GRID + 2 * span + 2
    look_x = style.key("number", style.number_format(x))
    look_w = style.key("number", style.number_format(weight))
    look_product = style.key("number", style.number_format(products))
    hole, zero = style.key("hole", style.number_format(x)), style.key("zero", "0")
    # the products' label wraps within their columns: running on, it would widen every page of the sheet
    label = t("zoom", "products", count=C * k * k)
    ws.text(grid_top, product_left, label, ("heading_prose", "General"))
    ws.merges.append(area(grid_top, product_left, grid_top, product_left + k - 1))
    room = 0.9 * k * printing.page_points(style.TENSOR_CELL[0])
    lines = math.ceil(printing.text_points(label, 12) / room)
    window_blocks, kernel_blocks = [], []
    for c in range(C):
        label_row = grid_top + c * band
        window_block = Block(title, label_row + 1, GRID, span, span)
        kernel_block = Block(title, label_row + 1, kernel_left, span, span)
        ws.label(label_row, GRID, t("zoom", "window", channel=channels[c]))
        ws.label(label_row, kernel_left, t("zoom", "kernel", channel=channels[c]))
        outer = in_blocks[c].outer
        cells = (outer[2] - outer[0] + 1) * (outer[3] - outer[1] + 1)
        source = quote_sheet(in_sheet) + "!" + area(*outer)
        kernels = [names.conv_kernel(n, g + 1, channels[c]) for g in range(F)]
        filter_blocks = [first.filters[layer.name].kernels[g][c] for g in range(F)]
        for a in range(span):
            for b in range(span):
                tap = a % d == 0 and b % d == 0
                ws.formula(*window_block.cell(a, b),
                           "=" + indexed(source, cells, f"({row_name}-1)*{s}+{a + 1}",
                                         f"({col_name}-1)*{s}+{b + 1}"),
                           window[c, a, b], look_x if tap else hole)
                if tap:
                    formula = from_chosen_block(filter_blocks, kernels, pick, a + 1, b + 1)
                    ws.formula(*kernel_block.cell(a, b), f"={formula}", kernel[c, a, b], look_w)
                else:
                    ws.number(*kernel_block.cell(a, b), 0, zero)
        window_blocks.append(window_block)
        kernel_blocks.append(kernel_block)
    product_block = Block(title, grid_top + 1, product_left, (C - 1) * band + k, k)
    for c in range(C):
        for a in range(k):
            for b in range(k):
                ws.formula(*product_block.cell(c * band + a, b),
                           f"={window_blocks[c].ref(a * d, b * d)}*{kernel_blocks[c].ref(a * d, b * d)}",
                           products[c, a, b], look_product)
    book.name(names.zoom_products(n), ws, product_block.data)
    # in print, a channel's band stays together; pages break between bands
    for c in range(C):
        label_row = grid_top + c * band
        ws.keep.append((label_row, GRID, label_row + span, product_left + k - 1))
    bands_bottom = grid_top + C * band - 2  # the last band's last row

    def taps(block):  # the cells a dilated kernel uses: the holes keep their grey look
        if d == 1:
            return [block.data]
        return [block.ref(a * d, b * d) for a in range(k) for b in range(k)]

    ws.scale([cell for b in window_blocks for cell in taps(b)], sheet_scale(book, in_sheet))
    ws.scale([cell for b in kernel_blocks for cell in taps(b)]
             + [product_block.window(c * band, 0, k, k) for c in range(C)], style.DIVERGING)

    # ---- sum, bias, total, and the same cell on the Conv sheet ----------------------------------
    look = style.key("value", "0.0000")
    row = top + 5
    biases = from_chosen_block(first.filters[layer.name].biases,
                               [names.conv_bias(n, g + 1) for g in range(F)], pick, 1, 1)
    conv_cell = from_chosen_block(out_blocks, [b.data_address for b in out_blocks], pick, row_name, col_name)
    mine, theirs = a1(row + 2, VALUES), a1(row + 3, VALUES)
    rows = [("sum", f"=SUM({names.zoom_products(n)})", neuron.sum, look),
            ("bias", f"={biases}", neuron.bias, look),
            ("total", f"={a1(row, VALUES)}+{a1(row + 1, VALUES)}", neuron.total, style.key("big", "0.0000")),
            ("on_conv", f"={conv_cell}", out[f, i, j], look),
            # 1 or 0, not a text: a teacher's words never go inside a formula
            ("check", f"=IF(ABS({mine}-{theirs})<=1E-9*(1+ABS({theirs})),1,0)", 1, style.key("heading", "0"))]
    for offset, (key, formula, value, look_) in enumerate(rows):
        ws.text(row + offset, LABELS, t("zoom", key, conv=conv_title))
        ws.formula(row + offset, VALUES, formula, value, look_)
    book.name(names.zoom_value(n), ws, a1(row + 2, VALUES))

    field_top = bands_bottom + 3
    field = receptive_field_table(book, first, ws, index, layer, n, (i, j), field_top)
    ws.text(top + 10, LABELS, t("zoom", "field"))
    rows_name, cols_name = names.zoom_field(n, "rows"), names.zoom_field(n, "cols")
    ws.formula(top + 10, VALUES, f"=SUM({rows_name})&\" x \"&SUM({cols_name})",
               f"{len(field[0])} x {len(field[1])}", style.key("heading"))

    square_cells(ws, grid_top, bands_bottom, product_left + k - 1)
    for c in range(C):  # a band's labels and the row after it are text rows: a page holds more bands
        ws.heights.pop(grid_top + c * band)
        ws.heights.pop(grid_top + c * band + span + 1, None)
    ws.heights[grid_top] = lines * printing.DEFAULT_ROW
    ws.width("ABC", (3, 46, 12))
    return highlights(book, first, image_maps, index, layer, n), OverviewRow(title, layer.name, (C, k, k))


def receptive_field_table(book: Book, first: PassSheets, ws, index: int, layer: Conv, n: int, chosen,
                          top: int):
    """0/1 flags of the rows and columns of every earlier sheet that can reach the chosen cell:
    the conv's own input from the choice, every tensor below from the one above it, through the
    windows of each conv and pool (a ReLU keeps them); the engine's receptive field gives each
    flag's value. Returns the input's (rows, cols) sets: the receptive field of the chosen cell."""
    t = book.texts
    layers = book.model.layers[:index + 1]
    ws.label(top - 1, LABELS, t("zoom", "field_table"))
    ws.text(top, LABELS, t("zoom", "field_rows"))
    flag = style.key("value", "0")
    zero = style.key("zero", "0")
    choice_names = (names.choice(names.zoom(n), "row"), names.choice(names.zoom(n), "col"))
    above = None  # (column per axis, layer whose input this is)
    col = VALUES
    field = [set(), set()]  # rows, cols
    for depth in range(len(layers) - 1, -1, -1):
        below = layers[depth]
        if isinstance(below, ReLU):
            continue
        tensor = book.previous_name(below)
        sheet = first.maps[tensor].sheet
        size_rows, size_cols = book.trace.tensors[tensor][0].shape[1:]
        out_rows, out_cols = book.trace.tensors[below.name][0].shape[1:]
        ws.label(top, col, sheet)
        ws.text(top + 1, col, t("zoom", "rows"))
        ws.text(top + 1, col + 1, t("zoom", "cols"))
        for axis, (size, out_size) in enumerate(((size_rows, out_rows), (size_cols, out_cols))):
            sizes = [shape[1 + axis] for shape in book.model.shapes[depth:index + 1]]
            reaching = field[axis] = receptive_field(layers[depth:], sizes, chosen[axis])
            for y in range(size):
                cell = (top + 2 + y, col + axis)
                value = float(y in reaching)
                if above is None:  # the chosen output cell: the taps of its window, live
                    offset = f"{y}-(({choice_names[axis]}-1)*{below.stride}-{below.padding})"
                    terms = [f"{offset}>=0", f"{offset}<={below.span - 1}"]
                    if below.dilation > 1:
                        terms.append(f"MOD({offset},{below.dilation})=0")
                    ws.formula(*cell, f"=IF(AND({','.join(terms)}),1,0)", value, flag)
                else:
                    sources = reached_by(below, y, out_size)
                    if sources:
                        refs = ",".join(a1(top + 2 + out, above[axis]) for out in sources)
                        ws.formula(*cell, f"=MAX({refs})", value, flag)
                    else:  # no window reads it: a remainder a pool or stride left out
                        ws.number(*cell, 0, zero)
        above = (col, col + 1)
        col += 2
    size_rows, size_cols = book.trace.tensors["input"][0].shape[1:]
    book.name(names.zoom_field(n, "rows"), ws, area(top + 2, above[0], top + 1 + size_rows, above[0]))
    book.name(names.zoom_field(n, "cols"), ws, area(top + 2, above[1], top + 1 + size_cols, above[1]))
    for y in range(max(size_rows, size_cols)):
        ws.number(top + 2 + y, LABELS, y + 1, style.key("value", "0"))
    ws.scale([area(top + 2, VALUES, top + 1 + max(size_rows, size_cols), col - 1)], style.PROBABILITY)
    return field


def highlights(book: Book, first: PassSheets, image_maps: Maps, index: int, layer: Conv,
               n: int) -> list[Outline]:
    """Rules that follow the choice: the taps of the window on the sheet the layer reads, the
    chosen cell on the Conv sheet, the ReLU and pool cells it feeds, the field on the Image sheet."""
    in_blocks = first.maps[book.previous_name(layer)].blocks
    out_blocks = first.maps[layer.name].blocks
    outlines = []
    pick, row_name, col_name = (names.choice(names.zoom(n), key) for key in names.CHOICE_KEYS)
    s, p, d, span = layer.stride, layer.padding, layer.dilation, layer.span

    def taps(row: str, col: str) -> str:  # row and col: 0-based, in the padded input
        terms = []
        for here, name in ((row, row_name), (col, col_name)):
            offset = f"{here}-({name}-1)*{s}"
            terms += [f"{offset}>=0", f"{offset}<={span - 1}"] + ([f"MOD({offset},{d})=0"] if d > 1 else [])
        return f"=AND({','.join(terms)})"

    _, row, col = grid_position(in_blocks)
    colour = n - 1
    outlines.append(outline(in_blocks, taps(f"{row}+{p}", f"{col}+{p}"), colour))
    for block in in_blocks if p else ():  # the zero frame: no colour scale there, one rule a block
        top, left, bottom, right = block.outer
        frame = [area(top, left, block.top - 1, right), area(block.top + block.height, left, bottom, right),
                 area(block.top, left, block.top + block.height - 1, block.left - 1),
                 area(block.top, block.left + block.width, block.top + block.height - 1, right)]
        outlines.append(Outline(block.sheet, Highlight(tuple(frame), taps(f"ROW()-{top}", f"COLUMN()-{left}"),
                                                       "chosen", colour)))

    def cell_rule(blocks, size, stride):  # the cells whose window (size, stride) holds the choice
        number, row, col = grid_position(blocks)
        terms = [f"{pick}={number}"]
        for here, name in ((row, row_name), (col, col_name)):
            terms += [f"{here}*{stride}<={name}-1", f"{name}-1<={here}*{stride}+{size - 1}"]
        outlines.append(outline(blocks, f"=AND({','.join(terms)})", colour))

    cell_rule(out_blocks, 1, 1)
    later = book.model.layers[index + 1:]
    if later and isinstance(later[0], ReLU):
        cell_rule(first.maps[later[0].name].blocks, 1, 1)
        later = later[1:]
    if later and isinstance(later[0], MaxPool):
        cell_rule(first.maps[later[0].name].blocks, later[0].size, later[0].stride)
    for block in image_maps.blocks:  # each channel has a colour scale of its own
        outlines.append(outline(
            [block], f"=AND(INDEX({names.zoom_field(n, 'rows')},ROW()-{block.top - 1})=1,"
                     f"INDEX({names.zoom_field(n, 'cols')},COLUMN()-{block.left - 1})=1)", colour, "field"))
    return outlines


def pool_choice(book: Book, first: PassSheets, layer: MaxPool, n: int, choice) -> list[Outline]:
    """Below the maps of a Pool sheet (the rows the Pool sheet leaves to it): a choice of one pooled
    cell, the window it took its maximum from (read live from the sheet before), and a 1 on the
    window's first maximum, the winner. Returns its outlines of the chosen window and cell."""
    t = book.texts
    out_blocks, pool_title = first.maps[layer.name]
    in_blocks, in_sheet = first.maps[book.previous_name(layer)]
    values = book.trace.tensors[layer.name][0]  # (C, Ho, Wo)
    x = book.trace.tensors[book.previous_name(layer)][0]  # (C, H, W)
    C, Ho, Wo = values.shape
    q, stride = layer.size, layer.stride
    f, i, j = choice or strongest(values)
    ws = book.plan[pool_title]
    top = max(block.outer[2] for block in out_blocks) + 3
    label_col, value_col = 2, 2 + max(8, q)  # the labels run over the narrow columns to their right
    ws.label(top, label_col, t("zoom", "pool_choose", sheet=pool_title, colour=colour_name(book, n)))
    pick, row_name, col_name = choice_cells(book, ws, top + 1, label_col, value_col, names.pool_choice(n),
                                            (f, i, j), (C, Ho, Wo))
    window, winner = layer.one_output(x, f, i, j)  # (q, q) each; winner: 1 on the first maximum
    grid_top = top + 6
    window_block = Block(ws.title, grid_top + 1, label_col, q, q)
    winner_block = Block(ws.title, grid_top + 1, label_col + q + 1, q, q)
    ws.label(grid_top, window_block.left, t("zoom", "pool_window", sheet=in_sheet))
    ws.label(grid_top - 1, winner_block.left, t("zoom", "pool_winner"))
    maximum = a1(grid_top + q + 2, value_col)
    look = style.key("number", style.number_format(x))
    for a in range(q):
        for b in range(q):
            formula = from_chosen_block(in_blocks, [block.data_address for block in in_blocks], pick,
                                        f"({row_name}-1)*{stride}+{a + 1}",
                                        f"({col_name}-1)*{stride}+{b + 1}")
            ws.formula(*window_block.cell(a, b), f"={formula}", window[a, b], look)
            row, col = window_block.cell(a, b)
            counts = [f"COUNTIF({area(*box)},{maximum})"
                      for box in earlier_in_window(window_block.top, window_block.left, q, row, col)]
            here = a1(row, col)
            first = f"AND({here}={maximum},{'+'.join(counts)}=0)" if counts else f"{here}={maximum}"
            ws.formula(*winner_block.cell(a, b), f"=IF({first},1,0)", winner[a, b], style.key("value", "0"))
    ws.scale(window_block.data, sheet_scale(book, in_sheet))
    ws.scale(winner_block.data, style.PROBABILITY)
    for row in range(window_block.top, window_block.top + q):
        ws.heights[row] = style.TENSOR_CELL[1]
    same = from_chosen_block(out_blocks, [b.data_address for b in out_blocks], pick, row_name, col_name)
    rows = [("pool_max", f"=MAX({window_block.data})", values[f, i, j]),
            ("pool_same", f"={same}", values[f, i, j])]
    for offset, (key, formula, value) in enumerate(rows):
        ws.text(grid_top + q + 2 + offset, label_col, t("zoom", key, sheet=pool_title))
        ws.formula(grid_top + q + 2 + offset, value_col, formula, value, look)
    book.name(names.pool_max(n), ws, maximum)
    # the chosen window on the sheet before, the chosen cell here
    number, row, col = grid_position(in_blocks)
    terms = [f"{pick}={number}"]
    for here, name in ((row, row_name), (col, col_name)):
        terms += [f"{here}>=({name}-1)*{stride}", f"{here}<=({name}-1)*{stride}+{q - 1}"]
    window_rule = outline(in_blocks, f"=AND({','.join(terms)})", n - 1)
    number, row, col = grid_position(out_blocks)
    return [window_rule, outline(out_blocks, f"=AND({pick}={number},{row}={row_name}-1,{col}={col_name}-1)",
                                 n - 1)]
