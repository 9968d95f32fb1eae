"""A choice of one cell, and what follows it: the three named yellow cells (filter, row, column),
formulas that read the chosen block of a grid, and the colour rules (Outlines) that mark the
choice on the sheets it reads. The Zoom sheets and the pool choices share these."""

from __future__ import annotations

import numpy as np

from cnnsheet import names, style
from cnnsheet.layout import Block, a1, area, quote_sheet
from cnnsheet.plan import Highlight, WholeNumbers
from cnnsheet.sheets.common import Book, Outline

CHOOSE_LIMIT = 32  # up to this many filters, CHOOSE(filter, one per filter) spells them out


def indexed(source: str, cells: int, row: str, col: str) -> str:
    """INDEX(source, row, col); a source of one cell is that cell (Gnumeric's INDEX refuses to
    index a single cell, even at 1, 1)."""
    return f"INDEX({source},{row},{col})" if cells > 1 else source


def from_chosen_block(blocks: list[Block], sources: list[str], pick: str, row, col) -> str:
    """Element (row, col) (1-based formulas) of the block that the cell `pick` names, among blocks
    laid out as a grid of equal pitch. A few: CHOOSE(pick, INDEX(source, row, col), ...), which
    reads plainly; many (CHOOSE takes at most 254 and a formula 8,192 characters): one INDEX into
    the whole grid, the block's offset computed from its number."""
    cells = blocks[0].height * blocks[0].width
    if len(blocks) <= CHOOSE_LIMIT:
        return f"CHOOSE({pick},{','.join(indexed(source, cells, row, col) for source in sources)})"
    first = blocks[0]
    per_row = sum(1 for block in blocks if block.top == first.top)
    down = blocks[per_row].top - first.top if len(blocks) > per_row else 0
    across = blocks[1].left - first.left if per_row > 1 else 0
    whole = area(first.top, first.left, max(b.top + b.height - 1 for b in blocks),
                 max(b.left + b.width - 1 for b in blocks))
    rows = f"INT(({pick}-1)/{per_row})*{down}+{row}" if down else f"{row}"
    cols = f"MOD({pick}-1,{per_row})*{across}+{col}" if across else f"{col}"
    return f"INDEX({quote_sheet(first.sheet)}!{whole},{rows},{cols})"


def strongest(values: np.ndarray) -> tuple[int, int, int]:
    """The default choice: the largest value of the first map of a (F, H, W) tensor."""
    return (0, *(int(v) for v in np.unravel_index(int(np.argmax(values[0])), values[0].shape)))


def sheet_scale(book: Book, sheet: str):
    """The colour scale of the sheet a window is read from, so the window looks as it does there
    (chosen by what the sheet can hold, never by its current values: the layout stays put)."""
    return book.plan[sheet].scales[0][1]


def choice_cells(book: Book, ws, top: int, label_col: int, value_col: int, prefix: str, choice,
                 highs) -> tuple[str, str, str]:
    """Three yellow cells named <prefix>_filter, _row, _col (1-based), each refusing anything but
    a whole number in its range; returns the names."""
    t = book.texts
    chosen = []
    for offset, (key, value, high) in enumerate(zip(names.CHOICE_KEYS, choice, highs)):
        row = top + offset
        ws.text(row, label_col, t("zoom", f"pick_{key}"))
        ws.number(row, value_col, value + 1, style.key("input", "0"))
        ws.text(row, value_col + 1, t("zoom", "range", high=high))
        chosen.append(book.name(names.choice(prefix, key), ws, a1(row, value_col)))
        ws.whole_numbers.append(WholeNumbers((a1(row, value_col),), 1, high, t("zoom", f"pick_{key}"),
                                             t("zoom", "refused", high=high),
                                             prompt=t("zoom", "prompt", high=high)))
    return tuple(chosen)


def colour_name(book: Book, n: int) -> str:
    """The name, in the texts' language, of the colour of choice n's outlines."""
    return book.texts("zoom", f"colour{(n - 1) % len(style.HIGHLIGHT_COLOURS) + 1}")


def grid_position(blocks: list[Block]) -> tuple[str, str, str]:
    """Formulas, for any data cell of a grid of equal blocks, of its block's number (1-based) and
    its 0-based row and column inside the block. One formula serves every block, so a highlight
    can share the colour scale's ranges: LibreOffice draws only the first of two overlapping
    conditional formats, but every rule of one."""
    first = blocks[0]
    per_row = sum(1 for block in blocks if block.top == first.top)
    down = blocks[per_row].top - first.top if len(blocks) > per_row else 0
    across = blocks[1].left - first.left if per_row > 1 else 0
    rows, cols = f"ROW()-{first.top}", f"COLUMN()-{first.left}"
    number = ([f"INT(({rows})/{down})*{per_row}"] if down else []) + (
        [f"INT(({cols})/{across})"] if across else [])
    return ("+".join(number) + "+1" if number else "1",
            f"MOD({rows},{down})" if down else f"({rows})",
            f"MOD({cols},{across})" if across else f"({cols})")


def outline(blocks_or_areas, formula: str, colour: int, look: str = "chosen") -> Outline:
    """A highlight of the data of some blocks (or of some areas) on their sheet."""
    areas = [b.data if isinstance(b, Block) else b for b in blocks_or_areas]
    sheet = next(b.sheet for b in blocks_or_areas if isinstance(b, Block))
    return Outline(sheet, Highlight(tuple(areas), formula, look, colour))
