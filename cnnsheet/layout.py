"""Where things land in the workbook: plain data and small pure functions of rows and columns.

Rows and columns are 1-based, as in a spreadsheet. A `Block` is one 2-D slice of a tensor (one
channel or feature map) on one sheet; a `Vector` is a 1-D tensor laid down a column or along a row.
"""

from __future__ import annotations

import functools
import itertools
import re
import string
from dataclasses import dataclass

from cnnsheet.errors import CnnsheetError

MAX_ROWS, MAX_COLUMNS, MAX_FORMULA = 1_048_576, 16_384, 8_192  # Excel's limits
LEFT = 2  # tensors and tables start in column B; column A is a margin
_PLAIN_SHEET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CELL_LIKE = re.compile(r"^([A-Za-z]{1,3}[0-9]+|[Rr][0-9]*([Cc][0-9]*)?|[Cc][0-9]*)$")
_AREA = re.compile(r"^([A-Z]{1,3})([0-9]+)(?::([A-Z]{1,3})([0-9]+))?$")


# every column's letters, COLUMNS[2] == "B": A..Z, AA..ZZ, AAA.. in order, up to XFD
COLUMNS = [""] + ["".join(letters) for n in (1, 2, 3)
                  for letters in itertools.product(string.ascii_uppercase, repeat=n)][:MAX_COLUMNS]


def column_number(letters: str) -> int:
    """'A' -> 1, 'AA' -> 27."""
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


def a1(row: int, col: int) -> str:
    """(3, 2) -> 'B3'."""
    if 0 < row <= MAX_ROWS and 0 < col <= MAX_COLUMNS:
        return f"{COLUMNS[col]}{row}"
    raise CnnsheetError(f"the workbook would need cell row {row}, column {col}: beyond "
                        f"Excel's {MAX_ROWS:,} rows and {MAX_COLUMNS:,} columns")


def area(top: int, left: int, bottom: int, right: int) -> str:
    """(3, 2, 5, 4) -> 'B3:D5'; a single cell stays 'B3'."""
    if top == bottom and left == right:
        return a1(top, left)
    return f"{a1(top, left)}:{a1(bottom, right)}"


def bounds(ref: str) -> tuple[int, int, int, int]:
    """'B3:D5' -> (3, 2, 5, 4); 'B3' -> (3, 2, 3, 2): the inverse of `area`."""
    found = _AREA.match(ref)
    if found is None:
        raise CnnsheetError(f"internal: {ref!r} is not an area such as B3 or B3:D5")
    top, left = int(found[2]), column_number(found[1])
    if found[3] is None:
        return top, left, top, left
    return top, left, int(found[4]), column_number(found[3])


def absolute(ref: str) -> str:
    """'B3:D5' -> '$B$3:$D$5', for defined names."""
    return re.sub(r"([A-Z]+)([0-9]+)", r"$\1$\2", ref)


@functools.lru_cache(maxsize=256)
def quote_sheet(sheet: str) -> str:
    """A sheet name as a formula writes it: quoted unless it is a plain word."""
    if _PLAIN_SHEET.match(sheet) and not _CELL_LIKE.match(sheet):
        return sheet
    return "'" + sheet.replace("'", "''") + "'"


def on(sheet: str, ref: str) -> str:
    """'Conv1', 'B3' -> 'Conv1!B3'."""
    return f"{quote_sheet(sheet)}!{ref}"


def unquote(sheet: str) -> str:
    """A sheet name as a formula writes it -> the name: the inverse of `quote_sheet`."""
    return sheet[1:-1].replace("''", "'") if sheet.startswith("'") else sheet


def split_target(target: str) -> tuple[str, str]:
    """"'New Dense1'!$B$3:$C$4" (a defined name's target) -> ("New Dense1", "B3:C4"): the inverse of
    `on`."""
    sheet, ref = target.rsplit("!", 1)
    return unquote(sheet), ref.replace("$", "")


def valid_name(name: str) -> bool:
    """A defined name that Excel, LibreOffice, Gnumeric and Google Sheets all accept: letters,
    digits and underscores, beginning with a letter, no cell reference in A1 or R1C1 form, and not
    beginning with "true" or "false" (Google Sheets refuses those)."""
    return (bool(_NAME.match(name)) and not _CELL_LIKE.match(name) and len(name) <= 255
            and not name.lower().startswith(("true", "false")))


@dataclass(frozen=True)
class Block:
    """One channel of a tensor: its data starts at (top, left); `border` zero cells surround it."""

    sheet: str
    top: int
    left: int
    height: int
    width: int
    border: int = 0
    label: str = ""

    def __post_init__(self):
        """Refuse a block beyond Excel's rows and columns (a1 says so): then no reference into it
        needs a check of its own."""
        a1(*self.outer[:2])
        a1(*self.outer[2:])

    def cell(self, i: int, j: int) -> tuple[int, int]:
        """Row and column of element (i, j); -border <= i < height + border reaches the zeros."""
        return self.top + i, self.left + j

    @functools.cached_property
    def _letters(self) -> dict:
        """Element column j (the border's included) -> its letters. The block was checked to lie
        within Excel's limits, so references into it need no check of their own; tens of thousands
        of formulas are made of them."""
        return {j: COLUMNS[self.left + j] for j in range(-self.border, self.width + self.border)}

    def ref(self, i: int, j: int) -> str:
        return f"{self._letters[j]}{self.top + i}"

    def window(self, i: int, j: int, height: int, width: int) -> str:
        """The area of `height` x `width` elements whose top-left is element (i, j)."""
        if height == 1 and width == 1:
            return self.ref(i, j)
        top, letters = self.top + i, self._letters
        return f"{letters[j]}{top}:{letters[j + width - 1]}{top + height - 1}"

    @property
    def data(self) -> str:
        return self.window(0, 0, self.height, self.width)

    @functools.cached_property
    def _sheet_prefix(self) -> str:
        return quote_sheet(self.sheet) + "!"

    def address(self, i: int, j: int) -> str:
        """Element (i, j) as a formula on any sheet reads it: 'Input!B10'."""
        return f"{self._sheet_prefix}{self._letters[j]}{self.top + i}"

    def window_address(self, i: int, j: int, height: int, width: int) -> str:
        """A window as a formula on any sheet reads it: 'Input!B10:F14'."""
        return self._sheet_prefix + self.window(i, j, height, width)

    @property
    def data_address(self) -> str:
        return self._sheet_prefix + self.data

    @property
    def outer(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) including the zero border."""
        b = self.border
        return (self.top - b, self.left - b, self.top + self.height - 1 + b,
                self.left + self.width - 1 + b)


def grid(sheet: str, count: int, height: int, width: int, top: int, left: int, per_row: int,
         border: int = 0, labels=None, gap: int = 1) -> list[Block]:
    """`count` blocks in rows of `per_row`, each with a label row above and `gap` cells between."""
    step_down, step_across = height + 2 * border + 1 + gap, width + 2 * border + gap
    blocks = []
    for index in range(count):
        row, col = divmod(index, per_row)
        blocks.append(Block(sheet, top + 1 + border + row * step_down,
                            left + border + col * step_across, height, width, border,
                            labels[index] if labels else ""))
    return blocks


def blocks_per_row(count: int, width: int, border: int = 0, target_columns: int = 120) -> int:
    """How many blocks side by side keep a sheet about `target_columns` wide (at least one)."""
    return max(1, min(count, target_columns // (width + 2 * border + 1)))


@dataclass(frozen=True)
class Vector:
    """A 1-D tensor down a column (`across` False) or along a row, starting at (top, left)."""

    sheet: str
    top: int
    left: int
    length: int
    across: bool = False

    def cell(self, index: int) -> tuple[int, int]:
        return (self.top, self.left + index) if self.across else (self.top + index, self.left)

    def ref(self, index: int) -> str:
        return a1(*self.cell(index))

    def address(self, index: int) -> str:
        """Element `index` as a formula on any sheet reads it: 'Flatten!F9'."""
        return on(self.sheet, self.ref(index))

    @property
    def data_address(self) -> str:
        return on(self.sheet, self.data)

    @property
    def data(self) -> str:
        return area(*self.cell(0), *self.cell(self.length - 1))
