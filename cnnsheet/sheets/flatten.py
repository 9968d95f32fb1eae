"""Flatten, forward and back: the feature maps read into one column, and the gradient column laid
back into the maps."""

from __future__ import annotations

from cnnsheet import names, style
from cnnsheet.layers import Flatten
from cnnsheet.layout import LEFT, Vector, a1
from cnnsheet.sheets.common import Backward, Book, Maps, OverviewRow, Pass, tensor


def flatten_sheet(book: Book, fp: Pass, values, in_blocks, in_sheet, scale) -> tuple[Vector, OverviewRow]:
    C, H, W = len(in_blocks), in_blocks[0].height, in_blocks[0].width
    count = C * H * W
    ws, top = book.sheet("Flatten", "flatten", fp=fp, colours=(scale,), count=f"{count:,}", channels=C,
                         height=H, width=W)
    for col, key in enumerate(["index", "map", "row", "column", "value"], LEFT):
        ws.label(top, col, book.texts("labels", key))
    vector = Vector(ws.title, top + 1, LEFT + 4, count)
    look = style.key("number", style.number_format(values))
    for n in range(count):
        c, rest = divmod(n, H * W)
        i, j = divmod(rest, W)
        row = top + 1 + n
        ws.number(row, LEFT, n + 1, style.key("plain"))
        ws.text(row, LEFT + 1, in_blocks[c].label)
        ws.number(row, LEFT + 2, i + 1, style.key("plain"))
        ws.number(row, LEFT + 3, j + 1, style.key("plain"))
        ws.formula(row, LEFT + 4, Flatten.formula(in_blocks[c].address(i, j)), values[n], look)
    ws.scale(vector.data, scale)
    book.name(names.flatten(fp.name_prefix), ws, vector.data)
    ws.freeze = a1(top + 1, LEFT)
    ws.width("ABCDEF", (3, 8, 14, 6, 8, 10))  # "feature map" in bold needs 14
    return vector, book.forward_row(fp, ws.title, "flatten", (count,), size_formula=f"={C}*{H}*{W}",
                                    size_rule=f"{C} x {H} x {W}")


def unflatten(book: Book, back: Backward, layer: Flatten, incoming: Vector) -> tuple[Maps, OverviewRow]:
    """The gradient column laid back into the feature maps it was read from."""
    previous = book.previous_name(layer)
    blocks_in, sheet = back.first.maps[previous]
    values = back.grads.tensors[previous][0]
    C, H, W = values.shape
    ws, top = book.gradient_sheet(back.tag, sheet, "unflatten", count=f"{C * H * W:,}")
    blocks = book.blocks(ws, top, values, [b.label for b in blocks_in])
    tensor(ws, blocks, values,
                lambda c, i, j: f"={incoming.address((c * H + i) * W + j)}", style.DIVERGING)
    return Maps(blocks, ws.title), OverviewRow(ws.title, previous, values.shape)
