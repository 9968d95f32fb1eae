"""`cnnsheet check`: grade worksheets that students filled in and saved.

A worksheet (`cnnsheet exercise`) is a walkthrough with some cells blanked, and a hidden record of
itself (record.py): the network's config, the options it was built with, and where each blank is.
Grading trusts nothing else the file caches: no check cell, no score, no value of a formula, all
of which a student can type over or a program may never have recalculated. Instead:

1. the walkthrough is planned again from the record alone, with zero weights and black pixels, to
   learn where its pixels, weights and choice cells are (workbook.Walkthrough; where they land
   never depends on the values);
2. those cells are read from the file (a student may have edited them) and the walkthrough is
   built again with them: its engine values are the truth of every cell, as the file's own
   formulas would compute them;
3. each answer is held against the truth of its cell by record.right, the one rule of a right
   answer, which the live checks on the sheets follow too.

openpyxl reads the files (any program may have saved them: Excel, LibreOffice, Gnumeric, Google
Sheets); it takes about half a second to import, so only this module imports it.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnsheet import names, record
from cnnsheet.budget import MiB
from cnnsheet.config import short
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_input
from cnnsheet.images import Occlusion
from cnnsheet.layers import RELU_RULES, Conv, MaxPool
from cnnsheet.layout import a1, on
from cnnsheet.model import Model
from cnnsheet.record import BUILD_ARGUMENTS
from cnnsheet.sheets.common import OVERVIEW
from cnnsheet.texts import LANGUAGES, Texts
from cnnsheet.untrained import brightest
from cnnsheet.workbook import Walkthrough, build_walkthrough, cell_of

# The largest walkthrough the budget allows (3 million cells) is about 170 MB of XML as our writer
# writes it, and LibreOffice's files are larger still; more, uncompressed, is no worksheet but a
# zip bomb, refused before anything is inflated.
MAX_UNCOMPRESSED = 1024 * MiB
MAX_MEMBERS = 10_000  # a worksheet holds a few dozen sheets, each a handful of parts
ZIP_SIGNATURE = b"PK\x03\x04"
MAX_RECORD_ROWS = 10_000  # the record's rows read: a worksheet has a few dozen exercises


@dataclass(frozen=True)
class Mark:
    """One exercise graded: "right", "wrong" or "blank"."""

    exercise: record.Exercise
    verdict: str

    @property
    def cell(self) -> str:
        return on(self.exercise.sheet, a1(self.exercise.row, self.exercise.col))


@dataclass(frozen=True)
class Grade:
    file: str
    marks: tuple

    @property
    def score(self) -> int:
        return sum(mark.verdict == "right" for mark in self.marks)

    @property
    def count(self) -> int:
        return len(self.marks)

    def cells(self, verdict: str) -> list[str]:
        """'3 Conv1!D12' for each exercise of that verdict."""
        return [f"{mark.exercise.number} {mark.cell}" for mark in self.marks if mark.verdict == verdict]


def grade(path: Path) -> Grade:
    """Grade one saved worksheet; a file that cannot be graded is a CnnsheetError naming it."""
    name = str(path)
    check_input(path, "worksheet")
    book = open_workbook(path, name)
    try:
        rec = reading(name, lambda: record.read(RecordSheet(book), name))
        try:
            layout = planned(json.dumps(rec.config, sort_keys=True), json.dumps(rec.options, sort_keys=True))
        except CnnsheetError as error:
            raise CnnsheetError(f"{name}: its record describes no walkthrough cnnsheet can build "
                                f"({error})") from None
        fits(layout, rec, book.sheetnames, name)
        watch = sentinels(layout, rec)
        cells = reading(name, lambda: read_cells(book, needed(layout, rec) + list(watch)))
    finally:
        book.close()
    laid_out(watch, cells, name)
    truth = rebuilt(layout, rec, cells, name).expected
    marks = []
    for exercise in rec.exercises:
        where = (exercise.sheet, exercise.row, exercise.col)
        marks.append(Mark(exercise, verdict(cells[where], truth[where])))
    return Grade(name, tuple(marks))


def verdict(cell: tuple, truth: float) -> str:
    """A typed number held against the truth; an empty cell is blank, and a formula (which could
    read the answer from elsewhere) is never an answer."""
    value, kind = cell
    if value is None or (isinstance(value, str) and not value.strip()):
        return "blank"
    if kind == "f":
        return "wrong"
    return "right" if record.right(value, truth) else "wrong"


# ---- reading a file ---------------------------------------------------------------------------
def open_workbook(path: Path, name: str):
    """The file as a read-only openpyxl workbook, after the zip's table of contents is checked."""
    try:
        with open(path, "rb") as file:
            zipped = file.read(4) == ZIP_SIGNATURE
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            parts = {member.filename for member in members}
    except zipfile.BadZipFile:
        if zipped:
            raise CnnsheetError(f"{name}: damaged (a zip archive cut short or corrupted), not a readable "
                                f".xlsx workbook") from None
        raise CnnsheetError(f"{name}: not an .xlsx workbook (not a zip archive)") from None
    except OSError as error:
        raise CnnsheetError(f"{name}: cannot be read ({error.strerror or error})") from None
    if len(members) > MAX_MEMBERS:
        raise CnnsheetError(f"{name}: a zip of {len(members):,} parts, not an .xlsx worksheet")
    inflated = sum(member.file_size for member in members)
    if inflated > MAX_UNCOMPRESSED:
        raise CnnsheetError(f"{name}: {inflated / MiB:,.0f} MB uncompressed, far more than any worksheet "
                            f"({MAX_UNCOMPRESSED // MiB:,} MB at most): refused unread")
    if "xl/workbook.xml" not in parts:
        raise CnnsheetError(f"{name}: a zip archive but not an .xlsx workbook (it has no xl/workbook.xml)")
    import openpyxl  # here: a command that does not grade does not pay for its import

    return reading(name, lambda: openpyxl.load_workbook(path, read_only=True, data_only=False))


def reading(name: str, read):
    """Call `read`, which reads the file through openpyxl. Its warnings (about a default style or an
    extension it does not know, which other programs write) are not ours to show; anything it
    raises on a damaged part (an XML, zip or value error of many kinds) is one line naming the
    file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read()
    except CnnsheetError:
        raise
    except Exception as error:  # openpyxl has no error class of its own for a damaged file
        raise CnnsheetError(f"{name}: damaged, openpyxl cannot read it ({type(error).__name__}: "
                            f"{short(str(error))})") from None


def read_cells(book, cells) -> dict:
    """(sheet, row, col) -> (value, openpyxl's data type: "f" for a formula) of each cell asked
    for, reading each sheet once, row by row, over the rows and columns asked for."""
    by_sheet = {}
    for sheet, row, col in cells:
        by_sheet.setdefault(sheet, set()).add((row, col))
    found = {}
    for sheet, wanted in by_sheet.items():
        rows, cols = [row for row, _ in wanted], [col for _, col in wanted]
        for cells_of_row in book[sheet].iter_rows(min_row=min(rows), max_row=max(rows), min_col=min(cols),
                                                 max_col=max(cols)):
            for cell in cells_of_row:
                if not hasattr(cell, "row"):  # an empty cell in read-only mode knows no place
                    continue
                if (cell.row, cell.column) in wanted:
                    found[sheet, cell.row, cell.column] = (cell.value, cell.data_type)
    return {cell: found.get(cell, (None, "n")) for cell in cells}


class RecordSheet:
    """A workbook as record.read sees it, its record sheet's first rows read in one go: record.read
    asks for cells one at a time, which a read-only worksheet answers by parsing from the top."""

    def __init__(self, book):
        self.sheetnames = book.sheetnames
        self.values = {}
        if record.SHEET in book.sheetnames:
            for row in book[record.SHEET].iter_rows(min_row=1, max_row=MAX_RECORD_ROWS, min_col=1,
                                                    max_col=len(record.TABLE_HEADER)):
                for cell in row:
                    if hasattr(cell, "row"):
                        self.values[cell.row, cell.column] = cell.value

    def __getitem__(self, sheet: str):
        return self

    def cell(self, row: int, column: int):
        return _Value(self.values.get((row, column)))


@dataclass(frozen=True)
class _Value:
    value: object


# ---- the walkthrough again --------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def planned(config: str, options: str) -> Walkthrough:
    """The walkthrough a record describes, with zero weights and black pixels: where everything is.
    The worksheets of one exercise share it (keyed by the record, as JSON text)."""
    model = Model(json.loads(config))
    size = model.input_size
    return build(model, np.zeros((size, size, 3), dtype=np.uint8), json.loads(options))


def build(model: Model, pixels: np.ndarray, options: dict, **choices) -> Walkthrough:
    """build_walkthrough with the options a worksheet was made with: those that change what the
    sheets say, and so where their cells are (language, texts, forward only, random or bundled
    weights, the photo's name), and the arguments no cell holds (the record's "build")."""
    arguments = {"with_backward": not options.get("forward_only", False),
                 "untrained": bool(options.get("untrained") or options.get("tiny")),  # --tiny's are random
                 "bundled": bool(options.get("bundled"))}
    kept = options.get("build", {})
    if not isinstance(kept, dict) or not set(kept) <= set(BUILD_ARGUMENTS):
        raise CnnsheetError(f"its '{record.SHEET}' sheet is damaged (the options to build it again)")
    arguments.update(kept)
    arguments.update(choices)
    return build_walkthrough(model, pixels, texts_of(options), **arguments)


def texts_of(options: dict) -> Texts:
    """The texts the worksheet was made with: a teacher's own folder (--templates) must be here too,
    since its lines set where the cells are."""
    lang, folder = options.get("lang", "en"), options.get("templates")
    if lang not in LANGUAGES or not (folder is None or isinstance(folder, str)):
        raise CnnsheetError(f"its '{record.SHEET}' sheet is damaged (its language or texts)")
    if folder is not None and not Path(folder).is_dir():
        raise CnnsheetError(f"it was made with the texts of the folder {folder}, which is not on this "
                            f"computer: check it where that folder is")
    return Texts(lang, folder)


def fits(layout: Walkthrough, rec: record.Record, sheets: list, name: str) -> None:
    """The record fits the walkthrough it describes: every sheet there, every exercise a number that
    the walkthrough computes."""
    missing = [sheet for sheet in layout.sheetnames if sheet not in sheets]
    if missing:
        raise CnnsheetError(f"{name}: the sheet(s) {', '.join(map(repr, missing[:3]))} of its walkthrough "
                            f"are missing (renamed or deleted)")
    expected = layout.expected
    for exercise in rec.exercises:
        value = expected.get((exercise.sheet, exercise.row, exercise.col))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            cell = on(exercise.sheet, a1(exercise.row, exercise.col))
            raise CnnsheetError(f"{name}: its record does not fit its cells: exercise {exercise.number} is "
                                f"at {cell}, which its walkthrough does not compute a number in")


def sentinels(layout: Walkthrough, rec: record.Record) -> dict:
    """The first computed cell of each sheet (not an exercise), which must hold a formula, and the
    cell above it, which must not. Were a sheet laid out otherwise than the record says (other
    texts, another version), rows shifted down would move the first onto a label or an empty
    cell, and rows shifted up a formula into the cell above. Both are near the top: cheap to read."""
    blanks = {(exercise.sheet, exercise.row, exercise.col) for exercise in rec.exercises}
    first = {}
    for sheet, row, col in sorted(cell for cell in layout.expected if cell not in blanks):
        first.setdefault(sheet, (sheet, row, col))
    marks = {cell: True for cell in first.values()}
    # a worksheet writes formulas of its own in free cells: a check in the row of each blank, the
    # score in the Overview's first free row
    own_rows = {(sheet, row) for sheet, row, _ in blanks}
    marks.update({(sheet, row - 1, col): False for sheet, row, col in first.values()
                  if row > 1 and sheet != OVERVIEW and (sheet, row - 1) not in own_rows})
    return marks


def laid_out(marks: dict, cells: dict, name: str) -> None:
    """Each sentinel as it should be: a formula (or a number typed over it) or none."""
    for (sheet, row, col), formula in marks.items():
        value, kind = cells[sheet, row, col]
        typed_over = not isinstance(value, bool) and isinstance(value, (int, float))
        misplaced = not (kind == "f" or typed_over) if formula else kind == "f"
        if misplaced:
            raise CnnsheetError(f"{name}: its sheets are not laid out as its record says: "
                                f"{on(sheet, a1(row, col))} should hold "
                                f"{'a formula' if formula else 'no formula'}")


def needed(layout: Walkthrough, rec: record.Record) -> list:
    """Every cell to read: pixels, weights, choices, the class names and the answers."""
    return [*layout.pixels.values(), *layout.params.values(), *layout.choices.values(),
            *class_cells(layout, len(rec.config["classes"])),
            *((exercise.sheet, exercise.row, exercise.col) for exercise in rec.exercises)]


def class_cells(layout: Walkthrough, count: int) -> list:
    """The class names as the file shows them (the class drop-downs' list), which the class
    choices are matched against."""
    sheet, top, left = cell_of(layout.names[names.CLASS_NAMES].partition(":")[0])
    return [(sheet, top + k, left) for k in range(count)]


def rebuilt(layout: Walkthrough, rec: record.Record, cells: dict, name: str) -> Walkthrough:
    """The walkthrough built from the pixels, weights and choices the file holds: the truth."""
    inputs = Inputs(cells, name)
    config = json.loads(json.dumps(rec.config))  # a copy, to take the file's mean and std
    white = brightest(Model(rec.config))  # what the Image sheet takes: 255, or 9 for a tiny network
    channels = [key[len("mean_"):] for key in layout.choices if key.startswith("mean_")]
    for key in ("mean", "std"):
        config["input"][key] = [inputs.number(layout.choices[f"{key}_{c}"]) for c in channels]
    try:
        model = Model(config)
    except CnnsheetError as error:  # a std of 0
        raise CnnsheetError(f"{name}: its cells make no network cnnsheet can compute ({error})") from None
    arrays = {key: np.zeros_like(values) for key, values in model.params().items()}
    for (layer, key, index), cell in layout.params.items():
        arrays[f"{layer}.{key}"][index] = inputs.number(cell)
    model.set_params(arrays)
    pixels = np.zeros((model.input_size, model.input_size, 3), dtype=np.uint8)
    for (i, j, c), cell in layout.pixels.items():
        pixels[i, j, c] = inputs.whole(cell, 0, white)
    choices = {"zoom_choices": picked(model, layout, inputs)}
    size = model.input_size
    limits = {"row": (1, size), "col": (1, size), "size": (0, size), "value": (0, white)}  # the sheet's
    square = {key: inputs.whole(layout.choices[names.occlusion(key)], *limits[key]) for key in limits}
    choices["occlusion"] = Occlusion(**square)
    classes = [inputs.text(cell) for cell in class_cells(layout, len(model.classes))]
    choices["target_index"] = inputs.one_of(layout.choices[names.TARGET_CLASS], classes, "class")
    if names.LEARNING_RATE in layout.choices:
        choices["learning_rate"] = inputs.number(layout.choices[names.LEARNING_RATE])
        choices["saliency_index"] = inputs.one_of(layout.choices[names.SALIENCY_CLASS], classes, "class")
        choices["saliency_mode"] = RELU_RULES[inputs.one_of(layout.choices[names.SALIENCY_MODE],
                                                            list(RELU_RULES), "rule")]
    try:
        truth = build(model, pixels, rec.options, **choices)
    except CnnsheetError as error:
        raise CnnsheetError(f"{name}: its cells make no walkthrough cnnsheet can compute ({error})") from None
    if (truth.pixels, truth.params, truth.choices) != (layout.pixels, layout.params, layout.choices):
        raise CnnsheetError(f"{name}: its input's mean or std was changed so far that the sheets are laid "
                            f"out anew: it cannot be graded")
    return truth


def picked(model: Model, layout: Walkthrough, inputs) -> dict:
    """Each Zoom and pool choice, 0-based (filter, row, col), as build_walkthrough takes them; each
    cell a whole number from 1 to what its layer's output has."""
    chosen, convs, pools = {}, 0, 0
    for layer, shape in zip(model.layers, model.shapes[1:]):
        if isinstance(layer, Conv):
            convs += 1
            prefix = names.zoom(convs)
        elif isinstance(layer, MaxPool):
            pools += 1
            prefix = names.pool_choice(pools)
        else:
            continue
        chosen[prefix] = tuple(inputs.whole(layout.choices[names.choice(prefix, key)], 1, high) - 1
                               for key, high in zip(names.CHOICE_KEYS, shape))
    return chosen


@dataclass
class Inputs:
    """The cells read from a file, as the numbers and names the engine takes. What a formula
    reading a cell would make of it decides: an empty cell is 0; a number typed as text ("0.5",
    which Excel and Calc turn into the number in arithmetic) is that number; a class or a rule is
    matched without regard to capitals, as MATCH and = compare text. Anything else (a formula where
    a number belongs, a word, an error value) is refused, naming the cell."""

    cells: dict
    name: str

    def refuse(self, cell, reason: str):
        sheet, row, col = cell
        raise CnnsheetError(f"{self.name}: {on(sheet, a1(row, col))} {reason}")

    def raw(self, cell):
        value, kind = self.cells[cell]
        if kind == "f":
            self.refuse(cell, f"holds a formula ({short(value)}) where a value belongs")
        return value

    def number(self, cell) -> float:
        value = self.raw(cell)
        if value is None:
            return 0.0
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                self.refuse(cell, f"holds {short(value)}, not a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.refuse(cell, f"holds {short(value)}, not a number")
        return float(value)

    def whole(self, cell, low: int, high: int) -> int:
        value = self.number(cell)
        if value != int(value) or not low <= value <= high:
            self.refuse(cell, f"holds {value:g}, not a whole number from {low} to {high}")
        return int(value)

    def text(self, cell) -> str:
        value = self.raw(cell)
        return "" if value is None else str(value)

    def one_of(self, cell, choices: list, noun: str) -> int | None:
        value = self.text(cell)
        if not value and noun == "class":  # a class cell left empty stands for the predicted one
            return None
        folded = [choice.casefold() for choice in choices]
        if value.casefold() not in folded:
            self.refuse(cell, f"holds {short(value)}, not a {noun} of the worksheet: {', '.join(choices)}")
        return folded.index(value.casefold())
