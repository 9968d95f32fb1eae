"""ReLU, forward and back: max(0, x), and the gradient let through where x was positive (or, in the
saliency pass, by the guided or deconvnet rule that saliency_mode picks)."""

from __future__ import annotations

from cnnsheet import style
from cnnsheet.layers import ReLU
from cnnsheet.sheets.common import Backward, Book, Maps, OverviewRow, Pass, tensor


def relu_sheet(book: Book, fp: Pass, layer: ReLU, values, in_blocks, in_sheet,
               border) -> tuple[Maps, OverviewRow]:
    ws, top = book.sheet("ReLU", "relu", fp=fp, colours=(style.SEQUENTIAL_SCALE,), layer=in_sheet)
    blocks = book.blocks(ws, top, values, [b.label for b in in_blocks], border)
    tensor(ws, blocks, values, lambda c, i, j: ReLU.formula(in_blocks[c].address(i, j)),
                style.SEQUENTIAL_SCALE)
    return Maps(blocks, ws.title), book.forward_row(fp, ws.title, layer.name, values.shape)


def relu_backward(book: Book, back: Backward, layer: ReLU, incoming,
                  border: int) -> tuple[Maps, OverviewRow]:
    """The gradient passes where the ReLU's input was positive, and stops elsewhere."""
    grad_blocks, grad_sheet = incoming
    previous = book.previous_name(layer)
    in_blocks, in_sheet = back.first.maps[previous]
    values = back.grads.tensors[previous][0]
    keys = ("body", "body_rules") if back.relu_rule else ("body",)
    ws, top = book.gradient_sheet(back.tag, in_sheet, "drelu", keys)
    blocks = book.blocks(ws, top, values, [b.label for b in in_blocks], border)
    tensor(ws, blocks, values, lambda c, i, j: ReLU.backward_formula(
        in_blocks[c].address(i, j), grad_blocks[c].address(i, j), back.relu_rule), style.DIVERGING)
    return Maps(blocks, ws.title), OverviewRow(ws.title, previous, values.shape)
