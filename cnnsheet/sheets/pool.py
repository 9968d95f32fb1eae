"""Max pooling, forward and back: the largest value of each window, the mask of each window's
first maximum, and the gradient routed to it."""

from __future__ import annotations

import functools

from cnnsheet import style
from cnnsheet.layers import MaxPool
from cnnsheet.layout import Block, area, on
from cnnsheet.sheets.common import Backward, Book, Maps, OverviewRow, Pass, tensor


def pool_sheet(book: Book, fp: Pass, layer: MaxPool, values, in_blocks, in_sheet, border,
               scale) -> tuple[Maps, OverviewRow]:
    C, H, W = len(in_blocks), in_blocks[0].height, in_blocks[0].width
    rows, cols = layer.dropped((C, H, W))
    keys = ("body", "body_dropped") if rows or cols else ("body",)
    q, t = layer.size, layer.stride
    factor = round(H * W / (values.shape[1] * values.shape[2]), 1)
    dropped = left_out(book, rows, cols)
    ws, top = book.sheet("Pool", "pool", keys, fp, colours=(scale,), layer=in_sheet, size=q, stride=t,
                         factor=f"{factor:g}", dropped=dropped)
    blocks = book.blocks(ws, top, values, [b.label for b in in_blocks], border)
    tensor(ws, blocks, values,
                lambda c, i, j: MaxPool.formula(in_blocks[c].window_address(i * t, j * t, q, q)), scale)
    note = book.texts("pool", "body_dropped", dropped=dropped) if rows or cols else ""
    row = book.forward_row(fp, ws.title, layer.name, values.shape, size_formula=f"=INT(({H}-{q})/{t})+1",
                           size_rule=f"floor(({H} - {q}) / {t}) + 1", note=note, window=(q, t),
                           field=book.field_of(layer))
    return Maps(blocks, ws.title), row


def left_out(book: Book, rows: int, cols: int) -> str:
    """"the last row and the last 2 columns": what the pooling windows do not reach."""
    parts = (([book.texts.count("rows", rows)] if rows else [])
             + ([book.texts.count("columns", cols)] if cols else []))
    if len(parts) == 2:
        return book.texts("labels", "both", first=parts[0], second=parts[1])
    return parts[0] if parts else ""


def earlier_in_window(top: int, left: int, size: int, row: int, col: int) -> list[tuple]:
    """The areas of a window (in row-major order) before element (row, col): rows above, then left."""
    areas = []
    if row > top:
        areas.append((top, left, row - 1, left + size - 1))
    if col > left:
        areas.append((row, left, row, col - 1))
    return areas


def windows_of(layer: MaxPool, y: int, x: int, out_block: Block) -> list[tuple[int, int]]:
    """The pooling windows (output positions) that contain input element (y, x)."""
    return _windows_of(layer.size, layer.stride, y, x, out_block.height, out_block.width)


@functools.lru_cache(maxsize=65536)
def _windows_of(q: int, t: int, y: int, x: int, height: int, width: int) -> list[tuple[int, int]]:
    """Cached: every channel asks the same."""
    rows = [wy for wy in range(height) if wy * t <= y < wy * t + q]
    cols = [wx for wx in range(width) if wx * t <= x < wx * t + q]
    return [(wy, wx) for wy in rows for wx in cols]


def wins(layer, in_block, in_sheet, out_block, out_sheet, y, x, window) -> str:
    """True when (y, x) holds its window's maximum and no cell before it in the window does."""
    wy, wx = window
    maximum = out_block.address(wy, wx)
    here = in_block.address(y, x)
    top, left = in_block.cell(wy * layer.stride, wx * layer.stride)
    row, col = in_block.cell(y, x)
    counts = [f"COUNTIF({on(in_sheet, area(*box))},{maximum})"
              for box in earlier_in_window(top, left, layer.size, row, col)]
    if not counts:
        return f"{here}={maximum}"
    return f"AND({here}={maximum},{'+'.join(counts)}=0)"


def mask_sheet(book: Book, back: Backward, layer: MaxPool) -> tuple[Maps, list[OverviewRow]]:
    """How many pooling windows each input cell is the first maximum of (usually 0 or 1); one
    sheet for both backward passes (the rows: its row if this call made it)."""
    if ("Mask", layer.name) in back.shared:
        return back.shared["Mask", layer.name], []
    in_blocks, in_sheet = back.first.maps[book.previous_name(layer)]
    out_blocks, out_sheet = back.first.maps[layer.name]
    wins_count = layer.windows_won(book.trace.caches[layer.name])[0]  # (C, H, W)
    number = out_sheet[len("Pool"):]  # Mask2 belongs to Pool2, whichever pass needs it first
    ws, top = book.sheet("Mask", "mask", title=f"Mask{number}", numbering=back.tag,
                         colours=(style.SEQUENTIAL_SCALE,), size=layer.size, sheet=in_sheet)
    blocks = book.blocks(ws, top, wins_count, [b.label for b in in_blocks])

    def formula(c, y, x):
        pool = (in_blocks[c], in_sheet, out_blocks[c], out_sheet)
        terms = [f"IF({wins(layer, *pool, y, x, w)},1,0)" for w in windows_of(layer, y, x, out_blocks[c])]
        return "=" + "+".join(terms) if terms else None

    tensor(ws, blocks, wins_count, formula, style.SEQUENTIAL_SCALE, fmt="0")
    back.shared["Mask", layer.name] = Maps(blocks, ws.title)
    return back.shared["Mask", layer.name], [OverviewRow(ws.title, layer.name, wins_count.shape)]


def pool_backward(book: Book, back: Backward, layer: MaxPool, incoming) -> tuple[Maps, list[OverviewRow]]:
    """Each window's gradient goes to its first maximum; every other cell gets 0."""
    (mask_blocks, mask_sheet_title), rows = mask_sheet(book, back, layer)
    grad_blocks, grad_sheet = incoming
    previous = book.previous_name(layer)
    in_blocks, in_sheet = back.first.maps[previous]
    out_blocks, out_sheet = back.first.maps[layer.name]
    values = back.grads.tensors[previous][0]
    ws, top = book.gradient_sheet(back.tag, in_sheet, "dpool", size=layer.size)
    blocks = book.blocks(ws, top, values, [b.label for b in in_blocks])

    def formula(c, y, x):
        windows = windows_of(layer, y, x, out_blocks[c])
        if not windows:  # the floored remainder: no window read this cell
            return None
        if layer.stride >= layer.size:  # disjoint windows: the mask picks the winner
            return (f"={mask_blocks[c].address(y, x)}"
                    f"*{grad_blocks[c].address(*windows[0])}")
        pool = (in_blocks[c], in_sheet, out_blocks[c], out_sheet)
        return "=" + "+".join(f"IF({wins(layer, *pool, y, x, w)},"
                              f"{grad_blocks[c].address(*w)},0)" for w in windows)

    tensor(ws, blocks, values, formula, style.DIVERGING)
    return Maps(blocks, ws.title), rows + [OverviewRow(ws.title, previous, values.shape)]
