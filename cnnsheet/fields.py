"""The receptive field of a cell: the rows and columns of an earlier tensor (the input, mostly)
that can change it, through the windows of every conv and pool between them.

One meaning throughout: `receptive_field` is that set along one axis, `receptive_field_size`
its width and the step between neighbouring cells' fields (the jump). Where one window starts
is `Conv.window_origin`; which rows one window reads, `Conv.reads` and `MaxPool.reads`.
"""

from __future__ import annotations

from cnnsheet.layers import Conv, MaxPool


def reached_by(layer, in_index: int, out_size: int) -> list[int]:
    """The output rows (or columns) of a conv or pool whose window reads input row `in_index`."""
    return [out for out in range(out_size) if in_index in layer.reads(out)]


def receptive_field(layers: list, sizes: list[int], out_index: int) -> set[int]:
    """The receptive field along one axis: the input rows (or columns) of the first of `layers`
    that can influence row `out_index` of the last one's output.

    `sizes[i]` is the length of the input of `layers[i]`; a ReLU keeps the set, a conv or a pool
    replaces it with every row its windows read there, minus the zero padding."""
    rows = {out_index}
    for layer, size in zip(reversed(layers), reversed(sizes)):
        if isinstance(layer, (Conv, MaxPool)):
            rows = {y for out in rows for y in layer.reads(out) if 0 <= y < size}
    return rows


def receptive_field_size(layers: list) -> tuple[int, int]:
    """(size, jump) of the receptive field of a stack of convs and pools, ignoring the edges: each
    layer widens it by (span - 1) x the jump so far, and multiplies the jump (the stride product)
    by its stride."""
    size, jump = 1, 1
    for layer in layers:
        if isinstance(layer, (Conv, MaxPool)):
            size, jump = size + (layer.span - 1) * jump, jump * layer.stride
    return size, jump


def field_origin(layers: list) -> int:
    """The input row where the field of output row 0 begins, ignoring the edges: below 0 when a
    conv's zero padding comes first. Each conv moves it back by its padding x the jump so far."""
    origin, jump = 0, 1
    for layer in layers:
        if isinstance(layer, Conv):
            origin -= layer.padding * jump
        if isinstance(layer, (Conv, MaxPool)):
            jump *= layer.stride
    return origin


def covering(layers: list, in_index: int, out_size: int) -> range:
    """The output rows (or columns) whose receptive field, taken as its whole span (origin + row x
    jump, size wide), holds input row `in_index`; empty where no field reaches it."""
    size, jump = receptive_field_size(layers)
    start = in_index - field_origin(layers)  # the row within the fields' frame
    low = max(0, -(-(start - size + 1) // jump))  # ceiling division
    high = min(out_size - 1, start // jump)
    return range(low, high + 1)
