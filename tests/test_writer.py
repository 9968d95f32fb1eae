"""The written file: every formula carries its value, a second engine (Gnumeric) agrees, names,
drop-downs, charts and fonts are portable, colour scales follow the values, and text stays text.
(tests/test_parts.py holds every part against what openpyxl wrote.)"""

import re
import zipfile

import numpy as np
import openpyxl
import pytest
from gnumeric import recalculate
from helpers import default_case, zoom_choices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libreoffice import compare
from strategies import models

from cnnsheet import budget
from cnnsheet.layout import valid_name
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


def test_every_formula_carries_the_engines_value(default_file):
    """A viewer that does not recalculate (Protected View, previews, pandas) reads the numbers."""
    walkthrough, path = default_file
    assert compare(path, path, walkthrough.expected, rtol=0) == 90_405
    values = openpyxl.load_workbook(path, data_only=True)
    overview = values["Overview"]
    row = next(row for row in range(1, 30) if overview.cell(row, 1).value == "prediction")
    assert overview.cell(row, SUMMARY_VALUE[0]).value == "triangle"  # a text result is cached as text
    assert 'fullCalcOnLoad="1"' in part(path, "xl/workbook.xml")  # Excel still recalculates


def test_gnumeric_agrees_with_the_engine_on_the_default_walkthrough(default_file, tmp_path):
    walkthrough, path = default_file
    recalculated = recalculate(path, tmp_path / "gnumeric.xlsx")
    assert compare(path, recalculated, walkthrough.expected) == 90_405


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
    assert len(formulas) == 29_552
    assert not any("HYPERLINK" in f or "cmd|" in f or "@SUM" in f or ".jpg" in f for f in formulas)
    texts = {cell.value for ws in book.worksheets for row in ws.iter_rows() for cell in row
             if cell.data_type == "s"}
    assert {"+cmd|' /C calc'!A0", "@SUM(A1)"} <= texts
    assert 'Step 4 - =HYPERLINK("http://example.invalid","click")' in texts  # a numbered title
    assert any("=1+1\ufffd.jpg" in text for text in texts)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(models(sizes=(5, 16), tricky_names=True), st.booleans())
def test_the_budget_counts_at_least_every_cell_the_plan_holds(model, with_backward):
    """budget.workbook_cells refuses a network before any work: it must never undercount."""
    model.init(0)
    size = model.input_size
    pixels = np.full((size, size, 3), 128, dtype=np.uint8)
    plan = build_walkthrough(model, pixels, with_backward=with_backward).plan
    cells = sum(len(sheet.cells) for sheet in plan.sheets)
    assert cells <= budget.workbook_cells(model, with_backward)
