"""Careless and hostile input, run as a user runs it: `python -m cnnsheet ...` in a fresh folder.

Every refusal must be one line on stderr ("Error: ..." naming the file or option and why), a
non-zero exit, no traceback, no Python warning, no raw control character, and the folder must be
exactly as it was: nothing written, nothing replaced. Every case runs under an address-space limit
(hostile_inputs.MEMORY_LIMIT) and a timeout, so a missing guard fails the case, not the machine.
Positive controls at the end: near-misses that must work.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import stat
import tempfile
import tomllib
import tracemalloc
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from helpers import config as make_config
from hostile_inputs import (
    NOISE,
    Payload,
    animated_gif,
    control_characters,
    deep_json,
    exif_block,
    gif_declaring,
    image_bytes,
    jpeg_declaring,
    jpeg_with_exif,
    model_with_huge_member,
    npy_bytes,
    npy_header,
    palette_with_transparency,
    pickled_payload,
    png_chunk,
    png_declaring,
    png_of_zeros,
    png_with_bad_crc,
    random_rgb,
    run_cli,
    set_compression_method,
    set_encrypted_flag,
    snapshot,
    write_model,
    write_zip,
)
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cnnsheet import budget, cli, modelfile, shapes
from cnnsheet.errors import CnnsheetError
from cnnsheet.model import Model
from cnnsheet.resources import templates_dir

# ---- shared inputs ----------------------------------------------------------------------------------
MB = 1024 * 1024
TINY = dict(size=12, blocks=[{"filters": 2, "kernel": 3, "pool": 2}], classes=("a", "b", "c"))
TRAIN_SHAPE = ["--size", "8", "--filters", "2", "--kernel", "3", "--pool", "2", "--hidden", "0",
               "--epochs", "1"]
OLD_BYTES = b"an earlier file that must keep its bytes"


@dataclass
class Assets:
    folder: Path
    config: dict
    arrays: dict


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Assets:
    folder = tmp_path_factory.mktemp("assets")
    model = Model(make_config(**TINY)).init(3)
    modelfile.save(model, folder / "m.npz")
    random_rgb(40, 30).save(folder / "photo.png")
    random_rgb(40, 30, seed=1).save(folder / "photo.jpg", quality=90)
    arrays = {name: value.copy() for name, value in model.params().items()}
    return Assets(folder, model.config, arrays)


class Place:
    """A case's own folder: it copies in what the case needs and builds broken files."""

    def __init__(self, root: Path, assets: Assets):
        self.root, self.assets = root, assets

    def write(self, name: str, data: bytes | str) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return name

    def photo(self, name: str = "photo.png") -> str:
        source = "photo.jpg" if name.endswith((".jpg", ".jpeg")) else "photo.png"
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.assets.folder / source, self.root / name)
        return name

    def model(self, name: str = "m.npz") -> str:
        shutil.copy(self.assets.folder / "m.npz", self.root / name)
        return name

    def old(self, name: str) -> str:
        """An earlier output of the same name: a refusal must leave its bytes alone."""
        return self.write(name, OLD_BYTES)

    def broken_model(self, change: Callable | None = None, name: str = "bad.npz", **options) -> str:
        """The tiny model with `change(config, arrays)` applied (it may return the config as
        JSON text to write verbatim)."""
        config, arrays = copy.deepcopy(self.assets.config), copy.deepcopy(self.assets.arrays)
        text = change(config, arrays) if change else None
        write_model(self.root / name, text if isinstance(text, str) else config, arrays, **options)
        return name

    def templates(self, text: str | bytes, folder: str = "tpl", name: str = "en.toml") -> str:
        self.write(f"{folder}/{name}", text)
        return folder

    def classes(self, *names: str, photos: int = 3, folder: str = "data") -> str:
        for index, class_name in enumerate(names):
            directory = self.root / folder / class_name
            directory.mkdir(parents=True, exist_ok=True)
            for number in range(photos):
                random_rgb(10, 10, seed=10 * index + number).save(directory / f"{number}.png")
        return folder

    # the usual command lines, each with an earlier output that must survive
    def explain(self, photo: str | None = None, *more: str) -> list[str]:
        photo = self.photo() if photo is None else photo
        return ["explain", photo, "--model", self.model(), "-o", self.old("out.xlsx"), *more]

    def predict(self, photo: str | None = None, *more: str) -> list[str]:
        photo = self.photo() if photo is None else photo
        return ["predict", photo, "--model", self.model(), *more]

    def with_model(self, model: str) -> list[str]:
        return ["predict", self.photo(), "--model", model]

    def train(self, *more: str) -> list[str]:
        return ["train", *more, "-o", self.old("out.npz")]


@dataclass
class Case:
    id: str
    build: Callable[[Place], list[str]]
    names: tuple[str, ...]  # the error line names one of these (the file or the option)
    codes: tuple[int, ...] = (1,)  # 2 is click's usage error
    timeout: float = 60.0
    file_limit: int | None = None  # the largest file the command may write (a full disk)


USAGE = (2,)
LONGEST_LINE = 500  # characters of an error line: a typed 4000-digit number is cut, not echoed
ONE_OR_USAGE = (1, 2)


# ---- helpers for the cases ---------------------------------------------------------------------------
def setting(*path_and_value):
    """change(config, arrays) that sets config[k1][k2]... = value."""
    *path, value = path_and_value

    def change(config, arrays):
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def array(name, value):
    def change(config, arrays):
        arrays[name] = value(arrays[name]) if callable(value) else value
    return change


def classes(*names, units=None):
    def change(config, arrays):
        config["classes"] = list(names)
        count = len(names) if units is None else units
        config["layers"][-1]["units"] = count
        arrays["logits.weight"] = np.zeros((count, arrays["logits.weight"].shape[1]))
        arrays["logits.bias"] = np.zeros(count)
    return change


def dropping(name):
    return lambda config, arrays: arrays.pop(name) is None


def many_relus(config, arrays):
    config["layers"][1:2] = [{"type": "relu", "name": f"r{i}"} for i in range(20_000)]


def raw_config(text):
    return lambda config, arrays: text


def huge_member(member: str, shape: tuple):
    """A model whose `member` is a real .npy of 4 GiB of zeros, about 4 MB compressed."""
    def build(p: Place) -> list[str]:
        arrays = {k: v for k, v in p.assets.arrays.items() if f"{k}.npy" != member}
        model_with_huge_member(p.root / "big.npz", p.assets.config, arrays, member, shape)
        return p.with_model("big.npz")
    return build


def many_members(p: Place) -> list[str]:
    members = {f"junk{i}.npy": b"" for i in range(5000)}
    write_zip(p.root / "many.npz", members)
    return p.with_model("many.npz")


def duplicate_config(p: Place) -> list[str]:
    """Two members called config.npy: which one a reader takes is up to the reader."""
    p.broken_model(name="twice.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(p.root / "twice.npz", "a") as archive:
            archive.writestr("config.npy", npy_bytes(np.array(json.dumps({"format": "other"}))))
    return p.with_model("twice.npz")


def unknown_compression(p: Place) -> list[str]:
    p.broken_model(name="odd.npz")
    set_compression_method(p.root / "odd.npz", "conv1.weight.npy", 99)
    return p.with_model("odd.npz")


def foreign_member(name: str):
    def build(p: Place) -> list[str]:
        config, arrays = p.assets.config, p.assets.arrays
        members = {"config.npy": npy_bytes(np.array(json.dumps(config)))}
        members.update({f"{k}.npy": npy_bytes(v) for k, v in arrays.items()})
        members[name] = b"hello"
        write_zip(p.root / "extra.npz", members)
        return p.with_model("extra.npz")
    return build


def fifo(name: str) -> Callable[[Place], str]:
    def make(p: Place) -> str:
        (p.root / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(p.root / name)
        return name
    return make


def en_toml() -> str:
    return (templates_dir() / "en.toml").read_text(encoding="utf-8")


def template(section_key_value: str) -> str:
    """A teacher's en.toml that overrides one key: 'section.key = "value"'."""
    section, rest = section_key_value.split(".", 1)
    return f"[{section}]\n{rest}\n"


def read_only(p: Place) -> list[str]:
    args = p.explain()
    (p.root / "out.xlsx").chmod(0o444)
    return args


def photo_named_xlsx(p: Place) -> list[str]:
    p.photo("pic.xlsx")
    return ["explain", "pic.xlsx", "--model", p.model(), "-o", "pic.xlsx"]


def photo_other_spelling(p: Place) -> list[str]:
    p.photo("pic.xlsx")
    (p.root / "sub").mkdir()
    return ["explain", "pic.xlsx", "--model", p.model(), "-o", "sub/../pic.xlsx"]


def model_named_xlsx(p: Place) -> list[str]:
    p.model("net.xlsx")
    return ["explain", p.photo(), "--model", "net.xlsx", "-o", "net.xlsx"]


def output_fifo(p: Place) -> list[str]:
    fifo("out.xlsx")(p)
    return ["explain", p.photo(), "--model", p.model(), "-o", "out.xlsx"]


def output_device(p: Place) -> list[str]:
    """-o a character device. As root, a missing check would replace the real /dev/null with a
    file, so root gets a private twin of /dev/null in the case's folder instead."""
    if os.geteuid() != 0:
        return explain_to("/dev/null")(p)  # /dev is not writable: the real one is safe
    try:
        os.mknod(p.root / "dev.xlsx", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError:  # no right to make devices here: a pipe is the nearest non-regular file
        os.mkfifo(p.root / "dev.xlsx")
    return explain_to("dev.xlsx")(p)


def symlink_loop(p: Place) -> list[str]:
    os.symlink("loop.jpg", p.root / "loop.jpg")
    return p.predict("loop.jpg")


def zero_width_png() -> bytes:
    header = png_chunk(b"IHDR", b"\0\0\0\0\0\0\0\x10\x08\x02\0\0\0")
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IEND", b"")


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def jpeg() -> bytes:
    return image_bytes(random_rgb(64, 48), "JPEG", quality=90)


def png() -> bytes:
    return image_bytes(random_rgb(64, 48), "PNG")


def class_with_junk(p: Place) -> list[str]:
    data = p.classes("a")
    p.write(f"{data}/b/1.jpg", "not a photo")
    p.write(f"{data}/b/2.png", b"\x89PNG\r\n\x1a\n")
    return p.train(data, *TRAIN_SHAPE)


def class_of_bombs(p: Place) -> list[str]:
    data = p.classes("a")
    p.write(f"{data}/b/huge.png", png_declaring(100_000, 100_000))
    p.write(f"{data}/b/bomb.png", png_of_zeros(10_000, 10_000))
    return p.train(data, *TRAIN_SHAPE)


def hidden_only(p: Place) -> list[str]:
    data = p.classes("a")
    (p.root / data / "b").mkdir()
    random_rgb(10, 10).save(p.root / data / "b" / ".hidden.png")
    return p.train(data, *TRAIN_SHAPE)


def encrypted_member(p: Place) -> list[str]:
    p.broken_model(name="enc.npz")
    set_encrypted_flag(p.root / "enc.npz", "conv1.weight.npy")
    return p.with_model("enc.npz")


def two_relus_after_dense(config, arrays):
    """flatten, dense, relu, relu, dense: the sheets draw one ReLU on a dense layer's sheet."""
    config["layers"][4:4] = [{"type": "dense", "name": "hidden", "units": 2}, {"type": "relu"},
                             {"type": "relu"}]
    arrays["hidden.weight"], arrays["hidden.bias"] = np.zeros((2, 50)), np.zeros(2)
    arrays["logits.weight"] = np.zeros((3, 2))


# ---- the table ---------------------------------------------------------------------------------------
def bad(change=None, **options):
    """The case `predict photo --model bad.npz` for the tiny model changed by `change`."""
    return lambda p: p.with_model(p.broken_model(change, **options))


def teacher(text: str | bytes, *more: str):
    """The case `explain ... --templates tpl` with tpl/en.toml holding `text`."""
    return lambda p: p.explain(None, "--templates", p.templates(text), *more)


def photo(command: str, name: str, data: Callable[[], bytes | str]):
    """The case `explain NAME` or `predict NAME` for a photo file holding data()."""
    return lambda p: getattr(p, command)(p.write(name, data()))


def untrained(*options: str):
    return lambda p: ["explain", "--untrained", "-o", p.old("out.xlsx"), *options]


def made_folder(name: str, then: Callable[[Place], list[str]]):
    def build(p: Place) -> list[str]:
        (p.root / name).mkdir(parents=True)
        return then(p)
    return build


def explain_to(output: str):
    return lambda p: ["explain", p.photo(), "--model", p.model(), "-o", output]


def synthetic(*options: str):
    return lambda p: p.train("--samples", "30", *TRAIN_SHAPE, *options)


def train_on(*class_names: str):
    return lambda p: p.train(p.classes(*class_names), *TRAIN_SHAPE)


OVERFLOW = array("logits.weight", lambda w: np.full_like(w, 1e308))  # scores overflow float64

PHOTOS = [
    Case("photo-missing-predict", lambda p: p.predict("nothing.jpg"), ("nothing.jpg",)),
    Case("photo-missing-explain", lambda p: p.explain("nothing.jpg"), ("nothing.jpg",)),
    Case("photo-is-a-folder", made_folder("album.jpg", lambda p: p.explain("album.jpg")), ("album.jpg",)),
    Case("photo-empty", photo("explain", "empty.jpg", bytes), ("empty.jpg",)),
    Case("photo-truncated-jpeg", photo("explain", "cut.jpg", lambda: half(jpeg())), ("cut.jpg",)),
    Case("photo-truncated-png", photo("predict", "cut.png", lambda: half(png())), ("cut.png",)),
    Case("photo-png-rows-missing", photo("explain", "short.png", lambda: png_of_zeros(400, 400, rows=7)),
         ("short.png",)),
    Case("photo-text-named-jpg", photo("explain", "notes.jpg", lambda: "my notes\n"), ("notes.jpg",)),
    Case("photo-html-named-png", photo("predict", "page.png", lambda: "<html><body>hi</body></html>"),
         ("page.png",)),
    Case("photo-jpeg-magic-then-garbage", photo("predict", "junk.jpg", lambda: b"\xff\xd8\xff" + b"x" * 500),
         ("junk.jpg",)),
    Case("photo-png-bad-crc", photo("explain", "crc.png", lambda: png_with_bad_crc(random_rgb(64, 48))),
         ("crc.png",)),
    Case("photo-png-zero-width", photo("predict", "zero.png", zero_width_png), ("zero.png",)),
    Case("photo-png-declares-10-gigapixels",
         photo("explain", "huge.png", lambda: png_declaring(100_000, 100_000)), ("huge.png",)),
    Case("photo-jpeg-declares-4-gigapixels",
         photo("explain", "huge.jpg", lambda: jpeg_declaring(65_000, 65_000)), ("huge.jpg",)),
    Case("photo-gif-declares-4-gigapixels",
         photo("predict", "huge.gif", lambda: gif_declaring(65_535, 65_535)), ("huge.gif",)),
    # between 1x and 2x Pillow's limit: Pillow only warns, then decodes everything
    Case("photo-bomb-100-megapixels", photo("explain", "bomb.png", lambda: png_of_zeros(10_000, 10_000)),
         ("bomb.png",)),
    Case("photo-bomb-rgba-90-megapixels",
         photo("predict", "bomb.png", lambda: png_of_zeros(9_500, 9_500, colour_type=6)), ("bomb.png",)),
    Case("photo-16-bit-144-megapixels",
         photo("explain", "deep.png", lambda: png_of_zeros(12_000, 12_000, bit_depth=16)), ("deep.png",)),
    Case("photo-fifo", lambda p: p.predict(fifo("pipe.jpg")(p)), ("pipe.jpg",), timeout=20),
    Case("photo-dev-zero", lambda p: p.predict("/dev/zero"), ("/dev/zero",), timeout=20),
    Case("photo-symlink-loop", symlink_loop, ("loop.jpg",)),
    Case("photo-name-not-utf-8-missing", lambda p: p.predict("caf\udce9.png"), ("caf",)),
    Case("photo-name-with-terminal-escape-damaged", photo("explain", "a\x1b[2J.png", lambda: "text"),
         ("a\\x1b[2J.png",)),
    Case("photo-svg", photo("predict", "drawing.svg", lambda: '<svg xmlns="http://www.w3.org/2000/svg"/>'),
         ("drawing.svg",)),
]

MODELS = [
    Case("model-missing", lambda p: p.with_model("absent.npz"), ("absent.npz",)),
    Case("model-name-with-terminal-escape", lambda p: p.with_model("m\x1b]0;title\x07.npz"), ("m\\x1b",)),
    Case("model-is-a-folder", made_folder("m.npz", lambda p: p.with_model("m.npz")), ("m.npz",)),
    Case("model-empty", lambda p: p.with_model(p.write("m.npz", b"")), ("m.npz",)),
    Case("model-text", lambda p: p.with_model(p.write("m.npz", "weights go here\n")), ("m.npz",)),
    Case("model-is-a-jpeg", lambda p: p.with_model(p.write("m.npz", jpeg())), ("m.npz",)),
    Case("model-zip-without-config", lambda p: p.with_model(
        write_zip(p.root / "m.npz", {"conv1.weight.npy": npy_bytes(np.zeros(3))}).name), ("m.npz",)),
    Case("model-zip-with-a-text-member", foreign_member("readme.txt"), ("extra.npz",)),
    Case("model-zip-member-escaping-the-folder", foreign_member("../evil.npy"), ("extra.npz",)),
    Case("model-zip-5000-members", many_members, ("many.npz",)),
    Case("model-zip-config-twice", duplicate_config, ("twice.npz",)),
    Case("model-zip-member-named-with-escapes", foreign_member("\x1b[2J\x1b]0;hi\x07.npy"), ("extra.npz",)),
    Case("model-config-20-mb", bad(setting("notes", "n" * 5_000_000)), ("bad.npz",)),
    Case("model-zip-unknown-compression", unknown_compression, ("odd.npz",)),
    Case("model-config-not-json", bad(raw_config("{not json")), ("bad.npz",)),
    Case("model-config-a-list", bad(raw_config("[1, 2]")), ("bad.npz",)),
    Case("model-config-nested-200000-lists", bad(raw_config(deep_json(200_000))), ("bad.npz",)),
    Case("model-config-nested-100000-objects", bad(raw_config('{"a":' * 100_000 + "1" + "}" * 100_000)),
         ("bad.npz",)),
    Case("model-config-a-number-array", bad(raw_config=npy_bytes(np.arange(4.0))), ("bad.npz",)),
    Case("model-wrong-format", bad(setting("format", "keras")), ("bad.npz",)),
    Case("model-version-2", bad(setting("version", 2)), ("bad.npz",)),
    Case("model-weight-wrong-shape", bad(array("conv1.weight", np.zeros((2, 3, 5, 5)))), ("bad.npz",)),
    Case("model-extra-array", bad(array("conv9.weight", np.zeros(3))), ("bad.npz",)),
    Case("model-missing-array", bad(dropping("logits.bias")), ("bad.npz",)),
    Case("model-nan-weight", bad(array("conv1.weight", lambda w: np.where(w > 0, np.nan, w))), ("bad.npz",)),
    Case("model-inf-bias", bad(array("logits.bias", np.full(3, np.inf))), ("bad.npz",)),
    Case("model-complex-weights", bad(array("conv1.weight", lambda w: w + 1j)), ("bad.npz",)),
    Case("model-bool-weights", bad(array("conv1.bias", np.array([True, False]))), ("bad.npz",)),
    Case("model-text-weights", bad(array("conv1.bias", np.array(["1", "2"]))), ("bad.npz",)),
    # unpickling either of these would create the file PWNED, which the snapshot would catch
    Case("model-pickled-object-array",
         bad(array("conv1.bias", np.array([Payload(), 1], dtype=object)), allow_pickle=True), ("bad.npz",)),
    Case("model-raw-pickle-member", bad(array("conv1.bias", pickled_payload())), ("bad.npz",)),
    Case("model-member-truncated", bad(array("logits.weight", npy_header((3, 50)) + bytes(100))),
         ("bad.npz",)),
    Case("model-weights-overflow-float64", bad(OVERFLOW),
         ("bad.npz",)),
    Case("model-weights-overflow-explain", lambda p: [
        "explain", p.photo(), "--model", p.broken_model(OVERFLOW),
        "-o", p.old("out.xlsx")], ("bad.npz",)),
    Case("model-weights-overflow-json", lambda p: [*p.with_model(p.broken_model(OVERFLOW)), "--json"],
         ("bad.npz",)),
    Case("model-declares-20000-pixel-input", bad(setting("input", "size", 20_000)), ("bad.npz",)),
    Case("model-input-size-1e400", bad(lambda c, a: json.dumps(c).replace('"size": 12', '"size": 1e400')),
         ("bad.npz",)),
    Case("model-input-size-true", bad(setting("input", "size", True)), ("bad.npz",)),
    Case("model-a-million-hidden-units", bad(lambda c, a: c["layers"].insert(
        -1, {"type": "dense", "name": "wide", "units": 1_000_000})), ("bad.npz",)),
    Case("model-100000-filters", bad(setting("layers", 0, "filters", 100_000)), ("bad.npz",)),
    Case("model-20000-layers", bad(many_relus), ("bad.npz",)),
    Case("model-member-declares-4-gib-unknown", huge_member("junk.npy", (536_870_000,)), ("big.npz",)),
    Case("model-member-declares-4-gib-known", huge_member("logits.weight.npy", (3, 178_956_000)),
         ("big.npz",)),
    Case("model-class-with-terminal-escape", bad(classes("a\x1b[31m", "b", "c")), ("bad.npz",)),
    Case("model-class-with-newline", bad(classes("a\nb", "b", "c")), ("bad.npz",)),
    Case("model-class-with-xml-illegal-char", bad(classes("a\x01", "b", "c")), ("bad.npz",)),
    Case("model-class-bidi-override", bad(classes("a\u202e", "b", "c")), ("bad.npz",)),
    Case("model-class-empty", bad(classes("", "b", "c")), ("bad.npz",)),
    Case("model-class-blank", bad(classes("   ", "b", "c")), ("bad.npz",)),
    Case("model-class-duplicate", bad(classes("a", "a", "c")), ("bad.npz",)),
    Case("model-class-not-text", bad(setting("classes", [1, 2, 3])), ("bad.npz",)),
    Case("model-class-only-one", bad(classes("a")), ("bad.npz",)),
    Case("model-class-10000-characters", bad(classes("x" * 10_000, "b", "c")), ("bad.npz",)),
    Case("model-last-layer-units-mismatch", bad(classes("a", "b", "c", units=4)), ("bad.npz",)),
    Case("model-unknown-layer-type", bad(setting("layers", 1, "type", "gelu")), ("bad.npz",)),
    Case("model-kernel-larger-than-input", bad(setting("layers", 0, "kernel", 13)), ("bad.npz",)),
    Case("model-std-zero", bad(setting("input", "std", [0, 1, 1])), ("bad.npz",)),
    Case("model-mean-nan", bad(lambda c, a: json.dumps(c).replace('"mean": [0.5', '"mean": [NaN')),
         ("bad.npz",)),
    # the model loader: numbers, types and flags Python reads its own way, and layer orders
    Case("model-config-5000-digit-integer",
         bad(lambda c, a: json.dumps(c).replace('"size": 12', '"size": 1' + "0" * 5000)), ("bad.npz",)),
    Case("model-config-4000-digit-filters",
         bad(lambda c, a: json.dumps(c).replace('"filters": 2', '"filters": 1' + "0" * 4000)), ("bad.npz",)),
    Case("model-layer-type-a-list", bad(setting("layers", 1, "type", ["relu"])), ("bad.npz",)),
    Case("model-layer-type-an-object", bad(setting("layers", 1, "type", {"relu": 1})), ("bad.npz",)),
    Case("model-channels-true", bad(setting("input", "channels", True)), ("bad.npz",)),
    Case("model-channels-3.0", bad(setting("input", "channels", 3.0)), ("bad.npz",)),
    Case("model-channels-1.0-no-mean", bad(lambda c, a: c.update(input={"size": 12, "channels": 1.0})),
         ("bad.npz",)),
    Case("model-zip-member-encrypted", encrypted_member, ("enc.npz",)),
    Case("model-relu-after-flatten", bad(lambda c, a: c["layers"].insert(4, {"type": "relu"})), ("bad.npz",)),
    Case("model-two-relus-after-dense", bad(two_relus_after_dense), ("bad.npz",)),
    Case("model-pool-after-flatten",
         bad(lambda c, a: c["layers"].insert(4, {"type": "maxpool", "size": 1})), ("bad.npz",)),
    Case("model-class-names-differ-only-by-case", bad(classes("cat", "Cat", "dog")), ("bad.npz",)),
    Case("train-class-names-differ-only-by-case", train_on("cat", "dog", "CAT"), ("data",)),
]


TEMPLATES = [
    Case("templates-folder-missing", lambda p: p.explain(None, "--templates", "nowhere"), ("nowhere",)),
    Case("templates-no-en-toml", lambda p: p.explain(None, "--templates", p.templates("", name="fr.toml")),
         ("tpl",)),
    Case("templates-no-zh-toml", teacher("", "--lang", "zh"), ("tpl",)),
    Case("templates-en-toml-is-a-folder",
         made_folder("tpl/en.toml", lambda p: p.explain(None, "--templates", "tpl")), ("tpl",)),
    Case("templates-en-toml-is-a-fifo",
         lambda p: fifo("tpl/en.toml")(p) and p.explain(None, "--templates", "tpl"), ("tpl",), timeout=20),
    Case("templates-folder-name-with-terminal-escape", lambda p: p.explain(None, "--templates", "no\x1b[2J"),
         ("--templates",)),
    Case("templates-not-utf-8", teacher('[labels]\nbias = "caf\xe9"\n'.encode("latin-1")), ("en.toml",)),
    Case("templates-utf-16", teacher('[labels]\nbias = "b"\n'.encode("utf-16")), ("en.toml",)),
    Case("templates-invalid-toml", teacher("[labels\nbias = "), ("en.toml",)),
    Case("templates-number-value", teacher("[labels]\nbias = 3\n"), ("en.toml",)),
    Case("templates-key-outside-a-section", teacher('bias = "b"\n'), ("en.toml",)),
    Case("templates-unknown-placeholder", teacher(template('filters.title = "{nope}"')), ("en.toml",)),
    Case("templates-attribute-placeholder", teacher(template('overview.title = "{photo.__class__}"')),
         ("en.toml",)),
    Case("templates-globals-placeholder",
         teacher(template('overview.title = "{photo.__class__.__init__.__globals__}"')), ("en.toml",)),
    Case("templates-index-placeholder", teacher(template('overview.title = "{photo[0]}"')), ("en.toml",)),
    Case("templates-positional-placeholder", teacher(template('overview.title = "{0}"')), ("en.toml",)),
    Case("templates-unbalanced-brace", teacher(template('overview.title = "a { b"')), ("en.toml",)),
    # a format spec that pads to two billion characters
    Case("templates-format-spec-bomb", teacher(template('image.title = "{size:>2000000000}"')), ("en.toml",)),
    Case("templates-xml-illegal-character", teacher(template('labels.bias = "bias\\u0001"')), ("en.toml",)),
    Case("templates-escape-character", teacher(template('labels.bias = "\\u001b[2J"')), ("en.toml",)),
    Case("templates-longer-than-a-cell", teacher(template(f'labels.bias = "{"x" * 40_000}"')), ("en.toml",)),
]

OUTPUTS = [
    Case("output-is-the-photo", explain_to("photo.png"), ("photo.png",)),
    Case("output-is-the-photo-named-xlsx", photo_named_xlsx, ("pic.xlsx",)),
    Case("output-is-the-photo-spelled-differently", photo_other_spelling, ("pic.xlsx",)),
    Case("output-is-the-model", explain_to("m.npz"), ("m.npz",)),
    Case("output-is-the-model-named-xlsx", model_named_xlsx, ("net.xlsx",)),
    Case("output-is-a-folder", made_folder("book.xlsx", explain_to("book.xlsx")), ("book.xlsx",)),
    Case("output-is-dot", explain_to("."), ("-o", "'.'")),
    Case("output-is-empty", explain_to(""), ("-o", "--output"), ONE_OR_USAGE),
    Case("output-is-a-device", output_device, ("dev.xlsx", "/dev/null")),
    Case("output-is-a-fifo", output_fifo, ("out.xlsx",), timeout=20),
    Case("output-is-read-only", read_only, ("out.xlsx",)),
    Case("output-folder-missing", explain_to("no/out.xlsx"), ("no/out.xlsx", "no")),
    Case("output-csv-for-explain", lambda p: p.explain()[:-1] + [p.old("out.csv")], ("out.csv",)),
    Case("output-no-extension", lambda p: p.explain()[:-1] + [p.old("out")], ("out",)),
    Case("output-xlsx-for-train", lambda p: ["train", "--samples", "30", *TRAIN_SHAPE, "-o", p.old("m.xlsx")],
         ("m.xlsx",)),
    Case("output-folder-for-train",
         made_folder("m.npz", lambda p: ["train", "--samples", "30", *TRAIN_SHAPE, "-o", "m.npz"]),
         ("m.npz",)),
    Case("output-disk-full-explain", lambda p: p.explain(), ("out.xlsx",), file_limit=20_000),
    Case("output-disk-full-train", synthetic(), ("out.npz",), file_limit=4_000),
    Case("output-name-not-utf-8-folder-missing", explain_to("nowhere\udce9/out.xlsx"), ("nowhere",)),
    Case("output-name-too-long", lambda p: p.explain()[:-1] + ["y" * 300 + ".xlsx"], ("yyyyyyyyyy",)),
]

FOLDERS = [
    Case("train-folder-missing", lambda p: p.train("nowhere", *TRAIN_SHAPE), ("nowhere",)),
    Case("train-folder-is-a-file", lambda p: p.train(p.photo(), *TRAIN_SHAPE), ("photo.png",)),
    Case("train-folder-empty", made_folder("data", lambda p: p.train("data", *TRAIN_SHAPE)), ("data",)),
    Case("train-one-class", train_on("a"), ("data",)),
    Case("train-empty-class", lambda p: made_folder("data/b", train_on("a"))(p), ("data",)),
    Case("train-class-of-hidden-files", hidden_only, ("data",)),
    Case("train-class-of-unreadable-files", class_with_junk, ("data",)),
    Case("train-class-of-bombs", class_of_bombs, ("data",)),
    Case("train-class-name-terminal-escape", train_on("a\x1b[2J", "b"), ("data",)),
    Case("train-class-name-newline", train_on("a\nb", "b"), ("data",)),
    Case("train-class-name-blank", train_on("   ", "b"), ("data",)),
    Case("train-class-name-150-characters", train_on("c" * 150, "b"), ("data",)),
    Case("train-start-empty", lambda p: p.train(p.classes("a", "b"), *TRAIN_SHAPE, "--start", ""),
         ("--start",)),
    Case("train-start-a-photo", lambda p: p.train(p.classes("a", "b"), *TRAIN_SHAPE, "--start", p.photo()),
         ("photo.png",)),
    Case("train-start-bundled-other-layers",
         lambda p: p.train(p.classes("a", "b"), *TRAIN_SHAPE, "--start", "bundled"), ("--start",)),
]

OPTIONS = [
    Case("option-label-swallows-an-option", lambda p: p.explain(None, "--label", "--pdf", p.old("q.pdf")),
         ("--label",), USAGE),
    Case("option-pdf-swallows-an-option", lambda p: p.explain()[:-2] + ["--pdf", "-o", p.old("out.xlsx")],
         ("--pdf",), USAGE),
    Case("option-untrained-with-model", lambda p: untrained("--model", p.model())(p),
         ("--untrained", "--model"), ONE_OR_USAGE),
    Case("option-shape-without-untrained", lambda p: p.explain(None, "--size", "32"), ("--size",),
         ONE_OR_USAGE),
    Case("option-label-not-a-class-explain", lambda p: p.explain(None, "--label", "zebra"), ("zebra",),
         ONE_OR_USAGE),
    Case("option-label-not-a-class-predict", lambda p: p.predict(None, "--label", "zebra", "--json"),
         ("zebra",), ONE_OR_USAGE),
    Case("option-label-empty", lambda p: p.predict(None, "--label", ""), ("--label",), ONE_OR_USAGE),
    Case("option-size-3", untrained("--size", "3"), ("--size",), USAGE),
    Case("option-size-513", untrained("--size", "513"), ("--size",), USAGE),
    Case("option-lang-xx", lambda p: p.explain(None, "--lang", "xx"), ("--lang",), USAGE),
    Case("option-unknown", lambda p: p.explain(None, "--colour"), ("--colour",), USAGE),
    # two photos make two workbooks, which one workbook file cannot hold
    Case("option-two-photos-one-workbook", lambda p: p.explain(None, p.photo("second.png")), ("out.xlsx",)),
    Case("option-seed-negative", untrained("--seed", "-1"), ("--seed",), USAGE),
    Case("option-epochs-0", lambda p: p.train("--epochs", "0"), ("--epochs",), USAGE),
    Case("option-kernel-larger-than-input", untrained(*"--size 4 --kernel 15".split()),
         ("--kernel", "--size", "kernel"), ONE_OR_USAGE),
    # the three networks that ate the machine, and the largest the options allow
    Case("option-untrained-11-gb", untrained(*"--size 128 --filters 32 --kernel 3 --padding 8 --pool 1 "
                                              "--hidden 512 --forward-only".split()), ("--",)),
    Case("option-untrained-36-gib", untrained(*"--size 384 --filters 64 --kernel 1 --pool 1 "
                                               "--hidden 512".split()), ("--",)),
    Case("option-untrained-largest", untrained(*"--size 512 --filters 64 --kernel 1 --pool 1 --hidden 512 "
                                                "--blocks 3 --padding 8".split()), ("--",)),
    Case("option-train-size-512", lambda p: p.train("--size", "512"), ("--size", "--samples")),
    Case("option-train-a-billion-samples", lambda p: p.train("--samples", "1000000000"), ("--samples",)),
    # few weights, but one picture's pass takes about 280 MB: a batch of them does not fit
    Case("option-train-batch-too-large", lambda p: p.train(
        *"--samples 30 --size 256 --filters 64 --pool 8 --hidden 0 --batch-size 4096".split()),
         ("--batch-size",)),
    Case("option-lr-1e300", lambda p: p.train("--samples", "60", "--epochs", "2", "--lr", "1e300"), ("--lr",),
         ONE_OR_USAGE),
    Case("option-lr-inf", synthetic("--lr", "inf"), ("--lr",), ONE_OR_USAGE),
    Case("option-lr-nan", synthetic("--lr", "nan"), ("--lr",), ONE_OR_USAGE),
    Case("option-momentum-nan", synthetic("--momentum", "nan"), ("--momentum",), ONE_OR_USAGE),
    Case("option-weight-decay-inf", synthetic("--weight-decay", "inf"), ("--weight-decay",), ONE_OR_USAGE),
    Case("option-val-split-nan", synthetic("--val-split", "nan"), ("--val-split",), ONE_OR_USAGE),
    Case("option-val-split-leaves-nothing", synthetic("--val-split", "0.99"), ("--val-split",), ONE_OR_USAGE),
]


# ---- inputs and the environment (issue 16): formats that run programs, paths, links, options --------
EPS_LOOP = "%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\nshowpage\n"
EPS_WRITES = "%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(PWNED) (w) file closefile\nshowpage\n"
LONG_NAME = "n" * 300  # one name past the 255 bytes a file system takes
DEEP_PATH = "d/" * 2100 + "photo.png"  # 4,209 characters: past the 4,096 of a whole path


def symlink(target: str, name: str) -> Callable[[Place], str]:
    def make(p: Place) -> str:
        (p.root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p.root / name)
        return name
    return make


def other_format(fmt: str) -> Callable[[], bytes]:
    return lambda: image_bytes(random_rgb(20, 20), fmt)


def train_into(output: str, *links: tuple[str, str]):
    """`train data -o OUTPUT`, the classes a and b, with symbolic links (target, name) made first."""
    def build(p: Place) -> list[str]:
        data = p.classes("a", "b")
        for target, name in links:
            symlink(target, name)(p)
        return ["train", data, *TRAIN_SHAPE, "-o", p.old(output)]
    return build


def train_with_links(*links: tuple[str, str]):
    def build(p: Place) -> list[str]:
        data = p.classes("a", "b")
        for target, name in links:
            symlink(target, name)(p)
        return p.train(data, *TRAIN_SHAPE)
    return build


def outside_class(p: Place) -> list[str]:
    p.classes("x", folder="elsewhere")
    return train_into("elsewhere/x/out.npz", ("../elsewhere/x", "data/c"))(p)


def class_of_postscript(p: Place) -> list[str]:
    data = p.classes("a")
    p.write(f"{data}/b/loop.jpg", EPS_LOOP)
    p.write(f"{data}/b/writes.eps", EPS_WRITES)
    return p.train(data, *TRAIN_SHAPE)


def explain_with_model(model: str):
    return lambda p: ["explain", p.photo(), "--model", model, "-o", p.old("out.xlsx")]


INPUTS = [
    Case("input-photo-postscript-that-loops", photo("predict", "loop.jpg", lambda: EPS_LOOP), ("loop.jpg",),
         timeout=30),
    Case("input-photo-postscript-that-writes-a-file", photo("explain", "art.eps", lambda: EPS_WRITES),
         ("art.eps",), timeout=30),
    Case("input-photo-pcx", photo("predict", "old.png", other_format("PCX")), ("old.png",)),
    Case("input-photo-icon", photo("explain", "icon.jpg", other_format("ICO")), ("icon.jpg",)),
    Case("input-photo-jpeg-2000", photo("predict", "scan.jpg", other_format("JPEG2000")), ("scan.jpg",)),
    Case("input-photo-targa", photo("predict", "game.png", other_format("TGA")), ("game.png",)),
    Case("input-photo-sgi", photo("explain", "render.jpg", other_format("SGI")), ("render.jpg",)),
    Case("input-photo-name-too-long-predict", lambda p: p.predict(LONG_NAME + ".png"), ("nnnnnnnnnn",)),
    Case("input-photo-name-too-long-explain", lambda p: p.explain(LONG_NAME + ".jpg"), ("nnnnnnnnnn",)),
    Case("input-photo-path-too-long", lambda p: p.predict(DEEP_PATH), ("d/d/d/",)),
    Case("input-photo-through-a-file", lambda p: p.predict(p.photo() + "/inside.png"), ("inside.png",)),
    Case("input-photo-empty-name", lambda p: p.predict(""), ("PHOTO",), USAGE),
    Case("input-photo-link-to-dev-zero", lambda p: p.predict(symlink("/dev/zero", "zero.png")(p)),
         ("zero.png",), timeout=20),
    Case("input-model-empty-name", lambda p: p.with_model(""), ("--model",), USAGE),
    Case("input-model-empty-name-explain", explain_with_model(""), ("--model",), USAGE),
    Case("input-model-name-too-long", lambda p: p.with_model(LONG_NAME + ".npz"), ("nnnnnnnnnn",)),
    Case("input-model-is-a-fifo", lambda p: p.with_model(fifo("pipe.npz")(p)), ("pipe.npz",), timeout=20),
    Case("input-model-dev-zero-explain", explain_with_model("/dev/zero"), ("/dev/zero",), timeout=20),
    Case("input-model-symlink-loop", lambda p: p.with_model(symlink("loop.npz", "loop.npz")(p)),
         ("loop.npz",)),
    Case("input-templates-empty-name", lambda p: p.explain(None, "--templates", ""), ("--templates",), USAGE),
    Case("input-templates-name-too-long", lambda p: p.explain(None, "--templates", LONG_NAME),
         ("nnnnnnnnnn",)),
    Case("input-templates-en-toml-link-to-dev-zero",
         lambda p: symlink("/dev/zero", "tpl/en.toml")(p) and p.explain(None, "--templates", "tpl"),
         ("tpl/en.toml",), timeout=20),
    Case("input-templates-en-toml-symlink-loop",
         lambda p: symlink("en.toml", "tpl/en.toml")(p) and p.explain(None, "--templates", "tpl"),
         ("tpl/en.toml",)),
    Case("input-train-folder-empty-name", lambda p: p.train("", *TRAIN_SHAPE), ("DATA_DIR",), USAGE),
    Case("input-train-folder-name-too-long", lambda p: p.train(LONG_NAME, *TRAIN_SHAPE), ("nnnnnnnnnn",)),
    Case("input-train-folder-is-a-fifo", lambda p: p.train(fifo("data")(p), *TRAIN_SHAPE), ("data",)),
    Case("input-train-output-inside-a-class", train_into("data/a/model.npz"), ("data/a",)),
    Case("input-train-output-replaces-a-training-file", train_into("data/b/0.npz"), ("data/b",)),
    Case("input-train-output-inside-a-linked-class", outside_class, ("elsewhere/x", "data/c")),
    Case("input-train-class-linked-to-the-data-folder", train_with_links(("..", "data/all")), ("data/all",)),
    Case("input-train-class-linked-to-another-class", train_with_links(("a", "data/c")), ("data/c",)),
    Case("input-train-class-of-postscript", class_of_postscript, ("data",), timeout=60),
    Case("input-seed-without-untrained", lambda p: p.explain(None, "--seed", "7"), ("--seed",)),
    Case("input-weight-decay-1e308", synthetic("--weight-decay", "1e308"), ("--weight-decay",), USAGE),
    Case("input-size-4000-digits", untrained("--size", "9" * 4000), ("--size",), USAGE),
    Case("input-seed-5000-digits", untrained("--seed", "7" * 5000), ("--seed",), USAGE),
    Case("input-samples-4000-digits", synthetic("--samples", "8" * 4000), ("--samples",), USAGE),
    Case("input-lr-5000-digits", synthetic("--lr", "1" * 5000), ("--lr",), USAGE),
    Case("input-batch-size-500-digits", synthetic("--batch-size", "3" * 500), ("--batch-size",), USAGE),
    Case("input-epochs-4500-digits", synthetic("--epochs", "2" * 4500), ("--epochs",), USAGE),
]

CASES = PHOTOS + MODELS + TEMPLATES + OUTPUTS + FOLDERS + OPTIONS + INPUTS


def check_refusal(case: Case, result, before: dict, after: dict) -> None:
    out = result.stdout + result.stderr
    shown = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode in case.codes, shown
    for noise in NOISE:
        assert noise not in out, f"{noise!r} reached the user\n{shown}"
    assert not control_characters(out), f"raw control characters {control_characters(out)}\n{shown}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode == 2:  # click's usage errors add these two lines
        lines = [line for line in lines if not line.startswith(("Usage: ", "Try '"))]
    assert len(lines) == 1, f"expected one error line on stderr\n{shown}"
    line = lines[0]
    assert len(line) <= LONGEST_LINE, f"a line of {len(line):,} characters\n{shown[:2000]}"
    assert line.startswith("Error: "), shown
    assert not [x for x in result.stdout.splitlines() if "error" in x.lower()], shown
    named = [name for name in case.names if name in line]
    assert named, f"the error does not name any of {case.names}\n{shown}"
    reason = line[len("Error: "):].replace(named[0], "").strip(" :'\"")
    assert len(reason) >= 10, f"no reason given\n{shown}"
    assert after == before, f"the folder changed: {sorted(set(after.items()) ^ set(before.items()))}\n{shown}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input_is_refused_in_one_line(case, assets, tmp_path):
    args = case.build(Place(tmp_path, assets))
    before = snapshot(tmp_path)
    null_was_a_device = stat.S_ISCHR(os.stat("/dev/null").st_mode)
    result = run_cli(args, tmp_path, timeout=case.timeout, file_limit=case.file_limit)
    after = snapshot(tmp_path)
    check_refusal(case, result, before, after)
    if null_was_a_device:
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null was replaced"


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) >= 70
    assert len({case.id for case in CASES}) == len(CASES)


# ---- positive controls: near misses that must work ------------------------------------------------------
def check_success(result) -> None:
    out = result.stdout + result.stderr
    shown = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, shown
    for noise in NOISE:
        assert noise not in out, f"{noise!r} reached the user\n{shown}"
    assert not control_characters(out), shown


def no_temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def exif_orientation(kind: int, count: int, value: bytes) -> bytes:
    return jpeg_with_exif(exif_block([(0x0112, kind, count, value)]))


ODD_PHOTOS = {
    "cmyk.jpg": lambda: image_bytes(random_rgb(40, 30).convert("CMYK"), "JPEG"),
    "palette-transparency.png": palette_with_transparency,
    "animated.gif": animated_gif,
    "one-pixel.png": lambda: image_bytes(random_rgb(1, 1), "PNG"),
    "strip.png": lambda: image_bytes(random_rgb(3000, 1), "PNG"),
    "grey-16-bit.png": lambda: png_of_zeros(50, 40, bit_depth=16),
    "grey-alpha.png": lambda: image_bytes(random_rgb(30, 30).convert("LA"), "PNG"),
    "one-bit.png": lambda: image_bytes(random_rgb(30, 30).convert("1"), "PNG"),
    "exif-orientation-9.jpg": lambda: exif_orientation(3, 1, b"\0\x09"),
    "exif-orientation-text.jpg": lambda: exif_orientation(2, 4, b"abc\0"),
    "exif-orientation-two-values.jpg": lambda: exif_orientation(3, 2, b"\0\x06\0\x03"),
    "exif-garbage.jpg": lambda: jpeg_with_exif(b"Exif\0\0garbage-garbage-garbage"),
    "exif-offset-past-the-end.jpg": lambda: jpeg_with_exif(exif_block([(0x0112, 3, 1, b"\0\x06")],
                                                                      first_ifd=0xFFFFFF00)),
}


@pytest.mark.parametrize("name", sorted(ODD_PHOTOS))
def test_odd_but_valid_photos_are_read(name, assets, tmp_path):
    (tmp_path / name).write_bytes(ODD_PHOTOS[name]())
    shutil.copy(assets.folder / "m.npz", tmp_path / "m.npz")
    result = run_cli(["predict", name, "--model", "m.npz", "--json"], tmp_path)
    check_success(result)
    out = json.loads(result.stdout)
    assert math.isclose(sum(out["probabilities"]), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize("photo, output", [("caf\udce9.png", "out.xlsx"), ("a\x1b[31m\tb.png", "out.xlsx"),
                                           ("photo.png", "caf\udce9.xlsx"), ("=1+1.png", "-out.xlsx")])
def test_odd_file_names_work_and_are_shown_escaped(assets, tmp_path, photo, output):
    place = Place(tmp_path, assets)
    place.photo(photo)
    result = run_cli(["explain", photo, "--model", place.model(), "-o", output, "--forward-only"], tmp_path)
    check_success(result)
    assert (tmp_path / output).read_bytes().startswith(b"PK")


TEACHER_FILES = {  # as editors on Windows save them
    "crlf": b'[labels]\r\nbias = "B"\r\n[overview]\r\ntitle = """one\r\ntwo {photo}"""\r\n',
    "byte-order-mark": b'\xef\xbb\xbf[labels]\nbias = "B"\n',
}


@pytest.mark.parametrize("kind", sorted(TEACHER_FILES))
def test_a_teachers_file_from_a_windows_editor_works(assets, tmp_path, kind):
    place = Place(tmp_path, assets)
    place.templates(TEACHER_FILES[kind])
    check_success(run_cli(["explain", place.photo(), "--model", place.model(), "-o", "out.xlsx",
                           "--templates", "tpl", "--forward-only"], tmp_path))
    texts = {cell.value for sheet in openpyxl.load_workbook(tmp_path / "out.xlsx").worksheets
             for row in sheet.iter_rows() for cell in row}
    assert "B" in texts


def test_explain_replaces_an_earlier_workbook_of_the_same_name(assets, tmp_path):
    place = Place(tmp_path, assets)
    args = place.explain(place.photo("=1+1.png"), "--forward-only")
    result = run_cli(args, tmp_path)
    check_success(result)
    data = (tmp_path / "out.xlsx").read_bytes()
    assert data != OLD_BYTES and data.startswith(b"PK")
    first = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert len(first.sheetnames) > 5
    check_success(run_cli(args, tmp_path))  # and once more onto the real workbook
    assert openpyxl.load_workbook(tmp_path / "out.xlsx").sheetnames == first.sheetnames
    assert not no_temporaries(tmp_path)


def test_a_file_name_of_255_bytes_is_written(assets, tmp_path):
    """The longest name the file system takes: its temporary file must not need a longer one."""
    place = Place(tmp_path, assets)
    name = "x" * 250 + ".xlsx"
    check_success(run_cli(["explain", place.photo(), "--model", place.model(), "-o", name, "--forward-only"],
                          tmp_path))
    assert (tmp_path / name).read_bytes().startswith(b"PK")
    assert not no_temporaries(tmp_path)


def test_train_replaces_an_earlier_model_of_the_same_name(tmp_path, assets):
    place = Place(tmp_path, assets)
    result = run_cli(place.train("--samples", "30", *TRAIN_SHAPE), tmp_path)
    check_success(result)
    with np.load(tmp_path / "out.npz", allow_pickle=False) as archive:
        assert json.loads(str(archive["config"]))["input"]["size"] == 8
    assert not no_temporaries(tmp_path)


def test_a_folder_with_some_unreadable_photos_trains_and_names_them(tmp_path, assets):
    place = Place(tmp_path, assets)
    data = place.classes("a", "b")
    place.write(f"{data}/b/notes.jpg", "not a photo")
    place.write(f"{data}/a/bomb.png", png_of_zeros(10_000, 10_000))
    result = run_cli(["train", data, *TRAIN_SHAPE, "-o", "out.npz"], tmp_path)
    check_success(result)
    skipped = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(skipped) == 2 and any("notes.jpg" in line for line in skipped), result.stderr
    assert any("bomb.png" in line for line in skipped), result.stderr
    assert (tmp_path / "out.npz").is_file()


def test_a_class_named_like_a_formula_is_text_in_the_workbook(tmp_path, assets):
    place = Place(tmp_path, assets)
    model = place.broken_model(classes("=1+1", "@SUM(1)", "-2+3"), name="formulaic.npz")
    result = run_cli(["explain", place.photo(), "--model", model, "-o", "out.xlsx", "--label", "=1+1"],
                     tmp_path)
    check_success(result)
    workbook = openpyxl.load_workbook(tmp_path / "out.xlsx")
    seen = {name: [] for name in ("=1+1", "@SUM(1)", "-2+3")}
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value in seen:  # a formula would show here too
                    seen[cell.value].append(cell.data_type)
    for name, kinds in seen.items():
        assert kinds and set(kinds) == {"s"}, (name, kinds)


# ---- formula injection through templates and the photo's name ----------------------------------------------
INJECTIONS = ['=HYPERLINK("http://x.invalid","click")', "=cmd|' /C calc'!A0", "+7777+1", "-8888+1",
              "@SUM(9999)"]
MARKERS = ["HYPERLINK", "cmd|", "7777", "8888", "9999", "x.invalid", "calc"]


def hostile_templates() -> str:
    """Every text of the built-in en.toml, each line prefixed with an injection; the overview
    title starts with the photo's file name."""
    table = tomllib.loads(en_toml())
    lines, turn = [], 0
    for section, entries in table.items():
        lines.append(f"[{section}]")
        for key, text in entries.items():
            parts = []
            for line in text.strip().splitlines():
                parts.append(f"{INJECTIONS[turn % len(INJECTIONS)]} {line}" if line.strip() else line)
                turn += 1
            if section == "overview" and key == "title":
                parts = ["{photo} " + text.strip()]
            lines.append(f"{key} = {json.dumps(chr(10).join(parts), ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def test_no_text_becomes_a_formula(tmp_path, assets):
    """Templates whose texts start with =, +, - or @, and a photo whose name starts with =: every
    formula cell must be one cnnsheet made, and every such text a string cell."""
    place = Place(tmp_path, assets)
    place.templates(hostile_templates())
    photo = place.photo('=HYPERLINK("x.invalid").png')
    result = run_cli(["explain", photo, "--model", place.model(), "-o", "out.xlsx", "--templates", "tpl"],
                     tmp_path)
    check_success(result)
    workbook = openpyxl.load_workbook(tmp_path / "out.xlsx")
    injected_formulas, texts = [], []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f" and any(marker in str(cell.value) for marker in MARKERS):
                    injected_formulas.append(f"{sheet.title}!{cell.coordinate}: {cell.value}")
                elif cell.data_type == "s" and isinstance(cell.value, str):
                    texts.append(cell.value)
    assert not injected_formulas, f"{len(injected_formulas)} texts became formulas: {injected_formulas[:5]}"
    for prefix in INJECTIONS:
        assert any(text.startswith(prefix) for text in texts), f"no string cell starts with {prefix!r}"
    assert any(text.startswith(photo) for text in texts), "the photo's name is not shown as text"


# ---- a refusal comes before any work (measured as work, not seconds: a loaded machine is slow) -------------
def test_a_refusal_of_the_largest_network_is_quick(tmp_path):
    result = run_cli(["explain", "--untrained", "--size", "512", "--filters", "64", "--kernel", "1", "--pool",
                      "1", "--hidden", "512", "--blocks", "3", "-o", "out.xlsx"], tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "the limit is" in result.stderr, result.stderr  # the budget's refusal, before any array
    assert not list(tmp_path.iterdir())



# ---- every shape the options allow: a workbook or a quick one-line refusal ---------------------------------
# The declared click ranges of `explain --untrained`.
SHAPE_RANGES = {"size": (4, 512), "filters": (1, 64), "kernel": (1, 15), "stride": (1, 8), "padding": (0, 8),
                "dilation": (1, 8), "pool": (1, 8), "blocks": (1, 3), "hidden": (0, 512)}
SMALL_WORKBOOK = 6_000
# What a refusal may allocate: the budget's estimate (up to some 20 MB) and, on the command line,
# the random weights drawn first (the budget allows 10 million parameters, 80 MB). The plan of a
# refused workbook, millions of cells at hundreds of bytes each, would take gigabytes.
REFUSAL_MEMORY = 256 * MB  # tensor values and weights of a network whose workbook is built for real here


# Half the examples keep the input, the filters and the hidden layer small, so that many
# networks are small enough to build.
SMALL_RANGES = {"size": (4, 24), "filters": (1, 3), "hidden": (0, 6)}


@st.composite
def untrained_options(draw) -> list[str]:
    """Options of `explain --untrained`, each left out or anywhere in its range."""
    argv = []
    small = draw(st.booleans())
    for name, (low, high) in SHAPE_RANGES.items():
        if small and name in SMALL_RANGES:
            low, high = SMALL_RANGES[name]
        value = draw(st.none() | st.integers(low, high))
        if value is not None:
            argv += [f"--{name}", str(value)]
    if draw(st.booleans()):
        argv.append("--forward-only")
    return argv


def checked_network(argv: list[str]):
    """The command line's own path from options to a network, up to the workbook budget, and
    nothing built: click parses, then architecture -> config -> Model -> check_workbook."""
    context = cli.explain.make_context("explain", ["--untrained", *argv, "-o", "out.xlsx"])
    options = dict(context.params)
    network = Model(cli.architecture_from(options).config(shapes.CLASSES))
    budget.check_workbook(network, with_backward=not options["forward_only"])
    return network


def size_of(network) -> int:
    return sum(math.prod(shape) for shape in network.shapes) + network.parameter_count


DEFAULT_BLOCKS = [["--blocks", "2"], ["--blocks", "3"], ["--blocks", "2", "--forward-only"],
                  ["--blocks", "3", "--forward-only"]]


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(untrained_options())
@example(DEFAULT_BLOCKS[0])
@example(DEFAULT_BLOCKS[1])
@example(["--size", "4", "--kernel", "15", "--padding", "8", "--dilation", "8"])
@example(["--size", "512", "--filters", "64", "--kernel", "1", "--pool", "1", "--hidden", "512"])
@example(["--size", "384", "--filters", "64", "--kernel", "1", "--pool", "1", "--hidden", "512"])
@example(["--size", "128", "--filters", "32", "--kernel", "3", "--padding", "8", "--pool", "1", "--hidden",
          "512", "--forward-only"])
@example(["--size", "4", "--filters", "1", "--kernel", "1", "--pool", "1", "--hidden", "0", "--forward-only"])
def test_any_untrained_shape_builds_or_is_refused_quickly(argv):
    tracemalloc.start()
    try:
        network = checked_network(argv)
    except CnnsheetError as error:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        message = str(error)
        assert peak < REFUSAL_MEMORY, f"the refusal of {argv} allocated {peak:,} bytes"
        assert "\n" not in message and len(message) >= 10, message
        if argv in DEFAULT_BLOCKS:
            raise AssertionError(f"options left at their defaults must compose: {argv}: {message}") from None
        event("refused")
        # and the command line says so, as quickly, in one line, writing nothing
        with tempfile.TemporaryDirectory() as folder:
            tracemalloc.start()
            try:
                result = CliRunner().invoke(cli.main, ["explain", "--untrained", *argv, "-o",
                                                       f"{folder}/out.xlsx"])
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
            assert peak < REFUSAL_MEMORY, f"the command line allocated {peak:,} bytes to refuse {argv}"
            assert not os.listdir(folder)
        return
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    if size_of(network) > SMALL_WORKBOOK:
        event("accepted, too large to build here")
        return  # accepted by the budget; building it is the other tests' business
    event("built")
    with tempfile.TemporaryDirectory() as folder:
        result = CliRunner().invoke(cli.main, ["explain", "--untrained", *argv, "-o", f"{folder}/out.xlsx"])
        assert result.exit_code == 0, (argv, result.output, result.exception)
        assert "Overview" in openpyxl.load_workbook(f"{folder}/out.xlsx", read_only=True).sheetnames
        assert os.listdir(folder) == ["out.xlsx"]


@pytest.mark.slow
@pytest.mark.parametrize("blocks", ["2", "3"])
def test_two_and_three_blocks_at_the_defaults_make_a_workbook(tmp_path, blocks):
    """The issue's case, as typed: `cnnsheet explain --untrained --blocks 2`."""
    result = run_cli(["explain", "--untrained", "--blocks", blocks, "-o", "blocks.xlsx"], tmp_path,
                     timeout=300)
    check_success(result)
    assert "Overview" in openpyxl.load_workbook(tmp_path / "blocks.xlsx", read_only=True).sheetnames
