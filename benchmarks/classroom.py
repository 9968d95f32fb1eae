"""A teacher's class folder end to end: `cnnsheet train` on 3 classes x 30 phone-sized photos, then
`cnnsheet explain` on one class's 30 photos (a workbook each, one process).

The photos are drawn shapes (cnnsheet.shapes, one class each of circle, square and triangle) on
640 x 480 JPEGs, the paper's edge carried out to the sides, so they are read and shrunk as photos
are. Each command runs as a whole process, start-up included, on the BLAS threads it chooses
itself; printed: its wall and processor seconds (the processor time of the child), and the lines
it printed last (the accuracy and the range the validation line gives). Then the accuracy on 90
new photos of the kind, for the model trained from random weights (the default) and for one
started from the bundled model's learned layers (`--start bundled`), which know drawn shapes.

    python benchmarks/classroom.py
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cnnsheet import shapes, threads
from cnnsheet.modelfile import load_model
from cnnsheet.train import evaluate, read_folder

PHOTOS_PER_CLASS = 30
WIDTH, HEIGHT = 640, 480


def make_class_folder(folder: Path, seed: int = 0) -> None:
    """3 class sub-folders of PHOTOS_PER_CLASS JPEG photos of WIDTH x HEIGHT."""
    rng = np.random.default_rng(seed)
    side = (WIDTH - HEIGHT) // 2
    for kind in shapes.CLASSES:
        (folder / kind).mkdir(parents=True)
        for number in range(PHOTOS_PER_CLASS):
            square = shapes.draw_shape(kind, HEIGHT, rng)  # (480, 480, 3)
            photo = np.pad(square, ((0, 0), (side, side), (0, 0)), mode="edge")  # (480, 640, 3)
            Image.fromarray(photo).save(folder / kind / f"IMG_{number:04d}.jpg", quality=90)


def timed(args: list, cwd: Path) -> tuple[float, float, str]:
    """Wall and processor seconds of `python -m cnnsheet ARGS`, and what it printed."""
    before = os.times()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cnnsheet", *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"cnnsheet {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    processor = sum(getattr(after, part) - getattr(before, part)
                    for part in ("children_user", "children_system"))
    return wall, processor, done.stdout


def main():
    chooser = threads.choose_blas_threads()  # reported only: each command chooses its own
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        make_class_folder(folder / "photos")
        made = time.perf_counter() - start
        print(f"OpenBLAS on {threads.blas_threads() or 'its own count of'} thread(s) ({chooser}); "
              f"made {3 * PHOTOS_PER_CLASS} photos of {WIDTH}x{HEIGHT} in {made:.1f} s")
        wall, processor, out = timed(["train", "photos", "-o", "class.npz"], folder)
        lines = out.strip().splitlines()
        print(f"cnnsheet train photos:          {wall:6.1f} s wall, {processor:6.1f} s processor")
        print("  " + "\n  ".join(lines[-2:]))
        make_class_folder(folder / "new", seed=5)
        new = read_folder(folder / "new", 28)
        timed(["train", "photos", "-o", "bundled.npz", "--start", "bundled"], folder)
        for name, start in (("class.npz", "random weights"), ("bundled.npz", "the bundled model's layers")):
            accuracy = evaluate(load_model(folder / name), new.pixels, new.labels)[1]
            print(f"  on {len(new.labels)} new photos, from {start}: {accuracy:.0%}")
        wall, processor, out = timed(["explain", "photos/circle", "--model", "class.npz", "-o", "books/"],
                                     folder)
        print(f"cnnsheet explain photos/circle: {wall:6.1f} s wall, {processor:6.1f} s processor, "
              f"{len(list((folder / 'books').glob('*.xlsx')))} workbooks")


if __name__ == "__main__":
    main()
