"""How the workbook looks: colours, fonts, cell sizes and number formats, in one place."""

from __future__ import annotations

import math

import numpy as np

from cnnsheet.plan import Scale

BLUE, WHITE, RED = "2166AC", "FFFFFF", "B2182B"
SEQUENTIAL = "E6550D"  # white -> orange for values that cannot be negative
CHANNEL_COLOURS = {"R": "FF0000", "G": "00B000", "B": "0000FF", "grey": "FFFFFF"}
# the pixels on paper (the handout): a pale scale from grey to a tint of the channel, under black
# digits that a black-and-white printer keeps readable on every pixel
CHANNEL_COLOURS.update({"paper R": "FFC8C8", "paper G": "C8F0C8", "paper B": "C8C8FF",
                        "paper grey": "FFFFFF"})
CHANNEL_ZERO = {f"paper {channel}": "9A9A9A" for channel in ("R", "G", "B", "grey")}
LINK_COLOUR = "0563C1"
INPUT_FILL = "FFF2CC"  # cells a student is invited to change
INPUT_FRAME = "BF9000"  # the gold frame of every cell a student may change (pixels included)
ZERO_FILL = "D9D9D9"
HOLE_FILL = "F2F2F2"  # a cell a dilated kernel skips: shown, but not used

# Fonts are named, so that no reader depends on a fallback: Calibri is Excel's own (LibreOffice
# substitutes the metric-compatible Carlito); Microsoft YaHei ships with Windows and with Office
# for macOS, and LibreOffice falls back to any installed Chinese font for it.
FONTS = {"en": "Calibri", "zh": "Microsoft YaHei"}

# Cell looks by kind: font size, bold, font colour, fill, centred, framed. A style key is (kind,
# number format); the writer registers each key once. Only cells a student may change are framed,
# and they alone stay unlocked: typing in them works on a protected sheet (plan.SheetPlan.protected).
KINDS = {
    "plain": {"size": 11},
    "prose": {"size": 11, "wrap": True},  # a line of explanation, wrapped within the printed page
    "number": {"size": 9, "centre": True},  # 9 pt: at the print scale of 67% still 6 pt
    "value": {"size": 10, "centre": True},
    # grey digits are readable on black and on colour
    "pixel": {"size": 9, "color": "808080", "centre": True, "frame": INPUT_FRAME, "unlocked": True},
    # a tiny network's grey levels: grey digits vanish on the middle greys, orange ones do not
    "level": {"size": 9, "color": "F07800", "bold": True, "centre": True, "frame": INPUT_FRAME,
              "unlocked": True},
    "zero": {"size": 9, "color": "7F7F7F", "fill": ZERO_FILL, "centre": True},
    "hole": {"size": 9, "color": "A6A6A6", "fill": HOLE_FILL, "centre": True},
    "heading": {"size": 11, "bold": True},
    "heading_prose": {"size": 11, "bold": True, "wrap": True},  # a label wrapped within its printed page
    "input": {"size": 11, "bold": True, "fill": INPUT_FILL, "frame": INPUT_FRAME, "unlocked": True},
    "mirror": {"size": 11, "bold": True, "color": "404040"},  # shows an input, not to be typed in
    "big": {"size": 14, "bold": True},
    "title": {"size": 14, "bold": True},
    "title_prose": {"size": 14, "bold": True, "wrap": True},  # a title wrapped within the printed page
    "link": {"size": 11, "color": LINK_COLOUR, "underline": True},
    "thumb": {"size": 6},  # a cell of a small heat map on the Overview, its digits hidden
    # a worksheet (cnnsheet exercise): the weights may be changed there too; an answer's empty cell;
    # its check, a tick or a cross
    "weight": {"size": 9, "centre": True, "unlocked": True},
    "answer": {"size": 10, "bold": True, "centre": True, "frame": INPUT_FRAME, "unlocked": True},
    "check": {"size": 11, "bold": True, "centre": True},
}


# Looks of the highlights that follow a choice (plan.Highlight): a border only, so that the colour
# scale underneath still shows the value. Magenta stands out on black, red, green, blue and white.
# Thin borders only: Excel refuses thicker ones in a conditional format. Each conv layer's choice
# has a colour of its own (magenta, cyan, orange, then again), named in the texts.
HIGHLIGHT_COLOURS = ("FF00FF", "00B0F0", "FF9900")
HIGHLIGHTS = {
    "chosen": {"bold": True},  # the cells a choice reads or makes
    "field": {"bold": False},  # the pixels that can reach it
    # the grey square on the photo: white, which no pixel grid shows (black to full red, green or
    # blue) and which stands out from the gold frame of the pixels, as the orange did not
    "cover": {"bold": False, "colour": "FFFFFF"},
}


def highlight_colour(look: str, colour: int) -> str:
    """The border colour of a highlight: its look's own, or its choice's."""
    return HIGHLIGHTS[look].get("colour") or HIGHLIGHT_COLOURS[colour % len(HIGHLIGHT_COLOURS)]


def key(kind: str = "number", fmt: str = "General") -> tuple[str, str]:
    return kind, fmt


# Square cells, (column width in characters, row height in points), sized by rendering a sheet
# in LibreOffice and measuring: a column of width w is about 7.7w + 5.5 pixels there.
MARGIN_WIDTH = 2.0  # column A of the sheets of tensors
TENSOR_CELL = (4.75, 33.0)  # about 44 x 44 pixels
PIXEL_CELL = (3.35, 23.25)  # about 31 x 31 pixels
# the narrow columns of the Overview and the rows of its heat maps: 7 x 7 pixels in Excel
THUMB_CELL = (0.6, 5.25)
# the bar chart of the probabilities: (width, height) in cm
CHART_SIZE = (12, 7)


def pixels_wide(columns: int, width: float) -> float:
    return columns * (7 * width + 5)


def zoom_to_fit(columns: int, width: float, screen_pixels: int = 1400) -> int:
    """A zoom (percent) at which `columns` columns fit a typical screen."""
    return int(max(25, min(100, 100 * screen_pixels / max(1.0, pixels_wide(columns, width)))))


TENSOR_CHARACTERS = 6  # what a tensor cell shows at 9 pt in Excel, sign included


def number_format(values) -> str:
    """About three significant digits for the largest magnitude of a tensor, in at most six
    characters: 1234 -> "#,##0", 0.0191 -> "0.0000" (0.019 when some values are negative), whole
    numbers without decimals;
    where that would show fewer than two digits, an exponent: 0.0005 -> "0E+0"."""
    values = np.asarray(values, dtype=float)
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if largest >= 10_000:
        return "0"
    if largest >= 1000:
        return "#,##0"
    if largest >= 100 or (largest >= 1 and np.all(values == np.rint(values))):  # whole: a tiny network
        return "0"
        return "0"
    if largest >= 10:
        return "0.0"
    if largest >= 1 or largest == 0:
        return "0.00"
    sign = 1 if values.min() < 0 else 0
    wanted = 2 - math.floor(math.log10(largest))  # 0.5 -> 3, 0.05 -> 4, 0.005 -> 5
    decimals = min(wanted, TENSOR_CHARACTERS - 2 - sign)
    if largest * 10 ** decimals < 10:
        return "0E+0"
    return "0." + "0" * decimals


# A loss, whatever it becomes live: six decimals read 0.052645, 0.000032 (a confident model) and
# 0.000000 alike, where a format chosen from the first value showed 3.21E-05 or -0.00E+00 later.
# The change of the loss carries its sign.
LOSS = "0.000000"
LOSS_CHANGE = "+0.000000;-0.000000;0"


COUNT = "#,##0"  # parameter counts: 9,248


DIVERGING, SEQUENTIAL_SCALE, PROBABILITY = Scale("diverging"), Scale("sequential"), Scale("fixed")


def channel_scale(channel: str, white: int = 255) -> Scale:
    """0 black to `white` (255, or 9 for a tiny network's grey levels) in the channel's own
    colour, so the zoomed-out grid looks like the photo."""
    return Scale("channel", channel=channel, high=white)
