"""The model file: a round trip, and a clear message for everything that can be wrong with one."""

import json

import numpy as np
import pytest
from helpers import config, small_model
from hostile_inputs import zip64_model

from cnnsheet import modelfile
from cnnsheet.errors import CnnsheetError
from cnnsheet.model import Model
from cnnsheet.modelfile import load_model


def write(path, config_dict, arrays):
    np.savez(path, config=np.array(json.dumps(config_dict)), **arrays)
    return path


def test_round_trip_keeps_config_and_every_parameter(tmp_path):
    model = small_model(seed=5, hidden=[4])
    modelfile.save(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.config == model.config
    for name, value in model.params().items():
        np.testing.assert_array_equal(loaded.params()[name], value)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_file_is_readable_by_numpy_alone(tmp_path):
    model = small_model()
    modelfile.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        assert json.loads(str(archive["config"]))["format"] == "cnnsheet.model"
        assert archive["conv1.weight"].shape == (2, 3, 3, 3)
        assert archive["logits.weight"].shape == (3, 2 * 5 * 5)


def test_the_issues_example_config_loads():
    example = {"format": "cnnsheet.model", "version": 1,
               "input": {"size": 28, "channels": 3, "mean": [0, 0, 0], "std": [1, 1, 1]},
               "layers": [{"type": "conv", "name": "conv1", "filters": 4, "kernel": 3, "stride": 1,
                           "padding": 0, "dilation": 1},
                          {"type": "relu"}, {"type": "maxpool", "size": 2, "stride": 2},
                          {"type": "flatten"}, {"type": "dense", "name": "dense1", "units": 3}],
               "classes": ["circle", "square", "triangle"]}
    model = Model(example)
    assert [layer.name for layer in model.layers] == ["conv1", "relu1", "pool1", "flatten", "dense1"]
    assert model.shapes[-1] == (3,) and model.shapes[3] == (4, 13, 13)


def good():
    model = small_model()
    return model.config, dict(model.params())


def changed(key, value):
    def change(cfg, arrays):
        cfg[key] = value
    return change


def drop_array(cfg, arrays):
    del arrays["conv1.bias"]


def add_array(cfg, arrays):
    arrays["conv9.weight"] = np.zeros(3)


def reshape_array(cfg, arrays):
    arrays["conv1.weight"] = np.zeros((2, 3, 2, 2))


def nan_weight(cfg, arrays):
    arrays["logits.weight"] = arrays["logits.weight"].copy()
    arrays["logits.weight"][0, 0] = np.nan


def too_few_units(cfg, arrays):
    cfg["classes"] = ["a", "b", "c", "d"]


def no_flatten(cfg, arrays):
    cfg["layers"] = [layer for layer in cfg["layers"] if layer["type"] != "flatten"]


def dense_first(cfg, arrays):
    cfg["layers"] = [{"type": "flatten"}, {"type": "dense", "name": "x", "units": 3},
                     {"type": "conv", "name": "c", "filters": 1, "kernel": 1}]


def negative_stride(cfg, arrays):
    cfg["layers"][0]["stride"] = 0


def kernel_too_big(cfg, arrays):
    cfg["layers"][0]["kernel"] = 20


@pytest.mark.parametrize("change, message", [
    (changed("format", "keras"), "unknown format 'keras'"),
    (changed("version", 2), "unsupported version 2"),
    (drop_array, "missing array.*conv1.bias"),
    (add_array, "unexpected array.*conv9.weight"),
    (reshape_array, r"conv1.weight has shape \(2, 3, 2, 2\), the layers need \(2, 3, 3, 3\)"),
    (nan_weight, "logits.weight holds values that are not finite"),
    (too_few_units, "last layer has 3 units but there are 4 classes"),
    (changed("classes", ["a", "a", "b"]), "duplicate class names: a"),
    (changed("classes", ["a", "", "b"]), "class names must be non-empty"),
    (changed("classes", ["a", "  ", "b"]), "class names must be non-empty"),
    (no_flatten, "exactly one flatten"),
    (dense_first, "only conv, relu and maxpool|only dense and relu"),
    (negative_stride, r"conv1\) stride must be a whole number >= 1, got 0"),
    (kernel_too_big, "conv1: kernel 20 is larger than the padded input 12"),
])
def test_every_problem_is_named(tmp_path, change, message):
    cfg, arrays = good()
    change(cfg, arrays)
    path = write(tmp_path / "bad.npz", cfg, arrays)
    with pytest.raises(CnnsheetError, match=message) as error:
        load_model(path)
    assert str(error.value).startswith(str(path))
    assert "\n" not in str(error.value)


def test_files_that_are_not_models(tmp_path):
    with pytest.raises(CnnsheetError, match="no such model file"):
        load_model(tmp_path / "absent.npz")
    with pytest.raises(CnnsheetError, match="not a file"):
        load_model(tmp_path)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CnnsheetError, match="not a cnnsheet model file"):
        load_model(tmp_path / "text.npz")
    np.savez(tmp_path / "noconfig.npz", a=np.zeros(2))
    with pytest.raises(CnnsheetError, match="no 'config' array"):
        load_model(tmp_path / "noconfig.npz")
    np.savez(tmp_path / "badjson.npz", config=np.array("{nope"))
    with pytest.raises(CnnsheetError, match="config is not valid JSON"):
        load_model(tmp_path / "badjson.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(CnnsheetError, match="not a cnnsheet model file"):
        load_model(tmp_path / "plain.npy")


def test_a_pytorch_model_with_the_same_layers_saves_into_the_format(tmp_path):
    """The recipe of the README, run for real."""
    import torch

    net = torch.nn.Sequential()
    net.add_module("conv1", torch.nn.Conv2d(3, 4, 3))
    net.add_module("relu1", torch.nn.ReLU())
    net.add_module("pool1", torch.nn.MaxPool2d(2))
    net.add_module("flatten", torch.nn.Flatten())
    net.add_module("dense1", torch.nn.Linear(4 * 13 * 13, 3))
    cfg = config(28, blocks=[{"filters": 4, "kernel": 3, "pool": 2}])
    cfg["layers"][-1]["name"] = "dense1"
    arrays = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    np.savez(tmp_path / "torch.npz", config=np.array(json.dumps(cfg)), **arrays)

    model = load_model(tmp_path / "torch.npz")
    x = np.random.default_rng(0).normal(size=(2, 3, 28, 28))
    expected = net.double()(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(model.forward(x).logits, expected, rtol=1e-10, atol=1e-12)


def test_config_problems_are_caught_before_any_array_is_read():
    cfg = config(blocks=[{"filters": 1, "kernel": 3}])
    cfg["input"]["channels"] = 2
    with pytest.raises(CnnsheetError, match="channels must be 1 .* or 3"):
        Model(cfg)
    cfg = config(blocks=[{"filters": 1, "kernel": 3}])
    cfg["input"]["std"] = [1, 0, 1]
    with pytest.raises(CnnsheetError, match="std must be positive"):
        Model(cfg)


def test_saved_files_get_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        modelfile.save(small_model(), tmp_path / "m.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


def test_a_model_with_a_zip64_end_record_loads(tmp_path):
    """numpy reads such a file; so must cnnsheet (its member count and table size are then in
    the ZIP64 record, and the classic end record says 0xFFFF)."""
    model = small_model(seed=4)
    path = zip64_model(tmp_path / "zip64.npz", model.config, model.params())
    assert np.load(path)["conv1.weight"].shape == model.params()["conv1.weight"].shape
    loaded = load_model(path)
    for name, value in model.params().items():
        np.testing.assert_array_equal(loaded.params()[name], value)


def layers_of(kinds: str) -> list[dict]:
    """Layers from their kinds ("conv relu flatten dense"); the last dense gives 3 class scores."""
    specs = {"conv": {"filters": 2, "kernel": 2}, "relu": {}, "maxpool": {"size": 2, "stride": 1},
             "flatten": {}, "dense": {"units": 2}}
    layers = [{"type": kind, **specs[kind]} for kind in kinds.split()]
    if layers[-1]["type"] == "dense":
        layers[-1]["units"] = 3
    return layers


@pytest.mark.parametrize("kinds, message", [
    ("conv relu flatten relu dense",
     r"^layer 4 \(relu2\): after flatten a relu must come right after a dense layer, not after flatten$"),
    ("flatten relu dense", r"^layer 2 \(relu1\): after flatten .* not after flatten$"),
    ("conv flatten dense relu relu dense", r"^layer 5 \(relu2\): after flatten .* not after relu$"),
    ("conv flatten dense maxpool dense", r"^layer 4 \(pool1\): only dense and relu layers"),
    ("conv dense flatten dense", r"^layer 2 \(dense1\): only conv, relu and maxpool layers"),
    ("conv flatten dense relu", "the last layer must be dense"),
    ("conv relu maxpool dense", "exactly one flatten"),
])
def test_layer_orders_the_sheets_cannot_draw_are_refused_naming_the_layer(kinds, message):
    with pytest.raises(CnnsheetError, match=message):
        Model({**config(8), "layers": layers_of(kinds)})


@pytest.mark.parametrize("kinds", [
    "flatten dense", "relu flatten dense", "maxpool flatten dense", "conv conv flatten dense",
    "maxpool conv relu relu maxpool maxpool flatten dense relu dense dense relu dense",
])
def test_odd_but_drawable_layer_orders_are_accepted(kinds):
    model = Model({**config(8), "layers": layers_of(kinds)})
    assert [layer.kind for layer in model.layers] == kinds.split()
