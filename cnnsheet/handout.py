"""The printed handout: the walkthrough's own sheets, one page per step, as a PDF.

The handout is a view of the workbook plan: the Overview, and for every step one representative
block (the first filter, the first feature map, its pooled map, the dense outputs, softmax and
loss, the gradient step, the saliency map), each sheet's print area cut to what fits one page.
The other sheets are left out. LibreOffice, run headless, prints that workbook to PDF.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnsheet import printing, writer
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import stops_held, write_atomically
from cnnsheet.layout import area, column_number
from cnnsheet.plan import SheetPlan, WorkbookPlan
from cnnsheet.sheets.common import OVERVIEW
from cnnsheet.sheets.overview import TABLE

# sheets of the handout, by name: the forward steps, then the start of learning
HANDOUT = re.compile(r"^(Overview|Image|Filters\d+|Conv\d+|ReLU\d+|Pool\d+|Flatten|Dense\d+|"
                     r"Softmax|Loss|dLogits|dFilters1|Step|Saliency|Grad-CAM)$")
INSTALL_HINT = ("--pdf needs LibreOffice, which was not found: install it (libreoffice.org; on Debian "
                "or Ubuntu: apt-get install libreoffice-calc-nogui) or put soffice on the PATH")
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


def one_page(sheet: SheetPlan) -> str:
    """The print area of a sheet's page in the handout: its title and explanation and its first
    block, or as much of a sheet without blocks as fits one page."""
    setup = sheet.printing
    bottom, right = printing.last_cell(sheet)  # a chart's rows are kept with its sheet
    page_width, page_height = printing.page_size(setup.landscape)
    widths = printing.widths_in_points(sheet, right)
    heights = printing.heights_in_points(sheet, bottom)
    if sheet.keep:
        if sheet.title == OVERVIEW:  # the network at a glance, not the table of sheets below it
            bottom = max(unit[2] for unit in sheet.keep if unit[3] != TABLE["table_note"])
        else:
            _, _, bottom, unit_right = sheet.keep[0]
            right = max(unit_right, merged_right(sheet))
    fits_width = page_width * 100 / setup.scale
    total, last_col = 0.0, 0
    while last_col < right and total + widths[last_col + 1] <= fits_width:
        last_col += 1
        total += widths[last_col]
    if sheet.keep and sheet.title != "Overview":
        last_col = right  # nor across
    fits_height = SLACK * page_height * 100 / setup.scale
    total, last_row = 0.0, 0
    while last_row < bottom and total + heights[last_row + 1] <= fits_height:
        last_row += 1
        total += heights[last_row]
    if sheet.keep:
        last_row = bottom  # a block is never cut: a page too short for it takes two
    return area(1, 1, max(last_row, 1), max(last_col, 1))


def merged_right(sheet: SheetPlan) -> int:
    """The rightmost column of the wrapped explanation."""
    rights = []
    for merged in sheet.merges:
        letters = re.match(r"[A-Z]+\d+:([A-Z]+)\d+", merged)
        if letters:
            rights.append(column_number(letters[1]))
    return max(rights, default=1)


def handout_plan(plan: WorkbookPlan) -> WorkbookPlan:
    """The workbook as the handout prints it: the chosen sheets, each cut to a page, their
    formulas replaced by the engine's values (a printout needs no recalculation, and the sheets
    it leaves out are not there to be read)."""
    sheets = []
    for sheet in plan.sheets:
        if HANDOUT.match(sheet.title):
            # the Overview's heat maps may take two pages, its breaks between them
            breaks = sheet.printing.row_breaks if sheet.title == "Overview" else []
            setup = dataclasses.replace(sheet.printing, area=one_page(sheet), row_breaks=breaks,
                                        col_breaks=[])
            values = {where: (None, value, look) for where, (_, value, look) in sheet.cells.items()}
            sheets.append(dataclasses.replace(sheet, cells=values, printing=setup, drop_downs=[],
                                              whole_numbers=[], highlights=[]))
    kept = {sheet.title for sheet in sheets}
    names = {name: ref for name, ref in plan.names.items() if ref.split("!")[0].strip("'") in kept}
    return WorkbookPlan(sheets, names, plan.lang)


def save_pdf(plan: WorkbookPlan, path, soffice: str, timeout: int = 600) -> None:
    """Print the handout to a PDF at `path`, atomically: never a half-written file.

    LibreOffice runs in a temporary folder that holds everything it writes (its profile, its own
    temporary files, the files it leaves in its working folder), and that folder is removed
    whatever happens, also when the command is stopped while LibreOffice prints."""
    try:
        scratch = tempfile.TemporaryDirectory(prefix="cnnsheet-")
    except OSError as error:
        raise CnnsheetError(f"--pdf {path}: no usable temporary folder ({error.strerror}); set TMPDIR "
                            f"to a writable folder") from None
    try:
        folder = Path(scratch.name).absolute()  # a relative TMPDIR would not survive cwd=folder
        source = folder / "handout.xlsx"
        try:
            writer.save(handout_plan(plan), source)
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
