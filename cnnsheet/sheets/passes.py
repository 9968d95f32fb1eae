"""The passes through the network, sheet after sheet: forward from the input to the scores,
backward from the loss (tag "d", with the gradients of every weight) or from one class's score
(tag "s", down to the pixels), one step of gradient descent, and the saliency map.

Sheets are named after the tensor whose gradient they hold: dConv1 is d loss / d Conv1.
"""

from __future__ import annotations

import numpy as np

from cnnsheet import names, style
from cnnsheet.layers import RELU_RULES, Conv, Dense, Flatten, MaxPool, ReLU, onehot_formula
from cnnsheet.layout import LEFT, Block, Vector, a1, area
from cnnsheet.model import Descent
from cnnsheet.plan import DropDown
from cnnsheet.sheets import conv, dense, flatten, gradcam, image, output, pool, relu
from cnnsheet.sheets.common import Backward, Book, Maps, OverviewRow, Pass, PassSheets, square_cells

DEFAULT_LEARNING_RATE = 0.01  # the default walkthrough: loss 0.053 -> 0.014


def forward(book: Book, fp: Pass, input_maps: Maps) -> PassSheets:
    """The sheets of one pass from the input to the logits; returns what they made (with their
    rows of the Overview)."""
    made = PassSheets(maps={"input": input_maps})
    blocks, sheet = input_maps
    scale = image.input_scale(book.model)  # what the values can be: pools and flatten keep it
    vector = None
    layers = book.model.layers
    for index, layer in enumerate(layers):
        border = book.border_for(index + 1)
        values = fp.trace.tensors[layer.name][0]
        rows = []
        if isinstance(layer, Conv):
            made.filters[layer.name], row = conv.filters_sheet(book, fp, made, layer)
            rows.append(row)
            (blocks, sheet), row = conv.conv_sheet(book, fp, layer, values, blocks, sheet, border)
            rows.append(row)
            scale = style.DIVERGING
        elif isinstance(layer, ReLU) and vector is None:
            (blocks, sheet), row = relu.relu_sheet(book, fp, layer, values, blocks, sheet, border)
            rows.append(row)
            scale = style.SEQUENTIAL_SCALE
        elif isinstance(layer, MaxPool):
            (blocks, sheet), row = pool.pool_sheet(book, fp, layer, values, blocks, sheet, border, scale)
            rows.append(row)
        elif isinstance(layer, Flatten):
            vector, row = flatten.flatten_sheet(book, fp, values, blocks, sheet, scale)
            rows.append(row)
        elif isinstance(layer, Dense):
            following = layers[index + 1] if index + 1 < len(layers) else None
            relu_next = following if isinstance(following, ReLU) else None
            vector, made.dense[layer.name], row = dense.dense_sheet(book, fp, made, layer, vector, relu_next,
                                                                    last=index == len(layers) - 1)
            rows.append(row)
        made.rows += rows
        made.maps[layer.name] = vector if vector is not None else Maps(blocks, sheet)
    made.logits = vector
    return made


def backward(book: Book, first: PassSheets) -> tuple[Descent, list[OverviewRow]]:
    """Gradients from the loss, the gradient-descent step, and the saliency map; returns the
    engine's step, whose loss after the Overview shows, and the Overview's rows of the sheets."""
    model, trace = book.model, book.trace
    dlogits = model.loss_gradient(trace, [book.target_index])  # (1, K)
    shared = {}  # the Mask and Rotated sheets, made once for both backward passes
    loss = Backward("d", model.backward(trace, dlogits), first, shared)
    seed, row = output.dlogits_sheet(book, first.probabilities, dlogits[0])
    _, rows = chain(book, loss, seed, with_params=True, to_input=False)
    descent, step_rows = gradient_step(book, first, loss)
    return descent, [row, *rows, *step_rows, *saliency_sheets(book, first, shared),
                     gradcam.gradcam_sheet(book, first)]


def chain(book: Book, back: Backward, seed: Vector, with_params: bool,
          to_input: bool) -> tuple[Maps | None, list[OverviewRow]]:
    """Backpropagate from `seed` (gradient of the logits) through every layer; returns the
    gradient of the input (None unless `to_input`) and the Overview's rows of the sheets."""
    layers = book.model.layers
    flat = next(i for i, layer in enumerate(layers) if isinstance(layer, Flatten))
    incoming, rows = seed, []
    for index in range(len(layers) - 1, -1, -1):
        layer = layers[index]
        if isinstance(layer, Dense):
            relu_after = index + 1 < len(layers) and isinstance(layers[index + 1], ReLU)
            incoming, row = dense.dense_backward(book, back, layer, incoming, relu_after, with_params)
            rows.append(row)
        elif isinstance(layer, Flatten):
            incoming, row = flatten.unflatten(book, back, layer, incoming)
            rows.append(row)
        elif isinstance(layer, MaxPool):
            incoming, more = pool.pool_backward(book, back, layer, incoming)
            rows += more
        elif isinstance(layer, ReLU) and index < flat:
            below = layers[index - 1] if index else None
            needs_border = (isinstance(below, Conv) and below.stride == 1
                            and (index - 1 > 0 or to_input))
            border = below.span - 1 if needs_border else 0
            incoming, row = relu.relu_backward(book, back, layer, incoming, border)
            rows.append(row)
        elif isinstance(layer, Conv):
            incoming, more = conv.conv_backward(book, back, layer, incoming, with_params,
                                                need_input=index > 0 or to_input)
            rows += more
    return incoming, rows


def gradient_step(book: Book, first: PassSheets, loss: Backward) -> tuple[Descent, list[OverviewRow]]:
    """learning_rate, the stepped weights, a forward pass through them, and the loss after;
    returns the engine's step and the Overview's rows of the sheets."""
    ws, top = book.sheet("Step", "step", numbering=None)
    rate = book.learning_rate
    ws.label(top, LEFT, book.texts("labels", "learning_rate"))
    ws.number(top, LEFT + 1, rate, style.key("input", "0.000"))
    book.name(names.LEARNING_RATE, ws, a1(top, LEFT + 1))
    descent = book.model.descend(book.trace, loss.grads, [book.target_index], rate)

    def new_weight(layer, key, index):
        where = (layer.name, key, index)
        return f"={first.params[where]}-{names.LEARNING_RATE}*{loss.grad_at[where]}"

    after = Pass(descent.trace, descent.model.params(), "New", names.NEW_PASS, new_weight)
    stepped = forward(book, after, first.maps["input"])
    probabilities, softmax_row = output.softmax_sheet(book, after, stepped.logits)
    rows = [("loss", f"={names.LOSS}", descent.loss_before, style.LOSS),
            ("loss_after_step", output.loss_formula(probabilities), descent.loss_after, style.LOSS),
            ("loss_change", f"={a1(top + 3, LEFT + 1)}-{a1(top + 2, LEFT + 1)}", descent.loss_change,
             style.LOSS_CHANGE)]
    for offset, (key, formula, value, fmt) in enumerate(rows, 2):
        ws.label(top + offset, LEFT, book.texts("labels", key))
        ws.formula(top + offset, LEFT + 1, formula, value, style.key("big", fmt))
    book.name(names.LOSS_AFTER_STEP, ws, a1(top + 3, LEFT + 1))
    ws.width("ABC", (3, 34, 16))
    return descent, [OverviewRow(ws.title, "learning_rate", (1,)), *stepped.rows, softmax_row]


def saliency_sheets(book: Book, first: PassSheets, shared: dict) -> list[OverviewRow]:
    """Which pixels, changed a little, would change one class's score the most; returns the
    Overview's rows of the sheets."""
    model, trace = book.model, book.trace
    K = len(model.classes)
    chosen = book.saliency_index
    ws, top = book.sheet("Saliency", "saliency", numbering=None, colours=(style.SEQUENTIAL_SCALE,),
                         size=model.input_size)
    ws.label(top, LEFT, book.texts("labels", "saliency_class"))
    used = output.class_choice(book, ws, top, LEFT + 1, chosen, names.SALIENCY_CLASS)
    ws.label(top + 2, LEFT, book.texts("labels", "class"))
    ws.label(top + 2, LEFT + 1, book.texts("labels", "seed"))
    for k, name in enumerate(book.class_names):
        ws.text(top + 3 + k, LEFT, name)
        ws.formula(top + 3 + k, LEFT + 1, onehot_formula(a1(top + 3 + k, LEFT), used),
                   float(k == chosen), style.key("value", "0"))
    seed = Vector(ws.title, top + 3, LEFT + 1, K)
    mode_choice(book, ws, top + 4 + K, LEFT)
    rule = book.saliency_mode
    score = Backward("s", model.backward(trace, np.eye(K)[chosen][None], relu_rule=rule), first, shared)
    (dinput_blocks, dinput_sheet), rows = chain(book, score, seed, with_params=False, to_input=True)
    dpixels, heat = model.saliency(book.pixels, chosen, rule)
    (pixel_blocks, pixel_sheet), pixel_row = image.pixel_gradients(book, dinput_blocks, dinput_sheet,
                                                                   dpixels[0])
    heat_top, heat_left = top + 1, LEFT + 3  # right of the class table
    ws.label(heat_top - 1, heat_left, book.texts("labels", "saliency"))
    size = model.input_size
    heat_block = Block(ws.title, heat_top, heat_left, size, size)
    look = style.key("number", style.number_format(heat[0]))
    for i in range(size):
        for j in range(size):
            cells = ",".join(f"ABS({b.address(i, j)})" for b in pixel_blocks)
            ws.formula(*heat_block.cell(i, j), f"=MAX({cells})", heat[0, i, j], look)
    book.name(names.SALIENCY, ws, heat_block.data)
    ws.keep.append((heat_top - 1, heat_left, heat_top + size - 1, heat_left + size - 1))
    ws.scale(heat_block.data, style.SEQUENTIAL_SCALE)
    square_cells(ws, heat_top, heat_top + size, heat_left + size)
    ws.width("ABCD", (3, 30, 16, 3))
    return [*rows, pixel_row, OverviewRow(ws.title, "saliency", (size, size))]


def mode_choice(book: Book, ws, row: int, col: int):
    """The drop-down of the ReLU rule (saliency_mode), its list, and the rule's number in the list
    (saliency_rule), which every ReLU formula of the saliency pass reads."""
    ws.label(row, col, book.texts("labels", "saliency_mode"))
    ws.text(row, col + 1, book.saliency_mode, style.key("input"))
    book.name(names.SALIENCY_MODE, ws, a1(row, col + 1))
    ws.label(row + 1, col, book.texts("labels", "saliency_modes"))
    for offset, rule in enumerate(RELU_RULES):
        ws.text(row + 1 + offset, col + 1, rule)
    book.name(names.SALIENCY_MODES, ws, area(row + 1, col + 1, row + len(RELU_RULES), col + 1))
    ws.drop_downs.append(DropDown(a1(row, col + 1), names.SALIENCY_MODES,
                                  book.texts("labels", "not_a_mode_title"),
                                  book.texts("labels", "not_a_mode")))
    rule_row = row + 1 + len(RELU_RULES)
    ws.label(rule_row, col, book.texts("labels", "saliency_rule"))
    ws.formula(rule_row, col + 1, f"=MATCH({names.SALIENCY_MODE},{names.SALIENCY_MODES},0)",
               RELU_RULES.index(book.saliency_mode) + 1, style.key("value", "0"))
    book.name(names.SALIENCY_RULE, ws, a1(rule_row, col + 1))
