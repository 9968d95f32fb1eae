"""The dense layer, forward and back: SUMPRODUCT of the inputs and a column of weights plus a
bias; then dz, dW = dz x input, db = dz, and the gradient sent back, W^T dz."""

from __future__ import annotations

from cnnsheet import names, style
from cnnsheet.layers import Dense, Flatten, ReLU
from cnnsheet.layout import LEFT, Vector, a1, area, on
from cnnsheet.sheets.common import (
    Backward,
    Book,
    DenseGeometry,
    OverviewRow,
    Pass,
    PassSheets,
    place_param,
    place_params,
)


def dense_sheet(book: Book, fp: Pass, made: PassSheets, layer: Dense, source: Vector,
                relu_next: ReLU | None, last: bool) -> tuple[Vector, DenseGeometry, OverviewRow]:
    """Inputs down column C, one column of weights per output, the outputs in a row on top; the
    ReLU that follows, if any, in the row below them. Returns the outputs, where things are, and
    the Overview's row."""
    m, n = layer.units, layer.inputs
    keys = ("body",) + (("body_relu",) if relu_next else ()) + (("body_logits",) if last else ())
    number = book.counts.get(fp.sheet_prefix + "Dense", 0) + 1
    colours = (style.DIVERGING,) if not relu_next else (  # two scales: each legend names its grids
        (style.DIVERGING, book.texts("dense", "grids_weights")),
        (style.SEQUENTIAL_SCALE, book.texts("dense", "grids_relu")))
    ws, top = book.sheet("Dense", "dense", keys, fp, colours=colours, layer=f"Dense{number}",
                         units=f"{m:,}", inputs=f"{n:,}", weights=f"{m * n:,}")
    g = DenseGeometry(ws.title, top + 1, top + 2, top + 3, top + 5, LEFT + 1, LEFT + 2)
    outputs = fp.trace.tensors[layer.name][0]
    for row, key in ((g.bias_row, "bias"), (g.out_row, "output"), (g.data_top - 1, "index")):
        ws.label(row, LEFT, book.texts("labels", key))
    inputs_values = fp.trace.tensors[book.previous_name(layer)][0]
    look_in = style.key("number", style.number_format(inputs_values))
    ws.label(g.data_top - 1, g.in_col, book.texts("labels", "input"))
    for i in range(n):
        ws.number(g.data_top + i, LEFT, i + 1, style.key("plain"))
        ws.formula(g.data_top + i, g.in_col, Flatten.formula(source.address(i)),
                   inputs_values[i], look_in)
    inputs = book.name(names.dense_inputs(number, fp.name_prefix), ws, g.input_column(n))
    weights_now = fp.params[f"{layer.name}.weight"]
    fmt_w = style.number_format(weights_now)
    look_out = style.key("heading", style.number_format(outputs))
    for j in range(m):
        col = g.first + j
        ws.label(top, col, book.output_name(layer, j))
        place_param(fp, made, ws, g.bias_row, col, layer, "bias", (j,), fmt_w)
        place_params(fp, made, ws, layer, "weight", [(g.data_top + i, col, (j, i)) for i in range(n)], fmt_w)
        weights = book.name(names.dense_weights(number, j + 1, fp.name_prefix), ws,
                            area(g.data_top, col, g.data_top + n - 1, col))
        bias_name = book.name(names.dense_bias(number, j + 1, fp.name_prefix), ws, a1(g.bias_row, col))
        ws.formula(g.out_row, col, Dense.formula(inputs, weights, bias_name), outputs[j], look_out)
    out = Vector(ws.title, g.out_row, g.first, m, across=True)
    ws.scale(area(g.data_top, g.first, g.data_top + n - 1, g.first + m - 1), style.DIVERGING)
    ws.scale(out.data, style.DIVERGING)
    if relu_next:
        ws.label(g.relu_row, LEFT, book.texts("labels", "relu"))
        after = fp.trace.tensors[relu_next.name][0]
        look = style.key("number", style.number_format(outputs))
        for j in range(m):
            ws.formula(g.relu_row, g.first + j, ReLU.formula(out.ref(j)), after[j], look)
        out = Vector(ws.title, g.relu_row, g.first, m, across=True)
        ws.scale(out.data, style.SEQUENTIAL_SCALE)
    if last:
        book.name(names.logits(fp.name_prefix), ws, out.data)
    ws.freeze = a1(g.data_top, g.first)
    ws.width("ABC", (3, 8, 9))
    for j in range(m):
        ws.widths[g.first + j] = 10 if last else 7
    return out, g, book.forward_row(fp, ws.title, layer.name, (m,), params_formula=f"={m}*{n}+{m}",
                                    params=m * n + m)


def dense_backward(book: Book, back: Backward, layer: Dense, incoming: Vector, relu_after: bool,
                   with_params: bool) -> tuple[Vector, OverviewRow]:
    """dz (through the ReLU if one follows), dW = dz x input, db = dz, d input = W^T dz."""
    g = back.first.dense[layer.name]
    m, n = layer.units, layer.inputs
    keys = ("body",) + (("body_relu",) if relu_after else ()) + (("body_params",) if with_params else ())
    if relu_after and back.relu_rule:  # the saliency pass: the ReLU's rule is saliency_mode's
        keys += (("drelu", "body_rules"),)
    ws, top = book.gradient_sheet(back.tag, g.sheet, "ddense", keys, layer=g.sheet, units=f"{m:,}",
                                  inputs=f"{n:,}", source=incoming.sheet)
    dz_row, db_row, data_top = top + 1, top + 2, top + 4
    in_col, first, dx_col = LEFT + 1, LEFT + 2, LEFT + 3 + m
    dz = back.grads.tensors[layer.name][0]
    previous = book.previous_name(layer)
    look_dz = style.key("heading", style.number_format(dz))
    ws.label(dz_row, LEFT, book.texts("labels", "dz"))
    for j in range(m):
        col = first + j
        ws.label(top, col, book.output_name(layer, j))
        upstream = incoming.address(j)
        if relu_after:
            formula = ReLU.backward_formula(on(g.sheet, a1(g.out_row, g.first + j)), upstream, back.relu_rule)
        else:
            formula = f"={upstream}"
        ws.formula(dz_row, col, formula, dz[j], look_dz)
    dz_range = area(dz_row, first, dz_row, first + m - 1)
    ws.scale(dz_range, style.DIVERGING)
    if with_params:
        dw, db = back.grads.params[f"{layer.name}.weight"], back.grads.params[f"{layer.name}.bias"]
        ws.label(db_row, LEFT, book.texts("labels", "db"))
        ws.label(data_top - 1, in_col, book.texts("labels", "input"))
        ws.label(data_top - 1, first, book.texts("labels", "dw"))
        inputs = book.trace.tensors[previous][0]
        look_w = style.key("number", style.number_format(dw))
        look_in = style.key("number", style.number_format(inputs))
        for j in range(m):
            col = first + j
            ws.formula(db_row, col, f"={a1(dz_row, col)}", db[j], look_w)
            back.record(layer, "bias", (j,), ws.title, db_row, col)
        for i in range(n):
            row = data_top + i
            ws.number(row, LEFT, i + 1, style.key("plain"))
            ws.formula(row, in_col, f"={on(g.sheet, a1(g.data_top + i, g.in_col))}", inputs[i], look_in)
            for j in range(m):
                col = first + j
                ws.formula(row, col, f"={a1(dz_row, col)}*{a1(row, in_col)}", dw[j, i], look_w)
                back.record(layer, "weight", (j, i), ws.title, row, col)
        ws.scale(area(data_top, first, data_top + n - 1, first + m - 1), style.DIVERGING)
    dx = back.grads.tensors[previous][0]
    look_dx = style.key("number", style.number_format(dx))
    ws.label(data_top - 1, dx_col, book.texts("labels", "dinput"))
    for i in range(n):
        ws.formula(data_top + i, dx_col, f"=SUMPRODUCT({on(g.sheet, g.weight_row(i, m))},{dz_range})",
                   dx[i], look_dx)
    out = Vector(ws.title, data_top, dx_col, n)
    ws.scale(out.data, style.DIVERGING)
    ws.freeze = a1(data_top, first)
    ws.width("ABC", (3, 8, 9))
    return out, OverviewRow(ws.title, layer.name, (n,))
