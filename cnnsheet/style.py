"""How the workbook looks: colours, fonts, cell sizes and number formats, in one place."""

from __future__ import annotations

import numpy as np

from cnnsheet.plan import Scale

BLUE, WHITE, RED = "2166AC", "FFFFFF", "B2182B"
SEQUENTIAL = "E6550D"  # white -> orange for values that cannot be negative
CHANNEL_COLOURS = {"R": "FF0000", "G": "00B000", "B": "0000FF", "grey": "FFFFFF"}
LINK_COLOUR = "0563C1"
INPUT_FILL = "FFF2CC"  # cells a student is invited to change
ZERO_FILL = "D9D9D9"
HOLE_FILL = "F2F2F2"  # a cell a dilated kernel skips: shown, but not used

# Fonts are named, so that no reader depends on a fallback: Calibri is Excel's own (LibreOffice
# substitutes the metric-compatible Carlito); Microsoft YaHei ships with Windows and with Office
# for macOS, and LibreOffice falls back to any installed Chinese font for it.
FONTS = {"en": "Calibri", "zh": "Microsoft YaHei"}

# Cell looks by kind: font size, bold, font colour, fill, centred. A style key is (kind, number
# format); the writer registers each key once.
KINDS = {
    "plain": {"size": 11},
    "number": {"size": 8, "centre": True},
    "value": {"size": 10, "centre": True},
    "pixel": {"size": 8, "color": "808080", "centre": True},  # readable on black and on colour
    "zero": {"size": 8, "color": "7F7F7F", "fill": ZERO_FILL, "centre": True},
    "hole": {"size": 8, "color": "A6A6A6", "fill": HOLE_FILL, "centre": True},
    "heading": {"size": 11, "bold": True},
    "input": {"size": 11, "bold": True, "fill": INPUT_FILL},
    "big": {"size": 14, "bold": True},
    "title": {"size": 14, "bold": True},
    "link": {"size": 11, "color": LINK_COLOUR, "underline": True},
}


# Looks of the highlights that follow a choice (plan.Highlight): a border only, so that the colour
# scale underneath still shows the value. Magenta stands out on black, red, green, blue and white.
# Thin borders only: Excel refuses thicker ones in a conditional format. Each conv layer's choice
# has a colour of its own (magenta, cyan, orange, then again), named in the texts.
HIGHLIGHT_COLOURS = ("FF00FF", "00B0F0", "FF9900")
HIGHLIGHTS = {
    "chosen": {"bold": True},  # the cells a choice reads or makes
    "field": {"bold": False},  # the pixels that can reach it
}


def key(kind: str = "number", fmt: str = "General") -> tuple[str, str]:
    return kind, fmt


# Square cells, (column width in characters, row height in points), sized by rendering a sheet
# in LibreOffice and measuring: a column of width w is about 7.7w + 5.5 pixels there.
TENSOR_CELL = (4.75, 33.0)  # about 44 x 44 pixels
PIXEL_CELL = (3.35, 23.25)  # about 31 x 31 pixels


def pixels_wide(columns: int, width: float) -> float:
    return columns * (7 * width + 5)


def zoom_to_fit(columns: int, width: float, screen_pixels: int = 1400) -> int:
    """A zoom (percent) at which `columns` columns fit a typical screen."""
    return int(max(25, min(100, 100 * screen_pixels / max(1.0, pixels_wide(columns, width)))))


def number_format(values: np.ndarray) -> str:
    """About three significant digits for the largest magnitude of a tensor."""
    largest = float(np.max(np.abs(values))) if np.size(values) else 0.0
    if largest >= 100:
        return "0"
    if largest >= 10:
        return "0.0"
    if largest >= 1:
        return "0.00"
    return "0.000"


def scale_for(values: np.ndarray) -> Scale:
    """Orange for tensors that cannot be negative, blue-white-red for the others."""
    return Scale("sequential") if np.min(values, initial=0) >= 0 else Scale("diverging")


DIVERGING, SEQUENTIAL_SCALE, PROBABILITY = Scale("diverging"), Scale("sequential"), Scale("fixed")


def channel_scale(channel: str) -> Scale:
    """0 black to 255 in the channel's own colour, so the zoomed-out grid looks like the photo."""
    return Scale("channel", channel=channel)
