"""The record a worksheet keeps of itself for `cnnsheet check`: written by our writer, read back by
openpyxl as any program that saves the file leaves it."""

import openpyxl
import pytest

from cnnsheet import record, writer
from cnnsheet.errors import CnnsheetError
from cnnsheet.plan import WorkbookPlan

RECORD = record.Record({"classes": ["猫", "=dog"], "input": {"channels": 1}}, {"seed": 3, "tiny": True},
                       (record.Exercise(1, "Conv1", 12, 4, "conv", 2),
                        record.Exercise(2, "New Dense1", 3, 30, "dense", 3)))


def saved(tmp_path, rec=RECORD):
    plan = WorkbookPlan()
    plan.sheet("Overview").text(1, 1, "x")
    record.add(plan, rec)
    writer.save(plan, tmp_path / "w.xlsx", True)
    return openpyxl.load_workbook(tmp_path / "w.xlsx")


def test_a_record_reads_back_as_written_on_a_hidden_sheet(tmp_path):
    book = saved(tmp_path)
    assert book[record.SHEET].sheet_state == "hidden"
    assert book[record.SHEET].protection.sheet
    assert record.read(book, "w.xlsx") == RECORD


def test_a_walkthrough_is_not_a_worksheet(tmp_path):
    plan = WorkbookPlan()
    plan.sheet("Overview").text(1, 1, "x")
    writer.save(plan, tmp_path / "w.xlsx", True)
    with pytest.raises(CnnsheetError, match="w.xlsx: not a cnnsheet worksheet"):
        record.read(openpyxl.load_workbook(tmp_path / "w.xlsx"), "w.xlsx")


@pytest.mark.parametrize("row, col, value, reason", [
    (1, 2, "cnnsheet worksheet 0", "another version"),
    (2, 2, "{not json", "damaged"),
    (3, 2, "[1, 2]", "damaged"),
    (6, 3, "D12:E13", "damaged"),
    (7, 5, "two", "damaged"),
])
def test_a_damaged_record_is_one_clear_error(tmp_path, row, col, value, reason):
    book = saved(tmp_path)
    book[record.SHEET].cell(row=row, column=col).value = value
    with pytest.raises(CnnsheetError, match=f"w.xlsx: .*{reason}"):
        record.read(book, "w.xlsx")


@pytest.mark.parametrize("answer, truth, verdict", [
    (0.1235, 0.12345678, True),  # four significant digits
    (0.1296, 0.12345678, False),  # 5% off
    (-3.142, -3.14159, True),
    (3.142, -3.14159, False),
    (0, 0.0, True), (1e-7, 0.0, True), (0.001, 0.0, False),
    (28, 28.0, True), (27, 28.0, False),
    ("0.1235", 0.12345678, False), (None, 0.0, False), (True, 1.0, False),
])
def test_the_rule_of_a_right_answer(answer, truth, verdict):
    assert record.right(answer, truth) is verdict
