"""How many threads numpy's BLAS (OpenBLAS) runs a matrix product on.

cnnsheet's products are small (a training batch's im2col windows are 75 x 18,432 numbers). On
those, OpenBLAS's threads spend more time waiting for each other than computing, and far more
when other programs keep the cores busy: training the default model measured 3,458 pictures a
second with one thread against 584 with two on an idle two-core machine, and about 1,000
against 80-160 on the same machine with other work running (benchmarks/train.py prints its own
figures). So the command line asks for one thread; a user who sets OPENBLAS_NUM_THREADS or
OMP_NUM_THREADS keeps that choice. Nothing here runs on import: the process decides
(`cnnsheet.cli.main`), never the library.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

BLAS_THREADS = 1  # measured, see above
USER_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
# numpy's own wheels bundle a renamed OpenBLAS (scipy-openblas, 64-bit integers); a numpy built
# against a system OpenBLAS uses the plain names
NAMES = ("scipy_openblas_{}_num_threads64_", "scipy_openblas_{}_num_threads",
         "openblas_{}_num_threads64_", "openblas_{}_num_threads")


def _openblas_libraries() -> list[str]:
    """The OpenBLAS libraries this process has loaded (Linux: its memory map), or else those
    numpy's wheel bundles (Windows, macOS: next to the numpy package)."""
    maps = Path("/proc/self/maps")
    if maps.exists():
        paths = {line.split()[-1] for line in maps.read_text().splitlines() if "openblas" in line.lower()}
        return sorted(path for path in paths if path.startswith("/"))
    package = Path(np.__file__).parent
    return sorted(str(path) for folder in (package.parent / "numpy.libs", package / ".dylibs")
                  if folder.is_dir() for path in folder.iterdir() if "openblas" in path.name.lower())


def _functions(verb: str) -> list:
    """OpenBLAS's `<verb>_num_threads` function of every loaded OpenBLAS library."""
    found = []
    for path in _openblas_libraries():
        try:
            library = ctypes.CDLL(path)  # the library already loaded: the same handle
        except OSError:
            continue
        for name in NAMES:
            function = getattr(library, name.format(verb), None)
            if function is not None:
                found.append(function)
                break
    return found


def set_blas_threads(count: int) -> bool:
    """Ask every loaded OpenBLAS to use `count` threads; True if one agreed. A no-op for any
    other BLAS (Accelerate, MKL), which this leaves alone."""
    setters = _functions("set")
    for setter in setters:
        setter.argtypes = [ctypes.c_int]
        setter(count)
    return bool(setters)


def blas_threads() -> int | None:
    """The thread count of the (first) loaded OpenBLAS, None without one."""
    getters = _functions("get")
    if not getters:
        return None
    getters[0].restype = ctypes.c_int
    return int(getters[0]())


def choose_blas_threads() -> str:
    """Use BLAS_THREADS unless the user set a thread count; says who chose, for the benchmarks."""
    for name in USER_SETTINGS:
        if os.environ.get(name):
            return f"set by {name}"
    return "cnnsheet's choice" if set_blas_threads(BLAS_THREADS) else "the BLAS's own default"
