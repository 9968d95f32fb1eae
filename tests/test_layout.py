"""Table-driven tests of the pure layout helpers."""

import pytest

from cnnsheet.errors import CnnsheetError
from cnnsheet.layout import (
    COLUMNS,
    Block,
    Vector,
    a1,
    absolute,
    area,
    blocks_per_row,
    bounds,
    column_number,
    grid,
    quote_sheet,
    valid_name,
)


@pytest.mark.parametrize("row, col, ref", [
    (1, 1, "A1"), (3, 2, "B3"), (10, 26, "Z10"), (1, 27, "AA1"), (7, 16384, "XFD7"),
    (1048576, 1, "A1048576"),
])
def test_a1(row, col, ref):
    assert a1(row, col) == ref


@pytest.mark.parametrize("row, col", [(0, 1), (1, 0), (1048577, 1), (1, 16385)])
def test_a1_beyond_excel_is_an_error(row, col):
    with pytest.raises(CnnsheetError, match="beyond Excel"):
        a1(row, col)


def test_a_block_beyond_excel_is_an_error():
    """Checked once when the block is made: references into it are then made unchecked."""
    Block("S", 1_048_576, 16_384, 1, 1)
    for top, left, border in ((1_048_576, 2, 1), (2, 16_384, 1), (1, 2, 1), (1_048_577, 2, 0)):
        with pytest.raises(CnnsheetError, match="beyond Excel"):
            Block("S", top, left, 1, 1, border)


@pytest.mark.parametrize("args, ref", [((3, 2, 5, 4), "B3:D5"), ((3, 2, 3, 2), "B3")])
def test_area(args, ref):
    assert area(*args) == ref
    assert bounds(ref) == args


@pytest.mark.parametrize("ref", ["", "B", "3", "b3", "B3:", "B3:D", "$B$3", "B3 D5"])
def test_bounds_refuses_what_is_not_one_area(ref):
    with pytest.raises(CnnsheetError, match="is not an area"):
        bounds(ref)


def test_absolute():
    assert absolute("B3:AD15") == "$B$3:$AD$15"


@pytest.mark.parametrize("sheet, quoted", [
    ("Conv1", "Conv1"), ("Input", "Input"), ("Pool 1", "'Pool 1'"), ("A1", "'A1'"),
    ("R1C1", "'R1C1'"), ("it's", "'it''s'"), ("1st", "'1st'"), ("FC1", "'FC1'"),
])
def test_quote_sheet(sheet, quoted):
    assert quote_sheet(sheet) == quoted


@pytest.mark.parametrize("name, ok", [
    ("image_R", True), ("conv1_f1_R", True), ("learning_rate", True), ("logits", True),
    ("FC1", False), ("R1C1", False), ("r2", False), ("C", False), ("A1", False),
    ("1abc", False), ("has space", False), ("XFD1048576", False), ("XFDA1", True),
    ("target_class", True), ("true_class", False), ("TRUEish", False), ("false_x", False),
    ("_hidden", False), ("dé", False), ("a" * 255, True), ("a" * 256, False),
])
def test_valid_name(name, ok):
    assert valid_name(name) == ok


def test_block_cells_and_windows():
    block = Block("Input", top=5, left=3, height=4, width=4, border=1)
    assert block.ref(0, 0) == "C5"
    assert block.ref(-1, -1) == "B4"  # the zero border
    assert block.window(-1, -1, 3, 3) == "B4:D6"
    assert block.data == "C5:F8"
    assert block.outer == (4, 2, 9, 7)


def test_grid_places_blocks_in_rows_with_label_rows_and_borders():
    blocks = grid("Conv1", 3, height=2, width=3, top=4, left=2, per_row=2, border=1)
    assert [(b.top, b.left) for b in blocks] == [(6, 3), (6, 9), (12, 3)]
    assert blocks_per_row(8, 24) == 4 and blocks_per_row(8, 200) == 1 and blocks_per_row(2, 5) == 2


def test_vector():
    column, row = Vector("Flatten", 5, 5, 3), Vector("Dense", 4, 3, 3, across=True)
    assert column.data == "E5:E7" and column.ref(2) == "E7"
    assert row.data == "C4:E4" and row.ref(1) == "D4"


@pytest.mark.parametrize("col, letters", [(1, "A"), (26, "Z"), (27, "AA"), (52, "AZ"), (53, "BA"),
                                          (702, "ZZ"), (703, "AAA"), (16384, "XFD")])
def test_column_letters(col, letters):
    assert COLUMNS[col] == letters
    assert column_number(letters) == col
