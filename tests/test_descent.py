"""`cnnsheet descent`: the steps against torch, the lesson of the three rates on the bundled
pictures, and the workbook recalculated by LibreOffice (and once by Gnumeric), before and after a
student edits learning_rate and batch_size."""

import shutil

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from gnumeric import recalculate
from libreoffice import compare, convert
from openpyxl.utils.cell import range_boundaries
from PIL import Image
from torch_oracle import torch_forward, torch_params

from cnnsheet import budget, modelfile
from cnnsheet.cli import main
from cnnsheet.descent import LEARNING_RATE, bundled_folder, members, prepare, run, start_model
from cnnsheet.descent_book import LEARNING, build_descent, label_every
from cnnsheet.errors import CnnsheetError
from cnnsheet.texts import Texts


def torch_descent(model, pixels, labels, steps, rate, batch):
    """The same steps in torch (float64): the mean loss and accuracy over all pictures before each
    step and after the last, and the final weights. Step t uses pictures (t-1)*B+1 ... cyclically."""
    x = torch.tensor(((pixels[:, None] / 255.0) - model.mean[0]) / model.std[0])
    y = torch.tensor(np.asarray(labels))
    params = torch_params(model)
    n, losses, accuracies = len(y), [], []
    for t in range(1, steps + 2):
        logits = torch_forward(model, x, params)[model.layers[-1].name]
        each = F.cross_entropy(logits, y, reduction="none")
        losses.append(each.mean().item())
        right = logits.gather(1, y[:, None])[:, 0] == logits.max(dim=1).values
        accuracies.append(right.double().mean().item())
        if t > steps:
            break
        chosen = [i for i in range(n) if (i - (t - 1) * batch) % n < min(batch, n)]
        each[chosen].mean().backward()
        with torch.no_grad():
            for value in params.values():
                value -= rate * value.grad
                value.grad = None
    return np.array(losses), np.array(accuracies), {k: v.detach().numpy() for k, v in params.items()}


@pytest.fixture(scope="module")
def bundled():
    return prepare(steps=1)  # the pictures, their labels and the default start


def test_members_take_the_pictures_in_turn():
    assert members(1, 6, 2).tolist() == [1, 1, 0, 0, 0, 0]
    assert members(4, 6, 2).tolist() == [1, 1, 0, 0, 0, 0]  # around again
    assert members(2, 5, 2).tolist() == [0, 0, 1, 1, 0]
    assert members(3, 5, 2).tolist() == [1, 0, 0, 0, 1]  # wraps within a batch
    assert members(7, 4, 9).tolist() == [1, 1, 1, 1]  # a batch of at least all: full batch


@pytest.mark.parametrize("rate, batch", [(LEARNING_RATE, 6), (LEARNING_RATE, 1), (LEARNING_RATE, 4),
                                         (10 * LEARNING_RATE, 6), (LEARNING_RATE / 100, 2)])
def test_the_steps_are_torchs(bundled, rate, batch):
    steps = 12
    ours = run(bundled.model, bundled.pixels, bundled.labels, steps, rate, batch)
    losses, accuracies, params = torch_descent(bundled.model, bundled.pixels, bundled.labels, steps, rate,
                                               batch)
    np.testing.assert_allclose(ours.losses, losses, rtol=1e-9)
    np.testing.assert_array_equal(ours.accuracies, accuracies)
    start = ours.steps[-1].params
    for name, value in params.items():
        np.testing.assert_allclose(start[name], value, rtol=1e-8, atol=1e-12)


def test_the_three_rates_teach_the_lesson_on_the_bundled_pictures(bundled):
    """The default learns (under 70% of the start in 20 steps), ten times it fails (the loss
    rises and ends no better than 70%), a hundredth of it barely moves (above 80%)."""
    def losses(rate):
        return np.array(run(bundled.model, bundled.pixels, bundled.labels, 20, rate).losses)

    good, big, small = losses(LEARNING_RATE), losses(10 * LEARNING_RATE), losses(LEARNING_RATE / 100)
    assert good[-1] < 0.7 * good[0]
    assert big.max() > 2 * big[0] and big[-1] > 0.7 * big[0]
    assert small[-1] > 0.8 * small[0]
    assert np.all(np.diff(small) < 0)  # it crawls downhill all the same


def test_limits_are_checked_before_anything_is_read(tmp_path):
    folder = tmp_path / "many"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(9):
            (folder / name / f"{i}.png").write_bytes(b"not a picture")  # never read
    with pytest.raises(CnnsheetError, match="the number of pictures is 18; the limit is 16: use fewer"):
        prepare(folder)
    with pytest.raises(CnnsheetError, match="the number of steps is 51; the limit is 50: lower --steps"):
        prepare(steps=51)
    with pytest.raises(CnnsheetError, match="input size is 20; the limit is 16"):
        budget.check_descent(20, 2, 3, 3)


def edited(path, target, **cells):
    """A copy of the workbook with defined names set to new values, as a student would type them."""
    book = openpyxl.load_workbook(path)
    for name, value in cells.items():
        sheet, ref = next(iter(book.defined_names[name].destinations))
        book[sheet][ref.replace("$", "")] = value
    book.save(target)
    return target


def named_values(path, name) -> np.ndarray:
    book = openpyxl.load_workbook(path, data_only=True)
    sheet, ref = next(iter(book.defined_names[name].destinations))
    left, top, right, bottom = range_boundaries(ref.replace("$", ""))
    return np.array([book[sheet].cell(row, left).value for row in range(top, bottom + 1)], dtype=float)


@pytest.mark.slow
def test_libreoffice_recalculates_every_step_and_follows_edits_of_rate_and_batch(bundled, tmp_path,
                                                                                 calc_profile):
    steps = 8
    descent = run(bundled.model, bundled.pixels, bundled.labels, steps)
    book = build_descent(descent)
    original = tmp_path / "learn.xlsx"
    book.save(original)
    edits = {"ten_times": (10 * LEARNING_RATE, 6), "batch_two": (LEARNING_RATE, 2),
             "small_batch_one": (LEARNING_RATE / 10, 1)}
    copies = [edited(original, tmp_path / f"{key}.xlsx", learning_rate=rate, batch_size=batch)
              for key, (rate, batch) in edits.items()]
    recalculated = convert([original, *copies], tmp_path / "out", calc_profile)
    assert compare(original, recalculated[0], book.plan.expected(), rtol=1e-8) == book.formula_count
    losses, accuracies, _ = torch_descent(bundled.model, bundled.pixels, bundled.labels, steps,
                                          LEARNING_RATE, 6)
    np.testing.assert_allclose(named_values(recalculated[0], "losses"), losses, rtol=1e-9)
    np.testing.assert_allclose(named_values(recalculated[0], "accuracies"), accuracies, rtol=1e-12)
    for (rate, batch), path in zip(edits.values(), recalculated[1:]):
        losses, accuracies, _ = torch_descent(bundled.model, bundled.pixels, bundled.labels, steps, rate,
                                              batch)
        got = named_values(path, "losses")
        assert not np.allclose(got, descent.losses)  # the edit changed the run
        np.testing.assert_allclose(got, losses, rtol=1e-7)
        np.testing.assert_allclose(named_values(path, "accuracies"), accuracies, rtol=1e-12)


@pytest.mark.slow
def test_gnumeric_agrees_on_a_mini_batch_run(bundled, tmp_path):
    descent = run(bundled.model, bundled.pixels, bundled.labels, 4, LEARNING_RATE, 4)
    book = build_descent(descent)
    book.save(tmp_path / "learn.xlsx")
    out = recalculate(tmp_path / "learn.xlsx", tmp_path / "gnumeric.xlsx")
    assert compare(tmp_path / "learn.xlsx", out, book.plan.expected(), rtol=1e-8) == book.formula_count


def test_the_workbook_holds_the_names_and_the_charts(bundled):
    descent = run(bundled.model, bundled.pixels, bundled.labels, 5)
    plan = build_descent(descent).plan
    assert {"learning_rate", "batch_size", "rates", "losses", "accuracies", "class_names"} <= set(plan.names)
    assert plan.sheetnames == ["Learning", "Pictures", "Step1", "Step2", "Step3", "Step4", "Step5", "Final"]
    learning = plan["Learning"]
    loss_chart, accuracy_chart = learning.charts
    assert loss_chart.value_cache == tuple(descent.losses) and len(loss_chart.value_cache) == 6
    assert accuracy_chart.value_cache == tuple(descent.accuracies) and accuracy_chart.percent
    assert plan.names["losses"] == "Learning!" + "$C${0}:$C${1}".format(*_rows(loss_chart.values))


def _rows(ref: str):
    _, top, _, bottom = range_boundaries(ref)
    return top, bottom


def test_cli_writes_the_default_workbook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["descent"])
    assert result.exit_code == 0, result.output
    assert "wrote learn.xlsx: 6 pictures, 20 steps at learning rate 0.3" in result.output
    book = openpyxl.load_workbook(tmp_path / "learn.xlsx")
    assert book.sheetnames[:3] == ["Learning", "Pictures", "Step1"] and book.sheetnames[-1] == "Final"


def test_cli_reads_a_folder_in_order_and_uses_a_picture_at_the_input_size_unchanged(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(bundled_folder(), folder)
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    Image.fromarray(grey, "L").save(folder / "vertical" / "0.png")
    descent = prepare(folder, steps=1)
    assert descent.names[-3:] == ["vertical/0.png", "vertical/1.png", "vertical/2.png"]
    np.testing.assert_array_equal(descent.pixels[-3], grey)


@pytest.mark.parametrize("arguments, message", [
    (["descent", "--steps", "60"], "the number of steps is 60; the limit is 50: lower --steps"),
    (["descent", "-o", "learn.txt"], "-o learn.txt: a workbook file must end in .xlsx"),
    (["descent", "missing"], "missing: no such folder"),
    (["descent", "--lr", "nan"], "nan is not a finite number"),
    (["descent", "--lr", "1e300"], "lower --lr"),
])
def test_cli_refuses_bad_input_in_one_line(tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "learn.xlsx").exists() and not (tmp_path / "learn.txt").exists()


def test_a_model_must_match_the_classes_and_the_shape(tmp_path):
    other = start_model(["cat", "dog", "fish"])
    modelfile.save(other, tmp_path / "other.npz")
    with pytest.raises(CnnsheetError, match="the model's classes"):
        prepare(model_path=tmp_path / "other.npz")
    from cnnsheet.modelfile import load_model
    from cnnsheet.resources import default_model_path

    with pytest.raises(CnnsheetError, match="descent trains a grey network"):
        from cnnsheet.descent import check_model
        check_model(load_model(default_model_path()))


def test_the_writer_writes_the_descent_workbook_as_openpyxl_does(tmp_path):
    """The line charts, the drop-down of rates, the whole-number rules and every sheet, held
    against openpyxl's reference as tests/test_parts.py holds the walkthrough."""
    import xml.etree.ElementTree as ET

    from test_parts import describe, differences, element_order, written, xml_parts

    ours, reference = written(build_descent(prepare(steps=2)), tmp_path)
    assert differences(describe(ours), describe(reference)) == []
    charts = 0
    for name, mine, theirs in xml_parts(ours, reference):
        assert element_order(mine) == element_order(theirs), name
        assert ET.canonicalize(mine.decode()) == ET.canonicalize(theirs.decode()), name
        charts += name.startswith("xl/charts/")
    assert charts == 2


@pytest.mark.parametrize("steps, batch", [(1, 6), (3, 2), (20, 6)])
def test_the_budget_counts_the_formulas_from_above_and_closely(bundled, steps, batch):
    descent = run(bundled.model, bundled.pixels, bundled.labels, steps, LEARNING_RATE, batch)
    count = build_descent(descent).formula_count
    bound = budget.descent_formulas(8, 2, 3, 3, len(bundled.labels), steps)
    assert count <= bound <= 1.1 * count


def test_class_and_file_names_stay_text(tmp_path):
    """Folder and file names become cells: written as text, never as formulas."""
    folder = tmp_path / "data"
    for source, hostile in (("diagonal", "=SUM(1,2)"), ("vertical", "A & B <b>'猫'")):
        (folder / hostile).mkdir(parents=True)
        shutil.copy(bundled_folder() / source / "1.png", folder / hostile / "=1+1.png")
    book = build_descent(prepare(folder, steps=1))
    book.save(tmp_path / "learn.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "learn.xlsx")["Pictures"]
    texts = {cell.value for row in sheet.iter_rows() for cell in row if cell.data_type == "s"}
    assert {"=SUM(1,2)", "A & B <b>'猫'", "picture 1: =SUM(1,2)/=1+1.png"} <= texts


def test_a_file_that_is_no_picture_is_skipped_and_named_as_train_does(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(bundled_folder(), folder)
    (folder / "vertical" / "notes.txt").write_text("three strokes")
    result = CliRunner().invoke(main, ["descent", str(folder), "--steps", "1",
                                      "-o", str(tmp_path / "learn.xlsx")])
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: skipped") and "notes.txt" in warnings[0]
    assert "6 pictures" in result.stdout
    descent = prepare(folder, steps=1)
    assert "vertical/notes.txt" not in descent.names and len(descent.names) == 6
    for path in (folder / "vertical").iterdir():  # a class with nothing readable left is refused
        if path.suffix != ".txt":
            path.write_bytes(b"not a picture")
    with pytest.raises(CnnsheetError, match=r"vertical: class 'vertical' has no readable images"):
        prepare(folder, steps=1)


def test_the_charts_name_a_few_steps_and_show_the_loss_with_few_decimals():
    assert [label_every(n) for n in (6, 7, 21, 31, 51)] == [1, 2, 5, 10, 10]
    charts = build_descent(prepare(steps=20), Texts("en")).plan[LEARNING].charts
    assert [(c.label_every, c.percent) for c in charts] == [(5, False), (5, True)]
    assert charts[0].value_format == "0.0#"  # the loss axis: 0.2, 0.25, 1.0, not 1.4000
