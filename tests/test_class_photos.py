"""A class's photos in one command: `explain` and `predict` on several photos or a folder."""

import json
import os

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from helpers import random_pixels, small_model
from PIL import Image

from cnnsheet import modelfile, photos
from cnnsheet.cli import main
from cnnsheet.images import load_photo


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def save_photo(path, seed: int, size: int = 30, format: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_pixels(np.random.default_rng(seed), 1, size)[0]).save(path, format=format)
    return path


@pytest.fixture
def classroom(tmp_path, monkeypatch):
    """A folder of three pictures (one a PNG named .jpg), a note, a hidden file and a sub-folder;
    a photo of the same name elsewhere; a small model."""
    modelfile.save(small_model(seed=3, size=12, classes=("cat", "dog")), tmp_path / "m.npz")
    folder = tmp_path / "photos"
    for seed, name in enumerate(("b.jpg", "a.png", "c.jpg")):
        save_photo(folder / name, seed, format="PNG" if name == "c.jpg" else None)
    (folder / "notes.txt").write_text("bring a photo of a pet")
    save_photo(folder / ".hidden.png", 7)
    save_photo(folder / "sub" / "deep.png", 8)
    save_photo(tmp_path / "more" / "a.jpg", 9)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_pictures_are_told_apart_by_content(classroom):
    found, failed, skipped = photos.gather([classroom / "photos", classroom / "photos" / "a.png"])
    assert found == [classroom / "photos" / name for name in ("a.png", "b.jpg", "c.jpg")]  # once each
    assert failed == []
    assert skipped == [f"{classroom / 'photos' / 'notes.txt'}: not a picture (JPEG, PNG, GIF, BMP, WebP "
                       f"or TIFF), skipped"]
    assert photos.is_picture(classroom / "photos" / "c.jpg")  # a PNG by its first bytes
    (classroom / "photos" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 and nothing more")
    assert photos.is_picture(classroom / "photos" / "cut.jpg")  # damaged: reading it will say so


def test_a_folder_without_pictures_is_a_failure_naming_it(classroom):
    found, failed, _ = photos.gather([classroom / "empty"])
    assert (found, failed) == ([classroom / "empty"], [])  # a missing name: reading it will say so
    (classroom / "empty").mkdir()
    found, failed, _ = photos.gather([classroom / "empty", classroom / "more" / "a.jpg"])
    assert found == [classroom / "more" / "a.jpg"]
    assert failed == [(classroom / "empty", f"{classroom / 'empty'}: no pictures in this folder (JPEG, PNG, "
                                            f"GIF, BMP, WebP or TIFF; sub-folders are not searched)")]


@pytest.mark.parametrize("given, names", [
    (["a.jpg", "b.jpg"], ["a", "b"]),
    (["x/cat.jpg", "y/cat.jpg", "z/cat.jpg"], ["cat", "cat-2", "cat-3"]),
    (["cat.jpg", "Cat.PNG"], ["cat", "Cat-2"]),  # a Windows or macOS folder ignores letter case
    (["cat.jpg", "x/cat.jpg", "cat-2.jpg"], ["cat", "cat-2", "cat-2-2"]),
    (["photo.final.jpg", "photo.final.png"], ["photo.final", "photo.final-2"]),
])
def test_every_photo_gets_a_name_of_its_own(given, names):
    assert photos.output_names(given) == names


def test_explain_writes_a_workbook_per_photo_as_explain_writes_one(classroom):
    result = run("explain", "photos", "more/a.jpg", "missing.jpg", "--model", "m.npz", "-o", "out")
    assert result.exit_code == 1
    assert sorted(os.listdir("out")) == ["a-2.xlsx", "a.xlsx", "b.xlsx", "c.xlsx"]
    lines = result.output.splitlines()
    assert lines[0] == "note: photos/notes.txt: not a picture (JPEG, PNG, GIF, BMP, WebP or TIFF), skipped"
    assert [line.split(":")[0] for line in lines[1:5]] == [f"wrote out/{name}.xlsx"
                                                           for name in ("a", "b", "c", "a-2")]
    assert lines[4].startswith("wrote out/a-2.xlsx: more/a.jpg -> ")
    assert lines[-2:] == ["error: missing.jpg: no such file",
                          "Error: 1 of 5 photos could not be explained (listed above)"]
    assert "sub" not in result.output and "hidden" not in result.output
    # each workbook is the one explain writes for that photo alone, byte for byte
    for photo, name in (("photos/c.jpg", "c"), ("more/a.jpg", "a-2")):
        alone = run("explain", photo, "--model", "m.npz", "-o", f"{name}.xlsx")
        assert alone.exit_code == 0, alone.output
        assert (classroom / "out" / f"{name}.xlsx").read_bytes() == (classroom / f"{name}.xlsx").read_bytes()


def test_untrained_weights_are_drawn_for_each_photo_as_for_one(classroom):
    result = run("explain", "more", "photos/b.jpg", "--untrained", "--size", "10", "--seed", "4",
                 "--forward-only")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir("walkthroughs")) == ["a.xlsx", "b.xlsx"]  # the default folder, made
    alone = run("explain", "photos/b.jpg", "--untrained", "--size", "10", "--seed", "4", "--forward-only",
                "-o", "b.xlsx")
    assert alone.exit_code == 0, alone.output
    assert (classroom / "walkthroughs" / "b.xlsx").read_bytes() == (classroom / "b.xlsx").read_bytes()


def test_a_photo_that_cannot_be_written_stops_nothing_else(classroom):
    (classroom / "out" / "b.xlsx").mkdir(parents=True)  # a folder where b's workbook belongs
    (classroom / "out" / "a.xlsx").write_text("last week's")  # replaced, as explain replaces a file
    (classroom / "photos" / "d.jpg").write_bytes((classroom / "photos" / "b.jpg").read_bytes()[:300])
    result = run("explain", "photos", "--model", "m.npz", "-o", "out")
    assert result.exit_code == 1
    assert "error: -o out/b.xlsx: is a folder" in result.output
    assert "error: photos/d.jpg: damaged or truncated image" in result.output
    assert result.output.splitlines()[-1] == "Error: 2 of 4 photos could not be explained (listed above)"
    assert openpyxl.load_workbook(classroom / "out" / "a.xlsx", read_only=True).sheetnames[0] == "Overview"
    assert sorted(os.listdir("out")) == ["a.xlsx", "b.xlsx", "c.xlsx"]  # no temporary file left


@pytest.mark.parametrize("args, message", [
    (["-o", "out.xlsx"], "-o out.xlsx: with the folder photos, a workbook per photo goes into a folder (a "
                         "name ending in /), not into one file"),
    (["--pdf", "h.pdf"], "--pdf h.pdf: with the folder photos, a handout per photo goes into a folder (a "
                         "name ending in /), not into one file"),
    (["-o", "m.npz"], "-o m.npz: is a file; several photos need a folder for their files"),
    (["--label", "cow"], "--label 'cow' is not a class of this model: cat, dog"),
    (["--model", "absent.npz"], "--model absent.npz: no such model file"),
])
def test_a_whole_run_is_refused_before_any_work(classroom, args, message):
    args = args if "--model" in args else [*args, "--model", "m.npz"]
    result = run("explain", "photos", *args)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == f"Error: {message}"
    assert not (classroom / "walkthroughs").exists() and not (classroom / "out.xlsx").exists()


def test_nothing_to_explain_makes_no_folder(classroom):
    (classroom / "empty").mkdir()
    result = run("explain", "empty", "--model", "m.npz", "-o", "out")
    assert result.exit_code == 1
    assert not (classroom / "out").exists()
    assert result.output == ("Error: empty: no pictures in this folder (JPEG, PNG, GIF, BMP, WebP or TIFF; "
                             "sub-folders are not searched)\n")  # a run of one ends in its own error


def test_o_ending_in_a_slash_is_a_folder_even_for_one_photo(classroom):
    result = run("explain", "photos/b.jpg", "--model", "m.npz", "-o", "out/", "--forward-only")
    assert result.exit_code == 0, result.output
    assert os.listdir("out") == ["b.xlsx"]
    result = run("explain", "more/a.jpg", "--model", "m.npz", "-o", "out/", "--forward-only",
                 "--label", "pig")
    assert result.output == "Error: --label 'pig' is not a class of this model: cat, dog\n"
    result = run("explain", "photos/b.jpg", "more/a.jpg", "--model", "m.npz", "--pdf", "h.pdf")
    assert result.output == ("Error: --pdf h.pdf: with 2 photos, a handout per photo goes into a folder (a "
                             "name ending in /), not into one file\n")
    result = run("predict", "photos/c.jpg", "absent.jpg", "--model", "m.npz")
    assert result.exit_code == 1 and "photos/c.jpg: " in result.output


def test_one_photo_keeps_its_file_output(classroom):
    result = run("explain", "photos/b.jpg", "--model", "m.npz")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote walkthrough.xlsx: b.jpg -> ")


def test_explain_prints_a_handout_per_photo(classroom):
    result = run("explain", "more", "photos/a.png", "--model", "m.npz", "--forward-only", "-o", "out",
                 "--pdf", "handouts")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir("handouts")) == ["a-2.pdf", "a.pdf"]
    assert "wrote out/a-2.xlsx: photos/a.png -> " in result.output
    assert result.output.splitlines()[1].endswith(", handout handouts/a-2.pdf")
    for name in ("a", "a-2"):
        assert (classroom / "handouts" / f"{name}.pdf").read_bytes().startswith(b"%PDF-")


def test_predict_prints_a_line_per_photo(classroom):
    model = modelfile.load_model(classroom / "m.npz")
    result = run("predict", "photos", "more/a.jpg", "absent.jpg", "--model", "m.npz", "--label", "dog")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("note: photos/notes.txt: not a picture")
    for line, photo in zip(lines[1:5], ("photos/a.png", "photos/b.jpg", "photos/c.jpg", "more/a.jpg")):
        probabilities = model.predict(load_photo(photo, 12)).probabilities[0]
        best = int(probabilities.argmax())
        assert line == (f"{photo}: {model.classes[best]} ({probabilities[best]:.1%}), "
                        f"loss {-np.log(probabilities[1]):.4f}")
    assert lines[5:] == ["error: absent.jpg: no such file",
                         "Error: 1 of 5 photos could not be classified (listed above)"]


def test_predict_json_is_one_object_a_line_with_the_photos_name(classroom):
    result = run("predict", "photos", "--model", "m.npz", "--json")
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [item["photo"] for item in objects] == ["photos/a.png", "photos/b.jpg", "photos/c.jpg"]
    for item in objects:
        alone = json.loads(run("predict", item.pop("photo"), "--model", "m.npz", "--json").output)
        assert item == alone
