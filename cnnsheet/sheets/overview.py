"""The first sheet: the photo and what the network sees, the prediction and the loss (live), and
a table of every sheet with its shape, live size arithmetic and parameter count."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cnnsheet import style
from cnnsheet.layout import a1, area
from cnnsheet.plan import Picture
from cnnsheet.sheets.common import OVERVIEW, Book

PICTURE_SIDE = 224  # pixels


def overview_sheet(book: Book, photo: Image.Image | None, photo_name: str, with_backward: bool):
    t, model = book.texts, book.model
    ws = book.plan.sheet(OVERVIEW)
    book.plan.sheets.insert(0, book.plan.sheets.pop())  # planned last, shown first
    ws.text(1, 1, t("overview", "title", photo=photo_name or t("overview", "photo")), style.key("title"))
    row = 3
    for line in t.lines("overview", "body"):
        ws.text(row, 1, line)
        row += 1
    row += 1
    p = book.trace.probabilities[0]
    target = book.target_index
    summary = [
        ("predicted", "=INDEX(class_names,MATCH(MAX(probabilities),probabilities,0))",
         model.classes[int(p.argmax())], "General"),
        ("probability", "=MAX(probabilities)", p.max(), "0.0%"),
        ("true_class", "=target_class", model.classes[target], "General"),
        ("loss", "=loss", -np.log(p[target]), "0.0000"),
    ]
    if with_backward:
        summary += [("learning_rate", "=learning_rate", book.learning_rate, "0.000"),
                    ("loss_after_step", "=loss_after_step", book.loss_after, "0.0000"),
                    ("saliency_class", "=saliency_class", model.classes[book.saliency_index], "General")]
    for key, formula, value, fmt in summary:
        ws.label(row, 1, t("overview", key))
        ws.formula(row, 2, formula, value, style.key("heading", fmt))
        row += 1
    row += 1
    headers = ["table_step", "table_layer", "table_shape", "table_size", "table_size_rule",
               "table_params", "table_field", "table_jump", "table_note"]
    for col, key in enumerate(headers, 1):
        ws.label(row, col, t("overview", key))
    first = row + 1
    field = None  # (row, size, jump) of the last row with a receptive field
    for step in book.steps:
        row += 1
        ws.link(row, 1, step.sheet, step.sheet)
        ws.text(row, 2, step.layer)
        ws.text(row, 3, " x ".join(str(n) for n in step.shape))
        if step.size_formula:
            size = step.shape[1] if len(step.shape) == 3 else step.shape[0]
            ws.formula(row, 4, step.size_formula, size, style.key("heading"))
            ws.text(row, 5, step.size_rule)
        if step.params_formula:
            ws.formula(row, 6, step.params_formula, step.params, style.key("heading"))
        if step.field_start:
            ws.number(row, 7, 1, style.key("heading"))
            ws.number(row, 8, 1, style.key("heading"))
            field = (row, 1, 1)
        elif step.window and field:
            (span, stride), (before, size, jump) = step.window, field
            field = (row, size + (span - 1) * jump, jump * stride)
            ws.formula(row, 7, f"={a1(before, 7)}+({span}-1)*{a1(before, 8)}", field[1], style.key("heading"))
            ws.formula(row, 8, f"={a1(before, 8)}*{stride}", field[2], style.key("heading"))
        if step.note:
            ws.text(row, 9, step.note)
    row += 1
    ws.label(row, 5, t("overview", "total"))
    ws.formula(row, 6, f"=SUM({area(first, 6, row - 1, 6)})", sum(s.params for s in book.steps),
               style.key("big"))
    for offset, line in enumerate(t.lines("overview", "field_note"), 2):
        ws.text(row + offset, 1, line)
    ws.width("ABCDEFGHI", (20, 16, 14, 14, 36, 12, 14, 10, 30))
    pictures(book, ws, photo, anchor_col="J")


def pictures(book: Book, ws, photo: Image.Image | None, anchor_col: str):
    """The photo as given and the small square the network sees, each with a caption."""
    size = book.model.input_size
    view = Image.fromarray(book.pixels).resize((PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.NEAREST)
    shown = [(view, book.texts("overview", "network_view", size=size))]
    if photo is not None:
        thumbnail = photo.copy()
        thumbnail.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
        shown.insert(0, (thumbnail, book.texts("overview", "photo")))
    col = ord(anchor_col) - 64
    row = 3
    for picture, caption in shown:
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        ws.label(row, col, caption)
        ws.pictures.append(Picture(buffer.getvalue(), f"{anchor_col}{row + 1}"))
        row += 14
