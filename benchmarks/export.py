"""Writing the walkthrough workbook: the whole `cnnsheet explain` process against bare openpyxl.

Three cases: the default walkthrough (every sheet), the default forward sheets only
(--forward-only), and a large untrained walkthrough with every sheet (input 128x128, two conv
blocks of 8 filters 5x5 and max-pool 4). For each:

- the whole process, start-up included: `python -m cnnsheet explain ... -o FILE`, against a
  bare openpyxl process (benchmarks/bare_openpyxl.py) writing the same cells (formula strings,
  numbers and texts taken from the plan, one plain `ws.cell` each, no styles). The two run in
  turn, A B A B ..., after one warm-up run each, each started by benchmarks/timed_run.py; min
  and median seconds, their ratio, peak memory (the process's maximum resident set, from
  `os.wait4`) and file size;
- in this process: `build_walkthrough` and `Walkthrough.save` timed apart (fastest of the
  repeats), and what cached values cost: save time and file size without them;
- the formula count, and for the default cases LibreOffice's time to load the file and
  recalculate every formula (a conversion to CSV, start-up included), when LibreOffice is there.

Figures are printed as a table; the last line is the ratio of the whole processes (median,
cnnsheet / bare openpyxl) for the default walkthrough. It takes a few minutes:

    python benchmarks/export.py
"""

import gc
import marshal
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from libreoffice import convert, make_profile  # noqa: E402

from cnnsheet import __version__, shapes, threads  # noqa: E402
from cnnsheet.images import load_image, square_and_resize  # noqa: E402
from cnnsheet.model import Model  # noqa: E402
from cnnsheet.modelfile import load_model  # noqa: E402
from cnnsheet.resources import default_model_path, default_photo_path  # noqa: E402
from cnnsheet.texts import Texts  # noqa: E402
from cnnsheet.train import Architecture  # noqa: E402
from cnnsheet.workbook import build_walkthrough  # noqa: E402

BARE = Path(__file__).resolve().parent / "bare_openpyxl.py"
TIMED_RUN = Path(__file__).resolve().parent / "timed_run.py"  # why: see its docstring
LARGE = Architecture(size=128, filters=8, kernel=5, pool=4, blocks=2)


@dataclass(frozen=True)
class Case:
    name: str  # the column heading
    options: tuple  # for `cnnsheet explain`
    architecture: Architecture | None  # an untrained network of this shape; None: the bundled model
    backward: bool
    repeats: int  # runs of each whole process, and in-process repeats
    libreoffice: bool


def untrained_options(architecture: Architecture) -> tuple:
    """The `explain` options that shape the same untrained network (seed 0, the CLI's default)."""
    a = architecture
    return ("--untrained", "--size", str(a.size), "--filters", str(a.filters),
            "--kernel", str(a.kernel), "--pool", str(a.pool), "--blocks", str(a.blocks))


CASES = [
    Case("default", (), None, True, 5, True),
    Case("forward-only", ("--forward-only",), None, False, 5, True),
    Case("128x128, 2 blocks", untrained_options(LARGE), LARGE, True, 2, False),
]


# ---- in this process --------------------------------------------------------------------------
def network(case: Case) -> Model:
    if case.architecture is None:
        return load_model(default_model_path())
    return Model(case.architecture.config(shapes.CLASSES)).init(0)


def build(case: Case, model: Model):
    """The walkthrough `cnnsheet explain` builds for this case, with the bundled photo."""
    photo = load_image(default_photo_path())
    pixels = np.asarray(square_and_resize(photo, model.input_size), dtype=np.uint8)
    return build_walkthrough(model, pixels, Texts("en"), photo=photo,
                             photo_name=default_photo_path().name, with_backward=case.backward)


def fastest(repeats: int, work) -> float:
    """The shortest of `repeats` timed runs, each after a garbage collection."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_cells(walkthrough) -> dict:
    """{sheet: [(row, col, value)]}, a formula as its "=..." text: what bare openpyxl writes."""
    return {sheet.title: [(row, col, value if formula is None else formula)
                          for (row, col), (formula, value, _) in sheet.cells.items()]
            for sheet in walkthrough.plan.sheets}


def in_process(case: Case, folder: Path) -> dict:
    """Build and save timed apart, with and without cached values; writes the bare cells file."""
    model = network(case)
    build_seconds = fastest(case.repeats, lambda: build(case, model))
    walkthrough = build(case, model)
    cached, uncached = folder / f"{case.name}-cached.xlsx", folder / f"{case.name}-uncached.xlsx"
    save_seconds = fastest(case.repeats, lambda: walkthrough.save(cached))
    save_uncached_seconds = fastest(case.repeats, lambda: walkthrough.save(uncached, cached_values=False))
    with open(folder / f"{case.name}.marshal", "wb") as file:
        marshal.dump(plain_cells(walkthrough), file)
    return {"formulas": len(walkthrough.expected), "build": build_seconds, "save": save_seconds,
            "save uncached": save_uncached_seconds, "size": cached.stat().st_size,
            "size uncached": uncached.stat().st_size}


# ---- whole processes --------------------------------------------------------------------------
def run(command: list, errors_path: Path) -> tuple[float, int]:
    """Wall seconds of one process, start to exit, and its peak resident memory in KB.

    It runs in the folder of its error file, not here: `python -m cnnsheet` puts its working
    folder first on the path, and from the repository's root that is the source tree, where
    the bundled samples are not the package `cnnsheet.samples` (an installed cnnsheet has them)."""
    with open(errors_path, "wb") as errors:
        done = subprocess.run([sys.executable, str(TIMED_RUN), *command], stdout=subprocess.PIPE,
                              stderr=errors, text=True, check=True, cwd=errors_path.parent)
    seconds, peak_kb, status = done.stdout.split()
    if status != "0":
        raise RuntimeError(f"{' '.join(command)} exited with {status}:\n"
                           f"{errors_path.read_text()[-2000:]}")
    return float(seconds), int(peak_kb)


def whole_processes(case: Case, folder: Path) -> dict:
    """cnnsheet and bare openpyxl in turn, after one warm-up run each (not counted)."""
    ours, bare = folder / f"{case.name}.xlsx", folder / f"{case.name}-bare.xlsx"
    commands = {
        "cnnsheet": [sys.executable, "-m", "cnnsheet", "explain", *case.options, "-o", str(ours)],
        "bare": [sys.executable, str(BARE), str(folder / f"{case.name}.marshal"), str(bare)],
    }
    runs = {which: [] for which in commands}
    for repeat in range(case.repeats + 1):
        for which, command in commands.items():
            result = run(command, folder / f"{case.name}-{which}.err")
            if repeat > 0:
                runs[which].append(result)
    figures = {}
    for which, path in (("cnnsheet", ours), ("bare", bare)):
        seconds = [s for s, _ in runs[which]]
        figures[which] = {"min": min(seconds), "median": statistics.median(seconds),
                          "peak": max(kb for _, kb in runs[which]), "size": path.stat().st_size}
    return figures


def libreoffice_profile(folder: Path) -> Path:
    """A throw-away LibreOffice profile that recalculates on load, set up by one conversion, so
    that no case pays for the set-up."""
    profile = make_profile(folder / "profile")
    openpyxl.Workbook().save(folder / "empty.xlsx")
    convert([folder / "empty.xlsx"], folder / "csv", profile, to="csv")
    return profile


def libreoffice_seconds(case: Case, folder: Path, profile: Path) -> float:
    start = time.perf_counter()
    convert([folder / f"{case.name}.xlsx"], folder / "csv", profile, to="csv")
    return time.perf_counter() - start


# ---- the table --------------------------------------------------------------------------------
def percent_more(with_it: float, without: float) -> str:
    return f"{(with_it / without - 1) * 100:+.0f}%"


def rows(inside: dict, processes: dict, libreoffice: float | None) -> dict:
    """Row label -> the figure as printed, for one case."""
    ours, bare = processes["cnnsheet"], processes["bare"]
    return {
        "formulas": f"{inside['formulas']:,}",
        "cnnsheet process, min / median s": f"{ours['min']:.2f} / {ours['median']:.2f}",
        "bare openpyxl process, min / median s": f"{bare['min']:.2f} / {bare['median']:.2f}",
        "ratio cnnsheet / bare, min / median": (f"{ours['min'] / bare['min']:.2f} / "
                                                f"{ours['median'] / bare['median']:.2f}"),
        "peak memory cnnsheet / bare, MB": f"{ours['peak'] / 1024:.0f} / {bare['peak'] / 1024:.0f}",
        "file size cnnsheet / bare, MB": f"{ours['size'] / 1e6:.2f} / {bare['size'] / 1e6:.2f}",
        "in process: build s": f"{inside['build']:.2f}",
        "in process: save s": f"{inside['save']:.2f}",
        "save without cached values s": f"{inside['save uncached']:.2f}",
        "file size without cached values MB": f"{inside['size uncached'] / 1e6:.2f}",
        "cached values cost, time / size": (f"{percent_more(inside['save'], inside['save uncached'])} / "
                                            f"{percent_more(inside['size'], inside['size uncached'])}"),
        "LibreOffice load + recalculate s": "-" if libreoffice is None else f"{libreoffice:.1f}",
    }


def print_table(columns: dict) -> None:
    """columns: case name -> {row label: figure}."""
    labels = list(next(iter(columns.values())))
    label_width = max(map(len, labels))
    widths = {name: max(len(name), *map(len, figures.values())) for name, figures in columns.items()}
    print(" " * label_width + "".join(f"  {name:>{widths[name]}}" for name in columns))
    for label in labels:
        print(f"{label:<{label_width}}" + "".join(f"  {figures[label]:>{widths[name]}}"
                                                  for name, figures in columns.items()))


def header() -> str:
    xml = "lxml" if openpyxl.LXML else "the standard library's XML"
    chooser = threads.choose_blas_threads()  # as `cnnsheet explain` does, for the in-process figures
    return (f"cnnsheet {__version__}, openpyxl {openpyxl.__version__} writing with {xml}, "
            f"Python {platform.python_version()}, {os.cpu_count()} cores, OpenBLAS on "
            f"{threads.blas_threads() or 'its own count of'} thread(s) ({chooser})")


def main():
    print(header(), flush=True)
    columns, ratios = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        profile = libreoffice_profile(folder) if shutil.which("soffice") else None
        for case in CASES:
            print(f"measuring {case.name} ...", file=sys.stderr, flush=True)
            inside = in_process(case, folder)
            gc.collect()  # the walkthrough is gone before the processes run
            processes = whole_processes(case, folder)
            libreoffice = None
            if case.libreoffice and profile is not None:
                libreoffice = libreoffice_seconds(case, folder, profile)
            columns[case.name] = rows(inside, processes, libreoffice)
            ratios[case.name] = processes["cnnsheet"]["median"] / processes["bare"]["median"]
    print_table(columns)
    print(f"ratio cnnsheet / bare openpyxl, whole process, default walkthrough (median): "
          f"{ratios['default']:.2f}")


if __name__ == "__main__":
    main()
