"""A class typed with other capitals: the workbook picks the class whatever its case, in LibreOffice
and in Gnumeric, and class names that differ only by case are refused where they enter."""

import json

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from gnumeric import recalculate
from helpers import config, small_model, zoom_choices
from libreoffice import compare, convert
from openpyxl.utils.cell import range_boundaries
from PIL import Image

from cnnsheet import modelfile
from cnnsheet.cli import main
from cnnsheet.config import check_class_names
from cnnsheet.errors import CnnsheetError
from cnnsheet.model import Model
from cnnsheet.sheets.output import predicted_formula
from cnnsheet.texts import Texts
from cnnsheet.train import list_folder
from cnnsheet.workbook import build_walkthrough

SHAPES = ("circle", "square", "triangle")
DIGITS = ("1", "2", "3")  # folder names of a digits data set: a student types the number


def edited(walkthrough, path, out, values: dict):
    """A copy of the saved walkthrough with defined cells set as a student types them."""
    book = openpyxl.load_workbook(path)
    for name, value in values.items():
        sheet, ref = walkthrough.names[name].rsplit("!", 1)
        book[sheet.strip("'")][ref.replace("$", "")] = value
    book.save(out)
    return out


def cells_of(walkthrough, name: str) -> list[tuple]:
    """(sheet, row, col) of every cell a defined name covers."""
    sheet, ref = walkthrough.names[name].rsplit("!", 1)
    left, top, right, bottom = range_boundaries(ref.replace("$", ""))
    return [(sheet.strip("'"), row, col) for row in range(top, bottom + 1) for col in range(left, right + 1)]


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """Walkthroughs built with the first class picked, copies with the second class typed (in
    other capitals, or as a number), and what the engine says for the second class picked."""
    folder = tmp_path_factory.mktemp("typed")
    cases = []
    for classes, typings in ((SHAPES, [("Square", "SQUARE"), ("SQUARE", "sQuArE")]), (DIGITS, [(2, 2)])):
        model = small_model(seed=5, size=9, classes=classes, hidden=(3,))
        pixels = np.random.default_rng(5).integers(0, 256, size=(9, 9, 3)).astype(np.uint8)
        picked = build_walkthrough(model, pixels, target_index=0, saliency_index=0, with_backward=True)
        original = folder / f"{classes[0]}-picked.xlsx"
        picked.save(original)
        second = build_walkthrough(model, pixels, target_index=1, saliency_index=1, with_backward=True,
                                   zoom_choices=zoom_choices(picked))
        for name in ("loss", "loss_after_step", "saliency"):  # the edit must change what is checked
            assert any(second.expected[cell] != picked.expected[cell] for cell in cells_of(second, name))
        for number, (target, saliency) in enumerate(typings):
            typed = {"target_class": target, "saliency_class": saliency}
            path = edited(picked, original, folder / f"{classes[0]}-typed{number}.xlsx", typed)
            # the class in use of each choice and its mirror on the Overview show what was typed
            mirrors = {(sheet.title, *cell): typed[name] for sheet in second.plan.sheets
                       for name in typed for cell, (formula, *_) in sheet.cells.items()
                       if formula in (f"=IF({name}=\"\",{predicted_formula()[1:]},{name})", f"={name}_used")}
            assert len(mirrors) == 4
            cases.append((path, {**second.expected, **mirrors}))
    return folder, cases


@pytest.mark.slow
def test_libreoffice_picks_a_class_typed_in_other_capitals_or_as_a_number(typed, calc_profile):
    folder, cases = typed
    paths = [path for path, _ in cases]
    for (path, expected), recalculated in zip(cases, convert(paths, folder / "calc", calc_profile)):
        assert compare(path, recalculated, expected) > 1000


@pytest.mark.slow
def test_gnumeric_picks_a_class_typed_in_other_capitals_or_as_a_number(typed):
    folder, cases = typed
    for path, expected in cases:
        recalculated = recalculate(path, folder / f"{path.stem}-gnumeric.xlsx")
        assert compare(path, recalculated, expected) > 1000


@pytest.mark.parametrize("classes", [["cat", "Cat"], ["dog", "cat", "CAT"], ["straße", "STRASSE"]])
def test_class_names_that_differ_only_by_case_are_refused(classes):
    with pytest.raises(CnnsheetError, match=r"^the class names .*differ only by capitals"):
        check_class_names(classes)
    with pytest.raises(CnnsheetError, match="differ only by capitals"):
        Model(config(classes=classes))


def test_a_training_folder_whose_classes_differ_only_by_case_is_refused(tmp_path):
    for name in ("cat", "Cat", "dog"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "1.png")
    with pytest.raises(CnnsheetError, match=r"'Cat', 'cat' differ only by capitals.*rename that sub-folder"):
        list_folder(tmp_path)


def test_a_translation_that_merges_two_classes_by_case_keeps_the_originals(tmp_path):
    (tmp_path / "en.toml").write_text('[classes]\ncircle = "Round"\nsquare = "round"\n', encoding="utf-8")
    assert Texts("en", tmp_path).class_names(list(SHAPES)) == list(SHAPES)


def test_the_label_option_takes_any_capitals(tmp_path):
    model = small_model(classes=SHAPES)
    modelfile.save(model, tmp_path / "m.npz")
    Image.new("RGB", (12, 12), "white").save(tmp_path / "photo.png")
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "photo.png"), "--model",
                                       str(tmp_path / "m.npz"), "--json", "--label", "SQUARE"])
    assert result.exit_code == 0, result.output
    loss = json.loads(result.output)["loss"]
    trace = model.predict(np.full((12, 12, 3), 255, dtype=np.uint8))
    assert loss == pytest.approx(float(model.loss(trace, [1])[0]), rel=1e-12)


@pytest.mark.slow
def test_a_cleared_class_cell_stands_for_the_predicted_class_in_libreoffice(tmp_path, calc_profile):
    """Delete pressed on the true class and on the class to explain: the predicted class is used,
    live (the loss, every gradient, the step and the saliency map are the engine's for it), and
    the row below each choice and the Overview say which class that is."""
    model = small_model(seed=5, size=9, classes=SHAPES, hidden=(3,))
    pixels = np.random.default_rng(5).integers(0, 256, size=(9, 9, 3)).astype(np.uint8)
    predicted = int(model.predict(pixels).probabilities[0].argmax())
    other = (predicted + 1) % len(SHAPES)
    picked = build_walkthrough(model, pixels, target_index=other, saliency_index=other, with_backward=True)
    picked.save(tmp_path / "picked.xlsx")
    blank = build_walkthrough(model, pixels, target_index=predicted, saliency_index=predicted,
                              with_backward=True, zoom_choices=zoom_choices(picked))
    for name in ("loss", "loss_after_step", "saliency"):  # the edit must change what is checked
        assert any(blank.expected[cell] != picked.expected[cell] for cell in cells_of(blank, name))
    path = edited(picked, tmp_path / "picked.xlsx", tmp_path / "cleared.xlsx",
                  {"target_class": None, "saliency_class": None})
    assert openpyxl.load_workbook(path)["Loss"][picked.names["target_class"].split("!")[1].replace("$", "")
                                                ].value is None
    used = [cells_of(blank, f"{name}_used")[0] for name in ("target_class", "saliency_class")]
    assert [blank.expected[cell] for cell in used] == [SHAPES[predicted]] * 2
    [recalculated] = convert([path], tmp_path / "calc", calc_profile)
    assert compare(path, recalculated, blank.expected) > 1000
