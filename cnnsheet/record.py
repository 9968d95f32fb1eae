"""What a worksheet remembers of itself, so that `cnnsheet check` can grade it.

A worksheet (`cnnsheet exercise`) is a walkthrough with some cells blanked. To grade one, `check`
rebuilds that walkthrough from what the saved file holds (its pixels, weights and choices, which a
student may have edited) and compares each answer with the engine's value of its cell. What it
cannot read from the cells it reads here: the network's config, the options the walkthrough was
built with, and where each exercise is. They are written as text on a hidden sheet (protected
like the others), and read back with openpyxl, as every program that saves the file leaves them.

The sheet, from A1 down (column A the key, column B its value):

    format      cnnsheet worksheet 1
    config      the model's config (config.py), as JSON
    options     how the walkthrough was built, as JSON (forward_only, lang, templates, tiny, seed,
                count, ..., and "build": the BUILD_ARGUMENTS)
    (empty row)
    exercise    sheet    cell    kind    decimals        <- the table's header
    1           Conv1    D12     conv    2
    ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cnnsheet.errors import CnnsheetError
from cnnsheet.layout import a1, bounds
from cnnsheet.plan import WorkbookPlan

SHEET = "cnnsheet"
FORMAT = "cnnsheet worksheet 1"
TABLE_HEADER = ("exercise", "sheet", "cell", "kind", "decimals")
TABLE_ROW = 5  # the header's row
# the arguments of workbook.build_walkthrough that no cell holds, which options["build"] keeps
BUILD_ARGUMENTS = ("with_backward", "untrained", "bundled", "photo_name", "learning_rate", "saliency_mode")
# When an answer is right: within 1% of the engine's value (four significant digits always are; an
# answer 5% off never is), or within ZERO of a value that is 0. The live check on the sheet and
# `cnnsheet check` both follow this one rule.
RELATIVE = 0.01
ZERO = 1e-6


def right(answer, truth: float) -> bool:
    """Whether a student's answer counts as right; anything but a number (a text, a blank) does not."""
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        return False
    return abs(answer - truth) <= max(RELATIVE * abs(truth), ZERO)


@dataclass(frozen=True)
class Exercise:
    """One blank: its number k (its cell is named exercise_k), where it is, what kind of step it
    asks for (a key of the texts' [exercise] section) and to how many decimals."""

    number: int
    sheet: str
    row: int
    col: int
    kind: str
    decimals: int


@dataclass(frozen=True)
class Record:
    config: dict
    options: dict
    exercises: tuple


def add(plan: WorkbookPlan, record: Record) -> None:
    """The hidden sheet that holds the record, at the end of the workbook."""
    ws = plan.sheet(SHEET)
    ws.hidden = ws.protected = True
    for row, (key, value) in enumerate((("format", FORMAT),
                                        ("config", json.dumps(record.config, ensure_ascii=False)),
                                        ("options", json.dumps(record.options, ensure_ascii=False))),
                                       start=1):
        ws.text(row, 1, key)
        ws.text(row, 2, value)
    for col, heading in enumerate(TABLE_HEADER, start=1):
        ws.text(TABLE_ROW, col, heading)
    for row, exercise in enumerate(record.exercises, start=TABLE_ROW + 1):
        ws.number(row, 1, exercise.number)
        ws.text(row, 2, exercise.sheet)
        ws.text(row, 3, a1(exercise.row, exercise.col))
        ws.text(row, 4, exercise.kind)
        ws.number(row, 5, exercise.decimals)


def read(workbook, name: str) -> Record:
    """The record of an openpyxl workbook; `name` (the file's) for the messages."""
    if SHEET not in workbook.sheetnames:
        raise CnnsheetError(f"{name}: not a cnnsheet worksheet (made by `cnnsheet exercise`): it has no "
                            f"'{SHEET}' sheet")
    ws = workbook[SHEET]

    def value(row, col):
        return ws.cell(row=row, column=col).value

    if value(1, 2) != FORMAT:
        raise CnnsheetError(f"{name}: its '{SHEET}' sheet does not say '{FORMAT}': a worksheet of another "
                            f"version, or not one")
    try:
        config, options = json.loads(value(2, 2)), json.loads(value(3, 2))
        exercises = []
        row = TABLE_ROW + 1
        while value(row, 1) is not None:
            top, left, bottom, right = bounds(str(value(row, 3)))
            if (top, left) != (bottom, right):
                raise ValueError(f"{value(row, 3)} is not one cell")
            exercises.append(Exercise(int(value(row, 1)), str(value(row, 2)), top, left, str(value(row, 4)),
                                      int(value(row, 5))))
            row += 1
    except (TypeError, ValueError, CnnsheetError) as error:
        raise CnnsheetError(f"{name}: its '{SHEET}' sheet is damaged ({error})") from None
    if not isinstance(config, dict) or not isinstance(options, dict):
        raise CnnsheetError(f"{name}: its '{SHEET}' sheet is damaged (config or options is not a table)")
    return Record(config, options, tuple(exercises))
