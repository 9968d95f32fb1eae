"""The walkthrough workbook, recalculated by LibreOffice Calc and compared with the engine."""

import subprocess
import sys

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from helpers import config, default_case, small_model, zoom_choices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libreoffice import cached_values_match, compare, convert
from openpyxl.utils.cell import range_boundaries
from strategies import models

from cnnsheet import modelfile
from cnnsheet.cli import main
from cnnsheet.model import Model
from cnnsheet.resources import default_photo_path
from cnnsheet.texts import Texts
from cnnsheet.workbook import build_walkthrough


def top_left(walkthrough, name):
    """(sheet, row, col) of the first cell a defined name points at."""
    sheet, ref = walkthrough.names[name].rsplit("!", 1)
    left, top, _, _ = range_boundaries(ref.replace("$", ""))
    return sheet.strip("'"), top, left


def test_the_default_walkthrough_from_the_cli_matches_the_engine(tmp_path, calc_profile):
    out = tmp_path / "walkthrough.xlsx"
    result = CliRunner().invoke(main, ["explain", "-o", str(out)])
    assert result.exit_code == 0, result.output
    model, pixels = default_case()
    expected = build_walkthrough(model, pixels, with_backward=True, bundled=True).expected
    [recalculated] = convert([out], tmp_path / "calc", calc_profile)
    assert compare(out, recalculated, expected) > 70_000
    assert cached_values_match(out, recalculated) > 70_000


@st.composite
def cases(draw):
    model = draw(models(sizes=(5, 14), tricky_names=True))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    model.init(seed % 1000)
    for array in model.params().values():
        array += rng.normal(scale=0.2, size=array.shape)
    if draw(st.booleans()):  # dark, flat pictures: many exact ties in the pools after ReLU
        pixels = rng.integers(0, 3, size=(model.input_size, model.input_size, 3)).astype(np.uint8)
    else:
        pixels = rng.integers(0, 256, size=(model.input_size, model.input_size, 3)).astype(np.uint8)
    return model, pixels, int(rng.integers(len(model.classes)))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(cases(), min_size=5, max_size=5))
def test_random_architectures_match_the_engine_cell_by_cell(tmp_path_factory, calc_profile, batch):
    """Forward and backward sheets, the step and the saliency map of random networks: stride,
    padding, dilation, overlapping pools, one to three conv blocks, hidden layers, pooling ties."""
    folder = tmp_path_factory.mktemp("random")
    paths, walkthroughs = [], []
    for number, (model, pixels, target_index) in enumerate(batch):
        walkthrough = build_walkthrough(model, pixels, target_index=target_index, with_backward=True)
        path = folder / f"case{number}.xlsx"
        walkthrough.save(path)
        paths.append(path)
        walkthroughs.append(walkthrough)
    for path, recalculated, walkthrough in zip(paths, convert(paths, folder / "calc", calc_profile),
                                               walkthroughs):
        compare(path, recalculated, walkthrough.expected)


def test_the_workbook_is_live(tmp_path, calc_profile):
    """Change pixels, a conv weight, a dense weight, the true class, the learning rate and the
    saliency class; Calc follows the engine everywhere, gradients and step included."""
    model, pixels = default_case()
    walkthrough = build_walkthrough(model, pixels, with_backward=True)
    original = tmp_path / "original.xlsx"
    walkthrough.save(original)

    book = openpyxl.load_workbook(original)
    changed_pixels = pixels.copy()
    for channel, (i, j, value) in zip("RGB", [(3, 4, 0), (10, 10, 255), (20, 5, 17)]):
        sheet, row, col = top_left(walkthrough, f"image_{channel}")
        book[sheet].cell(row + i, col + j).value = value
        changed_pixels[i, j, "RGB".index(channel)] = value
    sheet, row, col = top_left(walkthrough, "conv1_f1_R")
    book[sheet].cell(row + 1, col + 2).value = 0.5
    sheet, row, col = top_left(walkthrough, "dense1_w1")
    book[sheet].cell(row + 7, col).value = -0.3
    for name, value in (("target_class", "square"), ("learning_rate", 0.2), ("saliency_class", "circle")):
        sheet, row, col = top_left(walkthrough, name)
        book[sheet].cell(row, col).value = value
    changed = tmp_path / "changed.xlsx"
    book.save(changed)

    model.params()["conv1.weight"][0, 0, 1, 2] = 0.5
    model.params()["hidden.weight"][0, 7] = -0.3
    expected = build_walkthrough(model, changed_pixels, target_index=1, with_backward=True,
                                 learning_rate=0.2, saliency_index=0,
                                 zoom_choices=zoom_choices(walkthrough)).expected
    assert expected != walkthrough.expected
    [recalculated] = convert([changed], tmp_path / "calc", calc_profile)
    compare(changed, recalculated, expected)


def test_a_hard_architecture_matches_the_engine(tmp_path, calc_profile):
    """Every feature at once, whatever hypothesis draws: stride 2 with padding (the spread map),
    dilation (kernels with holes), an overlapping pool, a second conv block (the full
    convolution to its input), a hidden layer, grey input, and flat pixels that tie in the pools."""
    model = Model(config(13, channels=1, hidden=[4], classes=("a", "b", "c"), blocks=[
        {"filters": 2, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "pool": 2, "pool_stride": 1},
        {"filters": 2, "kernel": 2, "stride": 1, "padding": 1, "dilation": 1},
    ])).init(3)
    pixels = np.zeros((13, 13, 3), dtype=np.uint8)
    pixels[3:9, 4:8] = 200
    walkthrough = build_walkthrough(model, pixels, target_index=1, with_backward=True)
    assert {"dSpread1", "Rotated2", "dPool1", "sInput"} <= set(walkthrough.sheetnames)
    path = tmp_path / "hard.xlsx"
    walkthrough.save(path)
    [recalculated] = convert([path], tmp_path / "calc", calc_profile)
    assert compare(path, recalculated, walkthrough.expected) > 1000


def test_one_step_of_gradient_descent_lowers_the_loss_of_the_default_walkthrough():
    model, pixels = default_case()
    walkthrough = build_walkthrough(model, pixels, with_backward=True)
    loss, after = (walkthrough.expected[top_left(walkthrough, name)] for name in ("loss", "loss_after_step"))
    assert after < loss
    assert walkthrough.expected[top_left(walkthrough, "saliency")] >= 0


def test_class_names_stay_text(tmp_path):
    model = small_model(size=8, classes=("=1+1", "@SUM(A1)", "+3"))
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    walkthrough = build_walkthrough(model, pixels)
    path = tmp_path / "names.xlsx"
    walkthrough.save(path)
    book = openpyxl.load_workbook(path)
    softmax = book["Softmax"]
    names = [cell.value for row in softmax.iter_rows() for cell in row
             if cell.value in ("=1+1", "@SUM(A1)", "+3")]
    assert sorted(names) == ["+3", "=1+1", "@SUM(A1)"]
    assert all(cell.data_type == "s" for row in softmax.iter_rows() for cell in row
               if cell.value in ("=1+1", "@SUM(A1)", "+3"))


def test_defined_names_of_the_contract_exist():
    model, pixels = default_case()
    names = build_walkthrough(model, pixels, with_backward=True).names
    for name in ["image_R", "image_G", "image_B", "logits", "probabilities", "loss", "target_class",
                 "conv1_f1_R", "conv1_f8_B", "conv1_f1_bias", "flatten", "learning_rate",
                 "loss_after_step", "saliency_class", "saliency", "dlogits"]:
        assert name in names, name
    assert names["logits"].startswith("Dense2!") and names["probabilities"].startswith("Softmax!")


def test_chinese_and_a_teachers_own_texts(tmp_path):
    model, pixels = default_case()
    plan = build_walkthrough(model, pixels, Texts("zh")).plan
    assert "卷积" in plan["Conv1"].cells[1, 1][1]
    own = tmp_path / "texts"
    own.mkdir()
    (own / "en.toml").write_text('[conv]\ntitle = "Sliding {filters} magnifying glasses"\n')
    plan = build_walkthrough(model, pixels, Texts("en", own)).plan
    assert plan["Conv1"].cells[1, 1][1] == "Step 4 - Sliding 8 magnifying glasses"  # numbered
    assert plan["Pool1"].cells[1, 1][1].startswith("Step 6")  # everything else is built in
    (own / "en.toml").write_text('[conv]\ntitle = "Sliding {glasses}"\n')
    with pytest.raises(Exception, match="unknown placeholder 'glasses'"):
        build_walkthrough(model, pixels, Texts("en", own))


@pytest.mark.parametrize("args, message", [
    (["nope.jpg"], "nope.jpg: no such file"),
    (["--model", "nope.npz"], "nope.npz: no such model file"),
    (["--label", "hexagon"], "--label 'hexagon' is not a class"),
    (["-o", "missing/w.xlsx"], "the folder missing does not exist"),
    (["--filters", "3"], "add --untrained"),
    (["--untrained", "--size", "368", "--pool", "1", "--hidden", "0"], "Excel allows 1,048,576 rows"),
    (["--untrained", "--size", "400", "--pool", "1"], "parameters (the limit is 10,000,000)"),
    (["--untrained", "--size", "8", "--kernel", "9"], "kernel 9 is larger than the padded input 8"),
    (["--templates", "nowhere"], "--templates nowhere: no such folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["explain", *args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_explain_with_no_arguments_writes_walkthrough_xlsx(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["explain"])
    assert result.exit_code == 0, result.output
    assert "drawn-triangle.jpg -> triangle" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["walkthrough.xlsx"]
    book = openpyxl.load_workbook(tmp_path / "walkthrough.xlsx")
    assert book.sheetnames[:4] == ["Overview", "Image", "Input", "Filters1"]
    assert {"dLogits", "dFilters1", "Step", "NewSoftmax", "Saliency", "sImage"} <= set(book.sheetnames)
    CliRunner().invoke(main, ["explain", "--forward-only", "-o", "forward.xlsx"])
    assert openpyxl.load_workbook(tmp_path / "forward.xlsx").sheetnames[-1] == "Loss"


def test_a_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, path):
        open(path, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr("cnnsheet.writer._write", lambda plan, path, cached_values: broken(None, path))
    model, pixels = default_case()
    with pytest.raises(OSError):
        build_walkthrough(model, pixels).save(tmp_path / "w.xlsx")
    assert list(tmp_path.iterdir()) == []


def test_a_confident_model_explains_a_class_it_gives_no_chance(tmp_path):
    """One score 800 above the rest: the other classes' probabilities round to 0, so -ln p would be
    infinite; the engine's loss (log-sum-exp) is 800, and every cached value comes from it. The
    command is run as a user runs it, with every Python warning an error."""
    model = small_model()
    logits = model.layers[-1]
    logits.weight[...] = 0.0
    logits.bias[...] = [800.0, 0.0, 0.0]  # "a" whatever the photo
    modelfile.save(model, tmp_path / "confident.npz")
    out = tmp_path / "confident.xlsx"
    run = subprocess.run([sys.executable, "-W", "error", "-m", "cnnsheet", "explain",
                          str(default_photo_path()), "--model", str(tmp_path / "confident.npz"),
                          "--label", "b", "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert out.exists()
    values = openpyxl.load_workbook(out, data_only=True)
    formulas = openpyxl.load_workbook(out)
    loss_sheet, loss_ref = formulas.defined_names["loss"].attr_text.split("!")
    loss = values[loss_sheet][loss_ref.replace("$", "")].value
    assert loss == pytest.approx(800.0)
    after_sheet, after_ref = formulas.defined_names["loss_after_step"].attr_text.split("!")
    after = values[after_sheet][after_ref.replace("$", "")].value
    assert 790 < after < loss  # one step lowers the loss, and it stays finite


@pytest.mark.slow
def test_a_confident_models_loss_recalculates_finite_in_libreoffice(tmp_path, calc_profile):
    """The same model in Calc: p of "b" rounds to 0 there too, yet the Loss sheet's loss and the
    loss after the step recalculate to the engine's numbers (about 800), not #NUM!."""
    model = small_model()
    model.layers[-1].weight[...] = 0.0
    model.layers[-1].bias[...] = [800.0, 0.0, 0.0]
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 12, 3)).astype(np.uint8)
    assert model.predict(pixels).probabilities[0, 1] == 0.0  # the engine's p rounds to 0 as well
    walkthrough = build_walkthrough(model, pixels, target_index=1, with_backward=True)
    path = tmp_path / "confident.xlsx"
    walkthrough.save(path)
    [recalculated] = convert([path], tmp_path / "calc", calc_profile)
    assert compare(path, recalculated, walkthrough.expected) > 500
    values = openpyxl.load_workbook(recalculated, data_only=True)
    sheet, ref = walkthrough.names["loss"].split("!")
    assert values[sheet.strip("'")][ref.replace("$", "")].value == pytest.approx(800.0)
