"""Any photo Pillow opens -> the small square uint8 RGB grid (H, W, 3) that the network sees.

Steps: apply the EXIF orientation; convert to 8-bit RGB (transparency composited over white,
16-bit grey scaled by 1/257); crop the centre square; resize with Pillow's Lanczos filter, which
averages over every source pixel under it when shrinking. A photo already square at the input size
passes through untouched. The pixel count is checked from the file's header before decoding
(budget.MAX_PHOTO_PIXELS), and Pillow's decompression-bomb limit stays in force.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnsheet import budget
from cnnsheet.errors import CnnsheetError

RESAMPLE = Image.Resampling.LANCZOS
WHITE = (255, 255, 255, 255)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ROWS_PER_STEP = 256  # rows of a 16-bit or float picture converted at a time


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, with transparent areas shown as white paper."""
    has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", image.size, WHITE), rgba).convert("RGB")
    if image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        values = np.asarray(image)  # (H, W), as stored: no float copy of a large picture
        wide = image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and values.max(initial=0) > 255)
        grey = np.empty(values.shape, dtype=np.uint8)
        for top in range(0, values.shape[0], ROWS_PER_STEP):
            rows = values[top:top + ROWS_PER_STEP].astype(np.float64)
            if wide:
                rows /= 257.0  # 0-65535 -> 0-255
            grey[top:top + ROWS_PER_STEP] = np.clip(np.rint(rows), 0, 255)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("LAB", "HSV"):  # Pillow has no direct route from these to RGB
        return image.convert("RGB") if image.mode == "HSV" else _lab_to_rgb(image)
    return image.convert("RGB")


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    from PIL import ImageCms

    transform = ImageCms.buildTransform(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )
    return ImageCms.applyTransform(image, transform)


PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type: grey, RGB, palette, grey+alpha, RGBA
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_rows_complete(path, image: Image.Image) -> bool:
    """Whether a PNG's compressed data holds every row its header declares. Pillow fills the rows
    of a stream that ends early with black and says nothing, so they are counted here."""
    with open(path, "rb") as handle:
        handle.seek(8)  # the signature
        header = handle.read(8 + 13)
        if len(header) < 21 or header[4:8] != b"IHDR":
            return False
        width, height, depth, colour, _, _, interlaced = struct.unpack(">IIBBBBB", header[8:21])
        bits = depth * PNG_CHANNELS.get(colour, 4)
        passes = ADAM7 if interlaced else [(0, 0, 1, 1)]
        needed = 0
        for left, top, step_x, step_y in passes:
            columns, rows = -(-(width - left) // step_x), -(-(height - top) // step_y)
            if columns > 0 and rows > 0:
                needed += rows * (1 + -(-columns * bits // 8))  # a filter byte, then the row
        inflater, found = zlib.decompressobj(), 0
        handle.seek(8 + 8 + 13 + 4)  # after IHDR and its checksum
        while found < needed:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return False
            length, kind = struct.unpack(">I4s", chunk)
            data = handle.read(length)
            handle.seek(4, 1)  # the checksum (Pillow has checked it)
            if kind == b"IEND":
                return False
            if kind == b"IDAT":
                try:
                    while data and found < needed:
                        found += len(inflater.decompress(data, PNG_STEP))
                        data = inflater.unconsumed_tail
                except zlib.error:
                    return False
        return True


PNG_STEP = 1 << 20  # bytes inflated at a time when counting a PNG's rows


def square_and_resize(image: Image.Image, size: int) -> Image.Image:
    """Crop the centre square, then resize it to size x size (skipped when already that size)."""
    width, height = image.size
    side = min(width, height)
    if (width, height) != (side, side):
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), RESAMPLE)
    return image


def load_photo(path, size: int) -> np.ndarray:
    """Read a photo as uint8 (size, size, 3); every problem is a CnnsheetError naming the file."""
    return np.asarray(square_and_resize(load_image(path), size), dtype=np.uint8)


def load_image(path) -> Image.Image:
    """Read a photo as an upright 8-bit RGB Pillow image of any size."""
    path = Path(path)
    if not path.exists():
        raise CnnsheetError(f"{path}: no such file")
    if path.is_dir():
        raise CnnsheetError(f"{path}: is a folder, not a photo")
    if not path.is_file():
        raise CnnsheetError(f"{path}: not a regular file (a device, pipe or socket), not a photo")
    if path.stat().st_size == 0:
        raise CnnsheetError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow's warnings about a photo (corrupt EXIF data, odd chunks) change nothing that
            # is read; a decompression bomb is refused, never merely warned about.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                budget.check_photo(path, *image.size)  # from the header: nothing decoded yet
                image.load()
                if image.format == "PNG" and not png_rows_complete(path, image):
                    raise CnnsheetError(f"{path}: damaged or truncated image (rows are missing)")
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
    except CnnsheetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise CnnsheetError(f"{path}: refused as a possible decompression bomb ({error})") from None
    except UnidentifiedImageError:
        raise CnnsheetError(f"{path}: not an image that Pillow can read") from None
    except OSError as error:
        if error.errno is not None:  # the file system's error, not the decoder's
            raise CnnsheetError(f"{path}: cannot be read ({error.strerror})") from None
        raise CnnsheetError(f"{path}: damaged or truncated image ({error})") from None
    except (ValueError, SyntaxError) as error:
        raise CnnsheetError(f"{path}: damaged or truncated image ({error})") from None
    return rgb


@dataclass(frozen=True)
class Occlusion:
    """A grey square laid over the photo: its top-left pixel (row, col, 1-based, as the sheets
    count), its side (0: no square) and its grey level (0-255, in R, G and B alike). The square is
    cut off where it runs past the photo's edge."""

    row: int = 1
    col: int = 1
    size: int = 0
    value: int = 128

    def covered(self, start: int, count: int) -> np.ndarray:
        """1 for each of `count` rows (or columns) that the square starting at `start` covers."""
        index = np.arange(1, count + 1)
        return ((index >= start) & (index < start + self.size)).astype(np.int64)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The uint8 pixels (H, W, 3) with the square painted over: what the network sees."""
        H, W, _ = pixels.shape
        mask = np.outer(self.covered(self.row, H), self.covered(self.col, W)).astype(bool)
        seen = pixels.copy()
        seen[mask] = self.value
        return seen
