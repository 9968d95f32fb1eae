"""How the workbook prints, decided as plain data on each sheet's plan (the writer only translates).

A page holds what fits on A4 and on US Letter alike. Each sheet prints at one fixed scale, the
largest at which its widest block fits the page, but never below the scale at which its smallest
digits would print under 6 pt: a wide sheet takes more pages instead of shrinking. A sheet whose
rows or columns overflow its last page by a little prints a little smaller (still 6 pt) on a page
of rows or columns fewer. Page breaks fall between blocks (a block and its heading stay together
unless the block alone is larger than a page), the sheet's title rows repeat on every page, the
header names the step and the sheet, and the footer counts the pages; pages run across, then down
(maps in rows come in their order), unless a row break cuts through a block: then down, then
across, so that the parts of a block taller than a page print one after another. Lines of
explanation wrap within the first page's columns, and labels beside them within their page (a page
to the right would print their cut-off ends). Columns are planned as wide as LibreOffice draws
them, the wider of the two programs. The paper, A4 or Letter, is only named for the printer.
"""

from __future__ import annotations

import math
import re
from operator import itemgetter

from cnnsheet import style
from cnnsheet.layout import area, bounds
from cnnsheet.plan import SheetPlan

MARGINS = {"side": 0.3, "top": 0.7, "header": 0.3}  # inches
POINTS = 72
# LibreOffice draws a column 7 points a character wide (read back from the .ods it converts the
# workbook to), wider than column_points from 5 characters on: a page planned with narrower
# columns overflows onto a page LibreOffice adds, holding a column or a line's end
LIBREOFFICE_CHARACTER = 7.0
LIBREOFFICE_DEFAULT_COLUMN = 59.8  # points: a column of no set width, as LibreOffice draws it
# portrait: the narrower of A4 (8.27 in) and Letter (8.5 in) wide, the shorter of them (11 in) high
PAGE = ((8.27 - 2 * MARGINS["side"]) * POINTS, (11.0 - 2 * MARGINS["top"]) * POINTS)
# paper -> Excel's paperSize code; the layout fits both, the printer is told which
PAPER_SIZES = {"a4": 9, "letter": 1}
LETTER_TERRITORIES = ("US", "CA")  # the locales that print on Letter by default
SMALLEST_PRINTED = 6.0  # points
DEFAULT_ROW = 15.0  # points
# a sheet prints on a page of rows fewer if that takes no smaller a scale than this share of its
# own: a page holding the last rows alone is worse than a little smaller
ONE_PAGE_TALL = 0.8
CHART_ROWS = math.ceil(style.CHART_SIZE[1] / 2.54 * POINTS / DEFAULT_ROW)  # rows a chart covers
TITLE_ROWS = (1, 2)  # the title and the link back
HEADER_CHARACTERS = 180  # of a header's text as Excel counts it; the codes of size and sheet take the rest
# A footer's page fields, the page's number and the number of pages, which the spreadsheet fills in:
# one private character each in the plan (a brace could come from a template too)
THIS_PAGE, PAGE_COUNT = "\ue000", "\ue001"
# characters that Excel's header and footer codes write as two: '&&', and the fields '&P' and '&N'
TWO_IN_CODES = {"&", THIS_PAGE, PAGE_COUNT}


def default_paper(environment) -> str:
    """The paper of the user's locale: LC_ALL, LC_PAPER or LANG naming the United States or Canada
    (en_US.UTF-8, fr_CA) print on Letter, any other on A4."""
    for variable in ("LC_ALL", "LC_PAPER", "LANG"):
        value = environment.get(variable, "")
        if value:
            territory = re.match(r"^[A-Za-z]+_([A-Za-z]+)", value)
            return "letter" if territory and territory[1].upper() in LETTER_TERRITORIES else "a4"
    return "a4"


def column_points(width: float) -> float:
    """A column's width in points: as LibreOffice draws it from one character on (Excel's are a
    little narrower), as Excel draws it below (LibreOffice's are narrower). The handout's measure,
    taken with its own slack."""
    return 0.75 * (8.2 * width + 5.5) if width >= 1 else 0.75 * 12 * width


def page_points(width: float | None) -> float:
    """A column's width in points as the workbook's own pages are planned: no narrower than
    LibreOffice draws it (None: a column of no set width)."""
    if width is None:
        return LIBREOFFICE_DEFAULT_COLUMN
    return max(column_points(width), LIBREOFFICE_CHARACTER * width)


def page_size(landscape: bool) -> tuple[float, float]:
    """The printable (width, height) in points."""
    if landscape:
        return (11.0 - 2 * MARGINS["side"]) * POINTS, (8.27 - 2 * MARGINS["top"]) * POINTS
    return PAGE


def header_size(scale: int) -> int:
    """The font size of the header and footer: they shrink with the page, to no less than 6 pt."""
    return max(9, math.ceil(SMALLEST_PRINTED * 100 / scale))


def smallest_font(sheet: SheetPlan) -> float:
    """The smallest font of any visible number or text on the sheet (hidden digits don't count)."""
    looks = set(map(itemgetter(2), sheet.cells.values()))  # (kind, format): a few per sheet
    return min((style.KINDS[kind]["size"] for kind, fmt in looks if fmt != ";;;"), default=11)


def lowest_scale(sheet: SheetPlan) -> int:
    """The scale (percent) below which the sheet's smallest font prints under 6 pt."""
    return math.ceil(100 * SMALLEST_PRINTED / smallest_font(sheet))


def widths_in_points(sheet: SheetPlan, last: int) -> list[float]:
    """Points of columns 1..last (index 0 unused)."""
    return [0.0] + [column_points(sheet.widths.get(col, 8.43)) for col in range(1, last + 1)]


def heights_in_points(sheet: SheetPlan, last: int) -> list[float]:
    return [0.0] + [sheet.heights.get(row, DEFAULT_ROW) for row in range(1, last + 1)]


def breaks(sizes: list[float], first: int, capacity: float, units: list[tuple[int, int]]) -> list[int]:
    """Where new pages start along one direction: greedily fill each page from `first`, ending it
    before the last unit (first, last index) that would not fit; a unit larger than a page is split."""
    inside = set()  # indices at which a page may not start: inside a unit
    for start, end in units:
        inside.update(range(start + 1, end + 1))
    starts, used, page_start = [], 0.0, first
    for index in range(first, len(sizes)):
        if used + sizes[index] > capacity and index > page_start:
            candidates = [i for i in range(page_start + 1, index + 1) if i not in inside]
            start = candidates[-1] if candidates else index
            starts.append(start)
            page_start = start
            used = sum(sizes[start:index])
        used += sizes[index]
    return starts


def last_cell(sheet: SheetPlan) -> tuple[int, int]:
    rows = [1, *sheet.heights] + [bottom for _, _, bottom, _ in sheet.keep]
    cols = [1] + [right for _, _, _, right in sheet.keep]
    if sheet.cells:
        cell_rows, cell_cols = zip(*sheet.cells)  # the (row, col) keys: unzipped in C
        rows.append(max(cell_rows))
        cols.append(max(cell_cols))
    return max(rows), max(cols)


# a kind of text in column A -> (its wrapped kind, the size it measures as, points per line);
# bold titles measure larger than their size
WRAPPED = {"plain": ("prose", 11.0, 15.0), "title": ("title_prose", 15.5, 20.0)}


def wrap_prose(sheet: SheetPlan, width_points: float, widths: list[float]):
    """Long titles and lines of explanation in column A: merged across the printed width and
    wrapped, their rows made tall enough for the lines they take."""
    columns, total = 0, 0.0
    while columns + 1 < len(widths) and total + widths[columns + 1] <= width_points:
        columns += 1
        total += widths[columns]
    columns = max(columns, 1)
    busy = {row for row, col in sheet.cells if 1 < col <= columns}  # table rows, not prose
    for row, col in [where for where in sheet.cells if where[1] == 1 and where[0] not in busy]:
        formula, value, (kind, fmt) = sheet.cells[row, col]
        if formula is not None or kind not in WRAPPED or not isinstance(value, str):
            continue
        wrapped, size, line = WRAPPED[kind]
        lines = math.ceil(text_points(value, size) / (total * 0.95)) if total else 1
        if lines <= 1:
            continue
        sheet.cells[row, col] = (None, value, (wrapped, fmt))
        sheet.merges.append(area(row, 1, row, columns))
        sheet.heights[row] = max(sheet.heights.get(row, DEFAULT_ROW), line * lines)


# a label right of column A -> its wrapped kind, the size it measures as, points per line
LABELS_WRAPPED = {"heading": ("heading_prose", 12.0, 15.0)}


def wrap_labels(sheet: SheetPlan, widths: list[float], col_breaks: list[int]) -> bool:
    """Labels right of column A that run over a page break (the page to the right would print
    their end alone), and have empty cells up to it: merged up to the break and wrapped, their
    rows made tall enough. Returns whether any was."""
    wrapped_any = False
    for (row, col), (formula, value, (kind, fmt)) in list(sheet.cells.items()):
        if col == 1 or formula is not None or kind not in LABELS_WRAPPED or not isinstance(value, str):
            continue
        end = next((start for start in col_breaks if start > col), None)
        wrapped, size, line = LABELS_WRAPPED[kind]
        room = sum(widths[col:end]) if end else 0.0
        if not end or text_points(value, size) <= room:
            continue
        if any((row, right) in sheet.cells for right in range(col + 1, end)):
            continue  # cut short by its neighbour on screen too: not the page's doing
        lines = math.ceil(text_points(value, size) / (room * 0.95))
        sheet.cells[row, col] = (None, value, (wrapped, fmt))
        sheet.merges.append(area(row, col, row, end - 1))
        sheet.heights[row] = max(sheet.heights.get(row, DEFAULT_ROW), line * lines)
        wrapped_any = True
    return wrapped_any


def unwrap_prose(sheet: SheetPlan) -> None:
    """Undo wrap_prose, to wrap again across another width (the handout's page)."""
    plain = {wrapped: kind for kind, (wrapped, _, _) in WRAPPED.items()}
    rows = set()
    for (row, col), (formula, value, (kind, fmt)) in list(sheet.cells.items()):
        if col == 1 and kind in plain:
            sheet.cells[row, col] = (formula, value, (plain[kind], fmt))
            rows.add(row)
    sheet.merges[:] = [merged for merged in sheet.merges if bounds(merged)[0] not in rows
                       or bounds(merged)[1] != 1]
    for row in rows:
        sheet.heights.pop(row, None)


# Chinese punctuation a line may not start with (closing) or end with (opening). LibreOffice keeps to
# that rule only in cells set to "apply the list of forbidden characters", which an .xlsx cannot say
# and Calc leaves off: its Chinese line breaker then breaks before any character. A ZERO WIDTH
# NO-BREAK SPACE glued to the punctuation holds it to its neighbour (LibreOffice 7.4 honours it,
# later ones list it among the no-break marks; U+2060 WORD JOINER is ignored by 7.4). It is
# invisible, and Excel applies this rule of itself.
CLOSING = "、。，．：；？！）］｝〕〗〉》」』】”’…％"
OPENING = "（［｛〔〖〈《「『【“‘"
GLUE = "\ufeff"
_GLUED = re.compile(f"(?<=[^{GLUE}])([{CLOSING}])|([{OPENING}])(?=[^{GLUE}])")


def glue_punctuation(text: str) -> str:
    """A wrapped text with its Chinese punctuation held to the character before (a closing mark)
    or after (an opening one), so that no line starts with '。' or ends with '（'."""
    return _GLUED.sub(lambda found: GLUE + found[1] if found[1] else found[2] + GLUE, text)


def text_points(text: str, size: float) -> float:
    """About how wide a text prints: CJK characters are square, Latin ones about half as wide."""
    return sum(size if ord(ch) >= 0x2E80 else size * 0.53 for ch in text)


def lay_out(sheet: SheetPlan, header: str, footer: str, landscape: bool | None = None,
            paper: str = "a4") -> None:
    """Choose the orientation (unless given) and the scale, wrap the prose, and place the page
    breaks of one sheet."""
    bottom, right = last_cell(sheet)
    widths = [0.0] + [page_points(sheet.widths.get(col)) for col in range(1, right + 1)]
    # the widest block (with column A; the first with all columns left of it), or without blocks
    # the whole sheet, fits the width if it can
    spans = [sum(widths[left:r + 1]) + widths[1] for _, left, _, r in sheet.keep[1:]]
    if sheet.keep:
        spans.append(sum(widths[1:sheet.keep[0][3] + 1]))
    widest = max(spans, default=sum(widths))
    lowest = lowest_scale(sheet)
    if landscape is None:  # portrait, unless only a landscape page holds the widest block
        fits = [page_size(False)[0], page_size(True)[0]]
        landscape = widest * lowest / 100 > fits[0] and widest * lowest / 100 <= fits[1]
    setup = sheet.printing
    fitting = min(100, math.floor(100 * page_size(landscape)[0] / widest))
    scale = int(max(lowest, fitting))
    placed = place(sheet, widths, bottom, scale, page_size(landscape), lowest)
    # (a smaller scale below moves no column break to the left of where a label was wrapped)
    if wrap_labels(sheet, widths, placed[0]):  # taller rows: the rows' breaks again
        placed = place(sheet, widths, bottom, scale, page_size(landscape), lowest)
    # rows or columns that overflow the last page by a little: a little smaller, on a page of rows
    # or columns fewer (a page holding a table's last rows, last units or a label alone is worse),
    # never below 6 pt
    least = max(lowest, math.ceil(ONE_PAGE_TALL * scale))
    for smaller in range(scale - 1, least - 1, -1):
        if not placed[0] and not placed[1]:
            break
        trial = place(sheet, widths, bottom, smaller, page_size(landscape), lowest)
        if fewer_pages(trial, placed):
            scale, placed = smaller, trial
            break
    else:
        placed = place(sheet, widths, bottom, scale, page_size(landscape), lowest)  # the prose as it was
    setup.col_breaks, setup.row_breaks = placed
    setup.down_then_over = bool(placed[0]) and cuts_blocks(sheet, placed[1])
    setup.area = area(1, 1, bottom, right)
    setup.title_rows = TITLE_ROWS
    setup.scale = scale
    setup.landscape = landscape
    setup.header = page_header(header, sheet.title, scale, landscape)
    setup.footer = fit_header(footer)
    setup.paper = paper


def fewer_pages(trial: tuple[list[int], list[int]], placed: tuple[list[int], list[int]]) -> bool:
    """Whether page breaks (columns, rows) make a page row or column fewer, and none more."""
    fewer = [len(new) < len(old) for new, old in zip(trial, placed)]
    return any(fewer) and all(len(new) <= len(old) for new, old in zip(trial, placed))


def cuts_blocks(sheet: SheetPlan, row_breaks: list[int]) -> bool:
    """Whether a row break falls inside a block (a block taller than a page): its parts print
    pages apart when the pages run across first."""
    return any(top < start <= bottom for start in row_breaks for top, _, bottom, _ in sheet.keep)


def place(sheet: SheetPlan, widths: list[float], bottom: int, scale: int, page: tuple[float, float],
          lowest: int) -> tuple[list[int], list[int]]:
    """The (column, row) page breaks at a scale, the prose wrapped to suit them."""
    page_width, page_height = page
    capacity_w = page_width * 100 / scale
    col_breaks = breaks(widths, 1, capacity_w, [(left, r) for _, left, _, r in sheet.keep])
    # the title and the explanation wrap within the first page's columns: a page to the right
    # would print the cut-off end of their lines; on a page shrunk below 6 pt, within what a page
    # at 6 pt would hold (lines as long as the shrunk page's would be hard to read on screen)
    unwrap_prose(sheet)
    prose = sum(widths[1:col_breaks[0]]) + 0.01 if col_breaks else min(capacity_w, page_width * 100 / lowest)
    wrap_prose(sheet, prose, widths)
    heights = heights_in_points(sheet, bottom)
    capacity_h = page_height * 100 / scale - sum(heights[TITLE_ROWS[0]:TITLE_ROWS[1] + 1])
    units = kept_rows(sheet, heights, capacity_h)
    row_breaks = breaks(heights, TITLE_ROWS[1] + 1, capacity_h, units)
    return col_breaks, row_breaks


def kept_rows(sheet: SheetPlan, heights: list[float], capacity: float) -> list[tuple[int, int]]:
    """The (top, bottom) rows of the blocks kept on one page, but for the first blocks when they
    are taller than a page: split anyway, they start below the explanation rather than on a page
    of their own, which would leave the explanation alone on the first page."""
    rows = [(top, bottom) for top, _, bottom, _ in sheet.keep]
    first = min((top for top, _ in rows), default=None)  # the first row of blocks
    tall = [sum(heights[top:bottom + 1]) > capacity for top, bottom in rows if top == first]
    if not tall or not all(tall):
        return rows
    return [(top, bottom) for top, bottom in rows if top != first]


def page_header(text: str, sheet_name: str, scale: int, landscape: bool) -> str:
    """The header's left part: the text, cut with '...' where it would run into the sheet's name
    on the right, and within Excel's limit."""
    size = header_size(scale)  # in the sheet's points, as the page width below
    room = page_size(landscape)[0] * 100 / scale - text_points(sheet_name, size) - 4 * size
    if text_points(text, size) > room:
        while text and text_points(text + "...", size) > room:
            text = text[:-1]
        text = text.rstrip() + "..."
    return fit_header(text)


def fit_header(text: str) -> str:
    """A header's or footer's text, cut with '...' to HEADER_CHARACTERS as Excel counts them once
    written in its codes: Excel refuses a header or footer of more than 255 characters."""
    widths = [2 if character in TWO_IN_CODES else 1 for character in text]
    if sum(widths) <= HEADER_CHARACTERS:
        return text
    end, used = 0, len("...")
    while used + widths[end] <= HEADER_CHARACTERS:
        used += widths[end]
        end += 1
    return text[:end] + "..."
