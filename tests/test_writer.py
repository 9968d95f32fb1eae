"""The written file: every formula carries its value, a second engine (Gnumeric) agrees, names,
drop-downs, charts and fonts are portable, colour scales follow the values, and text stays text.
(tests/test_parts.py holds every part against what openpyxl wrote.)"""

import gc
import os
import re
import subprocess
import sys
import time
import zipfile

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from gnumeric import recalculate
from helpers import default_case, zoom_choices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libreoffice import compare
from strategies import models

from cnnsheet import budget, writer
from cnnsheet.cli import main
from cnnsheet.errors import CnnsheetError
from cnnsheet.layout import valid_name
from cnnsheet.plan import BarChart, DropDown, WholeNumbers, WorkbookPlan
from cnnsheet.sheets.overview import SUMMARY_VALUE
from cnnsheet.texts import Texts
from cnnsheet.workbook import build_walkthrough


@pytest.fixture(scope="module")
def default_file(tmp_path_factory):
    model, pixels = default_case()
    walkthrough = build_walkthrough(model, pixels, with_backward=True)
    path = tmp_path_factory.mktemp("default") / "walkthrough.xlsx"
    walkthrough.save(path)
    return walkthrough, path


def part(path, name: str) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name).decode()


def sheet_part(path, title: str) -> str:
    """The XML of one worksheet, found through the workbook's relationships."""
    workbook, rels = part(path, "xl/workbook.xml"), part(path, "xl/_rels/workbook.xml.rels")
    rid = re.search(rf'<sheet [^>]*name="{title}"[^>]*r:id="([^"]+)"', workbook)[1]
    target = re.search(rf'<Relationship [^>]*Id="{rid}"[^>]*Target="([^"]+)"', rels)
    if target is None:
        target = re.search(rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid}"', rels)
    return part(path, "xl/" + target[1].removeprefix("/xl/"))


@pytest.mark.slow
def test_every_formula_carries_the_engines_value(default_file):
    """A viewer that does not recalculate (Protected View, previews, pandas) reads the numbers."""
    walkthrough, path = default_file
    assert compare(path, path, walkthrough.expected, rtol=0) == 92_882  # 2,475 of them Grad-CAM
    values = openpyxl.load_workbook(path, data_only=True)
    overview = values["Overview"]
    row = next(row for row in range(1, 30) if overview.cell(row, 1).value == "prediction")
    assert overview.cell(row, SUMMARY_VALUE[0]).value == "triangle"  # a text result is cached as text
    assert 'fullCalcOnLoad="1"' in part(path, "xl/workbook.xml")  # Excel still recalculates


def test_gnumeric_agrees_with_the_engine_on_the_default_walkthrough(default_file, tmp_path):
    walkthrough, path = default_file
    recalculated = recalculate(path, tmp_path / "gnumeric.xlsx")
    assert compare(path, recalculated, walkthrough.expected) == 92_882  # 2,475 of them Grad-CAM


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(models(sizes=(8, 14), min_blocks=2, max_blocks=2, tricky_names=True))
def test_gnumeric_agrees_on_a_random_two_block_network_also_after_an_edit(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("gnumeric")
    rng = np.random.default_rng(7)
    model.init(7)
    size = model.input_size
    pixels = rng.integers(0, 256, size=(size, size, 3)).astype(np.uint8)
    walkthrough = build_walkthrough(model, pixels, target_index=0, with_backward=True)
    path = folder / "two-blocks.xlsx"
    walkthrough.save(path)
    compare(path, recalculate(path, folder / "recalculated.xlsx"), walkthrough.expected)

    book = openpyxl.load_workbook(path)  # a student changes a pixel and the target class
    sheet, ref = walkthrough.names["image_G"].split("!")
    book[sheet][ref.split(":")[0].replace("$", "")] = 255
    pixels[0, 0, 1] = 255
    sheet, ref = walkthrough.names["target_class"].split("!")
    book[sheet][ref.replace("$", "")] = model.classes[1]
    edited = folder / "edited.xlsx"
    book.save(edited)
    expected = build_walkthrough(model, pixels, target_index=1, with_backward=True,
                                 zoom_choices=zoom_choices(walkthrough)).expected
    compare(edited, recalculate(edited, folder / "edited-recalculated.xlsx"), expected)


def test_names_drop_downs_chart_and_fonts_are_portable(default_file):
    walkthrough, path = default_file
    assert "target_class" in walkthrough.names and "true_class" not in walkthrough.names
    assert all(valid_name(name) for name in walkthrough.names)
    loss = sheet_part(path, "Loss")
    validation = re.search(r"<dataValidation [^>]*>", loss)[0]
    assert 'type="list"' in validation and 'showErrorMessage="1"' in validation
    assert 'errorStyle="stop"' in validation or "errorStyle" not in validation  # stop is the default
    assert "<formula1>class_names</formula1>" in loss
    chart = part(path, "xl/charts/chart1.xml")
    chart = re.sub(r"<(/?)c:", r"<\1", chart)  # with or without the namespace prefix
    assert re.search(r"<cat><strRef><f>'Softmax'!\$B\$\d+:\$B\$\d+</f><strCache>", chart)
    assert "<numCache>" in chart and "<v>triangle</v>" in chart
    fonts = re.findall(r"<font>.*?</font>", part(path, "xl/styles.xml"), re.S)
    assert fonts and all('<name val="Calibri"/>' in font for font in fonts[1:])


def test_chinese_workbooks_name_a_chinese_font(tmp_path):
    model, pixels = default_case()
    path = tmp_path / "zh.xlsx"
    build_walkthrough(model, pixels, Texts("zh")).save(path)
    assert '<name val="Microsoft YaHei"/>' in part(path, "xl/styles.xml")


def test_colour_scales_follow_the_values(default_file):
    """Bounds are live: a MAX(MAX(...),-MIN(...)) formula for maps that can be negative, the
    largest value for those that cannot; pixels keep 0-255."""
    _, path = default_file
    conv = sheet_part(path, "Conv1")
    assert re.search(r'<cfvo type="formula" val="-MAX\(MAX\(\$B\$\d+:\$[A-Z]+\$\d+', conv)
    assert '<cfvo type="num"' in conv  # the white middle at 0
    relu = sheet_part(path, "ReLU1")
    assert '<cfvo type="max"' in relu and '<cfvo type="formula"' not in relu
    image = sheet_part(path, "Image")
    assert '<cfvo type="num" val="255"' in image


@pytest.mark.slow
def test_text_from_templates_and_file_names_stays_text(tmp_path):
    """Formula injection: template texts and the photo's name are written as text, whatever their
    first character; characters XML cannot hold do not break the file."""
    own = tmp_path / "texts"
    own.mkdir()
    (own / "en.toml").write_text(
        '[conv]\ntitle = "=HYPERLINK(\\"http://example.invalid\\",\\"click\\")"\n'
        '[overview]\nbody = "+cmd|\' /C calc\'!A0"\n'
        '[labels]\nbias = "@SUM(A1)"\n', encoding="utf-8")
    model, pixels = default_case()
    path = tmp_path / "w.xlsx"
    build_walkthrough(model, pixels, Texts("en", own), photo_name="=1+1\x07.jpg").save(path)
    book = openpyxl.load_workbook(path)
    formulas = [cell.value for ws in book.worksheets for row in ws.iter_rows() for cell in row
                if cell.data_type == "f"]
    assert len(formulas) == 29_553
    assert not any("HYPERLINK" in f or "cmd|" in f or "@SUM" in f or ".jpg" in f for f in formulas)
    texts = {cell.value for ws in book.worksheets for row in ws.iter_rows() for cell in row
             if cell.data_type == "s"}
    assert {"+cmd|' /C calc'!A0", "@SUM(A1)"} <= texts
    assert 'Step 4 - =HYPERLINK("http://example.invalid","click")' in texts  # a numbered title
    assert any("=1+1\ufffd.jpg" in text for text in texts)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(models(sizes=(5, 16), tricky_names=True), st.booleans())
def test_the_budget_counts_every_sheet_and_at_least_every_cell_it_holds(model, with_backward):
    """budget.workbook_sheets refuses a network before any work: it names every sheet the plan
    makes (a sheet left out of it fails here, whatever the total) and never undercounts one."""
    model.init(0)
    size = model.input_size
    pixels = np.full((size, size, 3), 128, dtype=np.uint8)
    plan = build_walkthrough(model, pixels, with_backward=with_backward).plan
    estimate = budget.workbook_sheets(model, with_backward)
    assert sorted(estimate) == sorted(plan.sheetnames)
    over = {sheet.title: (len(sheet.cells), estimate[sheet.title]) for sheet in plan.sheets
            if len(sheet.cells) > estimate[sheet.title]}
    assert not over, over


# ---- the plan guards the writer: every value, text and name is checked as it enters ----------
CELL = ((1, 1), "=1+1")


def one_sheet(title="S"):
    return WorkbookPlan().sheet(title)


@pytest.mark.parametrize("value, kept", [
    (np.float64(2.5), 2.5), (np.float32(0.5), 0.5), (np.int64(3), 3.0), (np.uint8(255), 255.0),
    (7, 7), (-0.0, -0.0), (10**15, 1e15),
])
def test_a_number_is_kept_as_a_python_number(value, kept):
    sheet = one_sheet()
    sheet.number(1, 1, value)
    stored = sheet.cells[1, 1][1]
    assert stored == kept and type(stored) is type(kept)
    sheet.formula(1, 2, "=A1", value)
    sheet.formulas([((1, 3), "=A1", value)], ("number", "General"), None)
    for col in (2, 3):
        assert type(sheet.cells[1, col][1]) is float and sheet.cells[1, col][1] == kept


@pytest.mark.parametrize("value", [True, np.bool_(False), "2", None, 1 + 2j, b"1"])
def test_what_is_not_a_number_is_a_mistake_in_our_code(value):
    sheet = one_sheet()
    for write in (lambda: sheet.number(1, 1, value), lambda: sheet.formulas(
            [((1, 1), "=1", value)], ("number", "General"), None)):
        with pytest.raises(ValueError, match="is not a number") as error:
            write()
        assert not isinstance(error.value, CnnsheetError)
    if not isinstance(value, str):  # a formula may give a text
        with pytest.raises(ValueError, match="is not a number"):
            sheet.formula(1, 1, "=1", value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf, np.float32("nan"), 10**400])
def test_a_number_that_is_not_finite_is_refused_saying_where(value):
    sheet = one_sheet("Conv1")
    for write in (lambda: sheet.number(4, 2, value), lambda: sheet.formula(4, 2, "=1", value),
                  lambda: sheet.formulas([((4, 2), "=1", value)], ("number", "General"), None)):
        with pytest.raises(CnnsheetError, match=r"sheet Conv1, cell B4: .* not a finite number"):
            write()
    assert sheet.cells == {}


@pytest.mark.parametrize("formula", ["1+1", "", " =1", 3, "\u00bd", ["=1"]])
def test_a_formula_must_begin_with_its_equals_sign(formula):
    """The writer drops the '=' as the file format wants: a formula without one lost a character."""
    sheet = one_sheet()
    for write in (lambda: sheet.formula(1, 1, formula, 1.0),
                  lambda: sheet.formulas([((1, 1), formula, 1.0)], ("number", "General"), None)):
        with pytest.raises(ValueError, match="does not begin with '='") as error:
            write()
        assert not isinstance(error.value, CnnsheetError)
    assert sheet.cells == {}


@pytest.mark.parametrize("formula", ["=\"\udcff\"", "=\"\u00e9\x1b\""])
def test_a_formula_holds_only_what_xml_can_carry(formula):
    with pytest.raises(ValueError, match="cannot carry"):
        one_sheet().formula(1, 1, formula, 1.0)


def test_a_single_formula_is_never_none():
    """(None is the constant zero of formulas())"""
    with pytest.raises(ValueError, match="does not begin with '='"):
        one_sheet().formula(1, 1, None, 1.0)


def test_a_formula_may_hold_any_text_xml_can_carry():
    sheet = one_sheet()
    cells = [((1, 1), '="三角形"&"\U0001f600"', 1.0), ((1, 2), "=1", 2.0)]
    sheet.formulas(cells, ("number", "General"), None)
    assert sheet.cells[1, 1][0] == '="三角形"&"\U0001f600"'


@pytest.mark.parametrize("text, shown", [
    ("bad\udcffbyte", "bad\ufffdbyte"), ("\ud83d\ude00 halves", "\ufffd\ufffd halves"),
    ("bell\x07", "bell\ufffd"), ("tab\tline\n", "tab\tline\n"), ("\U0001f600", "\U0001f600"),
])
def test_texts_xml_cannot_carry_become_a_replacement_character(text, shown, tmp_path):
    """A lone surrogate (a file or class name that is not UTF-8) stopped the save with a traceback."""
    plan = WorkbookPlan()
    sheet = plan.sheet("S")
    sheet.text(1, 1, text)
    sheet.formula(2, 1, '="x"', text)  # a formula whose result is a text
    sheet.charts.append(BarChart(text, "A1:A1", "B1:B1", "D1", (text,), (np.float64(0.5),)))
    assert sheet.cells[1, 1][1] == shown == sheet.cells[2, 1][1]
    assert sheet.charts[0].title == shown == sheet.charts[0].category_cache[0]
    assert sheet.charts[0].value_cache == (0.5,) and type(sheet.charts[0].value_cache[0]) is float
    writer.save(plan, tmp_path / "t.xlsx")
    book = openpyxl.load_workbook(tmp_path / "t.xlsx")
    assert book["S"]["A1"].value == shown


def test_a_text_longer_than_excel_takes_is_refused_as_excel_counts_it():
    sheet = one_sheet("Loss")
    sheet.text(1, 1, "x" * 32_767)
    sheet.text(1, 2, "\U0001f600" * 16_383)  # two UTF-16 units each: 32,766
    for text in ("x" * 32_768, "\U0001f600" * 16_384, "三" * 32_768):
        with pytest.raises(CnnsheetError, match=r"sheet Loss, cell C1: a text of 32,768 characters; "
                                                r"Excel takes at most 32,767"):
            sheet.text(1, 3, text)
    with pytest.raises(CnnsheetError, match="32,768 characters"):
        sheet.formula(1, 3, '="x"', "x" * 32_768)
    assert (1, 3) not in sheet.cells


@pytest.mark.parametrize("field, most", [("title", 32), ("message", 255), ("prompt", 255)])
def test_a_validations_texts_are_cut_to_what_excel_takes(field, most):
    """Longer ones made Excel repair the file; a template's may be longer (a translation)."""
    texts = {"title": "t", "message": "m", "prompt": "p"}
    assert getattr(WholeNumbers(("B2",), 0, 255, **{**texts, field: "é" * most}), field) == "é" * most
    assert getattr(WholeNumbers(("B2",), 0, 255, **{**texts, field: "é" * (most + 1)}), field) == "é" * most
    # a character beyond U+FFFF counts twice, and is never cut in half
    assert getattr(WholeNumbers(("B2",), 0, 255, **{**texts, field: "a" + "\U0001f600" * most}),
                   field) == "a" + "\U0001f600" * ((most - 1) // 2)
    if field != "prompt":
        rule = DropDown("C3", "class_names", **{"title": "t", "message": "m", field: "x" * (most + 1)})
        assert getattr(rule, field) == "x" * most
    rule = DropDown("C3", "class_names", "bad\udcff", "m")
    assert rule.title == "bad\ufffd"


@pytest.mark.parametrize("title, problem", [
    ("x" * 32, "is 32 characters long; Excel takes at most 31"),
    *[(f"a{c}b", "holds one of") for c in "[]:*?/\\"],
    ("'quoted", "apostrophe"), ("quoted'", "apostrophe"),
    ("History", "reserved"), ("HISTORY", "reserved"),
    ("conv1", "already a sheet's name"), ("CONV1", "already a sheet's name"),
    ("a\x00b", "XML cannot carry"), ("a\udcffb", "XML cannot carry"),
    ("", "non-empty"), (None, "non-empty"),
])
def test_a_sheet_name_excel_refuses_is_a_mistake_in_our_code(title, problem):
    plan = WorkbookPlan()
    plan.sheet("Conv1")
    with pytest.raises(ValueError, match=re.escape(problem)) as error:
        plan.sheet(title)
    assert not isinstance(error.value, CnnsheetError)
    assert plan.sheetnames == ["Conv1"]


def test_sheet_names_excel_takes(tmp_path):
    plan = WorkbookPlan()
    titles = ["x" * 31, "Don't", "三角形", "a b", "History1", "R1C1"]
    for title in titles:
        plan.sheet(title).text(1, 1, title)
    writer.save(plan, tmp_path / "names.xlsx")
    assert openpyxl.load_workbook(tmp_path / "names.xlsx").sheetnames == titles


@pytest.mark.parametrize("row, col", [(0, 1), (1, 0), (1_048_577, 1), (1, 16_385), (-1, 2)])
def test_a_cell_beyond_excels_sheet_is_refused(row, col):
    sheet = one_sheet()
    for write in (lambda: sheet.number(row, col, 1), lambda: sheet.text(row, col, "t"),
                  lambda: sheet.formula(row, col, "=1", 1.0)):
        with pytest.raises(CnnsheetError, match="beyond Excel's 1,048,576 rows and 16,384 columns"):
            write()
    sheet.number(1_048_576, 16_384, 1)  # Excel's last cell
    with pytest.raises(ValueError, match="whole numbers"):  # (number and formula, 10^4 calls each,
        sheet.text(1.0, 1, "t")                              # check only the bounds)


def test_a_defined_name_is_defined_once_whatever_its_case():
    plan = WorkbookPlan()
    plan.sheet("Loss")
    plan.name("loss", "Loss", "B3")
    plan.name("loss", "Loss", "B3")  # the same again does no harm
    for name, ref in (("LOSS", "B3"), ("Loss", "B4"), ("loss", "B4")):
        with pytest.raises(ValueError, match="would be defined twice"):
            plan.name(name, "Loss", ref)
    with pytest.raises(ValueError, match="not a sheet"):
        plan.name("other", "Conv1", "A1")
    for name in ("A1", "R1C1", "true_class", "1x", "a b", None):
        with pytest.raises(ValueError, match="not a valid defined name"):
            plan.name(name, "Loss", "A1")
    assert plan.names == {"loss": "Loss!$B$3"}


# ---- the same command gives the same bytes ---------------------------------------------------
def test_the_same_plan_gives_the_same_bytes_at_any_time(tmp_path, monkeypatch):
    """Fixed times in the zip's entries and in the core properties (as XlsxWriter writes them)."""
    model, pixels = default_case()
    walkthrough = build_walkthrough(model, pixels, with_backward=False)
    walkthrough.save(tmp_path / "first.xlsx")
    later = time.time() + 400 * 86_400  # the zip module stamps entries with time.time()
    monkeypatch.setattr(time, "time", lambda: later)
    walkthrough.save(tmp_path / "second.xlsx")
    assert (tmp_path / "first.xlsx").read_bytes() == (tmp_path / "second.xlsx").read_bytes()
    with zipfile.ZipFile(tmp_path / "first.xlsx") as archive:
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "1980-01-01T00:00:00Z" in archive.read("docProps/core.xml").decode()


@pytest.mark.slow
def test_two_runs_of_explain_write_the_same_bytes(tmp_path):
    for name in ("a.xlsx", "b.xlsx"):
        result = CliRunner().invoke(main, ["explain", "--forward-only", "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


# ---- the library leaves the process as it found it ------------------------------------------
LIBRARY_USE = """
import gc, os, resource, sys
from cnnsheet import writer
from cnnsheet.errors import CnnsheetError
from cnnsheet.plan import WorkbookPlan

unraisable = []
sys.unraisablehook = hook = unraisable.append
os.umask(0o027)
plan = WorkbookPlan()
sheet = plan.sheet("S")
for row in range(1, 3001):
    sheet.formula(row, 1, f"=ROW()*{row}", float(row * row))
writer.save(plan, sys.argv[1] + "/whole.xlsx")
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # a full disk
try:
    writer.save(plan, sys.argv[1] + "/full.xlsx")
except CnnsheetError as error:
    print("refused:", error)
del plan, sheet
gc.collect()
assert sys.unraisablehook is hook and unraisable == [], unraisable
print(gc.isenabled(), oct(os.umask(0o027)), oct(os.stat(sys.argv[1] + "/whole.xlsx").st_mode & 0o777))
"""


def test_the_writer_leaves_the_process_as_it_found_it(tmp_path):
    """From a notebook or a server: the collector stays on, the umask and the hook of errors in
    finalisers stay as they were (they were set and put back, which races with other threads), and
    a full disk leaves nothing to finalise noisily."""
    done = subprocess.run([sys.executable, "-c", LIBRARY_USE, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    refused, state = done.stdout.strip().splitlines()
    assert refused.startswith("refused: ") and "full.xlsx: cannot be written (File too large)" in refused
    assert state == "True 0o27 0o640"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["whole.xlsx"]


def test_writing_never_reads_the_umask_by_setting_it(tmp_path, monkeypatch):
    def forbidden(*args):
        raise AssertionError("os.umask changes the umask of every thread")

    monkeypatch.setattr(os, "umask", forbidden)
    monkeypatch.setattr(gc, "disable", forbidden)
    plan = WorkbookPlan()
    plan.sheet("S").number(1, 1, 1)
    writer.save(plan, tmp_path / "w.xlsx")
    assert openpyxl.load_workbook(tmp_path / "w.xlsx")["S"]["A1"].value == 1
