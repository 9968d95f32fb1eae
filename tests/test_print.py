"""The workbook printed whole, as File > Print in LibreOffice prints it with each sheet's own print
settings: the pages each sheet takes, counted in LibreOffice's PDF by the sheet name in each page's
header."""

import subprocess

import pytest
from click.testing import CliRunner
from libreoffice import convert

from cnnsheet import printing
from cnnsheet.cli import main
from cnnsheet.plan import SheetPlan


def printed_pages(pdf, sheets: list[str]) -> list[tuple[str, str]]:
    """(sheet, text) of each page, the sheet named by the header's right end."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    found = []
    for page in text.split("\f"):
        lines = [line.rstrip() for line in page.splitlines() if line.strip()]
        if not lines:
            continue
        named = [sheet for sheet in sheets if lines[0].endswith(sheet)]
        assert named, f"a page whose header names no sheet: {lines[0]!r}"
        found.append((max(named, key=len), " ".join(" ".join(lines).split())))  # "NewConv1" ends with "Conv1"
    return found


@pytest.fixture
def laid_out(monkeypatch) -> list[SheetPlan]:
    """Every sheet printing.lay_out plans from here on, in order, with its page setup."""
    plans = []
    save = printing.lay_out

    def recorded(sheet, *args, **kwargs):
        save(sheet, *args, **kwargs)
        plans.append(sheet)

    monkeypatch.setattr(printing, "lay_out", recorded)
    return plans


def planned_pages(sheet: SheetPlan) -> int:
    setup = sheet.printing
    return (len(setup.row_breaks) + 1) * (len(setup.col_breaks) + 1)


def test_the_whole_workbook_prints_as_planned_and_each_zoom_in_bands(tmp_path, calc_profile, laid_out):
    """Each Zoom sheet prints one page wide with numbers of 6 pt, its channels' bands whole (it took
    five pages, a patch or a label's end on each, and then one page of 3 pt numbers); no sheet
    takes a page LibreOffice adds beyond the plan's breaks (a column or a line's end alone, where
    the plan's columns were narrower than LibreOffice draws them); no label's end prints alone."""
    path = tmp_path / "walkthrough.xlsx"
    result = CliRunner().invoke(main, ["explain", "-o", str(path)])
    assert result.exit_code == 0, result.output
    [pdf] = convert([path], tmp_path / "pdf", calc_profile, to="pdf")
    sheets = {sheet.title: sheet for sheet in laid_out}
    printed = printed_pages(pdf, list(sheets))
    counts = {}
    for sheet, _ in printed:
        counts[sheet] = counts.get(sheet, 0) + 1
    print("pages per sheet:", counts, "in all", sum(counts.values()))
    assert set(counts) == set(sheets)
    zooms = [title for title in sheets if title.startswith("Zoom")]
    assert zooms
    for title in zooms:
        setup = sheets[title].printing
        assert setup.scale >= printing.lowest_scale(sheets[title]), (title, setup.scale)  # numbers of 6 pt
        assert not setup.col_breaks, title
        assert counts[title] == len(setup.row_breaks) + 1, (title, counts[title])
    beyond = {title: (counts[title], planned_pages(sheet)) for title, sheet in sheets.items()
              if counts[title] > planned_pages(sheet)}
    assert not beyond, f"sheets printed on more pages than planned (printed, planned): {beyond}"
    # the pool panel's labels wrap within their page: the page to the right held "s)" and "by row)"
    [pool] = [text for sheet, text in printed if sheet == "Pool1" and "Pick a cell of Pool1" in text]
    assert "(outlined in magenta)" in pool and "reading row by row)" in pool, pool


def page_numbers(sheet: SheetPlan) -> dict[tuple[int, int], int]:
    """(column band, row band) -> the page's number within the sheet, in the sheet's page order."""
    setup = sheet.printing
    across, down = len(setup.col_breaks) + 1, len(setup.row_breaks) + 1
    return {(col, row): (col * down + row if setup.down_then_over else row * across + col)
            for col in range(across) for row in range(down)}


def band(starts: list[int], index: int) -> int:
    return sum(start <= index for start in starts)


def test_a_block_taller_than_a_page_prints_its_parts_one_after_another(tmp_path, laid_out):
    """The top and the bottom half of a 28-row channel (Input, sConv1's filters) printed three pages
    apart, the bottom halves unlabelled, when pages ran across first: every block's pages are
    consecutive in the sheet's page order (in the default walkthrough and in one of two blocks).
    And the explanation above such a block printed on a page alone (Input, sImage, Grad-CAM)."""
    for options in ([], ["--untrained", "--blocks", "2"]):
        laid_out.clear()
        result = CliRunner().invoke(main, ["explain", "-o", str(tmp_path / "w.xlsx"), *options])
        assert result.exit_code == 0, result.output
        apart, cut, alone = {}, 0, []
        for sheet in laid_out:
            setup, pages = sheet.printing, page_numbers(sheet)
            for top, left, bottom, right in sheet.keep:
                cols = range(band(setup.col_breaks, left), band(setup.col_breaks, right) + 1)
                rows = range(band(setup.row_breaks, top), band(setup.row_breaks, bottom) + 1)
                numbers = sorted({pages[col, row] for col in cols for row in rows})
                cut += len(numbers) > 1
                if numbers != list(range(numbers[0], numbers[-1] + 1)):
                    apart.setdefault(sheet.title, []).append((top, left, numbers))
            # a first block split anyway starts below the explanation, not on the page after it
            first = min(sheet.keep, default=None)
            split = first and band(setup.row_breaks, first[0]) != band(setup.row_breaks, first[2])
            if split and band(setup.row_breaks, first[0]) > 0:
                alone.append(sheet.title)
        assert cut, "no block split between pages: the check checks nothing"
        assert not apart, f"blocks printed on pages apart (top row, left column, pages): {apart}"
        assert not alone, f"sheets whose explanation prints alone before a block split anyway: {alone}"
