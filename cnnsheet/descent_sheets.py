"""The sheets of one step of gradient descent: the weights at its start, the pass of every picture,
each picture's gradients, the batch's mean gradient. The numbers come from descent.Step; these
functions place them and write the formula that computes each one from the cells before it.

A step sheet, top to bottom: the weights (each filter k x k with its bias, then per class one P x P
block per filter and the class's bias), the loss and accuracy over all pictures, one band per
picture (its conv, ReLU and pooled maps, its scores, then its gradients), and the mean gradient.
The next sheet's weights are `this weight - learning_rate * mean gradient`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnsheet import style
from cnnsheet.descent import Step
from cnnsheet.layers import Conv, MaxPool, ReLU, exp_formula, normalise_formula
from cnnsheet.layout import LEFT, Block, a1, grid
from cnnsheet.plan import SheetPlan

GAP = 1  # blank rows between bands and groups of blocks
PARAMS = ("conv1.weight", "conv1.bias", "dense1.weight", "dense1.bias")


@dataclass
class Weights:
    """Where the weights of one sheet (or their mean gradient) sit, in the engine's shapes."""

    filters: list  # Block per filter, k x k
    filter_bias: list  # (row, col) per filter
    dense: list  # [class][filter] Block, P x P: the class's weights on that pooled map
    dense_bias: list  # (row, col) per class
    bottom: int  # the last row used

    def cells(self, conv_weight, conv_bias, dense_weight, dense_bias):
        """((row, col), value) of every weight, given the arrays in the engine's shapes."""
        F, _, k, _ = conv_weight.shape
        for f, block in enumerate(self.filters):
            for i in range(k):
                for j in range(k):
                    yield block.cell(i, j), conv_weight[f, 0, i, j]
            yield self.filter_bias[f], conv_bias[f]
        P = self.dense[0][0].height
        for c, blocks in enumerate(self.dense):
            rows = dense_weight[c].reshape(F, P, P)
            for f, block in enumerate(blocks):
                for i in range(P):
                    for j in range(P):
                        yield block.cell(i, j), rows[f, i, j]
            yield self.dense_bias[c], dense_bias[c]


def weights_area(ws: SheetPlan, top: int, left: int, F: int, k: int, P: int, K: int, labels) -> Weights:
    """Lay out the weights from (top, left), labelled: the filters, then P x P blocks per class."""
    filters = grid(ws.title, F, k, k, top, left, F, labels=[labels("filter", n=f + 1) for f in range(F)])
    left += F * (k + GAP)
    dense, dense_bias = [], []
    for c in range(K):
        blocks = grid(ws.title, F, P, P, top, left, F,
                      labels=[labels("class_weights", name=labels.classes[c], n=f + 1) for f in range(F)])
        dense.append(blocks)
        dense_bias.append((top + 1 + P, left))
        left += F * (P + GAP)
    filter_bias = [(top + 1 + k, block.left) for block in filters]
    for row, col in filter_bias + dense_bias:
        ws.text(row, col + 1, labels.plain("bias"))
    for block in filters + [block for blocks in dense for block in blocks]:
        ws.text(block.top - 1, block.left, block.label)
    return Weights(filters, filter_bias, dense, dense_bias, top + 1 + max(k, P))


def place_weights(ws: SheetPlan, where: Weights, params: dict, formula_of=None, fmt="0.000"):
    """Numbers (the start) or formulas (`formula_of((row, col))`) with the engine's values."""
    look = style.key("number", fmt)
    values = where.cells(*(params[name] for name in PARAMS))
    if formula_of is None:
        for (row, col), value in values:
            ws.number(row, col, value, style.key("input", fmt))
    else:
        ws.formulas((((row, col), formula_of(row, col), float(value)) for (row, col), value in values),
                    look, look)
    ws.scale([block.data for block in where.filters], style.DIVERGING)
    ws.scale([block.data for blocks in where.dense for block in blocks], style.DIVERGING)


@dataclass
class Band:
    """One picture's place on a step sheet."""

    member: tuple  # (row, col)
    loss: tuple
    right: tuple
    dz: list  # (row, col) per class
    grads: Weights | None  # this picture's own gradients, where the sheet has them


def tensor(ws: SheetPlan, blocks, values: np.ndarray, formula_of, scale=style.DIVERGING):
    """Formula cells for a (C, H, W) tensor laid out as blocks: formula_of(c, i, j)."""
    look = style.key("number", style.number_format(values))
    ws.formulas(((block.cell(i, j), formula_of(c, i, j), float(values[c, i, j]))
                 for c, block in enumerate(blocks)
                 for i in range(block.height) for j in range(block.width)), look, look)
    ws.scale([block.data for block in blocks], scale)
    for block in blocks:
        ws.text(block.top - 1, block.left, block.label)
        ws.keep.append((block.top - 1, block.left, block.top + block.height - 1,
                        block.left + block.width - 1))


def first_max_formula(conv: str, relu: str, maximum: str, earlier: list[str], gradient: str) -> str:
    """The gradient a ReLU-then-max-pool cell passes back: the pooled cell's gradient if this cell
    is its window's first maximum (row by row, as layers.MaxPool) and the conv output was positive."""
    tests = [f"{conv}>0", f"{relu}={maximum}"]
    if earlier:
        tests.append("+".join(f"COUNTIF({box},{maximum})" for box in earlier) + "=0")
    return f"=IF(AND({','.join(tests)}),{gradient},0)"


def earlier_in_window(block: Block, q: int, y: int, x: int) -> list[str]:
    """The areas of a pool window read before element (y, x): the rows above it, then its left."""
    top, left = (y // q) * q, (x // q) * q
    areas = []
    if y > top:
        areas.append(block.window(top, left, y - top, q))
    if x > left:
        areas.append(block.window(y, left, 1, x - left))
    return areas


def picture_band(ws: SheetPlan, top: int, p: int, step: Step, weights: Weights, x_block: Block, q: int,
                 onehot: list[str], true_class: int, t: int, n: int, labels,
                 with_grads: bool) -> tuple[Band, int]:
    """One picture's forward pass and, for a step, its backward pass; returns it and the next row."""
    conv_v, relu_v, pool_v = (step.tensors[name][p] for name in ("conv1", "relu1", "pool1"))
    F, Co, _ = conv_v.shape
    P, k, K = pool_v.shape[1], weights.filters[0].height, len(onehot)
    ws.label(top, LEFT, labels("picture", n=p + 1, name=labels.picture_names[p]))
    if with_grads:
        ws.text(top, LEFT + 8, labels("member"))
        ws.formula(top, LEFT + 12, f"=IF(MOD({p}-({t}-1)*batch_size,{n})<MIN(batch_size,{n}),1,0)",
                   step.member[p], style.key("value", "0"))
    row = top + 1
    left = LEFT
    names = [f"{labels('conv')} {f + 1}" for f in range(F)]
    conv = grid(ws.title, F, Co, Co, row, left, F, labels=names)
    tensor(ws, conv, conv_v, lambda f, i, j: Conv.formula(
        [x_block.window_address(i, j, k, k)], [weights.filters[f].data], a1(*weights.filter_bias[f])))
    left += F * (Co + GAP)
    relu = grid(ws.title, F, Co, Co, row, left, F, labels=[f"{labels('relu')} {f + 1}" for f in range(F)])
    tensor(ws, relu, relu_v, lambda f, i, j: ReLU.formula(conv[f].ref(i, j)))
    left += F * (Co + GAP)
    pool = grid(ws.title, F, P, P, row, left, F, labels=[f"{labels('pool')} {f + 1}" for f in range(F)])
    tensor(ws, pool, pool_v, lambda f, i, j: MaxPool.formula(relu[f].window(i * q, j * q, q, q)))
    left += F * (P + GAP)
    # the scores: one row per class, columns z, exp, p, y (and the gradient p - y)
    columns = ["score", "exp", "probability", "true"] + (["dz"] if with_grads else [])
    for offset, key in enumerate(columns):
        ws.label(row, left + 1 + offset, labels(key))
    z, e, prob, y, dz = (Block(ws.title, row + 1, left + 1 + offset, K, 1) for offset in range(5))
    logits, probabilities = step.tensors["logits"][p], step.tensors["probabilities"][p]
    exps = np.exp(logits - logits.max())
    number = style.key("number", "0.000")
    for c in range(K):
        r = row + 1 + c
        ws.text(r, left, labels.classes[c])
        terms = [pool[f].data for f in range(F)]
        ws.formula(r, left + 1, Conv.formula(terms, [weights.dense[c][f].data for f in range(F)],
                                             a1(*weights.dense_bias[c])), logits[c], number)
        ws.formula(r, left + 2, exp_formula(z.ref(c, 0), z.data), exps[c], number)
        ws.formula(r, left + 3, normalise_formula(e.ref(c, 0), e.data), probabilities[c], number)
        ws.formula(r, left + 4, f"={onehot[c]}", float(true_class == c), style.key("value", "0"))
        if with_grads:
            ws.formula(r, left + 5, f"={prob.ref(c, 0)}-{y.ref(c, 0)}", step.dtensors["logits"][p, c], number)
    ws.keep.append((row, left, row + K, left + len(columns)))
    ws.scale(prob.data, style.PROBABILITY)
    loss_at, right_at = (row + K + 2, left + 2), (row + K + 3, left + 2)
    ws.text(loss_at[0], left, labels("loss"))
    ws.formula(*loss_at, f"=LN(SUM({e.data}))-SUMPRODUCT({y.data},{z.data})+MAX({z.data})",
               step.losses[p], style.key("value", "0.0000"))
    ws.text(right_at[0], left, labels("right"))
    ws.formula(*right_at, f"=IF(SUMPRODUCT({y.data},{z.data})=MAX({z.data}),1,0)", step.correct[p],
               style.key("value", "0"))
    bottom = row + max(Co, K + 3)
    band = Band((top, LEFT + 12), loss_at, right_at, [dz.cell(c, 0) for c in range(K)], None)
    if with_grads:
        left += len(columns) + 1 + GAP
        band.grads = backward(ws, row, left, p, step, weights, x_block, q, conv, relu, pool, dz,
                                  labels)
        bottom = max(bottom, band.grads.bottom)
    return band, bottom + 1 + GAP


def backward(ws, row, left, p, step: Step, weights: Weights, x_block, q, conv, relu, pool, dz, labels):
    """The picture's gradients: back through the dense layer to the pooled maps, to the first
    maximum of each window where the conv was positive, then to every weight."""
    F, Co = len(conv), conv[0].height
    P, k, K = pool[0].height, weights.filters[0].height, dz.height
    dpool = grid(ws.title, F, P, P, row, left, F, labels=[f"{labels('dpool')} {f + 1}" for f in range(F)])
    tensor(ws, dpool, step.dtensors["pool1"][p], lambda f, i, j: "=" + "+".join(
        f"{dz.ref(c, 0)}*{weights.dense[c][f].ref(i, j)}" for c in range(K)))
    left += F * (P + GAP)
    dconv = grid(ws.title, F, Co, Co, row, left, F, labels=[f"{labels('dconv')} {f + 1}" for f in range(F)])
    tensor(ws, dconv, step.dtensors["conv1"][p], lambda f, i, j: first_max_formula(
        conv[f].ref(i, j), relu[f].ref(i, j), pool[f].ref(i // q, j // q),
        earlier_in_window(relu[f], q, i, j), dpool[f].ref(i // q, j // q)))
    left += F * (Co + GAP)
    grads = weights_area(ws, row, left, F, k, P, K, labels.with_prefix("gradient_of"))
    formulas = {}
    for f in range(F):
        for i in range(k):
            for j in range(k):
                formulas[grads.filters[f].cell(i, j)] = (
                    f"=SUMPRODUCT({x_block.window_address(i, j, Co, Co)},{dconv[f].data})")
        formulas[grads.filter_bias[f]] = f"=SUM({dconv[f].data})"
    for c in range(K):
        for f in range(F):
            for i in range(P):
                for j in range(P):
                    formulas[grads.dense[c][f].cell(i, j)] = f"={dz.ref(c, 0)}*{pool[f].ref(i, j)}"
        formulas[grads.dense_bias[c]] = f"={dz.ref(c, 0)}"
    place_weights(ws, grads, {name: value[p] for name, value in step.picture_grads.items()},
                  lambda r, c: formulas[r, c], style.number_format(step.picture_grads["conv1.weight"][p]))
    return grads


def mean_gradient(ws: SheetPlan, top: int, step: Step, bands: list[Band], weights: Weights, labels):
    """The batch's mean gradient of every weight: sum of member x picture's gradient / members."""
    count_at = (top, LEFT + 8)
    ws.label(top, LEFT, labels("mean_gradient"))
    ws.text(top, LEFT + 4, labels("count"))
    ws.formula(*count_at, f"=SUM({','.join(a1(*band.member) for band in bands)})", step.member.sum(),
               style.key("value", "0"))
    where = weights_area(ws, top + 1, LEFT, len(weights.filters), weights.filters[0].height,
                         weights.dense[0][0].height, len(weights.dense), labels.with_prefix("mean_of"))
    arrays = [step.params[name] for name in PARAMS]
    own = [[spot for spot, _ in band.grads.cells(*arrays)] for band in bands]  # the same order
    formulas = {}
    for index, (spot, _) in enumerate(where.cells(*arrays)):
        terms = "+".join(f"{a1(*band.member)}*{a1(*own[b][index])}" for b, band in enumerate(bands))
        formulas[spot] = f"=({terms})/{a1(*count_at)}"
    place_weights(ws, where, step.mean_grads, lambda r, c: formulas[r, c],
                  style.number_format(step.mean_grads["conv1.weight"]))
    return where
