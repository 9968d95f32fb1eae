"""Synthetic shapes, folder datasets, the training loop, `cnnsheet train`, and the default model."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnsheet import shapes
from cnnsheet.cli import main
from cnnsheet.errors import CnnsheetError
from cnnsheet.model import load_model
from cnnsheet.resources import default_model_path, samples_dir
from cnnsheet.train import (
    Architecture,
    Dataset,
    EpochEnd,
    Hyperparameters,
    evaluate,
    fit,
    new_model,
    read_folder,
    split,
)

UNUSED_SEED = 2026  # training used seed 0; the generator's streams for other seeds are independent


@pytest.mark.slow
def test_the_default_model_recognises_fresh_shapes():
    model = load_model(default_model_path())
    pixels, labels = shapes.generate(1000, model.input_size, seed=UNUSED_SEED)
    _, accuracy = evaluate(model, pixels, labels)
    assert accuracy >= 0.97


def test_the_default_model_recognises_the_drawn_samples():
    from cnnsheet.images import load_photo

    model = load_model(default_model_path())
    for kind in shapes.CLASSES:
        trace = model.predict(load_photo(samples_dir() / f"drawn-{kind}.jpg", model.input_size))
        assert model.classes[int(trace.probabilities.argmax())] == kind


def test_shapes_are_deterministic_balanced_and_varied():
    a, labels_a = shapes.generate(60, 16, seed=3)
    b, labels_b = shapes.generate(60, 16, seed=3)
    c, _ = shapes.generate(60, 16, seed=4)
    assert a.shape == (60, 16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(labels_a, labels_b)
    assert not np.array_equal(a, c)
    assert np.bincount(labels_a).tolist() == [20, 20, 20]
    assert len({img.tobytes() for img in a}) == 60


def make_folder(root, counts, size=20):
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(size, size + 5, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_folder_of_photos_reads_with_classes_sorted_and_bad_files_skipped(tmp_path):
    root = make_folder(tmp_path / "data", {"zebra": 3, "apple": 2})
    (root / "apple" / "notes.txt").write_text("not a photo")
    (root / "apple" / ".DS_Store").write_bytes(b"\0")
    dataset = read_folder(root, 12)
    assert dataset.classes == ["apple", "zebra"]
    assert dataset.pixels.shape == (5, 12, 12, 3)
    assert dataset.labels.tolist() == [0, 0, 1, 1, 1]
    assert [path.name for path, _ in dataset.skipped] == ["notes.txt"]
    assert "not an image" in dataset.skipped[0][1]


@pytest.mark.parametrize("counts, message", [
    ({"only": 2}, "needs at least two class sub-folders"),
    ({"a": 2, "b": 0}, "class 'b' has no readable images"),
])
def test_bad_folders_are_named(tmp_path, counts, message):
    root = make_folder(tmp_path / "data", counts)
    with pytest.raises(CnnsheetError, match=message):
        read_folder(root, 8)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(CnnsheetError, match="no such folder"):
        read_folder(tmp_path / "nope", 8)


def small_run(seed=0, epochs=3):
    pixels, labels = shapes.generate(240, 16, seed=1)
    train, validation = split(Dataset(pixels, labels, shapes.CLASSES, []), 0.25, seed)
    model = new_model(Architecture(size=16, filters=4, kernel=3, pool=2, hidden=8),
                      shapes.CLASSES, train[0], seed)
    events = list(fit(model, train, validation, Hyperparameters(epochs=epochs, seed=seed)))
    return model, [e for e in events if isinstance(e, EpochEnd)]


@pytest.mark.slow
def test_training_lowers_the_loss_and_is_deterministic():
    model, epochs = small_run()
    assert epochs[-1].train_loss < epochs[0].train_loss
    assert len(epochs) == 3 and epochs[-1].validation_accuracy is not None
    again, _ = small_run()
    for name, value in model.params().items():
        np.testing.assert_array_equal(again.params()[name], value)
    other, _ = small_run(seed=1)
    assert not np.array_equal(other.params()["conv1.weight"], model.params()["conv1.weight"])


def test_the_input_normalisation_comes_from_the_training_pictures():
    pixels = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    pixels[:2, :, :, 1] = 255
    model = new_model(Architecture(size=8, filters=1, kernel=3, pool=2, hidden=0), ["a", "b"], pixels, 0)
    assert model.config["input"]["mean"] == pytest.approx([1.0, 0.5, 0.0])
    assert model.config["input"]["std"][1] == pytest.approx(0.5)


def test_cli_trains_on_a_folder_and_writes_a_loadable_model(tmp_path):
    root = make_folder(tmp_path / "data", {"cats": 4, "dogs": 4})
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff nope")
    out = tmp_path / "m.npz"
    result = CliRunner().invoke(main, ["train", str(root), "-o", str(out), "--size", "12",
                                       "--epochs", "2", "--filters", "2", "--kernel", "3",
                                       "--pool", "2", "--hidden", "0", "--val-split", "0.25"])
    assert result.exit_code == 0, result.output
    assert "warning: skipped" in result.output and "broken.jpg" in result.output
    assert "epoch 2/2: train loss" in result.output
    assert "1 unreadable file(s) skipped" in result.output
    model = load_model(out)
    assert model.classes == ["cats", "dogs"] and model.input_size == 12
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_train_on_shapes_then_predict_with_it(tmp_path):
    out = tmp_path / "s.npz"
    result = CliRunner().invoke(main, ["train", "-o", str(out), "--samples", "90", "--epochs", "1",
                                       "--size", "16", "--kernel", "3"])
    assert result.exit_code == 0, result.output
    assert "drawing 90 synthetic shapes" in result.output
    assert load_model(out).classes == shapes.CLASSES


def test_an_interrupted_training_writes_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr("cnnsheet.cli.fit", interrupted)
    out = tmp_path / "m.npz"
    result = CliRunner().invoke(main, ["train", "-o", str(out), "--samples", "30", "--size", "12",
                                       "--kernel", "3", "--pool", "2"])
    assert result.exit_code == 1
    assert f"interrupted: {out} was not written" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--lr", "0"], "Invalid value for '--lr'"),
    (["-o", "/nonexistent-dir/m.npz"], "does not exist"),
    (["--size", "8", "--kernel", "9"], "kernel 9 is larger than the padded input 8"),
    (["--val-split", "1"], "Invalid value for '--val-split'"),
])
def test_bad_training_options_fail_fast(args, message):
    result = CliRunner().invoke(main, ["train", "--samples", "30", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_predict_uses_the_default_model():
    photo = samples_dir() / "drawn-circle.jpg"
    result = CliRunner().invoke(main, ["predict", str(photo)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{photo}: circle")
