"""A synthetic dataset of circles, squares and triangles, drawn with Pillow from a seed.

Each picture varies what a photo of a shape drawn on paper varies: filled or outlined, size,
position, rotation, line width, a slightly wobbly hand, ink and paper colours, paper texture and
lighting, blur and JPEG noise. Shapes are drawn at four times the size and shrunk, which smooths
their edges as a camera does. The same seed always gives the same pictures.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cnnsheet.model import LUMA

CLASSES = ["circle", "square", "triangle"]
SUPERSAMPLE = 4


def _contrasting_colours(rng) -> tuple[tuple, tuple]:
    """Paper and ink colours whose brightness differs by at least 70 levels out of 255."""
    while True:
        paper, ink = rng.integers(0, 256, size=(2, 3))
        luma = np.array(LUMA)
        if abs(paper @ luma - ink @ luma) >= 70:
            return tuple(int(v) for v in paper), tuple(int(v) for v in ink)


def _paper(rng, size: int, colour) -> np.ndarray:
    """A background: the paper colour under a lighting gradient and grain. (size, size, 3) float."""
    ramp = np.linspace(-1.0, 1.0, size)
    angle = rng.uniform(0, 2 * math.pi)
    light = (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]) * rng.uniform(0, 40)
    grain = rng.normal(0, rng.uniform(0, 12), size=(size, size, 1))
    return np.asarray(colour, dtype=float) + (light[..., None] + grain)


def _outline(kind: str, rng, centre, radius) -> list[tuple[float, float]] | None:
    """The polygon of a square or triangle, turned and a little wobbly; None for a circle."""
    if kind == "circle":
        return None
    corners = 4 if kind == "square" else 3
    turn = rng.uniform(0, 2 * math.pi)
    points = []
    for index in range(corners):
        angle = turn + 2 * math.pi * index / corners
        r = radius * rng.uniform(0.92, 1.08)
        angle += rng.uniform(-0.06, 0.06)
        points.append((centre[0] + r * math.cos(angle), centre[1] + r * math.sin(angle)))
    return points


def draw_shape(kind: str, size: int, rng) -> np.ndarray:
    """One picture of `kind` as uint8 (size, size, 3)."""
    big = size * SUPERSAMPLE
    paper, ink = _contrasting_colours(rng)
    radius = big * rng.uniform(0.22, 0.42)
    margin = radius * (0.75 if kind == "circle" else 0.85)
    centre = rng.uniform(margin, big - margin, size=2)
    canvas = Image.new("L", (big, big), 0)  # a mask of the ink, 255 where drawn
    pen = ImageDraw.Draw(canvas)
    filled = rng.random() < 0.5
    width = 0 if filled else max(SUPERSAMPLE, int(big * rng.uniform(0.03, 0.09)))
    polygon = _outline(kind, rng, centre, radius)
    if polygon is None:
        squash = rng.uniform(0.85, 1.0)  # a hand-drawn circle is rarely perfect
        rx, ry = (radius, radius * squash) if rng.random() < 0.5 else (radius * squash, radius)
        box = [centre[0] - rx, centre[1] - ry, centre[0] + rx, centre[1] + ry]
        pen.ellipse(box, fill=255 if filled else None, outline=255, width=width or 1)
    elif filled:
        pen.polygon(polygon, fill=255)
    else:
        pen.line([*polygon, polygon[0], polygon[1]], fill=255, width=width, joint="curve")
    mask = np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=float)[..., None] / 255
    background = _paper(rng, size, paper)
    pixels = background * (1 - mask) + np.asarray(ink, dtype=float) * mask
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.8)))
    if rng.random() < 0.7:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(30, 95)))
        image = Image.open(buffer)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def generate(count: int, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` pictures (count, size, size, 3) uint8 and their labels (count,), classes in turn."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A4E5]))
    labels = np.arange(count) % len(CLASSES)
    rng.shuffle(labels)
    pixels = np.stack([draw_shape(CLASSES[label], size, rng) for label in labels]) if count else (
        np.zeros((0, size, size, 3), dtype=np.uint8))
    return pixels, labels
