"""The budget: every size from an option or a file is refused before anything is allocated,
decompressed or decoded, with a message that names what to lower."""

import io
import json
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from helpers import config, small_model
from PIL import Image

from cnnsheet import budget, modelfile
from cnnsheet.errors import CnnsheetError
from cnnsheet.images import load_image, to_rgb
from cnnsheet.model import Model
from cnnsheet.modelfile import load_model
from cnnsheet.train import Architecture, Hyperparameters, channel_statistics, check_training, fit
from cnnsheet.workbook import build_walkthrough

MB = 1024 * 1024


def refused_quickly(call, message: str, most_bytes: int = 2 * MB):
    """call() raises a CnnsheetError matching `message` before any work: having allocated at most
    `most_bytes` on the way (tracemalloc sees numpy's arrays too). Work, not seconds, is what is
    measured: a loaded machine makes any refusal slow."""
    tracemalloc.start()
    try:
        with pytest.raises(CnnsheetError, match=message):
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < most_bytes, f"allocated {peak:,} bytes before refusing"


# ---- the network ----------------------------------------------------------------------------
def with_layer(key, value, layer=0):
    cfg = config(size=28, blocks=[{"filters": 2, "kernel": 3, "pool": 2}], hidden=[8])
    cfg["layers"][layer][key] = value
    return cfg


@pytest.mark.parametrize("cfg, message", [
    (config(size=20000, blocks=[{"filters": 4, "kernel": 3}]), "input size is 20,000; the limit is 512"),
    (with_layer("filters", 100_000), r"filters is 100,000; the limit is 512"),
    (with_layer("kernel", 10**9), r"kernel is 1,000,000,000; the limit is 512"),
    (with_layer("padding", 10**6), r"padding is 1,000,000; the limit is 512"),
    (with_layer("units", 10**7, layer=4), r"units is 10,000,000; the limit is 4,096"),
    (config(classes=[f"c{i}" for i in range(5000)]), "number of classes is 5,000; the limit is 1,000"),
    (config(size=384, blocks=[{"filters": 64, "kernel": 1}], hidden=[512]),
     r"4,831,8\d\d,\d+ parameters .*--size.*--filters.*--hidden"),
    (config(size=512, blocks=[{"filters": 512, "kernel": 5, "pool": 64}], classes=("a", "b")),
     r"one picture's pass would take [\d,]+ MB"),
])
def test_a_config_beyond_the_budget_is_refused_before_any_array_exists(cfg, message):
    refused_quickly(lambda: Model(cfg), message)


def test_too_many_layers():
    cfg = config(blocks=[{"filters": 1, "kernel": 1}])
    cfg["layers"] = cfg["layers"][:2] * 40 + cfg["layers"][2:]
    refused_quickly(lambda: Model(cfg), "number of layers is 82; the limit is 64")


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_defaults_compose_for_every_number_of_blocks(blocks):
    model = Architecture(blocks=blocks).check()
    assert model.shapes[-1] == (2,)


def test_kernel_and_pool_given_explicitly_are_kept():
    arch = Architecture(blocks=2, kernel=5, pool=1)
    assert (arch.kernel, arch.pool) == (5, 1)
    assert (Architecture().kernel, Architecture().pool) == (5, 4)


@pytest.mark.parametrize("samples, size, batch, message", [
    (12000, 512, 32, r"12,000 pictures of 512x512 take 9,000 MB .*--size or --samples"),
    (10**9, 28, 32, r"pictures of 28x28 take"),
    (60, 120, 4096, r"a batch of 4096 would take [\d,]+ MB .*--batch-size"),
    (60, 28, 5000, r"--batch-size is 5,000; the limit is 4,096"),
])
def test_training_beyond_the_budget_is_refused_before_a_picture_is_drawn(samples, size, batch, message):
    arch = Architecture(size=size)
    refused_quickly(lambda: check_training(arch, samples, batch), message)


def test_the_default_training_fits():
    check_training(Architecture(), 12000, 32)


# ---- the workbook ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", [
    Architecture(size=12, filters=2, kernel=3, pool=2, hidden=4),
    Architecture(size=12, filters=2, kernel=3, pool=1, padding=2, blocks=2, hidden=0),
    Architecture(size=13, filters=3, kernel=3, stride=2, pool=2, hidden=5),
    Architecture(size=14, filters=2, kernel=3, dilation=2, pool=3, blocks=1, hidden=4),
])
@pytest.mark.parametrize("with_backward", [False, True])
def test_the_cell_estimate_bounds_every_cell_written(arch, with_backward):
    model = Model(arch.config(["a", "b", "c"])).init(1)
    pixels = np.random.default_rng(0).integers(0, 256, (arch.size, arch.size, 3)).astype(np.uint8)
    plan = build_walkthrough(model, pixels, with_backward=with_backward).plan
    written = {sheet.title: len(sheet.cells) for sheet in plan.sheets}
    estimate = budget.workbook_sheets(model, with_backward)
    assert estimate.keys() == written.keys()
    assert all(written[title] <= estimate[title] for title in written)
    assert sum(estimate.values()) <= 3 * sum(written.values())


def test_a_sheet_the_budget_does_not_count_is_not_planned(monkeypatch):
    """The budget names every sheet: planning one it left out is a mistake in the code, said at once."""
    counted = budget.workbook_sheets

    def forgetting(model, with_backward):
        sheets = counted(model, with_backward)
        del sheets["Pool1"]
        return sheets

    monkeypatch.setattr(budget, "workbook_sheets", forgetting)
    model = Model(Architecture(size=12, filters=2, kernel=3, pool=2, hidden=4).config(["a", "b"])).init(1)
    pixels = np.zeros((12, 12, 3), dtype=np.uint8)
    with pytest.raises(CnnsheetError, match="internal: sheet Pool1 is not counted in budget.workbook_sheets"):
        build_walkthrough(model, pixels)


def test_the_weight_tables_count():
    """Small tensors but a large dense layer: its weights are the cells that matter."""
    model = Model(Architecture(size=64, filters=8, kernel=3, pool=2, hidden=128).config(["a", "b"]))
    tensors = sum(int(np.prod(shape)) for shape in model.shapes)
    assert budget.workbook_cells(model, False) > 64 * 8 * 31 * 31 > tensors
    with pytest.raises(CnnsheetError, match=r"about [\d,]+ cells .*--size.*--forward-only"):
        budget.check_workbook(model, with_backward=True)


def test_an_overlong_formula_is_refused_before_writing():
    model = Model(config(size=8, blocks=[{"filters": 200, "kernel": 1}, {"filters": 2, "kernel": 1}]))
    with pytest.raises(CnnsheetError, match="formula would be up to"):
        budget.check_workbook(model, with_backward=False)


# ---- the model file -------------------------------------------------------------------------
def npy_header(shape, descr="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def model_zip(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def good_members():
    model = small_model()
    members = {"config.npy": npy(np.array(json.dumps(model.config)))}
    members.update({f"{key}.npy": npy(value) for key, value in model.params().items()})
    return members


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_a_well_formed_zip_loads(tmp_path):
    model = load_model(model_zip(tmp_path / "m.npz", good_members(), zipfile.ZIP_DEFLATED))
    assert model.source == tmp_path / "m.npz"


def test_a_member_that_declares_more_than_a_model_holds_is_refused_before_decompressing(tmp_path):
    """256 MB of zeros compress to 256 KB (4 GiB to 4 MB, too slow to make here); the table of
    contents tells, before a byte is inflated."""
    members = good_members()
    del members["logits.weight.npy"]
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        with archive.open("logits.weight.npy", "w", force_zip64=True) as member:
            member.write(npy_header((2**25,)))
            block = bytes(64 * MB)
            for _ in range(4):
                member.write(block)
    refused_quickly(lambda: load_model(path), r"268,4\d\d,\d+ bytes uncompressed")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update({"extra.npy": npy(np.zeros(3))}), r"unexpected array\(s\): 'extra'"),
    (lambda m: m.update({"evil.pkl": b"cos\nsystem\n"}), "unexpected member 'evil.pkl'"),
    (lambda m: m.update({"conv1.weight.npy": npy(np.zeros((2, 3, 3, 3), dtype=complex))}),
     "conv1.weight holds complex128 values, not real numbers"),
    (lambda m: m.update({"conv1.weight.npy": npy_header((2, 3, 3, 3), "|O") + b"x" * 8}),
     "conv1.weight holds object values"),
    (lambda m: m.update({"conv1.weight.npy": npy_header((2, 3, 3, 3)) + bytes(8)}),
     r"conv1.weight declares [\d,]+ bytes but a float64 array of shape \(2, 3, 3, 3\) takes 432"),
    (lambda m: m.update({"conv1.weight.npy": npy(np.zeros((3, 3, 3, 3)))}),
     r"conv1.weight has shape \(3, 3, 3, 3\), the layers need \(2, 3, 3, 3\)"),
    (lambda m: m.update({"config.npy": npy(np.array("[" * 100000 + "]" * 100000))}),
     "config is nested too deeply"),
    (lambda m: m.update({"config.npy": npy(np.zeros(3))}), "config holds float64 values, not text"),
    (lambda m: m.update({"conv1.weight.npy": b"not an array"}), "conv1.weight is not a plain numpy array"),
])
def test_members_are_checked_against_the_config_before_they_are_read(tmp_path, change, message):
    members = good_members()
    change(members)
    path = model_zip(tmp_path / "bad.npz", members)
    with pytest.raises(CnnsheetError, match=message) as error:
        load_model(path)
    assert str(error.value).startswith(f"{path}: ")
    assert "allow_pickle" not in str(error.value)


def test_a_table_of_contents_with_too_many_members_is_refused_before_reading_it(tmp_path):
    members = good_members()
    members.update({f"x{i}.npy": b"" for i in range(budget.MAX_MEMBERS)})
    path = model_zip(tmp_path / "many.npz", members)
    refused_quickly(lambda: load_model(path), r"lists [\d,]+ members")


@pytest.mark.parametrize("data, message", [
    (b"\x93NUMPY" + bytes(100), "not a zip archive"),
    (b"PK\x03\x04" + bytes(10), "not a zip archive"),
])
def test_files_that_are_not_zips(tmp_path, data, message):
    path = tmp_path / "x.npz"
    path.write_bytes(data)
    with pytest.raises(CnnsheetError, match=message) as error:
        load_model(path)
    assert "allow_pickle" not in str(error.value)


def test_scores_that_are_not_finite_are_refused_naming_the_model(tmp_path):
    model = small_model()
    for value in model.params().values():
        value *= 1e300
    modelfile.save(model, tmp_path / "huge.npz")
    huge = load_model(tmp_path / "huge.npz")
    pixels = np.full((12, 12, 3), 255, dtype=np.uint8)
    with pytest.raises(CnnsheetError, match=r"huge.npz: the class scores are not finite"):
        huge.predict(pixels)


# ---- photos ---------------------------------------------------------------------------------
def png_header_only(path, width, height, bit_depth=16, colour=0):
    """A PNG that declares width x height and holds one tiny compressed row: a decoder that
    trusts the header allocates it all."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [(12000, 12000), (9000, 8000), (100_000, 1000)])
def test_a_photo_beyond_the_pixel_limit_is_refused_from_its_header(tmp_path, width, height):
    path = png_header_only(tmp_path / "big.png", width, height)
    refused_quickly(lambda: load_image(path), "refused as a possible decompression bomb|the limit is")


def test_the_pixel_limit_is_below_pillows_warning():
    assert budget.MAX_PHOTO_PIXELS <= Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("mode, values, expected", [
    ("I;16", [0, 128, 129, 385, 386, 65535], [0, 0, 1, 1, 2, 255]),
    ("I", [-5, 0, 200, 255], [0, 0, 200, 255]),
    ("I", [0, 300, 65535, 70000], [0, 1, 255, 255]),
    ("F", [-1.0, 0.4, 0.6, 254.5, 300.0], [0, 0, 1, 254, 255]),
])
def test_wide_pixels_convert_without_a_float_copy_of_the_picture(mode, values, expected):
    image = Image.new(mode, (len(values), 1))
    image.putdata(values)
    assert list(np.asarray(to_rgb(image))[0, :, 0]) == expected


# ---- training -------------------------------------------------------------------------------
def test_channel_statistics_match_the_float_formula():
    pixels = np.random.default_rng(3).integers(0, 256, (50, 9, 9, 3)).astype(np.uint8)
    mean, std = channel_statistics(pixels)
    values = pixels.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, values.std(axis=0), rtol=1e-9)


@pytest.mark.parametrize("learning_rate", [1e300, float("inf")])
def test_a_diverging_training_stops_at_the_first_bad_batch(learning_rate):
    model = small_model()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 12, 12, 3)).astype(np.uint8)
    labels = np.arange(16) % 3
    hp = Hyperparameters(epochs=2, batch_size=8, learning_rate=learning_rate)
    with pytest.raises(CnnsheetError, match=r"diverged in epoch 1, batch [12]: lower the learning rate"):
        for _ in fit(model, (pixels, labels), (pixels[:0], labels[:0]), hp):
            pass
