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

from cnnsheet import handout, printing, style
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


CASES = {"default": [], "forward": ["--forward-only", "--paper", "letter"], "zh": ["--lang", "zh"],
         "two_blocks": ["--untrained", "--blocks", "2", "--pool", "2", "--size", "28"]}


@pytest.fixture(scope="module")
def handouts(tmp_path_factory):
    """Each case's handout as printed (its pages' words) and as planned (handout.handout_plan of
    the plan the command printed)."""
    soffice()  # a failure, not a skip, without LibreOffice
    folder = tmp_path_factory.mktemp("handouts")
    made, plans = {}, []
    printing_for_real = handout.save_pdf

    def recorded(plan, path, soffice_path, **options):
        plans.append(handout.handout_plan(plan))
        return printing_for_real(plan, path, soffice_path, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(handout, "save_pdf", recorded)
        for name, args in CASES.items():
            pdf = folder / f"{name}.pdf"
            result = CliRunner().invoke(main, ["explain", *args, "-o", str(folder / f"{name}.xlsx"),
                                               "--pdf", str(pdf)])
            assert result.exit_code == 0, result.output
            made[name] = (pages(pdf), plans[-1], page_sizes(pdf), pdf)
    return made


def page_sizes(pdf) -> set[tuple[float, float]]:
    listed = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                            check=True).stdout
    return {(float(w), float(h)) for w, h in re.findall(r'<page width="([\d.]+)" height="([\d.]+)"', listed)}


def sheet_pages(plan) -> list:
    """The handout's sheets, one entry per page each prints on (breaks across times breaks down)."""
    return [sheet for sheet in plan.sheets
            for _ in range((len(sheet.printing.row_breaks) + 1) * (len(sheet.printing.col_breaks) + 1))]


# the default handout: one page per step the workbook numbers, in 24 pages at most (the classroom's
# budget); --blocks 2 has twice the steps, and its Zoom2 (8 channels) takes pages of its own
@pytest.mark.parametrize("name, most", [("default", 24), ("forward", 16), ("zh", 24), ("two_blocks", 40)])
def test_the_handout_has_a_page_per_step_headers_footers_and_readable_numbers(handouts, name, most):
    document, plan, *_ = handouts[name]
    on_pages = sheet_pages(plan)
    assert len(document) == len(on_pages) <= most, (len(document), len(on_pages))
    if name != "two_blocks":
        assert len(document) == len(plan.sheets)  # every sheet on one page
    footer = "page {} of {}" if name != "zh" else "第 {} 页，共 {} 页"
    for number, (page, sheet) in enumerate(zip(document, on_pages), 1):
        text = page_text(page)
        assert footer.format(number, len(document)).replace(" ", "") in text.replace(" ", ""), text[-80:]
        assert sheet.title in text.split(), (sheet.title, text[:80])  # the header names the sheet
        # numbers of 6 pt, but on a page whose blocks no page holds at 6 pt and which shrank instead
        shrunk = min(1.0, sheet.printing.scale / printing.lowest_scale(sheet))
        assert smallest_number([page]) >= 6.0 * shrunk - 0.05, (sheet.title, smallest_number([page]))
    shrunk = [sheet.title for sheet in plan.sheets if sheet.printing.scale < printing.lowest_scale(sheet)]
    print(f"{name}: {len(document)} pages; shrunk below 6 pt: {shrunk}")


STEP = {"en": (r"(?:^|\s)Step (\d+) -", r"(?:^|\s)Backward (\d+) -", r"^Zoom (\d+) -"),
        "zh": (r"(?:^|\s)第 ?(\d+) ?步 -", r"(?:^|\s)反向传播第 ?(\d+) ?步 -", r"^放大镜 ?(\d+) ?-")}


@pytest.mark.parametrize("name", CASES)
def test_the_handout_numbers_its_steps_as_the_workbook_with_no_step_left_out(handouts, name):
    document, plan, *_ = handouts[name]
    forward, backward, zoom = STEP[plan.lang]
    titles = [sheet.cells[1, 1][1] for sheet in plan.sheets]
    printed = [" ".join(word for _, word in page[:12]) for page in document]
    for pattern in (forward, backward):
        numbers = [int(found[1]) for found in map(re.compile(pattern).search, titles) if found]
        assert numbers == list(range(1, len(numbers) + 1)), numbers  # each once, none left out
        on_paper = [int(found[1]) for found in map(re.compile(pattern).search, printed) if found]
        assert sorted(set(on_paper)) == numbers and on_paper == sorted(on_paper), on_paper
    convs = [title for title in titles if re.search(zoom, title)]
    assert len(convs) == (2 if name == "two_blocks" else 1)
    assert bool(numbers) == (name != "forward")  # backward numbers: the last pattern's


def test_the_zoom_page_holds_one_conv_cell_to_recompute_by_hand(handouts):
    document, plan, *_ = handouts["default"]
    index = [sheet.title for sheet in plan.sheets].index("Zoom1")
    text = page_text(document[index])
    # every channel's band: the 75 products that make the sum, with the bias and the total
    for words in ("R: patch read", "R: kernel", "G: patch read", "G: kernel", "B: patch read", "B: kernel",
                  "weight x value", "sum of the products", "bias of the filter", "total = sum + bias",
                  "the same cell on Conv1"):
        assert words in text, words
    assert "more grids" not in text
    assert len(re.findall(r"-?\d+\.\d{2,}\b", text)) >= 3 * 25 * 3  # patches, kernels and products
    assert "Step 2 - the input" in page_text(document[index - 3])  # the scaled input it reads


def test_no_page_holds_a_cut_block_unless_it_says_where_the_rest_is(handouts):
    for name, (_, plan, *_) in handouts.items():
        for sheet in plan.sheets:
            setup = sheet.printing
            top, left, bottom, right = bounds(setup.area)
            for unit_top, unit_left, unit_bottom, unit_right in sheet.keep:
                inside = top <= unit_top <= unit_bottom <= bottom and left <= unit_left <= unit_right <= right
                said = "more" in setup.footer or "其余" in setup.footer
                # a block left out (a map, a channel, a filter) is named in the footer too; the
                # Overview's heat maps are the steps' pages
                assert inside or said or sheet.title == "Overview", (name, sheet.title, unit_top, unit_left)
                if inside:  # and no page break inside it
                    rows = [b for b in setup.row_breaks if unit_top < b <= unit_bottom]
                    cols = [b for b in setup.col_breaks if unit_left < b <= unit_right]
                    assert not rows and not cols, (name, sheet.title, rows, cols)
            if sheet.title in ("Flatten", "Dense1", "dDense1"):  # long tables: cut, and said so
                assert "more rows of this table are on the sheet " + sheet.title in setup.footer or (
                    "其余" in setup.footer and sheet.title in setup.footer), (name, sheet.title, setup.footer)


SCREEN_ONLY = {"en": re.compile(r"click|\(change me\)|pick one|pick a cell|->|<-|type (a|its|or)|"
                                r"when you change|follow your edits|live:|\(cover the eyes", re.IGNORECASE),
               "zh": re.compile(r"点击|请选择|可修改|->|<-|修改数字后|挑一个格子|你的修改|实时：|（试着遮住")}


def test_a_page_that_leaves_maps_out_names_them_in_its_footer(handouts):
    document, plan, *_ = handouts["default"]
    titles = [sheet.title for sheet in plan.sheets]
    for title, said in (("Image", "2 more grids of this sheet (G to B) are on the sheet Image"),
                        ("Conv1", "7 more grids of this sheet (filter 2 to filter 8) are on the sheet Conv1"),
                        ("dConv1", "(filter 2 to filter 8) are on the sheet dConv1")):
        assert said.replace(" ", "") in page_text(document[titles.index(title)]).replace(" ", ""), title
    document, plan, *_ = handouts["zh"]
    titles = [sheet.title for sheet in plan.sheets]
    assert "其余7个方格" in page_text(document[titles.index("Conv1")]).replace(" ", "")


def test_a_row_of_rotated_kernels_holds_whole_filters(handouts):
    _, plan, *_ = handouts["two_blocks"]
    sheet = plan["Rotated2"]
    rows = {}
    for (row, _), (_, value, _) in sorted(sheet.cells.items()):
        if isinstance(value, str) and re.match(r"^filter \d+: c\d+$", value):
            rows.setdefault(row, []).append(tuple(value.split(": ")))
    channels = [channel for filter_name, channel in next(iter(rows.values())) if filter_name == "filter 1"]
    assert len(rows) > 1 and len(channels) == 8
    for row in rows.values():
        filters = {filter_name for filter_name, _ in row}
        assert len(row) == len(filters) * len(channels), row  # no filter split between two rows
    top, left, bottom, right = bounds(sheet.printing.area)  # and the page prints filter 1 whole
    printed = {value for (row, col), (_, value, _) in sheet.cells.items()
               if top <= row <= bottom and left <= col <= right and isinstance(value, str)}
    assert {f"filter 1: {channel}" for channel in channels} <= printed


@pytest.mark.parametrize("name", ["default", "zh", "two_blocks"])
def test_a_sheet_of_two_colour_scales_says_which_grids_each_colours(handouts, name):
    _, plan, *_ = handouts[name]
    legend = {"en": re.compile(r"^Colours\b"), "zh": re.compile(r"^[^，。：]{0,16}颜色：")}[plan.lang]
    named = {"en": re.compile(r"^Colours of .+: "), "zh": re.compile(r"^[^：]+的颜色：")}[plan.lang]
    twice = []
    for sheet in plan.sheets:
        lines = [value for (row, col), (_, value, _) in sheet.cells.items()
                 if col == 1 and isinstance(value, str) and legend.match(value)]
        if len(lines) > 1 and not sheet.title.startswith("Zoom"):  # a Zoom's text names its grids
            twice.append(sheet.title)
            assert all(named.match(line) for line in lines), (sheet.title, lines)
    assert {"Dense1", "Grad-CAM"} <= set(twice), twice


def grey(colour: str) -> float:
    """The relative luminance of a colour printed in grey (WCAG's formula)."""
    def linear(channel):
        channel = int(channel, 16) / 255
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4
    red, green, blue = (linear(colour[i:i + 2]) for i in (0, 2, 4))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


@pytest.mark.parametrize("name", ["default", "zh"])
def test_the_printed_pixels_stay_readable_on_a_grey_printer(handouts, name):
    _, plan, *_ = handouts[name]
    sheet = plan["Image"]
    areas = [bounds(ref) for refs, scale in sheet.scales if scale.kind == "channel" for ref in refs]
    assert areas
    for top, left, bottom, right in areas:
        for row in range(top, bottom + 1):
            for col in range(left, right + 1):
                kind, _ = sheet.cells[row, col][2]
                digits = grey(style.KINDS[kind].get("color", "000000"))
                for channel in {scale.channel for _, scale in sheet.scales if scale.kind == "channel"}:
                    for fill in (style.CHANNEL_ZERO.get(channel, "000000"), style.CHANNEL_COLOURS[channel]):
                        lighter, darker = sorted((digits, grey(fill)), reverse=True)
                        assert (lighter + 0.05) / (darker + 0.05) >= 4.5, (row, col, kind, channel, fill)


@pytest.mark.parametrize("name", CASES)
def test_printed_pages_speak_to_a_reader_of_paper(handouts, name):
    document, plan, *_ = handouts[name]
    for number, page in enumerate(document, 1):
        found = SCREEN_ONLY[plan.lang].search(page_text(page))
        assert not found, (name, number, page_text(page)[max(0, found.start() - 60):found.end() + 60])
        assert "###" not in page_text(page), (name, number)  # every number fits its column


def test_the_handout_prints_on_the_paper_asked_for(handouts):
    a4, letter = (595.3, 841.9), (612.0, 792.0)
    for name, (_, _, sizes, _) in handouts.items():
        wanted = letter if "letter" in CASES[name] else a4
        assert all(sorted(size) == pytest.approx(wanted, abs=1) for size in sizes), (name, sizes)


@pytest.mark.parametrize("environment, paper", [
    ({}, "a4"), ({"LANG": "en_US.UTF-8"}, "letter"), ({"LANG": "fr_CA"}, "letter"),
    ({"LANG": "en_GB.UTF-8"}, "a4"), ({"LANG": "zh_CN.UTF-8"}, "a4"), ({"LANG": "C.UTF-8"}, "a4"),
    ({"LANG": "en_US.UTF-8", "LC_PAPER": "de_DE.UTF-8"}, "a4"),
    ({"LC_ALL": "en_US.UTF-8", "LC_PAPER": "de_DE.UTF-8"}, "letter"), ({"LC_PAPER": "en_CA"}, "letter")])
def test_the_default_paper_follows_the_locale(environment, paper):
    assert printing.default_paper(environment) == paper


def test_a_teachers_own_text_is_printed_as_written_not_as_the_builtin_paper_variant(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "en.toml").write_text('[conv]\nbody = "Click a cell and see."\n', encoding="utf-8")
    texts = Texts("en", folder)
    texts("conv", "body")
    texts("labels", "back")
    assert "Click a cell and see." not in texts.paper  # the teacher's words, kept on paper
    assert texts.paper[texts("labels", "back")] == ""  # the built-in link back is left out


@pytest.mark.parametrize("name", ["default", "zh"])
def test_no_printed_line_starts_with_closing_punctuation(handouts, name):
    """Nor ends with opening punctuation: Calc breaks Chinese lines before any character unless
    the writer glues the punctuation on (test_zh.py holds the rule; this, the texts as printed)."""
    layout = subprocess.run(["pdftotext", "-layout", str(handouts[name][3]), "-"], capture_output=True,
                            text=True, check=True).stdout
    lines = [line.strip() for line in layout.splitlines() if line.strip()]
    closing, opening = printing.CLOSING + ",.;:)!?", printing.OPENING + "("
    assert [line for line in lines if line[0] in closing or line[-1] in opening] == []
    assert len(lines) > 300  # the whole handout was read


def test_a_chinese_handout_prints_chinese_glyphs(handouts, tmp_path):
    text = "".join(page_text(page) for page in handouts["zh"][0])
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
        title = sheet.cells[1, 1][1]  # the header: the title, cut short where it would reach the sheet's name
        assert setup.header == title or (setup.header.endswith("...") and title.startswith(setup.header[:-3]))
        assert setup.scale >= printing.lowest_scale(sheet), sheet.title
        if sheet.title.startswith("Zoom"):  # its channels' bands one under another: one page wide
            assert not setup.col_breaks, sheet.title
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
    assert smallest_number(document) >= 6.0 - 0.05  # the Zoom sheet's too, its channels in bands of rows
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
