"""From scores to the loss and back: softmax, the cross-entropy loss against the target class, and
the gradient of the loss with respect to each score, p - y."""

from __future__ import annotations

import numpy as np

from cnnsheet import names, printing, style
from cnnsheet.layers import (
    Flatten,
    cross_entropy_formula,
    exp_formula,
    normalise_formula,
    onehot_formula,
    true_probability_formula,
)
from cnnsheet.layout import LEFT, Vector, a1, area
from cnnsheet.plan import BarChart, DropDown, SheetPlan
from cnnsheet.sheets.common import Book, OverviewRow, Pass

VALUE = style.key("value", "0.0000")


def predicted_formula() -> str:
    """The class of the largest probability, live."""
    p = names.probabilities()
    return f"=INDEX({names.CLASS_NAMES},MATCH(MAX({p}),{p},0))"


def class_choice(book: Book, ws: SheetPlan, row: int, col: int, index: int, name: str) -> str:
    """A yellow cell holding one class name, a drop-down that refuses anything else, and a name;
    on the row below, the class in use, named names.used(name): the one chosen, or the predicted
    one while the yellow cell is empty (a student pressed Delete). Returns the latter's name."""
    ws.text(row, col, book.class_names[index], style.key("input"))
    ws.drop_downs.append(DropDown(a1(row, col), names.CLASS_NAMES, book.texts("labels", "not_a_class_title"),
                                  book.texts("labels", "not_a_class")))
    chosen = book.name(name, ws, a1(row, col))
    ws.label(row + 1, col - 1, book.texts("labels", "class_used"))
    ws.formula(row + 1, col, f"=IF({chosen}=\"\",{predicted_formula()[1:]},{chosen})",
               book.class_names[index], style.key("mirror"))
    return book.name(names.used(name), ws, a1(row + 1, col))


def softmax_columns(probabilities: Vector) -> tuple[Vector, Vector]:
    """The logit and exp columns of the Softmax sheet that made `probabilities` (left of it)."""
    return tuple(Vector(probabilities.sheet, probabilities.top, probabilities.left - offset,
                        probabilities.length) for offset in (2, 1))


def loss_formula(probabilities: Vector) -> str:
    logits, exps = softmax_columns(probabilities)
    return cross_entropy_formula(names.ONEHOT, logits.data_address, exps.data_address)


def softmax_sheet(book: Book, fp: Pass, logits: Vector) -> tuple[Vector, OverviewRow]:
    classes = book.class_names
    K = len(classes)
    ws, top = book.sheet("Softmax", "softmax", fp=fp, colours=(style.PROBABILITY,))
    for col, key in enumerate(["class", "logit", "exp", "probability"], LEFT):
        ws.label(top, col, book.texts("labels", key))
    first = top + 1
    z, exps, p = fp.trace.logits[0], fp.trace.exps[0], fp.trace.probabilities[0]
    exp_range = area(first, LEFT + 2, first + K - 1, LEFT + 2)
    for k, name in enumerate(classes):
        row = first + k
        ws.text(row, LEFT, name)
        ws.formula(row, LEFT + 1, Flatten.formula(logits.address(k)), z[k],
                   style.key("value", "0.000"))
        ws.formula(row, LEFT + 2, exp_formula(a1(row, LEFT + 1), names.logits(fp.name_prefix)), exps[k],
                   VALUE)
        ws.formula(row, LEFT + 3, normalise_formula(a1(row, LEFT + 2), exp_range), p[k], VALUE)
    ws.label(first + K, LEFT + 1, book.texts("labels", "sum"))
    ws.formula(first + K, LEFT + 2, f"=SUM({exp_range})", fp.trace.exp_sums[0], VALUE)
    ws.formula(first + K, LEFT + 3, f"=SUM({area(first, LEFT + 3, first + K - 1, LEFT + 3)})",
               fp.trace.probability_sums[0], VALUE)
    probabilities = Vector(ws.title, first, LEFT + 3, K)
    class_column = Vector(ws.title, first, LEFT, K)
    if fp is book.first:
        book.name(names.CLASS_NAMES, ws, class_column.data)
    book.name(names.probabilities(fp.name_prefix), ws, probabilities.data)
    ws.scale(probabilities.data, style.PROBABILITY)
    ws.width("ABCDE", (3, 18, 14, 18, 16))
    chart_top = first + K + 2
    ws.charts.append(BarChart(book.texts("labels", "probability"), class_column.data, probabilities.data,
                              a1(chart_top, LEFT), tuple(classes), tuple(float(v) for v in p)))
    ws.keep.append((chart_top, LEFT, chart_top + printing.CHART_ROWS - 1, LEFT + 3))  # printed too
    return probabilities, book.forward_row(fp, ws.title, "softmax", (K,))


def loss_sheet(book: Book, probabilities: Vector) -> OverviewRow:
    classes = book.class_names
    K = len(classes)
    target = book.target_index
    ws, top = book.sheet("Loss", "loss")
    ws.label(top, LEFT, book.texts("labels", "true_class"))
    used = class_choice(book, ws, top, LEFT + 1, target, names.TARGET_CLASS)
    header = top + 3
    for col, key in enumerate(["class", "probability", "onehot"], LEFT):
        ws.label(header, col, book.texts("labels", key))
    p = book.trace.probabilities[0]
    for k, name in enumerate(classes):
        row = header + 1 + k
        ws.text(row, LEFT, name)
        ws.formula(row, LEFT + 1, Flatten.formula(probabilities.address(k)), p[k], VALUE)
        ws.formula(row, LEFT + 2, onehot_formula(a1(row, LEFT), used), float(k == target),
                   style.key("value", "0"))
    book.name(names.ONEHOT, ws, area(header + 1, LEFT + 2, header + K, LEFT + 2))
    p_row, loss_row = header + K + 2, header + K + 3
    ws.label(p_row, LEFT, book.texts("labels", "p_true"))
    ws.label(loss_row, LEFT, book.texts("labels", "loss"))
    ws.formula(p_row, LEFT + 1, true_probability_formula(names.ONEHOT, names.probabilities()), p[target],
               VALUE)
    loss = book.loss
    ws.formula(loss_row, LEFT + 1, loss_formula(probabilities), loss, style.key("big", style.LOSS))
    ws.text(loss_row + 2, 1, book.texts("loss", "formula"))  # in column A: printing wraps it
    book.name(names.LOSS, ws, a1(loss_row, LEFT + 1))
    ws.width("ABCD", (3, 28, 14, 10))
    return OverviewRow(ws.title, "cross-entropy", (1,))


def dlogits_sheet(book: Book, probabilities: Vector, dlogits: np.ndarray) -> tuple[Vector, OverviewRow]:
    ws, top = book.sheet("dLogits", "dlogits", numbering="d", colours=(style.DIVERGING,))
    for col, key in enumerate(["class", "probability", "onehot", "gradient"], LEFT):
        ws.label(top, col, book.texts("labels", key))
    p = book.trace.probabilities[0]
    for k, name in enumerate(book.class_names):
        row = top + 1 + k
        ws.text(row, LEFT, name)
        ws.formula(row, LEFT + 1, Flatten.formula(probabilities.address(k)), p[k], VALUE)
        ws.formula(row, LEFT + 2, f"=INDEX({names.ONEHOT},{k + 1})", float(k == book.target_index),
                   style.key("value", "0"))
        ws.formula(row, LEFT + 3, f"={a1(row, LEFT + 1)}-{a1(row, LEFT + 2)}", dlogits[k], VALUE)
    vector = Vector(ws.title, top + 1, LEFT + 3, len(p))
    book.name(names.DLOGITS, ws, vector.data)
    ws.scale(vector.data, style.DIVERGING)
    ws.width("ABCDE", (3, 18, 14, 12, 14))
    return vector, OverviewRow(ws.title, "dlogits", (len(p),))
