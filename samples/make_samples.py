"""Remake the sample pictures of this folder (run from the repository root).

    python samples/make_samples.py SKIMAGE_DATA_DIR

The drawn shapes are rendered here: marker (or, for the triangle, pencil) strokes with a wobbling
hand on lit, grainy paper,
framed off-centre in a landscape picture as a phone photo would be. The photographs are
scikit-image's public-domain and CC0 sample photos (see README.md), shrunk and saved as JPEG.
"""

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 640, 480
PHOTOS = {"cat.jpg": "chelsea.png", "coffee.jpg": "coffee.png", "astronaut.jpg": "astronaut.png"}


def paper(rng) -> Image.Image:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    light = 235 - 25 * (x / WIDTH) * (y / HEIGHT) - 10 * (y / HEIGHT)
    grain = rng.normal(0, 3, size=(HEIGHT, WIDTH))
    tint = np.array([1.0, 0.99, 0.95])
    pixels = (light + grain)[..., None] * tint
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def wobbly(points, rng, steps=40, bulge=6.0):
    """A closed path through `points`: each stroke bows a little and shakes a little, as by hand."""
    path = []
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        length = math.hypot(x1 - x0, y1 - y0)
        nx, ny = (y0 - y1) / length, (x1 - x0) / length  # the stroke's normal
        bow = rng.normal(0, bulge)
        for t in np.linspace(0, 1, steps, endpoint=False):
            off = bow * math.sin(math.pi * t) + rng.normal(0, 0.6)
            path.append((x0 + (x1 - x0) * t + nx * off, y0 + (y1 - y0) * t + ny * off))
    path.append(path[0])
    return path


def drawing(kind: str, seed: int, ink=(25, 35, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = paper(rng)
    pen = ImageDraw.Draw(image)
    cx, cy, r = WIDTH * 0.52, HEIGHT * 0.5, HEIGHT * 0.33
    if kind == "circle":
        points = [(cx + r * math.cos(a), cy + 0.95 * r * math.sin(a))
                  for a in np.linspace(0, 2 * math.pi, 60, endpoint=False)]
        path = wobbly(points, rng, steps=2, bulge=0.8)
    else:
        corners = 4 if kind == "square" else 3
        turn = 0.3 if kind == "square" else -math.pi / 2
        points = [(cx + r * math.cos(turn + 2 * math.pi * i / corners),
                   cy + r * math.sin(turn + 2 * math.pi * i / corners)) for i in range(corners)]
        path = wobbly(points, rng)
    pen.line(path, fill=ink, width=14, joint="curve")
    return image.filter(ImageFilter.GaussianBlur(1.2))


DESCENT_SIZE = 8  # the pictures of `cnnsheet descent`: 8 x 8 grey, two of each class
DESCENT_CLASSES = ("diagonal", "horizontal", "vertical")


def stroke(kind: str, offset: int, rng) -> np.ndarray:
    """An 8 x 8 grey drawing: a dark stroke two pixels wide on grainy paper, moved by `offset`."""
    paper_grey = np.full((DESCENT_SIZE, DESCENT_SIZE), 225.0) + rng.normal(0, 6, (DESCENT_SIZE, DESCENT_SIZE))
    ink = 40 + rng.normal(0, 8, (DESCENT_SIZE, DESCENT_SIZE))
    line = np.zeros((DESCENT_SIZE, DESCENT_SIZE), dtype=bool)
    if kind == "vertical":
        line[1:7, 2 + offset:4 + offset] = True
    elif kind == "horizontal":
        line[2 + offset:4 + offset, 1:7] = True
    else:
        for i in range(1, 7):
            line[i, max(0, i - 1 + offset):i + 1 + offset] = True
    return np.clip(np.rint(np.where(line, ink, paper_grey)), 0, 255).astype(np.uint8)


def descent_drawings(folder: Path = HERE / "descent") -> None:
    """Six small drawings in class folders, the pictures `cnnsheet descent` learns from."""
    rng = np.random.default_rng(0)
    for kind in DESCENT_CLASSES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for number, offset in enumerate((0, 2), 1):
            Image.fromarray(stroke(kind, offset, rng), "L").save(folder / kind / f"{number}.png")


def main(skimage_data: Path) -> None:
    descent_drawings()
    marker, pencil = (25, 35, 90), (130, 130, 140)
    for seed, (kind, ink) in enumerate([("circle", marker), ("square", marker), ("triangle", pencil)]):
        drawing(kind, seed, ink).save(HERE / f"drawn-{kind}.jpg", quality=85)
    for name, source in PHOTOS.items():
        with Image.open(skimage_data / source) as photo:
            photo = photo.convert("RGB")
            photo.thumbnail((320, 320), Image.Resampling.LANCZOS)
            photo.save(HERE / name, quality=85)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
