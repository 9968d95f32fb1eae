"""The workbook of `cnnsheet descent`: a Learning sheet (the rate, the batch, the loss and accuracy
after every step as a table and line charts, one filter at a few steps), a Pictures sheet (the
pixels to edit), one sheet per step and a Final sheet (the pass after the last step).

Defined names: learning_rate, batch_size, rates (what learning_rate may be), class_names, losses
and accuracies (N + 1 cells each: before the first step and after each step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnsheet import printing, style, writer
from cnnsheet.descent import RATE_LADDER, Descent
from cnnsheet.descent_sheets import Weights, mean_gradient, picture_band, place_weights, weights_area
from cnnsheet.layers import onehot_formula
from cnnsheet.layout import LEFT, Block, a1, area, on
from cnnsheet.plan import DropDown, LineChart, SheetPlan, WholeNumbers, WorkbookPlan
from cnnsheet.texts import Texts

LEARNING, PICTURES, FINAL = "Learning", "Pictures", "Final"
CELL_WIDTH = 6.0  # characters: a number such as -0.123 at 9 pt
SNAPSHOTS = 5  # how many heat maps of the first filter the Learning sheet shows
AXIS_LABELS = 6  # at most this many step numbers under a chart: 21 crowded into each other


def label_every(count: int) -> int:
    """Name every n-th of `count` steps on a chart's axis: 1, 2, 5, 10, 20, ... whichever keeps
    the labels to AXIS_LABELS (0, 5, 10, 15, 20 for 21 steps)."""
    every = 1
    while math.ceil(count / every) > AXIS_LABELS:
        every = every * 5 // 2 if str(every).startswith("2") else every * 2
    return every


class Labels:
    """The [descent] texts, with what the sheets need to fill them in."""

    def __init__(self, texts: Texts, classes: list, picture_names: list, prefix: str | None = None):
        self.texts, self.classes, self.picture_names, self.prefix = texts, classes, picture_names, prefix

    def __call__(self, key: str, **values) -> str:
        text = self.texts("descent", key, **values)
        return self.texts("descent", self.prefix, what=text) if self.prefix else text

    def plain(self, key: str, **values) -> str:
        """The text without the prefix."""
        return self.texts("descent", key, **values)

    def with_prefix(self, prefix: str) -> Labels:
        return Labels(self.texts, self.classes, self.picture_names, prefix)


@dataclass
class DescentBook:
    plan: WorkbookPlan

    @property
    def formula_count(self) -> int:
        return sum(1 for sheet in self.plan.sheets for cell in sheet.cells.values() if cell[0] is not None)

    @property
    def names(self) -> dict:
        return self.plan.names

    def save(self, path) -> None:
        writer.save(self.plan, path)


def sheet_of(t: int, steps: int) -> str:
    """The sheet of step t (1-based); step `steps + 1` is the final pass."""
    return FINAL if t > steps else f"Step{t}"


def heading(ws: SheetPlan, title: str, lines: list[str], back: str | None) -> int:
    """Title, the link back, the lines of explanation; returns the first free row."""
    ws.text(1, 1, title, style.key("title"))
    if back:
        ws.link(2, 1, back, LEARNING)
    for row, line in enumerate(lines, 3):
        ws.text(row, 1, line)  # printing.lay_out wraps it across the page
    ws.freeze = "A3"
    return 3 + len(lines) + 1


def build_descent(run: Descent, texts: Texts | None = None) -> DescentBook:
    """The whole workbook for one run of gradient descent: every number from `run`."""
    texts = texts or Texts()
    classes = texts.class_names(run.model.classes)
    labels = Labels(texts, classes, run.names)
    plan = WorkbookPlan(lang=texts.lang)
    learning = plan.sheet(LEARNING)
    x_blocks, onehots = pictures_sheet(plan, run, labels)
    steps = len(run.steps) - 1
    summaries, filters, previous = [], [], None
    for t, step in enumerate(run.steps, 1):
        final = t > steps
        ws = plan.sheet(sheet_of(t, steps))
        key = "final" if final else "step"
        top = heading(ws, labels(f"{key}_title", t=t, steps=steps),
                      texts.lines("descent", f"{key}_body", t=t, steps=steps), labels("back"))
        summary = (top, LEFT + 4), (top + 1, LEFT + 4)
        ws.label(top, LEFT, labels("mean_loss"))
        ws.label(top + 1, LEFT, labels("accuracy"))
        conv, pool = run.model.layers[0], run.model.layers[2].size
        F, k = conv.filters, conv.kernel
        P, K = step.tensors["pool1"].shape[2], len(classes)
        weights = weights_area(ws, top + 3, LEFT, F, k, P, K, labels.with_prefix("at_start"))
        ws.label(top + 2, LEFT, labels("weights", t=t))
        stepped = None if previous is None else previous_weight(previous, weights)
        place_weights(ws, weights, step.params, stepped, "0.000")
        row, bands = weights.bottom + 2, []
        for p in range(len(run.labels)):
            band, row = picture_band(ws, row, p, step, weights, x_blocks[p], pool, onehots[p],
                                     int(run.labels[p]),
                                     t, len(run.labels), labels, with_grads=not final)
            bands.append(band)
        losses = ",".join(a1(*band.loss) for band in bands)
        rights = ",".join(a1(*band.right) for band in bands)
        ws.formula(*summary[0], f"=AVERAGE({losses})", step.loss, style.key("value", "0.0000"))
        ws.formula(*summary[1], f"=AVERAGE({rights})", step.accuracy, style.key("value", "0%"))
        summaries.append((ws.title, summary))
        filters.append(weights.filters[0])
        if not final:
            previous = (ws.title, weights, mean_gradient(ws, row, step, bands, weights, labels))
        for col in range(LEFT, max(c for _, c in ws.cells) + 1):
            ws.widths[col] = CELL_WIDTH
        ws.widths[1] = style.MARGIN_WIDTH
    learning_sheet(plan, learning, run, labels, summaries, filters)
    header = labels("header")
    for ws in plan.sheets:
        printing.lay_out(ws, f"{header} - {ws.title}", f"{printing.THIS_PAGE} / {printing.PAGE_COUNT}")
    return DescentBook(plan)


def previous_weight(previous: tuple[str, Weights, Weights], here: Weights):
    """The formula of each weight of `here`: the same weight on the sheet before minus the rate
    times its mean gradient there."""
    sheet, weights, gradients = previous
    walk = [list(spot for spot, _ in where.cells(*_zeros(where))) for where in (here, weights, gradients)]
    spots = {spot: (old, gradient) for spot, old, gradient in zip(*walk)}

    def formula(row: int, col: int) -> str:
        old, gradient = spots[row, col]
        return f"={on(sheet, a1(*old))}-learning_rate*{on(sheet, a1(*gradient))}"

    return formula


def _zeros(where: Weights):
    """Arrays of the engine's shapes, to walk a Weights area's cells in order."""
    F, k, P, K = len(where.filters), where.filters[0].height, where.dense[0][0].height, len(where.dense)
    return np.zeros((F, 1, k, k)), np.zeros(F), np.zeros((K, F * P * P)), np.zeros(K)


def pictures_sheet(plan: WorkbookPlan, run: Descent, labels: Labels):
    """Each picture's grey pixels (to edit), its class (a drop-down) as a one-hot column, and the
    network's input (pixel / 255 - mean) / std; returns the input blocks and one-hot cells."""
    ws = plan.sheet(PICTURES)
    top = heading(ws, labels("pictures_title"), labels.texts.lines("descent", "pictures_body"),
                  labels("back"))
    K, n, S = len(labels.classes), len(run.labels), run.pixels.shape[1]
    ws.label(top, LEFT, labels("classes"))
    for c, name in enumerate(labels.classes):
        ws.text(top + 1 + c, LEFT, name)
    plan.name("class_names", PICTURES, area(top + 1, LEFT, top + K, LEFT))
    row = top + K + 2
    inputs = run.inputs()
    mean, std = float(run.model.mean[0]), float(run.model.std[0])
    x_blocks, onehots, pixel_areas = [], [], []
    for p in range(n):
        pixels = Block(PICTURES, row + 1, LEFT, S, S)
        x_block = Block(PICTURES, row + 1, LEFT + S + 1, S, S)
        ws.label(row, LEFT, labels("picture", n=p + 1, name=run.names[p]))
        ws.text(row, x_block.left, labels("input"))
        for i in range(S):
            for j in range(S):
                ws.number(*pixels.cell(i, j), int(run.pixels[p, i, j]), style.key("pixel", "0"))
                ws.formula(*x_block.cell(i, j), f"=({pixels.ref(i, j)}/255-{mean!r})/{std!r}",
                           inputs[p, 0, i, j], style.key("number", "0.00"))
        pixel_areas.append(pixels.data)
        ws.scale(x_block.data, style.DIVERGING)
        col = x_block.left + S + 1
        ws.text(row + 1, col, labels("class"))
        chosen = (row + 1, col + 1)
        ws.text(*chosen, labels.classes[int(run.labels[p])], style.key("input"))
        ws.drop_downs.append(DropDown(a1(*chosen), "class_names", labels("class"), labels("class_refused")))
        cells = []
        for c, name in enumerate(labels.classes):
            ws.text(row + 2 + c, col, name)
            ws.formula(row + 2 + c, col + 1, onehot_formula(a1(row + 2 + c, col), a1(*chosen)),
                       float(run.labels[p] == c), style.key("value", "0"))
            cells.append(on(PICTURES, a1(row + 2 + c, col + 1)))
        x_blocks.append(x_block)
        onehots.append(cells)
        ws.keep.append((row, LEFT, row + max(S, K + 1), col + 1))
        row += max(S, K + 1) + 2
    ws.scale(pixel_areas, style.channel_scale("grey"))
    ws.whole_numbers.append(WholeNumbers(tuple(pixel_areas), 0, 255, labels("pixel"),
                                         labels("pixel_refused"), labels("pixel_prompt")))
    ws.widths.update({col: 4.0 for col in range(LEFT, LEFT + 2 * S + 2)})
    ws.widths.update({LEFT + 2 * S + 2: 12.0, LEFT + 2 * S + 3: 12.0})
    ws.widths[1] = style.MARGIN_WIDTH
    return x_blocks, onehots


def learning_sheet(plan: WorkbookPlan, ws: SheetPlan, run: Descent, labels: Labels, summaries, filters):
    """The controls, the loss and accuracy after every step (line charts, then the table), and the
    first filter at a few steps: one column width throughout, so that the sheet prints on two
    pages, the charts on the first."""
    steps, n = len(run.steps) - 1, len(run.labels)
    top = heading(ws, labels("learning_title"), labels.texts.lines("descent", "learning_body", n=n),
                  None)
    ws.link(2, 1, labels("to_pictures"), PICTURES)
    value = LEFT + 3  # labels take columns B to D
    rates = sorted({float(f"{run.rate * m:.6g}") for m in RATE_LADDER} | {run.rate})
    rows = {"learning_rate": top, "batch_size": top + 1, "rates": top + 2}
    for key, row in rows.items():
        ws.label(row, LEFT, labels(key))
        ws.merges.append(area(row, LEFT, row, value - 1))
    ws.number(top, value, run.rate, style.key("input", "General"))
    ws.number(top + 1, value, run.batch, style.key("input", "0"))
    ws.text(top, value + 1, labels("rate_hint"))
    ws.text(top + 1, value + 1, labels("batch_hint", n=n))
    for index, rate in enumerate(rates):
        ws.number(top + 2, value + index, rate, style.key("value", "General"))
    plan.name("learning_rate", LEARNING, a1(top, value))
    plan.name("batch_size", LEARNING, a1(top + 1, value))
    plan.name("rates", LEARNING, area(top + 2, value, top + 2, value + len(rates) - 1))
    ws.drop_downs.append(DropDown(a1(top, value), "rates", labels("learning_rate"), labels("rate_refused")))
    largest = max(n, run.batch)
    ws.whole_numbers.append(WholeNumbers((a1(top + 1, value),), 1, largest, labels("batch_size"),
                                         labels("batch_refused", n=largest), labels("batch_prompt", n=n)))
    charts = top + 4
    table = charts + 2 * (printing.CHART_ROWS + 1)
    last = table + 1 + steps
    steps_area = area(table + 1, LEFT, last, LEFT)
    losses, accuracies = area(table + 1, LEFT + 1, last, LEFT + 1), area(table + 1, LEFT + 2, last, LEFT + 2)
    numbers = tuple(range(steps + 1))
    every = label_every(steps + 1)
    ws.charts.append(LineChart(labels("loss_chart"), steps_area, losses, a1(charts, LEFT), numbers,
                               tuple(run.losses), label_every=every))
    ws.charts.append(LineChart(labels("accuracy_chart"), steps_area, accuracies,
                               a1(charts + printing.CHART_ROWS + 1, LEFT), numbers, tuple(run.accuracies),
                               0.0, 1.0, True, label_every=every))
    ws.keep.append((charts, LEFT, table - 1, LEFT + 8))  # both charts on one page
    for offset, key in enumerate(("step", "loss", "accuracy")):
        ws.label(table, LEFT + offset, labels(key))
    for t, (sheet, (loss_at, accuracy_at)) in enumerate(summaries):
        row = table + 1 + t
        ws.number(row, LEFT, t)
        ws.formula(row, LEFT + 1, f"={on(sheet, a1(*loss_at))}", run.steps[t].loss,
                   style.key("value", "0.0000"))
        ws.formula(row, LEFT + 2, f"={on(sheet, a1(*accuracy_at))}", run.steps[t].accuracy,
                   style.key("value", "0%"))
        ws.link(row, LEFT + 3, sheet, sheet)
    plan.name("losses", LEARNING, losses)
    plan.name("accuracies", LEARNING, accuracies)
    ws.keep.append((table, LEFT, last, LEFT + 3))
    right = snapshots(ws, last + 2, run, labels, filters)
    ws.widths.update({col: 6.0 for col in range(LEFT, max(right, value + len(rates)) + 1)})
    ws.widths[LEFT + 1] = 8.0  # a loss of 17.3017 when the rate is too large
    ws.widths[1] = style.MARGIN_WIDTH


def snapshots(ws: SheetPlan, top: int, run: Descent, labels: Labels, filters) -> int:
    """The first filter's weights after a few steps, side by side on one colour scale; returns the
    last column used."""
    steps = len(run.steps) - 1
    chosen = sorted({round(steps * i / (SNAPSHOTS - 1)) for i in range(SNAPSHOTS)})
    ws.label(top, LEFT, labels("snapshots"))
    k = filters[0].height
    look = style.key("number", "0.00")
    areas, left = [], LEFT
    for t in chosen:
        block = Block(LEARNING, top + 2, left, k, k)
        ws.text(top + 1, left, labels("after_steps", t=t))
        source = filters[t]
        for i in range(k):
            for j in range(k):
                ws.formula(*block.cell(i, j), f"={source.address(i, j)}",
                           run.steps[t].params["conv1.weight"][0, 0, i, j], look)
        areas.append(block.data)
        left += k + 1
    ws.scale(areas, style.DIVERGING)
    ws.keep.append((top, LEFT, top + 1 + k, left - 2))
    return left - 2
