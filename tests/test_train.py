"""Synthetic shapes, folder datasets, the training loop, `cnnsheet train`, and the default model."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import random_pixels
from hypothesis import given, settings
from PIL import Image
from strategies import models

from cnnsheet import shapes, threads
from cnnsheet import train as train_module
from cnnsheet.cli import main
from cnnsheet.errors import CnnsheetError
from cnnsheet.images import DRAFT_MARGIN, load_image, load_photo
from cnnsheet.modelfile import load_model
from cnnsheet.resources import default_model_path, samples_dir
from cnnsheet.train import (
    Architecture,
    Dataset,
    EpochEnd,
    Hyperparameters,
    evaluate,
    fit,
    network_input,
    new_model,
    pixel_table,
    read_folder,
    split,
    validation_line,
    working_copy,
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
    assert "not a photo" in dataset.skipped[0][1]


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


def small_run(seed=0, epochs=3, dtype="float32", flips=False):
    pixels, labels = shapes.generate(240, 16, seed=1)
    train, validation = split(Dataset(pixels, labels, shapes.CLASSES, []), 0.25, seed)
    model = new_model(Architecture(size=16, filters=4, kernel=3, pool=2, hidden=8),
                      shapes.CLASSES, train[0], seed)
    hp = Hyperparameters(epochs=epochs, seed=seed, dtype=dtype, flips=flips)
    events = list(fit(model, train, validation, hp))
    return model, [e for e in events if isinstance(e, EpochEnd)]


def test_training_in_float32_follows_float64_and_keeps_the_model_float64():
    float32, epochs32 = small_run(flips=True)
    float64, epochs64 = small_run(flips=True, dtype="float64")
    for name, value in float64.params().items():
        assert float32.params()[name].dtype == np.float64
        # 3 epochs of steps apart: rounding at float32's 1e-7 grows, but stays far below the weights' size
        np.testing.assert_allclose(float32.params()[name], value, rtol=0, atol=1e-4 * np.abs(value).max(),
                                   err_msg=name)
    assert epochs32[-1].train_loss == pytest.approx(epochs64[-1].train_loss, rel=1e-4)


@settings(max_examples=40, deadline=None)
@given(models())
def test_a_float32_step_stays_float32_and_matches_the_float64_step(model):
    model.init(3)
    rng = np.random.default_rng(0)
    pixels, labels = random_pixels(rng, 4, model.input_size), rng.integers(0, len(model.classes), 4)
    work, _ = working_copy(model, "float32")
    x32 = network_input(model, pixel_table(model, "float32"), pixels, "float32")
    np.testing.assert_array_equal(x32, model.preprocess(pixels).astype(np.float32))
    trace32, losses32, grads32 = work.gradients(x32, labels, need_input_grad=False)
    trace64, losses64, grads64 = model.gradients(model.preprocess(pixels), labels, need_input_grad=False)
    for name, value in [*trace32.tensors.items(), *grads32.tensors.items(), *grads32.params.items()]:
        assert value.dtype == np.float32, name  # one float64 array would make every step slower
    np.testing.assert_allclose(losses32, losses64, rtol=1e-4, atol=1e-5)
    for name, value in grads64.params.items():
        scale = max(np.abs(value).max(), 1e-3)
        np.testing.assert_allclose(grads32.params[name], value, rtol=0, atol=1e-4 * scale, err_msg=name)


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


@pytest.mark.parametrize("right, total, expected", [
    (7, 9, "validation: 7 of 9 right (78%); with 9 pictures this is a rough guide: new pictures like "
           "these may score anywhere from 45% to 94%"),
    (9, 9, "validation: 9 of 9 right (100%); with 9 pictures this is a rough guide: new pictures like "
           "these may score anywhere from 70% to 100%"),
    (1191, 1200, "validation: 1,191 of 1,200 right (99.2%); with 1,200 pictures, new pictures like "
                 "these should score 98.6% to 99.6%"),
])
def test_the_validation_line_says_how_far_to_trust_it(right, total, expected):
    # the ranges are Wilson's 95% intervals, worked out by hand
    assert validation_line(right, total) == expected


def test_cli_train_says_how_many_validation_pictures_were_right(tmp_path):
    root = make_folder(tmp_path / "data", {"cats": 6, "dogs": 6})
    result = CliRunner().invoke(main, ["train", str(root), "-o", str(tmp_path / "m.npz"), "--size",
                                       "12", "--epochs", "1", "--kernel", "3", "--pool", "2",
                                       "--val-split", "0.25"])
    assert result.exit_code == 0, result.output
    assert "validation: " in result.output and " of 3 right (" in result.output
    assert "with 3 pictures this is a rough guide" in result.output


def test_a_large_jpeg_of_a_training_folder_is_decoded_smaller_with_nearly_the_same_pixels(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    photo = tmp_path / "big.jpg"
    Image.fromarray(small).resize((1200, 1600), Image.Resampling.BILINEAR).save(photo, quality=90)
    size = 28
    assert load_image(photo, at_least=DRAFT_MARGIN * size).size == (150, 200)  # 1/8: still 4x28 = 112 a side
    quick, full = load_photo(photo, size, quick=True), load_photo(photo, size)
    assert np.abs(quick.astype(int) - full.astype(int)).mean() < 1.0
    # a photo whose half would fall below 112 a side is decoded whole
    assert load_image(samples_dir() / "cat.jpg", at_least=DRAFT_MARGIN * size).size == (320, 213)


def test_the_command_line_runs_openblas_on_one_thread_unless_the_user_chose(monkeypatch):
    photo = str(samples_dir() / "drawn-circle.jpg")
    for name in threads.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    before = threads.blas_threads()
    try:
        assert threads.set_blas_threads(2) and threads.blas_threads() == 2
        assert CliRunner().invoke(main, ["predict", photo]).exit_code == 0
        assert threads.blas_threads() == threads.BLAS_THREADS == 1
        threads.set_blas_threads(2)
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        assert CliRunner().invoke(main, ["predict", photo]).exit_code == 0
        assert threads.blas_threads() == 2
    finally:
        threads.set_blas_threads(before)


def test_importing_the_library_leaves_the_thread_count_alone():
    code = ("import numpy; from cnnsheet import threads; threads.set_blas_threads(3); "
            "import cnnsheet.cli, cnnsheet.train, cnnsheet.workbook; print(threads.blas_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, check=True)
    assert done.stdout.split() == ["3"]


def draw_photos(root, per_class, seed):
    """Phone-like photos of the shapes: each drawn square, its edges stretched to 4:3."""
    rng = np.random.default_rng(seed)
    for kind in shapes.CLASSES:
        (root / kind).mkdir(parents=True)
        for number in range(per_class):
            square = shapes.draw_shape(kind, 60, rng)
            photo = np.pad(square, ((0, 0), (10, 10), (0, 0)), mode="edge")
            Image.fromarray(photo).save(root / kind / f"IMG_{number:04d}.jpg", quality=90)
    return root


def test_a_start_from_the_bundled_models_learned_layers(tmp_path):
    """Twenty photos of drawn shapes a class teach a random network little; started from the
    bundled model's layers, which know such shapes, it recognises new photos of the kind. Its last
    layer starts at zero: the first loss is ln 3, not a random layer's guess."""
    folder = draw_photos(tmp_path / "photos", 20, seed=0)
    fresh = read_folder(draw_photos(tmp_path / "fresh", 20, seed=1), 28)
    accuracy = {}
    for start in ("bundled", None):
        out = tmp_path / f"{start}.npz"
        args = ["train", str(folder), "-o", str(out)] + (["--start", start] if start else [])
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        accuracy[start] = evaluate(load_model(out), fresh.pixels, fresh.labels)[1]
        said = ("the learned layers conv1, hidden of the bundled model" if start else "random weights")
        assert f"starting from {said}" in result.output
    bundled, trained = load_model(default_model_path()), load_model(tmp_path / "bundled.npz")
    assert trained.mean.tolist() == bundled.mean.tolist()  # the normalisation its filters learned with
    assert np.corrcoef(trained.params()["conv1.weight"].ravel(),
                       bundled.params()["conv1.weight"].ravel())[0, 1] > 0.9
    assert accuracy["bundled"] >= 0.8 and accuracy[None] < 0.6, accuracy
    dataset = read_folder(folder, 28)
    started = train_module.new_model(Architecture(), dataset.classes, dataset.pixels, 0, bundled)
    assert evaluate(started, dataset.pixels, dataset.labels)[0] == pytest.approx(np.log(3))


@pytest.mark.parametrize("args, message", [
    (["--start", "bundled", "--filters", "4"],
     "--start bundled: the bundled model differs from these options: conv1 has filters 8, the options ask "
     "for 4"),
    (["--start", "BUNDLED", "--size", "32"],
     "--start BUNDLED: the bundled model differs from these options: its input is 28 pixels a side, the "
     "options ask for 32"),
    (["--start", "bundled", "--hidden", "0"], "its layers are conv1, relu1, pool1, flatten, hidden, relu2, "
                                              "dense, the options make conv1, relu1, pool1, flatten, dense"),
    (["--start", "nope.npz"], "--start nope.npz: no such model file (--start takes bundled, random or a"),
    (["--start", ""], "--start: the name is empty"),
    (["--start", "-o"], "-o looks like an option, not a value"),
])
def test_a_start_that_does_not_fit_is_refused_naming_the_difference(tmp_path, args, message):
    folder = draw_photos(tmp_path / "photos", 2, seed=0)
    result = CliRunner().invoke(main, ["train", str(folder), "-o", str(tmp_path / "m.npz"), *args])
    assert result.exit_code in (1, 2) and message in result.output, result.output
    assert not (tmp_path / "m.npz").exists()
