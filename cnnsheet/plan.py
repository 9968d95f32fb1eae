"""The workbook as plain data: what every sheet holds, decided before any file is written.

A plan knows cells (a formula with the engine's value, a number, or text, each with a style key),
defined names, colour scales, drop-downs, links, a chart, pictures, cell sizes and print
settings. It knows nothing of xlsx: `writer.py` turns a plan into a file, and the tests can hold a
plan against the engine without writing anything.

Rows and columns are 1-based, as in a spreadsheet.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from cnnsheet.errors import CnnsheetError
from cnnsheet.layout import MAX_FORMULA, a1, absolute, on, valid_name

# Characters XML 1.0 cannot hold at all (a file holding one does not open): shown as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def printable(text: str) -> str:
    """Text as a cell can hold it: characters XML cannot carry become U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


@dataclass(frozen=True)
class Scale:
    """A colour scale over some ranges, by kind; its bounds follow the current values.

    diverging: blue at -m, white at 0, red at +m, with m the largest magnitude in the ranges.
    sequential: white at 0, orange at the largest value. fixed: white at `low`, orange at `high`
    (probabilities, counts). channel: black at 0 to the channel's colour at 255 (pixels)."""

    kind: str
    channel: str = ""
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class DropDown:
    """A cell whose entry must be one of the cells of a defined name."""

    ref: str
    source: str  # a defined name
    title: str
    message: str  # shown when the entry is not in the list


@dataclass(frozen=True)
class WholeNumbers:
    """Cells that take only a whole number from `low` to `high` (pixels, the choice of a neuron);
    the prompt, if any, says what to type, and `message` is shown when an entry is refused."""

    refs: tuple  # areas
    low: int
    high: int
    title: str
    message: str
    prompt: str = ""


@dataclass(frozen=True)
class Highlight:
    """Cells of `areas` drawn with `look` (a key of style.HIGHLIGHTS) wherever `formula` is true.

    The formula is written for the top-left cell of the first area and may use ROW() and COLUMN();
    it reaches cells of other sheets only through defined names, which every program accepts in
    a colour rule. A program that ignores such rules simply shows no highlight."""

    areas: tuple
    formula: str
    look: str = "chosen"
    colour: int = 0  # which of style.HIGHLIGHT_COLOURS: one per choice, so that two do not mix


@dataclass(frozen=True)
class BarChart:
    title: str
    categories: str  # area of text cells, on the same sheet
    values: str  # area of number cells, on the same sheet
    anchor: str
    category_cache: tuple = ()
    value_cache: tuple = ()


@dataclass(frozen=True)
class LineChart:
    """One line over numbered categories (the steps of gradient descent); the value axis starts at
    `low` and ends at `high` when given, else where the values take it; `percent` shows 0-100%."""

    title: str
    categories: str  # area of number cells, on the same sheet
    values: str  # area of number cells, on the same sheet
    anchor: str
    category_cache: tuple = ()
    value_cache: tuple = ()
    low: float | None = 0.0
    high: float | None = None
    percent: bool = False


@dataclass(frozen=True)
class Picture:
    png: bytes
    anchor: str


@dataclass
class PrintSetup:
    """How a sheet prints: its area, the rows repeated on every page, the page breaks (a new page
    starts at each of these rows and columns), the orientation, a fixed scale in percent (never
    fit-to-page, which would shrink numbers), and the texts of the header and the footer (the
    footer's {page} and {pages} become the page number and the page count)."""

    area: str | None = None
    title_rows: tuple | None = None  # (first, last)
    row_breaks: list = field(default_factory=list)
    col_breaks: list = field(default_factory=list)
    landscape: bool = False
    scale: int = 100
    header: str = ""
    footer: str = ""


@dataclass
class SheetPlan:
    """One sheet: cells keyed by (row, col) -> (formula or None, value, style key)."""

    title: str
    cells: dict = field(default_factory=dict)
    scales: list = field(default_factory=list)  # (list of areas, Scale)
    drop_downs: list = field(default_factory=list)
    whole_numbers: list = field(default_factory=list)  # WholeNumbers
    highlights: list = field(default_factory=list)  # Highlight
    links: list = field(default_factory=list)  # (row, col, target sheet)
    charts: list = field(default_factory=list)
    pictures: list = field(default_factory=list)
    merges: list = field(default_factory=list)  # areas shown as one cell: "B3:D3"
    keep: list = field(default_factory=list)  # (top, left, bottom, right): never split in print
    printing: PrintSetup = field(default_factory=PrintSetup)
    widths: dict = field(default_factory=dict)  # column -> width in characters
    heights: dict = field(default_factory=dict)  # row -> height in points
    freeze: str | None = None
    zoom: int = 100
    # Protected (without a password): only cells of an unlocked look (style.KINDS) take typing, so
    # that a formula is not typed over by accident; a teacher unprotects it from the menu.
    protected: bool = False
    hidden: bool = False  # not shown among the tabs (a formula may still read it)

    def number(self, row: int, col: int, value, style=("number", "General")):
        """A constant number: a pixel, a weight, an index."""
        self.cells[row, col] = (None, value if isinstance(value, int) else float(value), style)

    def formula(self, row: int, col: int, text: str, value, style=("number", "General")):
        """A live formula and what the engine says it evaluates to."""
        self._within_excel(len(text))
        if not isinstance(value, str):
            value = float(value)
            if not math.isfinite(value):
                raise CnnsheetError(f"sheet {self.title}, cell {a1(row, col)}: the engine's value is "
                                    f"{value}, not a finite number")
        self.cells[row, col] = (text, value, style)

    def formulas(self, cells, style, zero_style):
        """Many formula cells at once, ((row, col), formula, value) each, whose values were
        checked to be finite by the caller; a formula of None is a cell that is 0 whatever the
        inputs, written as a constant in `zero_style`."""
        store, zero, longest = self.cells, (None, 0, zero_style), 0
        for where, formula, value in cells:
            if formula is None:
                store[where] = zero
            else:
                store[where] = (formula, value, style)
                if len(formula) > longest:
                    longest = len(formula)
        self._within_excel(longest)

    def _within_excel(self, length: int):
        """Refuse a formula longer than Excel takes."""
        if length > MAX_FORMULA:
            raise CnnsheetError(f"a formula on sheet {self.title} would be {length:,} characters "
                                f"long; Excel allows {MAX_FORMULA:,}")

    def text(self, row: int, col: int, value: str, style=("plain", "General")):
        """Any text that is not one of our formulas: it stays text, whatever its first character."""
        self.cells[row, col] = (None, printable(str(value)), style)

    def label(self, row: int, col: int, value: str):
        self.text(row, col, value, ("heading", "General"))

    def link(self, row: int, col: int, value: str, target: str):
        """Text that jumps to another sheet's top-left cell when clicked."""
        self.text(row, col, value, ("link", "General"))
        self.links.append((row, col, target))

    def scale(self, areas, scale: Scale):
        self.scales.append(([areas] if isinstance(areas, str) else list(areas), scale))

    def highlight(self, areas, formula: str, look: str = "chosen", colour: int = 0):
        self.highlights.append(Highlight(tuple([areas] if isinstance(areas, str) else areas), formula,
                                         look, colour))

    def width(self, columns: str, widths):
        """Column widths from letters: width("ABC", (3, 8, 9))."""
        for letter, value in zip(columns, widths):
            self.widths[ord(letter) - 64] = value

    def expected(self) -> dict:
        """(sheet, row, col) -> the engine's value, for every formula cell."""
        return {(self.title, row, col): value
                for (row, col), (formula, value, _) in self.cells.items() if formula is not None}


@dataclass
class WorkbookPlan:
    sheets: list = field(default_factory=list)
    names: dict = field(default_factory=dict)  # defined name -> "Sheet!$A$1"
    lang: str = "en"

    def sheet(self, title: str) -> SheetPlan:
        if any(sheet.title == title for sheet in self.sheets):
            raise CnnsheetError(f"internal: two sheets called {title!r}")
        sheet = SheetPlan(title)
        self.sheets.append(sheet)
        return sheet

    def __getitem__(self, title: str) -> SheetPlan:
        return next(sheet for sheet in self.sheets if sheet.title == title)

    @property
    def sheetnames(self) -> list[str]:
        return [sheet.title for sheet in self.sheets]

    def name(self, name: str, sheet: str, ref: str) -> str:
        """Define a workbook-level name for an area; returns the name, to use in formulas."""
        if not valid_name(name):
            raise CnnsheetError(f"internal: {name!r} is not a valid defined name")
        self.names[name] = on(sheet, absolute(ref))
        return name

    def expected(self) -> dict:
        expected = {}
        for sheet in self.sheets:
            expected.update(sheet.expected())
        return expected
