"""`cnnsheet predict`: the JSON contract and one-line errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import random_pixels, small_model
from PIL import Image

from cnnsheet import __version__, modelfile
from cnnsheet.cli import main


@pytest.fixture
def files(tmp_path):
    model = small_model(seed=2, size=12, classes=("circle", "square", "=1+1"))
    modelfile.save(model, tmp_path / "m.npz")
    pixels = random_pixels(np.random.default_rng(0), 1, 40)[0]
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    return model, tmp_path / "m.npz", tmp_path / "photo.png"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_version_and_help():
    assert __version__ in run("--version").output
    result = run("--help")
    assert result.exit_code == 0 and "predict" in result.output


def test_json_is_one_object_with_the_engines_numbers(files):
    model, model_path, photo = files
    result = run("predict", photo, "--model", model_path, "--json", "--label", "square")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == {"classes", "logits", "probabilities", "predicted", "loss"}
    from cnnsheet.images import load_photo
    trace = model.predict(load_photo(photo, 12))
    np.testing.assert_allclose(out["probabilities"], trace.probabilities[0], rtol=1e-12)
    np.testing.assert_allclose(out["loss"], -np.log(trace.probabilities[0, 1]), rtol=1e-12)
    assert out["predicted"] == model.classes[int(np.argmax(out["probabilities"]))]
    assert "loss" not in json.loads(run("predict", photo, "--model", model_path, "--json").output)


def test_the_table_lists_every_class(files):
    _, model_path, photo = files
    result = run("predict", photo, "--model", model_path, "--label", "circle")
    assert result.exit_code == 0
    for name in ("circle", "square", "=1+1", "loss with true class 'circle'"):
        assert name in result.output


@pytest.mark.parametrize("args, message", [
    (["--label", "hexagon"], "--label 'hexagon' is not a class of this model: circle, square, =1+1"),
    (["--model", "{tmp}/absent.npz"], "absent.npz: no such model file"),
    (["--model", "{tmp}/photo.png"], "photo.png: not a cnnsheet model file"),
])
def test_errors_are_one_line_with_no_traceback(files, args, message):
    _, model_path, photo = files
    args = [a.format(tmp=photo.parent) for a in args]
    if "--model" not in args:
        args += ["--model", model_path]
    result = run("predict", photo, *args)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]


def test_a_bad_photo_is_named(files, tmp_path):
    _, model_path, _ = files
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run("predict", tmp_path / "broken.jpg", "--model", model_path)
    assert result.exit_code == 1
    assert "broken.jpg" in result.output and len(result.output.strip().splitlines()) == 1
