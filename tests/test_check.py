"""`cnnsheet check`: worksheets graded by recomputing every answer from what the file holds.

Until `cnnsheet exercise` lands, the worksheets here are walkthroughs with a record of chosen cells
(record.add) saved by our writer; a student's answers are typed in with openpyxl, which saves no
cached values: every file graded here after typing was never recalculated.
"""

import csv
import io
import json
import zipfile

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner

from cnnsheet import names, record
from cnnsheet.check import grade, planned
from cnnsheet.cli import main
from cnnsheet.errors import CnnsheetError
from cnnsheet.model import Model
from cnnsheet.workbook import build_walkthrough
from cnnsheet.workbook import cell_of as cell_at
from tests import gnumeric, libreoffice
from tests.helpers import small_model, zoom_choices

SHEETS = ("Conv1", "Softmax", "Loss", "dFilters1", "NewSoftmax")


def case(seed=0):
    model = small_model(seed, classes=("cat", "dog", "bird"))
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 12, 3)).astype(np.uint8)
    return model, pixels


def chosen_cells(walkthrough) -> list:
    """The first cell of a few sheets that computes a number, and the loss."""
    expected = walkthrough.expected
    cells = [min(cell for cell, value in expected.items() if cell[0] == sheet and not isinstance(value, str))
             for sheet in SHEETS]
    sheet, row, col = cell_at(walkthrough.names[names.LOSS])
    return cells + [(sheet, row, col)]


def worksheet(path, model, pixels, options=None, **build):
    """A walkthrough with a record of chosen cells, as `cnnsheet exercise` would leave it."""
    walkthrough = build_walkthrough(model, pixels, with_backward=True, **build)
    cells = chosen_cells(walkthrough)
    exercises = tuple(record.Exercise(k, sheet, row, col, "step", 4)
                      for k, (sheet, row, col) in enumerate(cells, 1))
    record.add(walkthrough.plan, record.Record(model.config, options or {}, exercises))
    walkthrough.save(path)
    return walkthrough, cells


def typed(path, out, values: dict):
    """Open the file in openpyxl, type values into cells {(sheet, row, col): value}, save as out."""
    book = openpyxl.load_workbook(path)
    for (sheet, row, col), value in values.items():
        book[sheet].cell(row=row, column=col).value = value
    book.save(out)
    return out


def four_digits(value):
    return float(f"{value:.4g}")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One worksheet, which the tests copy and fill in."""
    path = tmp_path_factory.mktemp("made") / "w.xlsx"
    walkthrough, cells = worksheet(path, *case())
    return path, walkthrough, cells


@pytest.fixture
def answered(tmp_path, made):
    """Right (to four digits), wrong (5% off), blank, a word, a formula and right again."""
    path, walkthrough, cells = made
    truth = walkthrough.expected
    answers = {cells[0]: four_digits(truth[cells[0]]), cells[1]: truth[cells[1]] * 1.05 + 1e-3,
               cells[2]: None, cells[3]: "twelve", cells[4]: f"={truth[cells[4]]}",
               cells[5]: truth[cells[5]]}
    return typed(path, tmp_path / "answered.xlsx", answers), cells


def verdicts(result):
    return [mark.verdict for mark in result.marks]


def test_right_wrong_and_blank_answers(answered):
    path, cells = answered
    result = grade(path)
    assert verdicts(result) == ["right", "wrong", "blank", "wrong", "wrong", "right"]
    assert (result.score, result.count) == (2, 6)
    assert result.cells("blank") == [f"3 Loss!{openpyxl.utils.get_column_letter(cells[2][2])}{cells[2][1]}"]
    # the file was never recalculated: openpyxl keeps the formulas and caches no value of them
    sheet, row, col = cells[1]
    assert openpyxl.load_workbook(path)[sheet].cell(row + 1, col).data_type == "f"
    assert openpyxl.load_workbook(path, data_only=True)[sheet].cell(row + 1, col).value is None


def test_every_formula_typed_over_changes_nothing(answered, tmp_path):
    """Check cells, scores, the probabilities: a student may type over any of them; none is read."""
    path, cells = answered
    book = openpyxl.load_workbook(path)
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "f" and (ws.title, cell.row, cell.column) not in cells:
                    cell.value = 1
    book.save(tmp_path / "over.xlsx")
    assert verdicts(grade(tmp_path / "over.xlsx")) == verdicts(grade(path))


def test_an_edited_pixel_and_weight_move_the_truth(tmp_path):
    model, pixels = case()
    walkthrough, cells = worksheet(tmp_path / "w.xlsx", model, pixels)
    pixel_cell = walkthrough.pixels[0, 0, 0]
    weight_cell = walkthrough.params["conv1", "weight", (0, 0, 0, 0)]
    edited_pixels = pixels.copy()
    edited_pixels[0, 0, 0] = 255 - pixels[0, 0, 0]
    edited = Model(model.config)
    edited.set_params(model.params())
    edited.layers[0].weight[0, 0, 0, 0] += 3
    choices = {"zoom_choices": zoom_choices(walkthrough), "target_index": 0, "saliency_index": 0}
    before = build_walkthrough(model, pixels, with_backward=True, **choices).expected
    after = build_walkthrough(edited, edited_pixels, with_backward=True, **choices).expected
    conv, loss = cells[0], cells[-1]
    assert not record.right(after[conv], before[conv]) and not record.right(after[loss], before[loss])
    values = {pixel_cell: int(edited_pixels[0, 0, 0]),
              weight_cell: float(edited.layers[0].weight[0, 0, 0, 0]),
              cell_at(walkthrough.names[names.TARGET_CLASS]): "CAT",  # a class in other capitals
              cell_at(walkthrough.names[names.SALIENCY_CLASS]): "cat"}
    source = tmp_path / "w.xlsx"
    new = typed(source, tmp_path / "new.xlsx", {**values, conv: after[conv], loss: after[loss]})
    old = typed(source, tmp_path / "old.xlsx", {**values, conv: before[conv], loss: before[loss]})
    assert [verdicts(grade(new))[i] for i in (0, -1)] == ["right", "right"]
    assert [verdicts(grade(old))[i] for i in (0, -1)] == ["wrong", "wrong"]
    # the same pixel typed as a text, and the weight cleared (0 to every formula)
    edited.layers[0].weight[0, 0, 0, 0] = 0
    cleared = build_walkthrough(edited, edited_pixels, with_backward=True, **choices).expected
    as_text = {pixel_cell: f" {edited_pixels[0, 0, 0]}", weight_cell: None, conv: cleared[conv]}
    texts = typed(source, tmp_path / "texts.xlsx", {**values, **as_text})
    assert verdicts(grade(texts))[0] == "right"


def test_where_the_inputs_are_does_not_move_with_their_values():
    model, pixels = case()
    layout = planned(json.dumps(model.config, sort_keys=True), json.dumps({}))
    for seed in (1, 2):
        other, other_pixels = case(seed)
        built = build_walkthrough(other, other_pixels, with_backward=True, target_index=2, saliency_index=1,
                                  learning_rate=0.5)
        assert (built.pixels, built.params, built.choices) == (layout.pixels, layout.params, layout.choices)
        assert set(built.expected) == set(layout.expected)
    assert len(layout.pixels) == 12 * 12 * 3 and len(layout.params) == model.parameter_count
    assert {names.TARGET_CLASS, names.LEARNING_RATE, "zoom1_row", "pool1_col", "occlusion_size",
            "mean_R"} <= set(layout.choices)


def test_a_tiny_worksheet_grades_too(tmp_path):
    from cnnsheet import untrained
    from cnnsheet.images import load_image
    from cnnsheet.resources import default_photo_path
    pixels = untrained.tiny_pixels(load_image(default_photo_path(), []))
    model = untrained.tiny(["cat", "dog"], pixels, 0).model
    walkthrough, cells = worksheet(tmp_path / "t.xlsx", model, pixels, {"tiny": True}, untrained=True)
    truth = walkthrough.expected
    path = typed(tmp_path / "t.xlsx", tmp_path / "a.xlsx", {cell: truth[cell] for cell in cells})
    assert grade(path).score == len(cells)


def test_files_saved_by_libreoffice_and_gnumeric_grade_the_same(answered, tmp_path, calc_profile):
    path, _ = answered
    by_calc = libreoffice.convert([path], tmp_path / "calc", calc_profile)[0]
    by_gnumeric = gnumeric.recalculate(path, tmp_path / "gnumeric.xlsx")
    expected = verdicts(grade(path))
    assert verdicts(grade(by_calc)) == expected
    assert verdicts(grade(by_gnumeric)) == expected


def run(*args):
    result = CliRunner().invoke(main, ["check", *map(str, args)])
    assert "Traceback" not in result.output + result.stderr
    return result


def test_csv_has_a_row_per_file_and_the_command_exits_1_for_a_bad_one(answered, tmp_path):
    path, _ = answered
    bad = tmp_path / "photo.xlsx"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    result = run(path, bad, path, "--csv")
    assert result.exit_code == 1
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][:3] == ["file", "score", "count"]
    assert [row[:3] for row in rows[1:]] == [[str(path), "2", "6"], [str(bad), "", ""], [str(path), "2", "6"]]
    assert rows[1][4].startswith("3 Loss!") and rows[2][5] == "not an .xlsx workbook (not a zip archive)"
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"Error: {bad}: not an .xlsx")
    plain = run(path)
    assert plain.exit_code == 0 and plain.stdout.startswith(f"{path}: 2 of 6 right; wrong: 2 Softmax!")


def zip_bomb(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b" " * (64 << 20)  # zipped at level 1: a few seconds
            for _ in range(17):  # 1088 MB of spaces, a megabyte zipped
                member.write(chunk)


def cut_short(path, source):
    path.write_bytes(source.read_bytes()[:5000])


@pytest.mark.parametrize("make, reason", [
    (lambda path, source: path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200)), "not an .xlsx workbook"),
    (cut_short, "damaged"),
    (lambda path, source: zip_bomb(path), "uncompressed, far more than any worksheet"),
    (lambda path, source: path.write_bytes(b""), "not an .xlsx workbook"),
])
def test_a_file_that_is_no_workbook_is_one_line(tmp_path, answered, make, reason):
    path = tmp_path / "bad.xlsx"
    make(path, answered[0])
    result = run(path)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}: ") and reason in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_walkthrough_without_its_record_is_one_line(tmp_path):
    model, pixels = case()
    build_walkthrough(model, pixels).save(tmp_path / "walk.xlsx")
    result = run(tmp_path / "walk.xlsx")
    assert result.exit_code == 1 and "not a cnnsheet worksheet" in result.stderr


@pytest.mark.parametrize("edit, reason", [
    (lambda book, w, cells: setattr(book[record.SHEET].cell(row=record.TABLE_ROW + 1, column=3), "value",
                                    "B5000"), "does not fit its cells"),
    (lambda book, w, cells: setattr(book[record.SHEET].cell(row=record.TABLE_ROW + 1, column=2), "value",
                                    "Nowhere"), "does not fit its cells"),
    (lambda book, w, cells: book.remove(book["Conv1"]), "'Conv1'"),
    (lambda book, w, cells: setattr(book["Image"].cell(*w.pixels[0, 0, 0][1:]), "value", 300),
     "not a whole number from 0 to 255"),
    (lambda book, w, cells: setattr(book["Image"].cell(*w.pixels[0, 0, 0][1:]), "value", "dark"),
     "holds 'dark', not a number"),
    (lambda book, w, cells: setattr(book["Loss"].cell(*cell_at(w.names[names.TARGET_CLASS])[1:]), "value",
                                    "horse"), "not a class of the worksheet: cat, dog, bird"),
    (lambda book, w, cells: setattr(book["Filters1"].cell(*w.params["conv1", "bias", (0,)][1:]), "value",
                                    "=1+1"), "holds a formula"),
    (lambda book, w, cells: book["Conv1"].insert_rows(3), "Conv1!C10 should hold a formula"),
    (lambda book, w, cells: book["Conv1"].delete_rows(3), "Conv1!C9 should hold no formula"),
    (lambda book, w, cells: setattr(book["Input"].cell(*cell_at(w.names["std_G"])[1:]), "value", 0),
     "input std must be positive"),
    (lambda book, w, cells: setattr(book["Zoom1"].cell(*cell_at(w.names["zoom1_row"])[1:]), "value", 99),
     "not a whole number from 1 to 10"),
])
def test_a_worksheet_that_cannot_be_graded_is_one_line(tmp_path, made, edit, reason):
    path, walkthrough, cells = made
    book = openpyxl.load_workbook(path)
    edit(book, walkthrough, cells)
    book.save(tmp_path / "bad.xlsx")
    with pytest.raises(CnnsheetError, match=f"bad.xlsx: .*{reason}"):
        grade(tmp_path / "bad.xlsx")
    result = run(tmp_path / "bad.xlsx")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and reason in result.stderr


def test_only_check_imports_openpyxl():
    """openpyxl takes about half a second to import: the other commands do without it."""
    import subprocess
    import sys
    code = ("import sys, cnnsheet.cli, cnnsheet.workbook, cnnsheet.check; "
            "assert 'openpyxl' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
