"""Builders of malformed and hostile inputs, and a runner for the command line as a subprocess.

Everything here is made in memory or in a test's folder; nothing binary is committed. The shared
runner starts `python -m cnnsheet` in a folder, optionally under an address-space limit, so that a
missing memory guard fails a test instead of the machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import resource
import stat
import struct
import subprocess
import sys
import unicodedata
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# The address space a guarded run may take: numpy, Pillow, openpyxl and click start in about
# 200 MB, a default walkthrough stays far below 1 GB, and every unguarded hostile input asks for
# more than this.
MEMORY_LIMIT = 3 * 1024**3

# Text that means a Python warning or a crash reached the user.
# An allocation that failed (a MemoryError, or the command line's own safety net for one) means
# a size was not checked before it was allocated: the address-space limit saved the machine.
NOISE = ("Traceback", "Warning:", "RuntimeWarning", "DecompressionBombWarning", "ComplexWarning",
         "UserWarning", "DeprecationWarning", "warnings.warn", "allow_pickle", "MemoryError",
         "Unable to allocate", "Cannot allocate memory", "out of memory", "Out of memory")


# ---- running the command line -------------------------------------------------------------------
def limit_memory() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def child_env(single_thread: bool = True) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    if single_thread:
        # one BLAS thread: many-core CI machines would otherwise reserve address space per thread
        for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = "1"
    return env


def run_cli(args, cwd, *, memory_limit: bool = True, timeout: float = 60.0, file_limit: int | None = None):
    """`python -m cnnsheet ARGS` in `cwd`; stdout and stderr as text. `file_limit` caps the size of
    any file the command writes, as a full disk would (Python ignores SIGXFSZ, so a write past it
    fails with EFBIG)."""
    def limits():
        if memory_limit:
            limit_memory()
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [sys.executable, "-m", "cnnsheet", *[str(a) for a in args]], cwd=cwd,
        stdin=subprocess.DEVNULL, capture_output=True, encoding="utf-8", errors="backslashreplace",
        timeout=timeout, env=child_env(), preexec_fn=limits,
    )


def snapshot(folder: Path) -> dict:
    """Every entry under `folder`: kind, size, mtime, mode and a content hash for files."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            info = path.lstat()
            key = str(path.relative_to(folder))
            if stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[key] = ("file", info.st_size, info.st_mtime_ns, info.st_mode, digest)
            else:
                entries[key] = (stat.S_IFMT(info.st_mode), info.st_mode)
    return entries


def control_characters(text: str) -> list[str]:
    """Control characters other than newline and tab (raw terminal escapes, bells, ...)."""
    return sorted({repr(c) for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"})


# ---- photos ---------------------------------------------------------------------------------------
def random_rgb(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def image_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zeros_zlib(count: int) -> bytes:
    """zlib data of `count` zero bytes, made fast: one block compressed with a full flush (which
    resets the compressor, so its output can be repeated), then the tail and the checksum."""
    block_size = 1 << 22
    blocks, tail = divmod(count, block_size)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(block_size)) + compressor.flush(zlib.Z_FULL_FLUSH)
    finisher = zlib.compressobj(9, zlib.DEFLATED, -15)
    end = finisher.compress(bytes(tail)) + finisher.flush()
    checksum = 1
    zero_block = bytes(block_size)
    for _ in range(blocks):
        checksum = zlib.adler32(zero_block, checksum)
    checksum = zlib.adler32(bytes(tail), checksum)
    return b"\x78\xda" + block * blocks + end + struct.pack(">I", checksum)


def png_of_zeros(width: int, height: int, bit_depth: int = 8, colour_type: int = 0,
                 rows: int | None = None) -> bytes:
    """A PNG of black pixels: a few hundred KB can declare and hold a hundred million pixels.
    `rows` < height gives a file cut short after that many rows."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row_bytes = 1 + width * channels * bit_depth // 8  # filter byte 0, then the samples
    pixels = zeros_zlib(row_bytes * (height if rows is None else rows))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels)
            + png_chunk(b"IEND", b""))


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height (its data is one row)."""
    return png_of_zeros(width, height, rows=1)


def png_with_bad_crc(image: Image.Image) -> bytes:
    data = bytearray(image_bytes(image, "PNG"))
    at = data.index(b"IDAT") + 4 + 10  # a byte inside the compressed pixels
    data[at] ^= 0xFF
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is rewritten to declare width x height."""
    data = bytearray(image_bytes(random_rgb(16, 16), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame declare width x height."""
    data = bytearray(image_bytes(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    at = data.index(b"\x2c")  # image descriptor
    data[at + 5:at + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def animated_gif() -> bytes:
    frames = [random_rgb(24, 24, seed).convert("P") for seed in range(3)]
    return image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def palette_with_transparency() -> bytes:
    image = random_rgb(30, 20).convert("P")
    return image_bytes(image, "PNG", transparency=5)


def exif_block(entries: list[tuple[int, int, int, bytes]], first_ifd: int = 8) -> bytes:
    """An EXIF block (big-endian TIFF) with raw IFD entries (tag, type, count, 4 value bytes)."""
    ifd = struct.pack(">H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\0")[:4]
    ifd += struct.pack(">I", 0)
    return b"Exif\0\0" + b"MM\0*" + struct.pack(">I", first_ifd) + ifd


def jpeg_with_exif(exif: bytes) -> bytes:
    return image_bytes(random_rgb(40, 30), "JPEG", exif=exif)


# ---- model files ------------------------------------------------------------------------------------
def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_header(shape: tuple, dtype: str = "<f8") -> bytes:
    """The header of a .npy file (version 1.0) for an array of `shape` and `dtype`."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False,
                                                  "shape": tuple(shape)})
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_model(path: Path, config, arrays: dict, allow_pickle: bool = False,
                raw_config: bytes | None = None) -> Path:
    """A model file from a config (dict or JSON text) and arrays; objects are pickled if asked."""
    text = config if isinstance(config, str) else json.dumps(config)
    members = {"config.npy": raw_config if raw_config is not None else npy_bytes(np.array(text))}
    for name, value in arrays.items():
        members[f"{name}.npy"] = value if isinstance(value, bytes) else npy_bytes(value, allow_pickle)
    return write_zip(path, members)


def deflated_zeros(count: int, prefix: bytes = b"") -> bytes:
    """Raw deflate data (as in a zip) of `prefix` then `count` zero bytes, made fast like
    zeros_zlib: 4 GiB of zeros take about 4 MB."""
    block_size = 1 << 22
    blocks, tail = divmod(count, block_size)
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    repeat = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = repeat.compress(bytes(block_size)) + repeat.flush(zlib.Z_FULL_FLUSH)
    finisher = zlib.compressobj(9, zlib.DEFLATED, -15)
    return start + block * blocks + finisher.compress(bytes(tail)) + finisher.flush()


def write_raw_zip(path: Path, members: dict[str, tuple[bytes, int, int]]) -> Path:
    """A zip written by hand from members already deflated: name -> (data, crc32, size)."""
    body, directory = bytearray(), bytearray()
    for name, (data, crc, size) in members.items():
        encoded = name.encode()
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), size,
                                 len(encoded), 0, 0, 0, 0, 0, len(body)) + encoded
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), size,
                            len(encoded), 0) + encoded + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))
    return path


def model_with_huge_member(path: Path, config: dict, arrays: dict, member: str, shape: tuple) -> Path:
    """The model file with `member` (a weight or a new name) replaced by a real .npy of zeros of
    `shape` (float64): a few MB on disk that decompress to gigabytes. Its CRC is left wrong, as
    computing the right one would take seconds; a reader that gets that far has already failed."""
    members = {"config": npy_bytes(np.array(json.dumps(config)))}
    members.update({name: npy_bytes(value) for name, value in arrays.items()})
    raw = {}
    for name, data in members.items():
        if f"{name}.npy" != member:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            raw[f"{name}.npy"] = (compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data))
    header = npy_header(shape)
    size = 8 * math.prod(shape)
    raw[member] = (deflated_zeros(size, header), 0, len(header) + size)
    return write_raw_zip(path, raw)


def set_compression_method(path: Path, member: str, method: int) -> None:
    """Claim an unknown compression method for `member` in both of its headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    struct.pack_into("<H", data, info.header_offset + 8, method)
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length] == member.encode():
            struct.pack_into("<H", data, at + 10, method)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


class Payload:
    """Unpickling this creates a file named PWNED in the current folder."""

    def __reduce__(self):
        return (open, ("PWNED", "w"))


def pickled_payload() -> bytes:
    import pickle

    return pickle.dumps(Payload())


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- the model loader: zip records and layer orders ------------------------------------------------
def set_encrypted_flag(path: Path, member: str) -> None:
    """Set bit 0 of `member`'s flags ("encrypted") in both of its headers; the bytes stay plain."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data[info.header_offset + 6] |= 0x1
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length] == member.encode():
            data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def with_zip64_end_record(path: Path) -> None:
    """Rewrite a zip's end as writers that always use ZIP64 do: a ZIP64 end record and its
    locator before the classic end record, whose counts and offsets say 'see ZIP64' (all ones)."""
    data = path.read_bytes()
    at = data.rindex(b"PK\x05\x06")
    entries, size, offset = struct.unpack_from("<HII", data, at + 10)  # count, table size, its offset
    record = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, entries, entries, size, offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, at, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(data[:at] + record + locator + end)


def zip64_model(path: Path, config: dict, arrays: dict) -> Path:
    """A model file as a ZIP64 writer makes it: every member with ZIP64 sizes, a ZIP64 end record."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in {"config": np.array(json.dumps(config)), **arrays}.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                member.write(npy_bytes(np.asarray(value)))
    with_zip64_end_record(path)
    return path
