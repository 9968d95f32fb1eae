"""The first sheet: the photo and what the network sees, the prediction and the loss (live), the
network at a glance (a small live heat map of every map of the pass, each linking to its sheet),
and a table of every sheet with its shape, live size arithmetic and parameter count.

The sheet is a grid of narrow columns, so that the heat maps can be drawn one cell per value:
texts overflow into the empty cells to their right, and the few numbers sit in merged cells.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from cnnsheet import names, style
from cnnsheet.layers import Flatten
from cnnsheet.layout import Vector, a1, area
from cnnsheet.model import Descent
from cnnsheet.plan import Picture, SheetPlan
from cnnsheet.sheets.common import Book, OverviewRow, PassSheets
from cnnsheet.sheets.output import predicted_formula
from cnnsheet.untrained import brightest

PICTURE_SIDE = 224  # pixels
PICTURE_ROWS = 13  # rows of the default height that a picture covers, with its caption
PICTURE_COLUMNS = 44  # narrow columns that a picture covers, with a gap
MARGIN = 12  # narrow columns left of the heat maps, for the name of each map's sheet
GLANCE_COLUMNS = 200  # a row of heat maps wraps beyond this many columns
THUMB_SIDE = 32  # a larger map is shown with every k-th value, k = ceil(side / 32)
THUMB_LEAST = 24  # a smaller map shows each value as a square of cells, to be this wide at least
SUMMARY_VALUE = (30, 44)  # merged columns of the summary's values; its links follow
# Where each column of the layer table starts (and where a merged number ends), measured on the
# printed Overview: each column holds its heading or its longest entry ("NewSoftmax", "the photo's
# pixels", "output height", "floor((28 + 2x0 - 1x(5-1) - 1) / 1) + 1", "receptive field") and a gap
# of two narrow columns, and the last heading still lies within the heat maps' width.
TABLE = {"table_step": 1, "table_layer": 19, "table_shape": 44, "table_size": (66, 78),
         "table_size_rule": 90, "table_params": (140, 152), "table_field": (159, 168),
         "table_jump": (186, 193), "table_note": 196}


def overview_sheet(book: Book, ws: SheetPlan, first: PassSheets, descent: Descent | None,
                   rows: list[OverviewRow], photo: Image.Image | None, photo_name: str,
                   bundled: bool = False):
    """The Overview, on the sheet `ws` that the pipeline made first (it is shown first, and filled
    last: it reads every sheet of the first pass). `descent` is the engine's gradient step, None
    without the backward pass; `rows` are what the sheet functions returned for the table, in any
    order; `bundled`: the model is the bundled shapes model, which the
    Overview says knows only its three shapes."""
    t, classes = book.texts, book.class_names
    with_backward = descent is not None
    ws.text(1, 1, t("overview", "title", photo=photo_name or t("overview", "photo")), style.key("title"))
    row = 3
    lines = t.lines("overview", "body") + [t("overview", "editable" if with_backward else "editable_forward")]
    if book.untrained:
        lines.append(t("overview", "untrained"))
    elif bundled:
        lines.append(t("overview", "bundled"))
    for line in lines:
        ws.text(row, 1, line)
        row += 1
    row += 1
    p = book.trace.probabilities[0]
    target = book.target_index
    loss = book.loss
    p_name = names.probabilities()
    summary = [  # the cells a student may change are mirrored here, with where to change them
        ("predicted", predicted_formula(), classes[int(p.argmax())], "General", None),
        ("probability", f"=MAX({p_name})", p.max(), "0.0%", None),
        ("true_class", f"={names.used(names.TARGET_CLASS)}", classes[target], "General", "Loss"),
        ("loss", f"={names.LOSS}", loss, style.LOSS, None),
    ]
    if with_backward:
        summary += [("learning_rate", f"={names.LEARNING_RATE}", book.learning_rate, "General", "Step"),
                    ("loss_after_step", f"={names.LOSS_AFTER_STEP}", descent.loss_after,
                     style.LOSS, None),
                    ("saliency_class", f"={names.used(names.SALIENCY_CLASS)}", classes[book.saliency_index],
                     "General",
                     "Saliency")]
    first_value, last_value = SUMMARY_VALUE
    for key, formula, value, fmt, where in summary:
        ws.label(row, 1, t("overview", key))
        ws.formula(row, first_value, formula, value, style.key("mirror" if where else "heading", fmt))
        ws.merges.append(area(row, first_value, row, last_value))
        if where:
            ws.link(row, last_value + 2, t("labels", "change_on", sheet=where), where)
        row += 1
    row = covering(book, ws, row)
    row = pictures(book, ws, photo, row + 1)
    row = glance(book, ws, first, row + 1)
    table(book, ws, row + 1, rows)
    for col in range(1, GLANCE_COLUMNS + MARGIN + 2):
        ws.widths.setdefault(col, style.THUMB_CELL[0])


def covering(book: Book, ws: SheetPlan, row: int) -> int:
    """Before and after the grey square of the Image sheet: the class the uncovered photo gets,
    with its probability as a plain number (a second pass of every sheet would make it live: too
    dear), and that class's probability now, live; returns the row below."""
    t = book.texts
    before = book.model.predict(book.photo).probabilities[0]
    k = int(before.argmax())
    now = book.trace.probabilities[0, k]
    first_value, last_value = SUMMARY_VALUE
    lines = [("occlusion_size", f"={names.occlusion('size')}", book.occlusion.size, "0", "Image"),
             ("uncovered", None, before[k], "0.0%", None),
             ("covered", f"=INDEX({names.probabilities()},{k + 1})", now, "0.0%", None)]
    for key, formula, value, fmt, where in lines:
        ws.label(row, 1, t("overview", key, name=book.class_names[k]))
        if formula is None:
            ws.number(row, first_value, value, style.key("heading", fmt))
        else:
            ws.formula(row, first_value, formula, value, style.key("mirror" if where else "heading", fmt))
        ws.merges.append(area(row, first_value, row, last_value))
        if where:
            ws.link(row, last_value + 2, t("labels", "change_on", sheet=where), where)
        else:
            ws.text(row, last_value + 2, t("overview", f"{key}_note"))
        row += 1
    return row


def pictures(book: Book, ws, photo: Image.Image | None, row: int) -> int:
    """The photo as given and the small square the network sees, side by side, each with a
    caption, and beside them a note that they are pictures, not cells; returns the row below."""
    size = book.model.input_size
    pixels = book.pixels  # shown as the photo they are: a tiny network's levels 0-9 stretched to 0-255
    if brightest(book.model) != 255:
        pixels = np.rint(pixels * (255 / brightest(book.model))).astype(np.uint8)
    view = Image.fromarray(pixels).resize((PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.NEAREST)
    shown = [(view, book.texts("overview", "network_view", size=size))]
    if photo is not None:
        thumbnail = photo.copy()
        thumbnail.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
        shown.insert(0, (thumbnail, book.texts("overview", "photo")))
    for number, (picture, caption) in enumerate(shown):
        col = 1 + number * PICTURE_COLUMNS
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        ws.label(row, col, caption)
        ws.pictures.append(Picture(buffer.getvalue(), a1(row + 1, col)))
    # beside the pictures, not below them: a row more would push the heat maps onto another page
    for offset, line in enumerate(book.texts.lines("overview", "pictures_note")):
        ws.text(row + 1 + offset, 1 + len(shown) * PICTURE_COLUMNS, line)
    return row + PICTURE_ROWS


def maps_of_the_pass(book: Book, first: PassSheets) -> list:
    """(sheet, blocks or a Vector) of every map of the first pass, in its order: the input, each
    conv, ReLU and pool, the dense outputs, the probabilities."""
    maps, seen = [], set()
    for name in ["input", *(layer.name for layer in book.model.layers
                            if not isinstance(layer, Flatten)), "probabilities"]:
        where = first.probabilities if name == "probabilities" else first.maps[name]
        where = where if isinstance(where, Vector) else where.blocks
        sheet = where.sheet if isinstance(where, Vector) else where[0].sheet
        key = (sheet, where.data if isinstance(where, Vector) else where[0].data)
        if key not in seen:
            seen.add(key)
            maps.append((sheet, where))
    return maps


def glance(book: Book, ws, first: PassSheets, row: int) -> int:
    """A small live heat map of every map of the pass: one narrow cell per value (every k-th value
    of a large map), reading the real sheet, with its digits hidden and its sheet's colour scale.
    Returns the first row below."""
    ws.label(row, 1, book.texts("overview", "glance"))
    ws.text(row + 1, 1, book.texts("overview", "glance_colours"))
    row += 3
    thumb = style.key("thumb", ";;;")
    for sheet, where in maps_of_the_pass(book, first):
        scale = next(s for areas, s in book.plan[sheet].scales
                     if (where.data if isinstance(where, Vector) else where[0].data) in areas)
        ws.link(row, 1, sheet, sheet)
        source = book.plan[sheet].cells
        if isinstance(where, Vector):
            shape = (1, where.length)
            labels = [book.texts("overview", "glance_probabilities")] if sheet == "Softmax" else [""]
            reads = [lambda i, j, vector=where: (vector.address(j), vector.cell(j))]
            opens = [a1(*where.cell(0))]
        else:
            shape = (where[0].height, where[0].width)
            labels = [b.label for b in where]
            reads = [lambda i, j, b=b: (b.address(i, j), b.cell(i, j)) for b in where]
            opens = [a1(b.outer[0] - 1, b.outer[1]) for b in where]  # the block's label, above it
        areas = []
        side = max(shape)
        step = max(1, math.ceil(side / THUMB_SIDE))  # read every step-th value
        zoom = min(4, max(1, THUMB_LEAST // side))  # draw each value as zoom x zoom cells
        if isinstance(where, Vector):  # a strip of at most GLANCE_COLUMNS cells
            step = max(1, math.ceil(side / GLANCE_COLUMNS))
            zoom = max(1, min(8, 4 * THUMB_LEAST // side))
        height = math.ceil(shape[0] / step) * (3 if isinstance(where, Vector) else zoom)
        width = math.ceil(shape[1] / step) * zoom
        per_row = max(1, GLANCE_COLUMNS // (width + 1))
        for number, (label, read, cell) in enumerate(zip(labels, reads, opens)):
            band, place = divmod(number, per_row)
            top, left = row + 1 + band * (height + 2), MARGIN + 1 + place * (width + 1)
            if label:  # "filter 5" opens its sheet at filter 5's block
                ws.link(top - 1, left, label, sheet, cell)
            cells = []
            for i in range(height):
                ws.heights[top + i] = style.THUMB_CELL[1]
                y = 0 if isinstance(where, Vector) else i // zoom * step
                for j in range(width):
                    address, cell = read(y, j // zoom * step)
                    cells.append(((top + i, left + j), f"={address}", source[cell][1]))
            ws.formulas(cells, thumb, thumb)
            areas.append(area(top, left, top + height - 1, left + width - 1))
        ws.scale(areas, scale)
        bands = math.ceil(len(reads) / per_row)
        right = MARGIN + min(len(reads), per_row) * (width + 1)
        ws.keep.append((row, 1, row + bands * (height + 2) - 1, right))
        row += bands * (height + 2) + 1
    return row


def field_cells(ws, row: int, step, before: int | None) -> int | None:
    """The size and jump of the receptive field of a row's cells: constants on the input's row,
    live arithmetic from the row `before` on a conv's or pool's (size + (span - 1) x jump, and
    jump x stride), each cell caching the engine's number. Returns the row that the next conv or
    pool reads its field from."""
    (size_col, _), (jump_col, _) = TABLE["table_field"], TABLE["table_jump"]
    look = style.key("heading")
    if step.field is None or (step.window and before is None):
        return before
    size, jump = step.field
    if step.window is None:  # the input: each cell sees one pixel, one apart
        ws.number(row, size_col, size, look)
        ws.number(row, jump_col, jump, look)
    else:
        span, stride = step.window
        ws.formula(row, size_col, f"={a1(before, size_col)}+({span}-1)*{a1(before, jump_col)}", size, look)
        ws.formula(row, jump_col, f"={a1(before, jump_col)}*{stride}", jump, look)
    for first, last in (TABLE["table_field"], TABLE["table_jump"]):
        ws.merges.append(area(row, first, row, last))
    return row


def table(book: Book, ws, row: int, rows: list[OverviewRow]):
    """Every sheet in the workbook's order: a link, the layer, the shape, the live arithmetic of
    its height and its parameter count."""
    t = book.texts
    for key, col in TABLE.items():
        ws.label(row, col if isinstance(col, int) else col[0], t("overview", key))
    ws.keep.append((row, 1, row + 3, TABLE["table_note"]))  # the heading prints with its first rows
    first = row + 1
    order = {title: index for index, title in enumerate(book.plan.sheetnames)}
    size_cols, params_cols = TABLE["table_size"], TABLE["table_params"]
    field_row = None  # the last row with a receptive field
    for step in sorted(rows, key=lambda s: order[s.sheet]):
        row += 1
        ws.link(row, TABLE["table_step"], step.sheet, step.sheet)
        ws.text(row, TABLE["table_layer"], step.layer)
        ws.text(row, TABLE["table_shape"], " x ".join(str(n) for n in step.shape))
        if step.size_formula:
            size = step.shape[1] if len(step.shape) == 3 else step.shape[0]
            ws.formula(row, size_cols[0], step.size_formula, size, style.key("heading"))
            ws.merges.append(area(row, size_cols[0], row, size_cols[1]))
            ws.text(row, TABLE["table_size_rule"], step.size_rule)
        if step.params_formula:
            ws.formula(row, params_cols[0], step.params_formula, step.params,
                       style.key("heading", style.COUNT))
            ws.merges.append(area(row, params_cols[0], row, params_cols[1]))
        field_row = field_cells(ws, row, step, field_row)
        if step.note:
            ws.text(row, TABLE["table_note"], step.note)
    row += 1
    ws.label(row, TABLE["table_size_rule"], t("overview", "total"))
    ws.formula(row, params_cols[0], f"=SUM({area(first, params_cols[0], row - 1, params_cols[0])})",
               book.model.parameter_count, style.key("big", style.COUNT))
    ws.merges.append(area(row, params_cols[0], row, params_cols[1]))
    for offset, line in enumerate(t.lines("overview", "field_note"), 2):
        ws.text(row + offset, 1, line)
