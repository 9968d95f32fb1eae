"""Printing: the PDF handout (explain --pdf) and the workbook's own print settings, checked on
the PDF that LibreOffice prints: page counts, headers and footers on every page, no printed number
under 6 pt (pdftotext -bbox gives each word's box), Chinese that renders."""

import html
import re
import shutil
import subprocess
import zipfile
from importlib import resources

import pytest
from click.testing import CliRunner
from helpers import default_case
from libreoffice import convert, soffice

from cnnsheet import printing
from cnnsheet.cli import main
from cnnsheet.layout import bounds
from cnnsheet.texts import Texts
from cnnsheet.workbook import build_walkthrough

BOX_PER_POINT = 1.27  # pdftotext's word box is this many times the font size (measured: 9 pt -> 11.4)
NUMBER = re.compile(r"^-?[\d.,]+(E[-+]?\d+)?%?$")


def pages(pdf) -> list[list[tuple[float, str]]]:
    """Each page's words as (box height in points, text), top to bottom."""
    if not shutil.which("pdftotext"):
        pytest.fail("pdftotext (poppler-utils) is not installed", pytrace=False)
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    result = []
    for page in html.split("<page ")[1:]:
        words = re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)<', page)
        result.append([(float(bottom) - float(top), text) for top, bottom, text in words])
    return result


def smallest_number(document) -> float:
    """The printed size in points of the smallest number on any page."""
    return min(height for page in document for height, word in page if NUMBER.match(word)) / BOX_PER_POINT


def page_text(page) -> str:
    return " ".join(word for _, word in page)


@pytest.fixture(scope="module")
def handouts(tmp_path_factory):
    soffice()  # a failure, not a skip, without LibreOffice
    folder = tmp_path_factory.mktemp("handouts")
    made = {}
    for name, args in {"default": [], "forward": ["--forward-only"], "zh": ["--lang", "zh"],
                       "two_blocks": ["--untrained", "--blocks", "2", "--pool", "2", "--size", "28"]}.items():
        pdf = folder / f"{name}.pdf"
        result = CliRunner().invoke(main, ["explain", *args, "-o", str(folder / f"{name}.xlsx"),
                                           "--pdf", str(pdf)])
        assert result.exit_code == 0, result.output
        made[name] = pages(pdf)
    return made


# measured; --blocks 2 defaults to kernel 3, whose 26 x 26 maps take a page and a bit each; the
# Image sheet's grey-square panel above the pixels may push its block onto a second page
# (the Grad-CAM page takes two: its map is as large as the photo, in cells wide enough for 0.000)
@pytest.mark.parametrize("name, most", [("default", 23), ("forward", 16), ("zh", 22), ("two_blocks", 30)])
def test_the_handout_has_a_page_per_step_headers_footers_and_readable_numbers(handouts, name, most):
    document = handouts[name]
    assert 10 <= len(document) <= most, len(document)
    footer = "page {} of {}" if name != "zh" else "第 {} 页，共 {} 页"
    for number, page in enumerate(document, 1):
        text = page_text(page)
        assert footer.format(number, len(document)).replace(" ", "") in text.replace(" ", ""), text[-80:]
        first = page[0][1] + " " + page[1][1]
        assert re.match(r"^(How|Step|Backward|One|Saliency|Grad-CAM|卷积|第|反向传播|梯度|显著图)",
                        first), first
    assert smallest_number(document) >= 6.0 - 0.05


def test_the_handout_shows_each_step_once_in_order(handouts):
    titles = []
    for page in handouts["default"]:
        title = re.match(r"^(Step \d+|Backward \d+|One step|Saliency map|Grad-CAM|How)", page_text(page))[1]
        if title not in titles:
            titles.append(title)
    assert titles == ["How", "Step 1", "Step 3", "Step 4", "Step 5", "Step 6", "Step 7", "Step 8", "Step 9",
                      "Step 10", "Step 11", "Backward 1", "Backward 8", "One step", "Saliency map",
                      "Grad-CAM"]


def test_a_chinese_handout_prints_chinese_glyphs(handouts, tmp_path):
    text = "".join(page_text(page) for page in handouts["zh"])
    assert "第 1 步".replace(" ", "") in text.replace(" ", "") and "卷积" in text and "三角形" in text
    pdf = tmp_path / "zh.pdf"
    CliRunner().invoke(main, ["explain", "--forward-only", "--lang", "zh", "-o", str(tmp_path / "z.xlsx"),
                              "--pdf", str(pdf)])
    listed = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    embedded = {squeezed(line.split()[0].partition("+")[2] or line.split()[0])
                for line in listed.splitlines()[2:] if line.strip()}  # after the two header lines
    chinese = chinese_font_families()
    assert any(family in font for font in embedded for family in chinese), (embedded, chinese)


def squeezed(name: str) -> str:
    """A font's name without case, spaces or hyphens: 'Droid Sans Fallback' and the PDF's
    'ABCDEF+DroidSansFallbackFull' meet as 'droidsansfallback...'."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def chinese_font_families() -> set[str]:
    """The families of the fonts installed that cover Chinese, as fontconfig says, whichever they
    are (WenQuanYi, Noto CJK, Droid Sans Fallback, ...)."""
    if not shutil.which("fc-list"):
        pytest.fail("fc-list (fontconfig) is not installed", pytrace=False)
    listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True,
                            check=True).stdout
    families = {squeezed(name) for line in listed.splitlines() for name in line.split(",")} - {""}
    assert families, "no font that covers Chinese is installed (.ci/run installs one)"
    return families


def test_without_libreoffice_explain_pdf_fails_first_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("sys.platform", "linux")
    result = CliRunner().invoke(main, ["explain", "--pdf", "handout.pdf"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "LibreOffice" in lines[0] and "install" in lines[0]
    assert list(tmp_path.iterdir()) == []  # checked before any work: not even the workbook


def test_a_pdf_that_cannot_be_written_fails_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["explain", "--pdf", "missing/handout.pdf"])
    assert result.exit_code == 1
    assert "--pdf missing/handout.pdf: the folder missing does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_every_sheet_has_print_settings_and_breaks_fall_between_blocks():
    model, photo = default_case()
    plan = build_walkthrough(model, photo, with_backward=True).plan
    for sheet in plan.sheets:
        setup = sheet.printing
        assert setup.area and setup.title_rows == (1, 2), sheet.title
        assert printing.THIS_PAGE in setup.footer and printing.PAGE_COUNT in setup.footer
        assert setup.header == sheet.cells[1, 1][1]
        assert setup.scale >= printing.lowest_scale(sheet)
        page_height = printing.page_size(setup.landscape)[1] * 100 / setup.scale
        for chart in sheet.charts:  # the whole chart prints
            top, left, _, _ = bounds(chart.anchor)
            _, _, bottom, right = bounds(setup.area)
            assert bottom >= top + printing.CHART_ROWS - 1 and right >= left + 3, sheet.title
        for top, _, bottom, _ in sheet.keep:
            tall = sum(sheet.heights.get(r, printing.DEFAULT_ROW) for r in range(top, bottom + 1))
            if tall < page_height - 40:
                assert not [b for b in setup.row_breaks if top < b <= bottom], (sheet.title, top, bottom)


def test_the_workbook_prints_numbers_of_6_pt_at_least_with_headers_and_footers(tmp_path, calc_profile):
    model, photo = default_case()
    path = tmp_path / "forward.xlsx"
    build_walkthrough(model, photo).save(path)
    [pdf] = convert([path], tmp_path / "pdf", calc_profile, to="pdf")
    document = pages(pdf)
    assert smallest_number(document) >= 6.0 - 0.05
    for number, page in enumerate(document, 1):
        assert f"page {number} of {len(document)}" in page_text(page)
    print(f"forward-only workbook: {len(document)} pages, smallest number {smallest_number(document):.2f} pt")


def test_headers_and_footers_take_any_template_text_within_excels_limit(tmp_path):
    """A footer with literal braces ({{ }} in a template) or cut in the middle, and a title made of
    '&' (written '&&'): every header and footer is at most 255 characters as Excel counts them."""
    folder = tmp_path / "templates"
    folder.mkdir()
    text = (resources.files("cnnsheet.templates") / "en.toml").read_text(encoding="utf-8")
    text = text.replace('step_title = "Step {number} - {title}"', 'step_title = "' + "&" * 200 + '{title}"')
    for footer in ('"page {page} of {pages} {{draft}}"', '"' + "x" * 175 + ' {page} of {pages}"'):
        (folder / "en.toml").write_text(text.replace('footer = "page {page} of {pages}"',
                                                     f"footer = {footer}"), encoding="utf-8")
        model, photo = default_case()
        path = tmp_path / "out.xlsx"
        build_walkthrough(model, photo, Texts("en", folder)).save(path)
        with zipfile.ZipFile(path) as archive:
            sheets = [archive.read(name).decode() for name in archive.namelist()
                      if name.startswith("xl/worksheets/sheet")]
        codes = [html.unescape(code) for sheet in sheets
                 for code in re.findall(r"<odd(?:Header|Footer)>(.*?)</odd", sheet)]
        assert codes and max(map(len, codes)) <= 255
        footers = {code for code in codes if code.startswith("&C")}
        if "draft" in footer:
            assert all(code.endswith("page &P of &N {draft}") for code in footers), footers
        else:
            assert all(code.endswith(" ...") for code in footers), footers  # cut before the fields


def test_fit_header_counts_what_excel_counts():
    two = printing.TWO_IN_CODES
    for text in ["plain", "&" * 400, "x" * 178 + printing.THIS_PAGE, "é" * 300]:
        fitted = printing.fit_header(text)
        assert sum(2 if c in two else 1 for c in fitted) <= printing.HEADER_CHARACTERS
        assert fitted == text or (fitted.endswith("...") and text.startswith(fitted[:-3]))
    assert printing.fit_header("plain") == "plain"
