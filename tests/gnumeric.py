"""Gnumeric, the second spreadsheet engine of the tests: `ssconvert --recalc` recalculates every
formula of a workbook and saves the values, which are then compared with the engine."""

import shutil
import subprocess
from pathlib import Path

import pytest


def ssconvert() -> str:
    """The ssconvert binary. Missing is a failure, never a skip."""
    found = shutil.which("ssconvert")
    if not found:
        pytest.fail("Gnumeric is not installed (apt-get install gnumeric); the second-engine tests "
                    "need it", pytrace=False)
    return found


def recalculate(path: Path, out: Path) -> Path:
    """Open `path` in Gnumeric, recalculate every formula, and save it as xlsx at `out`."""
    done = subprocess.run([ssconvert(), "--recalc", str(path), str(out)], capture_output=True, text=True,
                          timeout=600)
    assert out.exists(), f"ssconvert wrote no {out}: {done.stdout} {done.stderr}"
    return out
