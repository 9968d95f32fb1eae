"""Any photo Pillow opens -> the small square uint8 RGB grid (H, W, 3) that the network sees.

Steps: apply the EXIF orientation; convert to 8-bit RGB (transparency composited over white,
16-bit grey scaled by 1/257); crop the centre square; resize with Pillow's Lanczos filter, which
averages over every source pixel under it when shrinking. A photo already square at the input size
passes through untouched. The pixel count is checked from the file's header before decoding
(budget.MAX_PHOTO_PIXELS), and Pillow's decompression-bomb limit stays in force.

Only the raster formats a photo comes in are opened (FORMATS), recognised by their content, not
their name: Pillow would hand PostScript (.eps) to Ghostscript, a program that can loop forever or
write files, and a downloaded "photo" can be anything. Of an animated or multi-page picture the
first frame is used, and the caller is told so.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnsheet import budget
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_input

# Pillow's names of the formats read, all decoded inside Pillow by its own libraries; a file is
# matched against each format's signature, whatever its extension says.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
SHOWN_FORMATS = "JPEG, PNG, GIF, BMP, WebP or TIFF"
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


def load_photo(path, size: int, notes: list | None = None, quick: bool = False) -> np.ndarray:
    """Read a photo as uint8 (size, size, 3); every problem is a CnnsheetError naming the file.

    quick (training): a large JPEG is decoded at 1/2, 1/4 or 1/8 of its size, never below
    DRAFT_MARGIN times `size` a side. A 3000x4000 phone photo then takes 0.03 s of CPU instead
    of 0.22 s, and its pixels differ from the full decode by 0.4 of 255 on average (measured:
    at most 5), far below what the JPEG itself changes."""
    image = load_image(path, notes, DRAFT_MARGIN * size if quick else None)
    return np.asarray(square_and_resize(image, size), dtype=np.uint8)


DRAFT_MARGIN = 4  # a quick decode keeps 4x the input size: Lanczos then sees as much as the full one


def load_image(path, notes: list | None = None, at_least: int | None = None) -> Image.Image:
    """Read a photo as an upright 8-bit RGB Pillow image of any size. A note for the user (the
    first frame of an animation was used) is appended to `notes`; a JPEG may be decoded smaller,
    both sides still `at_least` pixels (see load_photo)."""
    path = check_input(path, "photo")
    if path.stat().st_size == 0:
        raise CnnsheetError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow's warnings about a photo (corrupt EXIF data, odd chunks) change nothing that
            # is read; a decompression bomb is refused, never merely warned about.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                budget.check_photo(path, *image.size)  # from the header: nothing decoded yet
                frames = getattr(image, "n_frames", 1)
                # a phone's MPO holds the photo and previews or depth maps: the first is the photo
                if frames > 1 and image.format != "MPO" and notes is not None:
                    notes.append(f"{path}: {frames} frames or pages; only the first is used")
                if at_least:
                    image.draft(image.mode, (at_least, at_least))  # only JPEG does anything
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
        raise CnnsheetError(f"{path}: not a photo in a format cnnsheet reads ({SHOWN_FORMATS})") from None
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
