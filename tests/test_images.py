"""Photo input: every Pillow mode to 8-bit RGB, orientation, crop, resize, and named errors."""

import io
import struct
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnsheet.errors import CnnsheetError
from cnnsheet.images import ADAM7, FORMATS, load_image, load_photo


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_an_image_at_the_input_size_passes_through_unchanged(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(28, 28, 3), dtype=np.uint8)
    path = save(Image.fromarray(pixels), tmp_path / "p.png")
    out = load_photo(path, 28)
    assert out.dtype == np.uint8 and out.shape == (28, 28, 3)
    np.testing.assert_array_equal(out, pixels)


def test_the_centre_square_is_kept(tmp_path):
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, 10:20] = 200  # the centre square of a wide image
    pixels[:, :10, 0] = 255  # red on the left, cropped away
    out = load_photo(save(Image.fromarray(pixels), tmp_path / "wide.png"), 10)
    np.testing.assert_array_equal(out, np.full((10, 10, 3), 200))


def test_resizing_averages_a_large_photo_down(tmp_path):
    pixels = np.zeros((280, 280, 3), dtype=np.uint8)
    pixels[:140] = 255  # top half white
    out = load_photo(save(Image.fromarray(pixels), tmp_path / "big.png"), 28)
    assert out.shape == (28, 28, 3)
    # Lanczos rings by a level or two next to a hard edge
    assert out[:12].min() >= 250 and out[16:].max() <= 5


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    pixels[0, :] = 255  # a white top row
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = load_photo(save(image, tmp_path / "o.png", exif=exif), 4)
    assert out[:, -1].min() == 255 and out[:, 0].max() == 0  # the top row is now the right column


def rgba_with_transparent_corner():
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[0, 0, 3] = 0  # fully transparent black pixel -> white paper
    return Image.fromarray(pixels, "RGBA")


def palette_with_transparency():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize("make, fmt, corner, centre", [
    (rgba_with_transparent_corner, "PNG", (255, 255, 255), (0, 0, 0)),
    (lambda: rgba_with_transparent_corner().convert("LA"), "PNG", (255, 255, 255), (0, 0, 0)),
    (palette_with_transparency, "PNG", (255, 255, 255), (0, 0, 255)),
    (lambda: Image.new("L", (4, 4), 77), "PNG", (77, 77, 77), (77, 77, 77)),
    (lambda: Image.new("1", (4, 4), 1), "PNG", (255, 255, 255), (255, 255, 255)),
    (lambda: Image.new("I;16", (4, 4), 65535), "PNG", (255, 255, 255), (255, 255, 255)),
    (lambda: Image.new("I;16", (4, 4), 257 * 100), "PNG", (100, 100, 100), (100, 100, 100)),
    (lambda: Image.new("I", (4, 4), 257 * 10), "TIFF", (10, 10, 10), (10, 10, 10)),
    (lambda: Image.new("F", (4, 4), 12.4), "TIFF", (12, 12, 12), (12, 12, 12)),
    (lambda: Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF", (255, 0, 0), (255, 0, 0)),
    (lambda: Image.new("RGB", (4, 4), (10, 20, 30)), "BMP", (10, 20, 30), (10, 20, 30)),
])
def test_every_mode_becomes_8_bit_rgb(tmp_path, make, fmt, corner, centre):
    path = save(make(), tmp_path / f"m.{fmt.lower()}", format=fmt)
    out = load_photo(path, 4)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert tuple(out[0, 0]) == corner and tuple(out[2, 2]) == centre


def test_a_lossy_jpeg_photo_reads(tmp_path):
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    out = load_photo(save(image, tmp_path / "p.jpg", quality=90), 16)
    assert abs(int(out[8, 8, 0]) - 200) < 6 and out[8, 8, 1] < 40


def written(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "absent.jpg", "no such file"),
    (lambda p: p, "is a folder, not a photo"),
    (lambda p: written(p / "empty.jpg", b""), "the file is empty"),
    (lambda p: written(p / "notes.jpg", b"not a photo"), "not a photo in a format cnnsheet reads"),
])
def test_bad_paths_are_named(tmp_path, setup, message):
    path = setup(tmp_path)
    with pytest.raises(CnnsheetError, match=message) as error:
        load_photo(path, 8)
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_image_is_named(tmp_path, fmt):
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    path = save(Image.fromarray(noise), tmp_path / f"t.{fmt.lower()}", format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CnnsheetError, match="damaged or truncated"):
        load_photo(path, 8)


def test_pillows_decompression_bomb_limit_is_kept(tmp_path, monkeypatch):
    path = save(Image.new("L", (100, 100)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels is over twice the limit
    with pytest.raises(CnnsheetError, match="decompression bomb"):
        load_photo(path, 8)


def png_by_hand(width, height, raw: bytes, interlaced=0) -> bytes:
    """An 8-bit grey PNG whose compressed data is `raw` (filter bytes and rows), complete or not."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, interlaced)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def adam7_rows(grey: np.ndarray) -> bytes:
    raw = b""
    for left, top, step_x, step_y in ADAM7:
        for row in grey[top::step_y, left::step_x]:
            if row.size:
                raw += b"\0" + row.tobytes()
    return raw


@pytest.mark.parametrize("interlaced", [0, 1])
def test_a_png_whose_data_ends_before_its_last_row_is_named(tmp_path, interlaced):
    """Pillow paints the missing rows black without a word; cnnsheet refuses the file."""
    grey = np.arange(13 * 11, dtype=np.uint8).reshape(11, 13)
    raw = adam7_rows(grey) if interlaced else b"".join(b"\0" + row.tobytes() for row in grey)
    whole, short = tmp_path / "whole.png", tmp_path / "short.png"
    whole.write_bytes(png_by_hand(13, 11, raw, interlaced))
    short.write_bytes(png_by_hand(13, 11, raw[:len(raw) // 2], interlaced))
    assert np.array_equal(np.asarray(load_image(whole))[..., 0], grey)
    with pytest.raises(CnnsheetError, match="short.png: damaged or truncated image"):
        load_image(short)


# ---- the formats a photo comes in, by content; nothing else, and never an external program ----
def picture(size=(30, 20), seed=0) -> Image.Image:
    width, height = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


LOSSLESS = {"PNG": {}, "BMP": {}, "TIFF": {}, "WEBP": {"lossless": True}}


@pytest.mark.parametrize("fmt", sorted(LOSSLESS))
def test_each_lossless_format_is_read_by_its_content_whatever_its_name(tmp_path, fmt):
    image = picture()
    path = written(tmp_path / "holiday.photo", encoded(image, fmt, **LOSSLESS[fmt]))
    np.testing.assert_array_equal(np.asarray(load_image(path)), np.asarray(image))


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_jpeg_and_gif_are_read_by_their_content_whatever_their_name(tmp_path, fmt):
    image = picture()
    path = written(tmp_path / "holiday.png", encoded(image, fmt))
    with Image.open(path) as direct:
        expected = np.asarray(direct.convert("RGB"))
    np.testing.assert_array_equal(np.asarray(load_image(path)), expected)


def test_the_allow_list_is_the_six_photo_formats():
    assert set(FORMATS) == {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"}


# PostScript that loops forever when a PostScript interpreter runs it
EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\nshowpage\n"


@pytest.mark.parametrize("name", ["drawing.eps", "photo.jpg"])
def test_postscript_is_refused_without_running_any_program(tmp_path, monkeypatch, name):
    path = written(tmp_path / name, EPS_LOOP)
    with Image.open(path) as unguarded:  # what Pillow does on its own: EPS, to be drawn by Ghostscript
        assert unguarded.format == "EPS"

    def no_program(*args, **kwargs):
        raise AssertionError(f"an external program was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_program)
    with pytest.raises(CnnsheetError, match="not a photo in a format cnnsheet reads") as error:
        load_photo(path, 8)
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize("fmt", ["PCX", "TGA", "ICO", "PPM", "SGI", "QOI", "JPEG2000", "DDS"])
def test_other_formats_pillow_knows_are_refused(tmp_path, fmt):
    path = written(tmp_path / "picture.png", encoded(picture(), fmt))
    with Image.open(path) as unguarded:
        assert unguarded.format == fmt  # Pillow alone would read it
    with pytest.raises(CnnsheetError, match="JPEG, PNG, GIF, BMP, WebP or TIFF"):
        load_photo(path, 8)


MANY_FRAMES = {"GIF": {}, "PNG": {}, "WEBP": {"lossless": True}, "TIFF": {}}


@pytest.mark.parametrize("fmt", sorted(MANY_FRAMES))
def test_of_an_animation_or_pages_the_first_frame_is_used_and_noted(tmp_path, fmt):
    first, second, third = picture(seed=1), picture(seed=2), picture(seed=3)
    data = encoded(first, fmt, save_all=True, append_images=[second, third], **MANY_FRAMES[fmt])
    path = written(tmp_path / f"moving.{fmt.lower()}", data)
    notes = []
    shown = np.asarray(load_image(path, notes))
    with Image.open(path) as direct:
        expected = np.asarray(direct.convert("RGB"))  # frame 0 as Pillow decodes it
    np.testing.assert_array_equal(shown, expected)
    assert notes == [f"{path}: 3 frames or pages; only the first is used"]


def test_a_phones_mpo_photo_is_read_without_a_note(tmp_path):
    """A camera's MPO holds the photo, then a preview or a depth map: the first is the photo."""
    image = picture()
    data = encoded(image, "MPO", save_all=True, append_images=[picture(seed=4)])
    path = written(tmp_path / "phone.jpg", data)
    notes = []
    assert load_image(path, notes).size == image.size
    assert notes == []


def test_a_single_frame_gives_no_note(tmp_path):
    notes = []
    load_image(written(tmp_path / "still.gif", encoded(picture(), "GIF")), notes)
    assert notes == []
