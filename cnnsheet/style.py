"""How the workbook looks: colours, fonts, cell sizes and number formats, in one place."""

from __future__ import annotations

import numpy as np
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.styles import Alignment, Font, NamedStyle, PatternFill

BLUE, WHITE, RED = "2166AC", "FFFFFF", "B2182B"
SEQUENTIAL = "E6550D"  # white -> orange for values that cannot be negative
CHANNEL_COLOURS = {"R": "FF0000", "G": "00B000", "B": "0000FF", "grey": "FFFFFF"}

TITLE = Font(bold=True, size=14)
HEADING = Font(bold=True)
LINK = Font(color="0563C1", underline="single")
NUMBER = Font(size=8)
PIXEL = Font(size=8, color="808080")  # readable on black and on full colour alike
ZERO_FILL = PatternFill("solid", fgColor="D9D9D9")
ZERO_FONT = Font(size=8, color="7F7F7F")
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")  # cells a student is invited to change
CENTRE = Alignment(horizontal="center", vertical="center")

# Cell looks by kind; a workbook registers each (kind, number format) once as a named style,
# which is far cheaper for openpyxl than styling every cell on its own.
KINDS = {
    "number": {"font": NUMBER, "alignment": CENTRE},
    "value": {"font": Font(size=10), "alignment": CENTRE},
    "pixel": {"font": PIXEL, "alignment": CENTRE},
    "zero": {"font": ZERO_FONT, "fill": ZERO_FILL, "alignment": CENTRE},
    "heading": {"font": HEADING},
    "input": {"font": HEADING, "fill": INPUT_FILL},
    "big": {"font": TITLE},
}


def named_style(name: str, kind: str, number_format: str) -> NamedStyle:
    return NamedStyle(name=name, number_format=number_format, **KINDS[kind])


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


def diverging(values: np.ndarray) -> ColorScaleRule:
    """Blue below zero, white at zero, red above; full colour from the 99th percentile of |value|,
    so that one outlier does not wash out every other cell."""
    bound = float(np.percentile(np.abs(values), 99)) if np.size(values) else 0.0
    bound = bound if bound > 0 else 1.0
    return ColorScaleRule(start_type="num", start_value=-bound, start_color=BLUE,
                          mid_type="num", mid_value=0, mid_color=WHITE,
                          end_type="num", end_value=bound, end_color=RED)


def sequential(values: np.ndarray) -> ColorScaleRule:
    """White at zero to orange at the 99th percentile."""
    top = float(np.percentile(values, 99)) if np.size(values) else 0.0
    return ColorScaleRule(start_type="num", start_value=0, start_color=WHITE,
                          end_type="num", end_value=top if top > 0 else 1.0, end_color=SEQUENTIAL)


def channel_scale(channel: str) -> ColorScaleRule:
    """0 black to 255 in the channel's own colour, so the zoomed-out grid looks like the photo."""
    return ColorScaleRule(start_type="num", start_value=0, start_color="000000",
                          end_type="num", end_value=255, end_color=CHANNEL_COLOURS[channel])


def scale_for(values: np.ndarray) -> ColorScaleRule:
    return sequential(values) if np.min(values, initial=0) >= 0 else diverging(values)
