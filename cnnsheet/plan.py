"""The workbook as plain data: what every sheet holds, decided before any file is written.

A plan knows cells (a formula with the engine's value, a number, or text, each with a style key),
defined names, colour scales, drop-downs, links, a chart, pictures, cell sizes and print
settings. It knows nothing of xlsx: `writer.py` turns a plan into a file, and the tests can hold a
plan against the engine without writing anything.

Rows and columns are 1-based, as in a spreadsheet.

Every value, text and name is checked once, here, as it enters the plan, against what Excel takes
(its limits are kept in this module and in layout.py), so that the writer can write what it gets.
What a user can cause (a text of a template, a class name, a model's weights that are not finite)
is a CnnsheetError naming the sheet and cell; what only a mistake in cnnsheet's own code can cause
(a formula without its '=', a boolean or a string where a number belongs, a sheet name Excel
refuses) is a plain ValueError, whose traceback is what a developer needs.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field

from cnnsheet.errors import CnnsheetError
from cnnsheet.layout import MAX_COLUMNS, MAX_FORMULA, MAX_ROWS, a1, absolute, bounds, on, valid_name

# Excel's limits on what the plan holds (its rows, columns and formulas: layout.py)
MAX_TEXT = 32_767  # characters in a cell, counted as Excel counts them (UTF-16 code units)
MAX_TITLE, MAX_MESSAGE = 32, 255  # a validation's title; its message and prompt
MAX_SHEET_NAME = 31
EXACT = 10**15  # whole numbers below this keep every digit in Excel's 15
SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
RESERVED_SHEET_NAMES = {"history"}  # Excel keeps it for its change history
# Characters XML 1.0 cannot hold at all (a file holding one does not open), and lone surrogates
# (a file or class name that is not valid UTF-8, read with surrogateescape): shown as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """Text as a cell can hold it: characters XML cannot carry become U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def excel_length(text: str) -> int:
    """The length of a text as Excel counts it: characters beyond U+FFFF count twice (UTF-16)."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def too_long(text: str, most: int) -> bool:
    return len(text) > most // 2 and excel_length(text) > most  # the first test is the quick one


def long_text(what: str, text: str, most: int) -> CnnsheetError:
    return CnnsheetError(f"{what}: a text of {excel_length(text):,} characters; Excel takes at most "
                         f"{most:,} there")


def checked_text(text, what: str, most: int = MAX_TEXT) -> str:
    """Any text as the plan keeps it: printable, and no longer than Excel takes there."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: {text!r} is not a text")
    text = printable(text)
    if too_long(text, most):
        raise long_text(what, text, most)
    return text


def finite_number(value):
    """A number as the plan keeps it: a Python int of at most 15 digits (Excel's precision) or a
    finite float. Other numbers, numpy's among them, become floats (the writer writes repr(value),
    and repr(np.float64(2.0)) is no number); a boolean or a string where a number belongs is a
    mistake in cnnsheet's code (ValueError), a number that is not finite the engine's answer to a
    model (CnnsheetError)."""
    if value.__class__ is int and -EXACT < value < EXACT:
        return value
    if not isinstance(value, float):  # np.float64 is a float, and the test is quick
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{value!r} is not a number")
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise CnnsheetError(f"the engine's value is {value}, not a finite number")
    return value


def check_cell(row, col) -> None:
    """Refuse a cell beyond Excel's rows and columns (layout.a1 says so)."""
    if row.__class__ is not int or col.__class__ is not int:
        raise ValueError(f"a cell's row and column must be whole numbers, not {row!r}, {col!r}")
    if not (0 < row <= MAX_ROWS and 0 < col <= MAX_COLUMNS):
        a1(row, col)  # raises, saying so


def check_sheet_name(title, taken) -> None:
    """Refuse a sheet name that Excel does not take, or that is one of `taken` but for case (Excel
    compares sheet names case-insensitively)."""
    if not isinstance(title, str) or not title:
        raise ValueError(f"a sheet name must be a non-empty text, not {title!r}")
    problem = None
    if len(title) > MAX_SHEET_NAME:
        problem = f"is {len(title)} characters long; Excel takes at most {MAX_SHEET_NAME}"
    elif SHEET_NAME_FORBIDDEN.search(title):
        problem = "holds one of [ ] : * ? / \\"
    elif title.startswith("'") or title.endswith("'"):
        problem = "begins or ends with an apostrophe"
    elif printable(title) != title:
        problem = "holds a character that XML cannot carry"
    elif title.casefold() in RESERVED_SHEET_NAMES:
        problem = "is reserved by Excel"
    elif title.casefold() in {name.casefold() for name in taken}:
        problem = "is already a sheet's name (Excel ignores case)"
    if problem:
        raise ValueError(f"the sheet name {title!r} {problem}")


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

    def __post_init__(self):
        _check_validation(self, f"the drop-down at {self.ref}")


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
    kind: str = "whole"  # or "decimal": any number from low to high (a worksheet's answer)

    def __post_init__(self):
        _check_validation(self, f"the whole numbers at {' '.join(self.refs)}")


def _check_validation(rule, what: str) -> None:
    """A validation's title, message and prompt as Excel takes them (a longer one makes Excel
    repair the file): printable, and cut to 32 characters for the title, 255 for the others, as
    Excel counts them. They come from the templates, where a translation may well be longer, and
    a popup's title cut short still says what it is for (headers and footers are cut the same way)."""
    for key, most in (("title", MAX_TITLE), ("message", MAX_MESSAGE), ("prompt", MAX_MESSAGE)):
        if hasattr(rule, key):
            text = checked_text(getattr(rule, key), f"the {key} of {what}", MAX_TEXT)
            object.__setattr__(rule, key, cut(text, most))


def cut(text: str, most: int) -> str:
    """The text, cut to `most` characters as Excel counts them (a character beyond U+FFFF is two)."""
    if not too_long(text, most):
        return text
    return text.encode("utf-16-le")[:2 * most].decode("utf-16-le", errors="ignore")  # no half pair


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


def conditional_rules(sheet: SheetPlan) -> list[tuple[list, object]]:
    """The sheet's colour scales and highlights as (areas, Scale or Highlight), in the order of
    their priority; rules of the same areas make one conditional format (a writer groups them).

    LibreOffice draws only the first conditional format of a cell that applies: a highlight in a
    format of its own beside a colour scale's is not drawn (or, put first, hides the colours). So
    a highlight is also written into the format of every colour scale it meets, on the scale's
    areas, its formula made false outside its own; then, for its cells outside every scale, once
    more on its own areas (Excel draws it twice where it meets a scale, the same border)."""
    rules = [(list(areas), scale) for areas, scale in sheet.scales]
    scale_boxes = [[bounds(ref) for text in areas for ref in text.split()] for areas, _ in sheet.scales]
    for highlight in sheet.highlights:
        own = [bounds(ref) for text in highlight.areas for ref in text.split()]
        met = []
        for (areas, _), boxes in zip(sheet.scales, scale_boxes):
            if any(_overlap(a, b) for a in own for b in boxes):
                whole = all(any(_inside(b, a) for a in own) for b in boxes)
                rules.append((list(areas), highlight if whole else _within(highlight, own)))
                met.extend(boxes)
        if not all(any(_inside(a, b) for b in met) for a in own):
            rules.append((list(highlight.areas), highlight))
    return rules


def _overlap(a: tuple, b: tuple) -> bool:
    """Two (top, left, bottom, right) boxes share a cell."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _inside(a: tuple, b: tuple) -> bool:
    """Box a lies within box b."""
    return b[0] <= a[0] and a[2] <= b[2] and b[1] <= a[1] and a[3] <= b[3]


def _within(highlight: Highlight, boxes: list) -> Highlight:
    """The highlight drawn on a larger area: false outside its own boxes (IF, so that its formula
    is not even worked out there, where an INDEX could fall off its list)."""
    tests = [f"AND(ROW()>={top},ROW()<={bottom},COLUMN()>={left},COLUMN()<={right})"
             for top, left, bottom, right in boxes]
    inside = tests[0] if len(tests) == 1 else f"OR({','.join(tests)})"
    return Highlight(highlight.areas, f"IF({inside},{highlight.formula.removeprefix('=')},FALSE)",
                     highlight.look, highlight.colour)


@dataclass(frozen=True)
class BarChart:
    title: str
    categories: str  # area of text cells, on the same sheet
    values: str  # area of number cells, on the same sheet
    anchor: str
    category_cache: tuple = ()
    value_cache: tuple = ()

    def __post_init__(self):
        what = f"the chart at {self.anchor}"
        object.__setattr__(self, "title", checked_text(self.title, f"the title of {what}"))
        object.__setattr__(self, "category_cache", tuple(
            checked_text(text, f"a category of {what}") for text in self.category_cache))
        object.__setattr__(self, "value_cache", chart_values(self.value_cache, what))


def chart_values(values, what: str) -> tuple:
    """A chart's cached numbers, as plain finite floats."""
    try:
        return tuple(float(finite_number(value)) for value in values)
    except ValueError as error:  # CnnsheetError too: say where
        raise type(error)(f"a value of {what}: {error}") from None


@dataclass(frozen=True)
class LineChart:
    """One line over numbered categories (the steps of gradient descent); the value axis starts at
    `low` and ends at `high` when given, else where the values take it; `percent` shows 0-100%,
    else `value_format` its numbers; `label_every`: the category axis names every n-th category."""

    title: str
    categories: str  # area of number cells, on the same sheet
    values: str  # area of number cells, on the same sheet
    anchor: str
    category_cache: tuple = ()
    value_cache: tuple = ()
    low: float | None = 0.0
    high: float | None = None
    percent: bool = False
    value_format: str = "0.0#"  # 0.2, 0.25, 1.0: no axis of 1.4000
    label_every: int = 1

    def __post_init__(self):
        what = f"the chart at {self.anchor}"
        object.__setattr__(self, "title", checked_text(self.title, f"the title of {what}"))
        object.__setattr__(self, "category_cache", chart_values(self.category_cache, what))
        object.__setattr__(self, "value_cache", chart_values(self.value_cache, what))


@dataclass(frozen=True)
class Picture:
    png: bytes
    anchor: str


@dataclass
class PrintSetup:
    """How a sheet prints: its area, the rows repeated on every page, the page breaks (a new page
    starts at each of these rows and columns), the orientation, a fixed scale in percent (never
    fit-to-page, which would shrink numbers), the texts of the header and the footer (the footer's
    {page} and {pages} become the page number and the page count) and the order of the pages."""

    area: str | None = None
    title_rows: tuple | None = None  # (first, last)
    row_breaks: list = field(default_factory=list)
    col_breaks: list = field(default_factory=list)
    landscape: bool = False
    scale: int = 100
    header: str = ""
    footer: str = ""
    paper: str = "a4"  # a key of printing.PAPER_SIZES
    down_then_over: bool = False  # the page order: down the first pages' columns first, else across


@dataclass
class SheetPlan:
    """One sheet: cells keyed by (row, col) -> (formula or None, value, style key)."""

    title: str
    cells: dict = field(default_factory=dict)
    scales: list = field(default_factory=list)  # (list of areas, Scale)
    drop_downs: list = field(default_factory=list)
    whole_numbers: list = field(default_factory=list)  # WholeNumbers
    highlights: list = field(default_factory=list)  # Highlight
    links: list = field(default_factory=list)  # (row, col, target sheet, cell it opens at)
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

    def _where(self, row, col) -> str:
        return f"sheet {self.title}, cell {a1(row, col)}"

    def _number(self, value, row, col):
        """finite_number, its error saying where (the fast paths of the callers come first)."""
        try:
            return finite_number(value)
        except ValueError as error:  # CnnsheetError too
            raise type(error)(f"{self._where(row, col)}: {error}") from None

    def number(self, row: int, col: int, value, style=("number", "General")):
        """A constant number: a pixel, a weight, an index."""
        if not (0 < row <= MAX_ROWS and 0 < col <= MAX_COLUMNS):  # inline: 10^4 calls
            check_cell(row, col)
        if value.__class__ is not int or not -EXACT < value < EXACT:
            # numpy's floats are floats, and this test is quick; x - x is nan for inf and nan
            value = float(value) if isinstance(value, float) else self._number(value, row, col)
            if value - value != 0.0:
                self._number(value, row, col)  # raises, saying where
        self.cells[row, col] = (None, value, style)

    def formula(self, row: int, col: int, text: str, value, style=("number", "General")):
        """A live formula and what the engine says it evaluates to: a number or a text. The
        characters of a formula that is not ASCII are checked (a name from the file system may
        hold a lone surrogate), those of an ASCII one are not, for speed (see formulas())."""
        if not (0 < row <= MAX_ROWS and 0 < col <= MAX_COLUMNS):  # inline: 10^4 calls
            check_cell(row, col)
        try:
            common = text[0] == "=" and text.isascii() and len(text) <= MAX_FORMULA
        except (IndexError, TypeError, AttributeError):  # an empty formula, or not a text
            common = False
        if not common:
            text = self._formula(text, (row, col))
        if value.__class__ is not float:
            value = self._cached(value, row, col)
        elif value - value != 0.0:  # x - x is nan for inf and nan
            self._number(value, row, col)  # raises, saying where
        self.cells[row, col] = (text, value, style)

    def _cached(self, value, row, col):
        """What a formula caches when it is not a float: numpy's float (the common case) as a
        float, a text for a formula that gives one, any other number as a float, or an error."""
        if isinstance(value, float):
            value = float(value)
            if value - value == 0.0:
                return value
        if isinstance(value, str):
            return checked_text(value, self._where(row, col))
        return float(self._number(value, row, col))

    def formulas(self, cells, style, zero_style):
        """Many formula cells at once, ((row, col), formula, value) each, the value a float; a
        formula of None is a cell that is 0 whatever the inputs, written as a constant in
        `zero_style`. The cells lie in Blocks, which layout.py checked against Excel's rows and
        columns. The loop runs 10^5 times for the default workbook, so it checks what the writer
        relies on, inline: a formula that begins with '=' and a finite float (numpy's floats and
        anything else go the slow way, converted or refused). The characters of these formulas are
        not looked at: cnnsheet's formula functions make them from layout's references and checked
        names."""
        store, zero, longest = self.cells, (None, 0, zero_style), 0
        for where, formula, value in cells:
            if formula is None:
                store[where] = zero
                continue
            try:  # x - x is nan for inf and nan
                common = formula[0] == "=" and value.__class__ is float and value - value == 0.0
            except (IndexError, TypeError):  # an empty formula, or not a text
                common = False
            if not common:
                formula, value = self._formula(formula, where), float(self._number(value, *where))
            store[where] = (formula, value, style)
            if len(formula) > longest:
                longest = len(formula)
        self._within_excel(longest)

    def _formula(self, text, where) -> str:
        """A formula's text, checked: a text that begins with '=', holds only what XML can carry,
        and is no longer than Excel takes (8,192 characters, the '=' included)."""
        if not isinstance(text, str) or not text.startswith("="):
            raise ValueError(f"sheet {self.title}: the formula {text!r} does not begin with '='")
        if printable(text) != text:
            raise ValueError(f"sheet {self.title}: the formula {text!r} holds a character that XML "
                             f"cannot carry")
        self._within_excel(len(text))
        return text

    def _within_excel(self, length: int):
        """Refuse a formula longer than Excel takes."""
        if length > MAX_FORMULA:
            raise CnnsheetError(f"a formula on sheet {self.title} would be {length:,} characters "
                                f"long; Excel allows {MAX_FORMULA:,}")

    def text(self, row: int, col: int, value: str, style=("plain", "General")):
        """Any text that is not one of our formulas: it stays text, whatever its first character."""
        check_cell(row, col)
        value = printable(str(value))
        if too_long(value, MAX_TEXT):
            raise long_text(self._where(row, col), value, MAX_TEXT)
        self.cells[row, col] = (None, value, style)

    def label(self, row: int, col: int, value: str):
        self.text(row, col, value, ("heading", "General"))

    def link(self, row: int, col: int, value: str, target: str, cell: str = "A1"):
        """Text that jumps to a cell of another sheet (its top-left one unless told) when clicked."""
        self.text(row, col, value, ("link", "General"))
        self.links.append((row, col, target, cell))

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
    paper: dict = field(default_factory=dict)  # a text for the screen -> its printed variant (Texts.paper)
    _folded: dict = field(default_factory=dict, repr=False)  # a name in any case -> as defined

    def sheet(self, title: str) -> SheetPlan:
        check_sheet_name(title, self.sheetnames)
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
        if not isinstance(name, str) or not valid_name(name):
            raise ValueError(f"{name!r} is not a valid defined name")
        if sheet not in self.sheetnames:
            raise ValueError(f"the name {name} refers to {sheet!r}, which is not a sheet")
        target = on(sheet, absolute(ref))
        other = self._folded.setdefault(name.casefold(), name)  # Excel ignores case in names too
        if other != name or self.names.get(name, target) != target:
            raise ValueError(f"the name {name} would be defined twice: as {other} on "
                             f"{self.names[other]} and on {target}")
        self.names[name] = target
        return name

    def expected(self) -> dict:
        expected = {}
        for sheet in self.sheets:
            expected.update(sheet.expected())
        return expected
