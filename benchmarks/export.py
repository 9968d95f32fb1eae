"""Building the walkthrough workbook: cnnsheet against bare openpyxl, and LibreOffice's recalculation.

For the default walkthrough and a large one (input 128x128, 8 filters, two conv blocks,
untrained), each with the forward sheets only and with every sheet (backward pass, step,
saliency): formula count; seconds to build and save the workbook; seconds bare openpyxl takes to
write the same formula strings and numbers with no styling; file size; peak Python memory while
building; LibreOffice's time to load the file and recalculate every formula (measured as a
conversion to CSV, which writes only the small overview, start-up included); and its time for
the full round trip that also saves an xlsx. Build times are the fastest of five runs (one for
the large cases). The ratio cnnsheet / bare openpyxl of the full default walkthrough is the
last line.

    python benchmarks/export.py
"""

import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from openpyxl import Workbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from libreoffice import convert, make_profile  # noqa: E402

from cnnsheet import shapes  # noqa: E402
from cnnsheet.images import load_photo  # noqa: E402
from cnnsheet.model import Model, load_model  # noqa: E402
from cnnsheet.resources import default_model_path, default_photo_path  # noqa: E402
from cnnsheet.train import Architecture  # noqa: E402
from cnnsheet.workbook import build_walkthrough, save_atomically  # noqa: E402


def cnnsheet_export(model, pixels, path, backward):
    walkthrough = build_walkthrough(model, pixels, with_backward=backward)
    save_atomically(walkthrough.workbook, path)
    return walkthrough


def bare_export(cells_by_sheet, path):
    """The same values and formula strings, one plain cell at a time, nothing else."""
    book = Workbook(write_only=False)
    book.remove(book.active)
    for title, cells in cells_by_sheet.items():
        ws = book.create_sheet(title)
        for row, col, value in cells:
            ws.cell(row, col, value)
    book.save(path)


def fastest(repeats, work):
    """The shortest of `repeats` timed runs (each after a garbage collection), and its result."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure(label, model, pixels, folder: Path, profile: Path, repeats: int, backward: bool):
    slug = label.replace(",", "").replace(" ", "-")
    ours, bare = folder / f"{slug}.xlsx", folder / f"{slug}-bare.xlsx"
    build, walkthrough = fastest(repeats, lambda: cnnsheet_export(model, pixels, ours, backward))
    cells = {ws.title: [(c.row, c.column, c.value) for row in ws.iter_rows() for c in row
                        if c.value is not None]
             for ws in walkthrough.workbook.worksheets}
    reference, _ = fastest(repeats, lambda: bare_export(cells, bare))

    tracemalloc.start()
    cnnsheet_export(model, pixels, folder / f"{slug}-again.xlsx", backward)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    start = time.perf_counter()
    convert([ours], folder / "csv", profile, to="csv")
    recalculation = time.perf_counter() - start
    start = time.perf_counter()
    convert([ours], folder / "calc", profile)
    round_trip = time.perf_counter() - start
    print(f"{label}: {len(walkthrough.expected):,} formulas in {len(cells)} sheets")
    print(f"  cnnsheet build + save:      {build:7.2f} s")
    print(f"  bare openpyxl, same cells:  {reference:7.2f} s")
    print(f"  file size:                  {ours.stat().st_size / 1e6:7.2f} MB")
    print(f"  peak Python memory:         {peak / 1e6:7.1f} MB")
    print(f"  LibreOffice load + recalculate: {recalculation:7.2f} s")
    print(f"  ... and save as xlsx:         {round_trip:7.2f} s")
    return build / reference


def main():
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        profile = make_profile(folder / "profile")
        large = Model(Architecture(size=128, filters=8, blocks=2).config(shapes.CLASSES)).init(0)
        large_pixels = load_photo(default_photo_path(), 128)
        model = load_model(default_model_path())
        pixels = load_photo(default_photo_path(), model.input_size)
        # warm up LibreOffice's profile once, so that every case pays the same start-up
        cnnsheet_export(model, pixels, folder / "warm.xlsx", False)
        convert([folder / "warm.xlsx"], folder / "warm", profile)
        ratios = {}
        for backward in (False, True):
            which = "every sheet" if backward else "forward sheets"
            ratios["large", backward] = measure(f"large 128x128, two conv blocks, {which}", large,
                                                large_pixels, folder, profile, 1, backward)
            ratios["default", backward] = measure(f"default walkthrough, {which}", model, pixels,
                                                  folder, profile, 5, backward)
        for (case, backward), ratio in sorted(ratios.items()):
            which = "every sheet" if backward else "forward sheets"
            print(f"{case}, {which}: ratio cnnsheet/bare openpyxl {ratio:.2f}")
        print(f"ratio cnnsheet/bare openpyxl: {ratios['default', True]:.2f}")


if __name__ == "__main__":
    main()
