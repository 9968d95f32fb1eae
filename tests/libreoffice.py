"""LibreOffice Calc, headless, as the reference spreadsheet engine of the tests.

A throw-away user profile tells Calc to recalculate every formula when it loads an xlsx file, so
that the formulas, not the values cached in the file, are what is checked. The converted copy is
read back with openpyxl and each formula cell compared with the engine.
"""

import math
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

RECALCULATE_ON_LOAD = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
           xmlns:xs="http://www.w3.org/2001/XMLSchema"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load">
  <prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load">
  <prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""
ERRORS = ("#NAME?", "#VALUE!", "#REF!", "#DIV/0!", "#N/A", "#NUM!", "#NULL!", "Err:")


def soffice() -> str:
    """The soffice binary. Missing is a failure, never a skip: these tests are the point."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if not found:
        pytest.fail("LibreOffice is not installed (apt-get install libreoffice-calc-nogui); "
                    "the workbook tests need it", pytrace=False)
    return found


def make_profile(folder: Path) -> Path:
    user = folder / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "registrymodifications.xcu").write_text(RECALCULATE_ON_LOAD)
    return folder


def convert(paths, outdir: Path, profile: Path, to: str = "xlsx") -> list[Path]:
    """Open each file in Calc, recalculate, and save it as `to` in outdir (one soffice call)."""
    outdir.mkdir(parents=True, exist_ok=True)
    command = [soffice(), "--headless", "--norestore", "--nolockcheck",
               f"-env:UserInstallation={profile.resolve().as_uri()}",
               "--convert-to", to, "--outdir", str(outdir), *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    outputs = [outdir / (Path(p).stem + "." + to.split(":")[0]) for p in paths]
    missing = [str(p) for p in outputs if not p.exists()]
    assert not missing, f"soffice wrote no {missing}: {done.stdout} {done.stderr}"
    return outputs


def formula_cells(path: Path) -> set:
    book = openpyxl.load_workbook(path)
    return {(ws.title, cell.row, cell.column)
            for ws in book.worksheets for row in ws.iter_rows() for cell in row
            if cell.data_type == "f"}


def compare(original: Path, recalculated: Path, expected: dict, rtol: float = 1e-9) -> int:
    """Every formula cell of `original` equals `expected` after recalculation; returns the count."""
    cells = formula_cells(original)
    assert cells == set(expected), (
        f"formula cells without an expectation: {sorted(cells - set(expected))[:5]}; "
        f"expectations without a formula: {sorted(set(expected) - cells)[:5]}")
    values = openpyxl.load_workbook(recalculated, data_only=True)
    failures = []
    for (sheet, row, col), want in expected.items():
        got = values[sheet].cell(row, col).value
        if isinstance(got, str) and got.startswith(ERRORS):
            failures.append(f"{sheet}!{row},{col}: {got}")
        elif isinstance(want, str):
            if (got if got is not None else "") != want:  # a text "" reads back as an empty cell
                failures.append(f"{sheet}!{row},{col}: {got!r} != {want!r}")
        elif not isinstance(got, (int, float)) or not math.isclose(got, want, rel_tol=rtol, abs_tol=1e-12):
            failures.append(f"{sheet}!{row},{col}: {got!r} != {want!r}")
    assert not failures, f"{len(failures)} of {len(expected)} cells differ: {failures[:8]}"
    return len(expected)


def cached_values_match(original: Path, recalculated: Path, rtol: float = 1e-9) -> int:
    """Every value cached in `original` equals the recalculated one; returns the count."""
    cells = formula_cells(original)
    cached = openpyxl.load_workbook(original, data_only=True)
    values = openpyxl.load_workbook(recalculated, data_only=True)
    failures = []
    for sheet, row, col in cells:
        mine, theirs = cached[sheet].cell(row, col).value, values[sheet].cell(row, col).value
        same = (mine == theirs if isinstance(mine, str) or isinstance(theirs, str)
                else mine is not None and math.isclose(mine, theirs, rel_tol=rtol, abs_tol=1e-12))
        if not same:
            failures.append(f"{sheet}!{row},{col}: cached {mine!r}, recalculated {theirs!r}")
    assert not failures, f"{len(failures)} of {len(cells)} cached values differ: {failures[:8]}"
    return len(cells)
