"""The printed handout: the walkthrough's own sheets, one page per step, as a PDF.

The handout is a view of the workbook plan: the Overview's first page, and every step the workbook
numbers (the forward steps with each conv's Zoom, the backward steps, the gradient step, the
saliency map), each sheet's print area cut to its title, explanation and first block, on one page.
Texts written for a screen print as their paper variants. The other sheets are left out.
LibreOffice, run headless, prints that workbook to PDF.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnsheet import printing, style, writer
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import stops_held, write_atomically
from cnnsheet.layout import area, column_number, split_target
from cnnsheet.plan import PrintSetup, SheetPlan, WorkbookPlan
from cnnsheet.sheets.common import OVERVIEW
from cnnsheet.texts import Texts

# sheets of the handout, by name: the forward steps, then the start of learning
HANDOUT = re.compile(r"^(Overview|Image|Input|Filters\d+|Conv\d+|Zoom\d+|ReLU\d+|Pool\d+|Flatten|Dense\d+|"
                     r"Softmax|Loss|dLogits|dDense\d+|dPool\d+|Mask\d+|dReLU\d+|dConv\d+|dSpread\d+|"
                     r"Rotated\d+|dFilters\d+|Step|Saliency|Grad-CAM)$")
# How a page's footer names the blocks it leaves out, by the kind of sheet: a series of maps or
# channels by its first and last label ("filter 2 to filter 8", "G to B"); filters, a kernel per
# channel, by the label of their first kernel up to its colon ("filter 2: R"); other blocks counted.
SERIES = re.compile(r"^(Image|Input|Conv\d+|ReLU\d+|Pool\d+|Mask\d+|dReLU\d+|dConv\d+|dPool\d+)$")
BANDS = re.compile(r"^(d?Filters|Rotated|Zoom)\d+$")
ZOOM = re.compile(r"^Zoom\d+$")  # a Zoom's band of a channel: its window, kernel and products, three grids
# looks on paper: the pixels' black digits over the pale paper scale (style.CHANNEL_ZERO); a
# chosen value centred, off the range printed beside it ("11  1 to 24", not "111 to 24")
PRINTED_LOOKS = {"pixel": "number", "level": "number", "input": "value"}
# the saliency pass has sheets named as the backward pass's (Rotated1): only those before it print
LAST_OF_BACKWARD = "Step"
INSTALL_HINT = ("--pdf needs LibreOffice, which was not found: install it (libreoffice.org; on Debian "
                "or Ubuntu: apt-get install libreoffice-calc-nogui) or put soffice on the PATH")
SHRUNK = 40  # percent: a block that no page holds at 6 pt prints smaller, down to this, not cut
WIDE_SLACK = 0.95  # of a page's width: LibreOffice draws columns a little wider than planned
SIX, WIDER = 6, 1.1  # characters of a number, and how much wider its narrow column prints
TIGHT = 0.97  # of a page's height: the room left when only a tight fit keeps numbers of 6 pt
SLACK = 0.9  # of a page's height: rows print a little taller than planned, wrapped text may take a line more


def find_soffice() -> str:
    """LibreOffice's soffice: on the PATH, or where the Windows and macOS installers put it."""
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    places = []
    if sys.platform == "win32":
        for root in (os.environ.get("PROGRAMFILES", r"C:\Program Files"),
                     os.environ.get("PROGRAMFILES(X86)", r"C:\Program Files (x86)")):
            places.append(Path(root) / "LibreOffice" / "program" / "soffice.exe")
    elif sys.platform == "darwin":
        places.append(Path("/Applications/LibreOffice.app/Contents/MacOS/soffice"))
    for place in places:
        if place.is_file():
            return str(place)
    raise CnnsheetError(INSTALL_HINT)


def handout_area(sheet: SheetPlan) -> tuple[int, int]:
    """The last row and column the handout prints of a sheet: the Overview's first page, a
    sheet's title, explanation and first block (and every block beside it that the explanation's
    width reaches into: a block is printed whole or not at all), or a sheet without blocks whole."""
    bottom, right = printing.last_cell(sheet)  # a chart's rows are kept with its sheet
    if sheet.title == OVERVIEW:  # the photo and the prediction; the heat maps below are the steps'
        return (sheet.keep[0][0] - 1 if sheet.keep else bottom), right
    if not sheet.keep:
        return bottom, right
    top, _, bottom, right = sheet.keep[0]
    right = max(right, merged_right(sheet))
    for unit_top, left, unit_bottom, unit_right in sheet.keep:
        if unit_top <= bottom and unit_bottom >= top and left <= right < unit_right:
            right = unit_right  # the explanation reaches into this block: take all of it
    return bottom, right


def one_page(sheet: SheetPlan, texts: Texts, through: tuple | None = None) -> PrintSetup:
    """How a sheet prints in the handout: its area on one page, at the largest scale (up to 100%)
    that fits it, portrait or landscape. Where no page holds it with numbers of 6 pt, its blocks
    are shrunk onto one page down to SHRUNK percent (a grid of 28 x 28 keeps its colours), or else
    take pages of their own, broken between blocks; a long table is cut to a page, the footer
    saying where the rest is. `through` (row, col): the page reaches at least to that cell."""
    bottom, right = handout_area(sheet)
    if sheet.keep and sheet.title != OVERVIEW:
        # every block, or else as many of the first blocks as a page holds at 6 pt (a pool's small maps,
        # a conv's filters, a Zoom's bands: the sum, the bias and the total are above them)
        units = sheet.keep
        firsts = [(max(unit[2] for unit in units[:count]), max(unit[3] for unit in units[:count]))
                  for count in range(len(units) - 1, 1, -1)]
        if ZOOM.match(sheet.title):  # one conv cell recomputed by hand needs every channel's band
            bottom = max(bottom, *(unit[2] for unit in units))
            right = max(right, *(unit[3] for unit in units))
        for larger in [printing.last_cell(sheet), *firsts]:
            if larger[0] >= bottom and larger[1] >= right and fits_at_six_points(sheet, *larger):
                bottom, right = larger
                break
    if through:
        bottom, right = max(bottom, through[0]), max(right, through[1])
    last_filled, right = right, text_reach(sheet, bottom, right)
    widths = printing.widths_in_points(sheet, right)
    rewrap(sheet, widths)  # across the page, which may be wider than the workbook's first page
    heights = printing.heights_in_points(sheet, bottom)
    width, height = sum(widths), sum(heights)
    fits = []
    for landscape in (False, True):
        page_width, page_height = printing.page_size(landscape)
        scale = min(100, math.floor(100 * WIDE_SLACK * page_width / width),
                    math.floor(100 * SLACK * page_height / height))
        fits.append((scale, not landscape, landscape))  # the larger scale; portrait if equal
    scale, _, landscape = max(fits)
    lowest = printing.lowest_scale(sheet)
    if scale < lowest and fits_at(width, height, lowest, landscape):
        scale = lowest  # a page that holds it only with less room to spare: 6 pt numbers first
    setup = dataclasses.replace(sheet.printing, row_breaks=[], col_breaks=[], landscape=landscape,
                                down_then_over=False)  # its pages run across, as they always did
    if scale >= lowest or (sheet.keep and scale >= SHRUNK):
        setup.scale = scale
    elif sheet.keep:  # blocks too many for a page: pages of 6 pt numbers, broken between blocks
        setup.landscape, setup.scale = sheet.printing.landscape, lowest
        page_width, page_height = printing.page_size(setup.landscape)
        title = sum(heights[printing.TITLE_ROWS[0]:printing.TITLE_ROWS[1] + 1])
        inside = [unit for unit in sheet.keep if unit[2] <= bottom and unit[3] <= right]
        setup.col_breaks = printing.breaks(widths, 1, WIDE_SLACK * page_width * 100 / lowest,
                                           [(left, unit_right) for _, left, _, unit_right in inside])
        rewrap(sheet, widths[:setup.col_breaks[0]] if setup.col_breaks else widths)
        heights = printing.heights_in_points(sheet, bottom)
        setup.row_breaks = printing.breaks(heights, printing.TITLE_ROWS[1] + 1,
                                           SLACK * page_height * 100 / lowest - title,
                                           [(top, unit_bottom) for top, _, unit_bottom, _ in inside])
    else:  # a long table: as many rows and columns as fit a page of 6 pt numbers, and where the rest is
        # landscape if a portrait page is too narrow for it
        setup.landscape = width * lowest / 100 > WIDE_SLACK * printing.page_size(False)[0]
        setup.scale = lowest
        page_width, page_height = printing.page_size(setup.landscape)
        last_col = fitting(widths, WIDE_SLACK * page_width * 100 / lowest)
        rewrap(sheet, widths[:last_col + 1])
        last_row = fitting(printing.heights_in_points(sheet, bottom), SLACK * page_height * 100 / lowest)
        rest = []
        if last_row < bottom:
            rest.append(texts("paper", "more_rows", rows=bottom - last_row, sheet=sheet.title))
        if last_col < last_filled:
            rest.append(texts("paper", "more_columns", columns=last_filled - last_col, sheet=sheet.title))
        if rest:
            setup.footer = printing.fit_header(" - ".join([sheet.printing.footer, *rest]))
        bottom, right = last_row, last_col
    setup.area = area(1, 1, max(bottom, 1), max(right, 1))
    left_out = blocks_left_out(sheet, bottom, right, texts)
    if left_out:
        setup.footer = printing.fit_header(" - ".join([setup.footer, left_out]))
    setup.header = printing.page_header(sheet.cells[1, 1][1], sheet.title, setup.scale, setup.landscape)
    return setup


def text_reach(sheet: SheetPlan, bottom: int, right: int) -> int:
    """The last column that the page must hold so that no heading of the area runs past its edge
    ("gradient of the input" over a narrow last column): a text left of `right` may spill over empty
    cells to its right, which print only if they are in the area. Column A's prose is rewrapped."""
    reach = right
    for (row, col), (_, value, (kind, _)) in sheet.cells.items():
        look = style.KINDS[kind]
        if row > bottom or col == 1 or col > right or not isinstance(value, str) or look.get("wrap"):
            continue
        room = printing.text_points(value, look["size"] * (1.1 if look.get("bold") else 1))  # bold: wider
        last = col
        room -= printing.column_points(sheet.widths.get(col, 8.43))
        while room > 0 and (row, last + 1) not in sheet.cells:
            last += 1
            room -= printing.column_points(sheet.widths.get(last, 8.43))
        reach = max(reach, last)
    return reach


def fits_at_six_points(sheet: SheetPlan, bottom: int, right: int) -> bool:
    """Whether one page, portrait or landscape, holds a sheet through (bottom, right), numbers of 6 pt."""
    widths = printing.widths_in_points(sheet, right)
    rewrap(sheet, widths)
    height = sum(printing.heights_in_points(sheet, bottom))
    lowest = printing.lowest_scale(sheet)
    return any(fits_at(sum(widths), height, lowest, landscape) for landscape in (False, True))


def blocks_left_out(sheet: SheetPlan, bottom: int, right: int, texts: Texts) -> str:
    """The footer's note on the blocks (maps, channels, filters) a page leaves out or cuts, by their
    labels: "7 more grids of this sheet (filter 2 to filter 8) are on the sheet Conv1 of the workbook"."""
    left_out = [unit for unit in sheet.keep if unit[2] > bottom or unit[3] > right]
    if not left_out or sheet.title == OVERVIEW:  # the Overview's heat maps are the steps' pages
        return ""
    labels = [sheet.cells.get(unit[:2], (None, None))[1] for unit in left_out]
    if BANDS.match(sheet.title):
        labels = [re.split("[:：]", label)[0] if isinstance(label, str) else label for label in labels]
    named = SERIES.match(sheet.title) or BANDS.match(sheet.title)
    if not named or not all(isinstance(label, str) and label for label in labels):
        return texts("paper", "more_blocks", count=len(left_out), sheet=sheet.title)
    count = len(left_out) * (3 if ZOOM.match(sheet.title) else 1)
    which = (labels[0] if len(labels) == 1
             else texts("paper", "blocks_range", first=labels[0], last=labels[-1]))
    return texts("paper", "more_named_blocks", count=count, which=which, sheet=sheet.title)


def printed_widths(sheet: SheetPlan) -> dict:
    """The columns' widths, a little wider where a narrow column holds numbers of six characters
    (0.0123, -0.012): LibreOffice prints those as ### at some scales."""
    widths = dict(sheet.widths)
    longest = {}
    for (_, col), (_, value, (_, fmt)) in sheet.cells.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and fmt.startswith("0."):
            longest[col] = max(longest.get(col, 0), len(fmt) + (value < 0))
    for col, characters in longest.items():
        if characters >= SIX and widths.get(col, 8.43) < SIX:
            widths[col] *= WIDER
    return widths


def rewrap(sheet: SheetPlan, widths: list[float]) -> None:
    """The title and the explanation wrapped again, across the columns of `widths` (index 0 unused)."""
    printing.unwrap_prose(sheet)
    printing.wrap_prose(sheet, sum(widths) + 0.01, widths)


def fits_at(width: float, height: float, scale: int, landscape: bool) -> bool:
    page_width, page_height = printing.page_size(landscape)
    return width * scale / 100 <= WIDE_SLACK * page_width and height * scale / 100 <= TIGHT * page_height


def fitting(sizes: list[float], room: float) -> int:
    """How many of sizes[1:] fit, in order, into `room`."""
    total, last = 0.0, 0
    while last + 1 < len(sizes) and total + sizes[last + 1] <= room:
        last += 1
        total += sizes[last]
    return last


def merged_right(sheet: SheetPlan) -> int:
    """The rightmost column of the wrapped explanation."""
    rights = []
    for merged in sheet.merges:
        letters = re.match(r"[A-Z]+\d+:([A-Z]+)\d+", merged)
        if letters:
            rights.append(column_number(letters[1]))
    return max(rights, default=1)


def on_paper(plan: WorkbookPlan, sheet: SheetPlan) -> SheetPlan:
    """A copy of a sheet as paper shows it: values without formulas, texts for a reader of paper
    (plan.paper; an empty variant leaves the cell out), nothing to click or type."""
    values = {}
    for where, (_, value, (kind, fmt)) in sheet.cells.items():
        value = plan.paper.get(value, value) if isinstance(value, str) else value
        if value != "":
            values[where] = (None, value, (PRINTED_LOOKS.get(kind, kind), fmt))
    links = [link for link in sheet.links if link[:2] in values]
    scales = [(areas, dataclasses.replace(scale, channel="paper " + scale.channel)
               if scale.kind == "channel" else scale) for areas, scale in sheet.scales]
    return dataclasses.replace(sheet, cells=values, links=links, scales=scales, drop_downs=[],
                               whole_numbers=[], highlights=[], merges=list(sheet.merges),
                               heights=dict(sheet.heights), widths=printed_widths(sheet))


def printed_area(plan: WorkbookPlan, title: str, through: tuple | None = None) -> str:
    """The area of a sheet that its page of the handout prints (reaching through a cell)."""
    return one_page(on_paper(plan, plan[title]), Texts(plan.lang), through).area


def handout_plan(plan: WorkbookPlan, areas: dict | None = None) -> WorkbookPlan:
    """The workbook as the handout prints it: the chosen sheets, each cut to a page, their
    formulas replaced by the engine's values (a printout needs no recalculation, and the sheets
    it leaves out are not there to be read), and texts that speak to a screen ("click a cell")
    replaced by their printed variants (plan.paper; an empty variant leaves the cell out).
    `areas` (sheet -> a print area, or the handout's page of it reaching through a cell (row, col),
    or None for the handout's page, in the order to print) chooses other sheets and pages than the
    handout's (a worksheet's)."""
    texts = Texts(plan.lang)
    sheets, past_backward = [], False
    for sheet in plan.sheets if areas is None else [plan[title] for title in areas]:
        chosen = areas is not None or (HANDOUT.match(sheet.title)
                                       and not (past_backward and sheet.title.startswith("Rotated")))
        if chosen:
            shown = on_paper(plan, sheet)
            area = None if areas is None else areas[sheet.title]
            if isinstance(area, str):
                setup = dataclasses.replace(sheet.printing, row_breaks=[], col_breaks=[], area=area)
            else:  # the handout's page, reaching through the cell `area` (row, col) if one is given
                setup = one_page(shown, texts, area)
            sheets.append(dataclasses.replace(shown, printing=setup))
        past_backward = past_backward or sheet.title == LAST_OF_BACKWARD
    kept = {sheet.title for sheet in sheets}
    names = {name: ref for name, ref in plan.names.items() if split_target(ref)[0] in kept}
    return WorkbookPlan(sheets, names, plan.lang)


def save_pdf(plan: WorkbookPlan, path, soffice: str, timeout: int = 600, areas: dict | None = None) -> None:
    """Print the handout to a PDF at `path`, atomically: never a half-written file.

    LibreOffice runs in a temporary folder that holds everything it writes (its profile, its own
    temporary files, the files it leaves in its working folder), and that folder is removed
    whatever happens, also when the command is stopped while LibreOffice prints. `areas`: see
    handout_plan."""
    try:
        scratch = tempfile.TemporaryDirectory(prefix="cnnsheet-")
    except OSError as error:
        raise CnnsheetError(f"--pdf {path}: no usable temporary folder ({error.strerror}); set TMPDIR "
                            f"to a writable folder") from None
    try:
        folder = Path(scratch.name).absolute()  # a relative TMPDIR would not survive cwd=folder
        source = folder / "handout.xlsx"
        try:
            writer.save(handout_plan(plan, areas), source)
        except OSError as error:
            raise CnnsheetError(f"--pdf {path}: the temporary folder {folder} cannot be written "
                                f"({error.strerror or error})") from None
        command = [soffice, "--headless", "--norestore", "--nolockcheck",
                   f"-env:UserInstallation={(folder / 'profile').as_uri()}",
                   "--convert-to", "pdf", "--outdir", str(folder), str(source)]
        done = run_soffice(command, folder, timeout)
        printed = folder / "handout.pdf"
        if not printed.is_file():
            said = what_went_wrong(done)
            raise CnnsheetError(f"--pdf {path}: LibreOffice wrote no PDF ({said})")
        write_atomically(path, lambda tmp: shutil.copyfile(printed, tmp))
    finally:
        with stops_held():  # a stop now would leave the folder half removed
            scratch.cleanup()


def run_soffice(command: list[str], folder: Path, timeout: int) -> subprocess.CompletedProcess:
    """Run LibreOffice in `folder`, with TMPDIR pointing there (an unusable TMPDIR of the user's
    would make it fail, and it leaves files in its working folder). It runs in a process group
    of its own: soffice starts soffice.bin, which a stop must end too before the folder goes."""
    environment = dict(os.environ, TMPDIR=str(folder), TMP=str(folder), TEMP=str(folder))
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, errors="replace", cwd=folder,
                                   env=environment, start_new_session=True)
    except OSError as error:
        raise CnnsheetError(f"LibreOffice could not be started: {error.strerror}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(process)
        raise CnnsheetError(f"LibreOffice did not finish the handout in {timeout} s") from None
    except BaseException:  # Ctrl-C or a termination signal (cli.stop raises SystemExit)
        stop_group(process)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def what_went_wrong(done: subprocess.CompletedProcess) -> str:
    """LibreOffice's own error line, cut short (its other lines are chatter such as a warning
    that Java is missing)."""
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    said = (errors or lines or [f"exit status {done.returncode}"])[-1]
    return said if len(said) <= 200 else said[:200] + "..."


GROUP_GONE = 10.0  # seconds to wait for LibreOffice's processes to end once killed


def stop_group(process: subprocess.Popen) -> None:
    """Kill LibreOffice and every process it started, and wait until they are gone."""
    if not hasattr(os, "killpg"):  # Windows: no process groups; end the one we started
        process.kill()
        process.wait()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    deadline = time.monotonic() + GROUP_GONE
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
        time.sleep(0.05)
