"""`cnnsheet exercise`: the walkthrough with cells blanked, checked live, its key the walkthrough."""

import re

import openpyxl
import pytest
from click.testing import CliRunner
from gnumeric import recalculate
from helpers import default_case, zoom_choices
from hostile_inputs import NOISE, run_cli
from libreoffice import compare, convert, soffice
from test_handout import page_text, pages

from cnnsheet import exercise, record, shapes, style, workbook
from cnnsheet import untrained as draws
from cnnsheet.cli import main
from cnnsheet.images import load_image
from cnnsheet.layout import split_target
from cnnsheet.lesson import Network
from cnnsheet.model import Model
from cnnsheet.resources import default_photo_path
from cnnsheet.texts import Texts
from cnnsheet.workbook import build_walkthrough


def tiny_case(seed=0):
    """The tiny network and picture of `cnnsheet exercise --tiny --seed S`."""
    image = load_image(default_photo_path(), [])
    shape = Model(draws.tiny_config(shapes.CLASSES, draws.TINY_SIZE, draws.TINY_FILTERS[-1]))
    pixels, model, _ = Network(shape, draws="--tiny", seed=seed).for_photo(image)
    return model, pixels


def build(model, pixels, seed=0, forward_only=False, count=None, lang="en"):
    kinds = exercise.FORWARD_KINDS if forward_only else exercise.KINDS
    return exercise.build_worksheet(model, pixels, Texts(lang), count or len(kinds), seed, {"tiny": True},
                                    with_backward=not forward_only, untrained=True)


def cell_of(plan, name):
    return workbook.cell_of(plan.names[name])


@pytest.mark.parametrize("case, forward_only", [("tiny", False), ("tiny", True), ("default", False)])
def test_one_exercise_of_each_kind_whose_answer_is_the_walkthroughs_value(case, forward_only, tmp_path):
    model, pixels = tiny_case() if case == "tiny" else default_case()
    sheet = build(model, pixels, forward_only=forward_only)
    kinds = exercise.FORWARD_KINDS if forward_only else exercise.KINDS
    assert [e.kind for e in sheet.exercises] == list(kinds)
    # the key is the walkthrough built with the same arguments, and each answer is its value there
    key = build_walkthrough(model, pixels, Texts("en"), with_backward=not forward_only, untrained=True)
    assert key.expected == sheet.key.expected
    for e in sheet.exercises:
        truth = key.expected[e.sheet, e.row, e.col]
        assert truth == 0 or abs(truth) >= exercise.SMALLEST
        if e.kind in ("size", "field"):  # the table's arithmetic, not a heat map's cell above it
            assert "!" not in key.plan[e.sheet].cells[e.row, e.col][0]
        assert abs(round(truth, e.decimals) - truth) <= record.RELATIVE * abs(truth)  # the decimals suffice
        formula, value, look = sheet.plan[e.sheet].cells[e.row, e.col]
        assert formula is None and value is None and look[0] == exercise.ANSWER_LOOK
        assert style.KINDS[look[0]]["unlocked"] and style.KINDS[look[0]]["frame"] == style.INPUT_FRAME
        assert cell_of(sheet.plan, exercise.answer_name(e.number)) == (e.sheet, e.row, e.col)
        check = cell_of(sheet.plan, exercise.check_name(e.number))
        assert check[:2] == (e.sheet, e.row) and check[2] > e.col  # beside it
    # what `check` reads back: the record, and from it the same walkthrough
    path = tmp_path / "worksheet.xlsx"
    sheet.save(path)
    kept = record.read(openpyxl.load_workbook(path), path.name)
    assert kept.exercises == sheet.exercises and kept.config == model.config
    assert kept.options["forward_only"] == forward_only and kept.options["count"] == len(kinds)
    assert kept.options["seed"] == 0 and kept.options["lang"] == "en" and kept.options["tiny"]
    assert kept.options["build"] == {"with_backward": not forward_only, "untrained": True}
    # `check` rebuilds the walkthrough from the cells and the record: each answer is its value there
    again = Model(kept.config)
    again.set_params(model.params())  # as check reads them from the weights' cells
    rebuilt = build_walkthrough(again, pixels, Texts(kept.options["lang"]), **kept.options["build"]).expected
    for e in kept.exercises:
        assert rebuilt[e.sheet, e.row, e.col] == key.expected[e.sheet, e.row, e.col]


@pytest.mark.parametrize("case", ["tiny", "default"])
def test_no_exercise_asks_what_a_panel_shows_worked_out(case):
    """The Zoom sheet takes its Conv1 cell apart and the Pool sheet's panel its Pool1 cell and that
    cell's window on ReLU1: asked, their answers would stand beside them."""
    model, pixels = tiny_case() if case == "tiny" else default_case()
    key = build_walkthrough(model, pixels, Texts("en"), with_backward=True, untrained=True)
    shown = exercise.given_away(key.plan, model)
    values = {cell: key.expected[cell] for cell in shown}
    pool = [cell for cell in shown if cell[0] == "Pool1"]
    window = [values[cell] for cell in shown if cell[0] == "ReLU1"]
    conv = [cell for cell in shown if cell[0] == "Conv1"]
    pool_size = next(layer for layer in model.layers if layer.kind == "maxpool").size
    assert len(pool) == 1 and len(conv) == 1 and len(window) == pool_size ** 2
    assert values[pool[0]] == max(window)  # the geometry is right: the window's largest is the pool's
    assert values[conv[0]] == pytest.approx(key.expected[cell_of(key.plan, "zoom1_value")], rel=1e-12)
    for seed in range(12 if case == "tiny" else 3):
        picked = {(e.sheet, e.row, e.col) for e in build(model, pixels, seed=seed).exercises}
        assert not picked & shown, seed


def test_seeds_pick_different_cells_and_count_asks_more_or_fewer():
    model, pixels = tiny_case()
    picks = {build(model, pixels, seed=seed).exercises for seed in range(4)}
    assert len(picks) >= 3
    assert build(model, pixels, seed=2).exercises == build(model, pixels, seed=2).exercises
    more = build(model, pixels, count=30).exercises
    assert len(more) == 30 and len({(e.sheet, e.row, e.col) for e in more}) == 30
    assert set(e.kind for e in more) == set(exercise.KINDS)
    fewer = build(model, pixels, count=3).exercises
    assert len(fewer) == 3 and len({e.kind for e in fewer}) == 3


@pytest.mark.parametrize("formula, expected", [
    ("=B10+Conv1!B10", "=Conv1_true!B10+Conv1_true!B10"),  # on Conv1, B10 a blank
    ("=C10+Conv1!$C$10:D11", "=C10+Conv1_true!$C$10:D11"),  # C10 no blank
    ('=IF(A1="Conv1!B10",B9:B11,0)', '=IF(A1="Conv1!B10",Conv1_true!B9:B11,0)'),  # a text stays
    ("='dFilters1'!B8*LOG10(B10)", "='dFilters1'!B8*LOG10(Conv1_true!B10)"),  # no twin: as it was
    ("=SUMPRODUCT(conv1_f1_grey,Input!B11:D13)*1E-06", "=SUMPRODUCT(conv1_f1_grey,Input!B11:D13)*1E-06"),
    ("='It''s'!A1+It.s!B10", "='It''s_true'!A1+It.s!B10"),
])
def test_rewrite_sends_references_to_the_twins(formula, expected):
    twins = {"Conv1": "Conv1_true", "It's": "It's_true"}
    assert exercise.rewrite(formula, twins, "Conv1_true", {(10, 2)}) == expected


def test_nothing_but_its_check_reads_a_blank_and_the_sheets_are_protected():
    model, pixels = tiny_case()
    sheet = build(model, pixels)
    plan, blanks = sheet.plan, {}
    for e in sheet.exercises:
        blanks.setdefault(e.sheet, set()).add((e.row, e.col))
    checks = {cell_of(plan, exercise.check_name(e.number)) for e in sheet.exercises}
    twins = {exercise.TWIN.format(title) for title in blanks}
    for ws in plan.sheets:
        assert ws.protected
        assert ws.hidden == (ws.title in twins or ws.title == record.SHEET)
        for (row, col), (formula, _, look) in ws.cells.items():
            if formula is None:
                continue
            assert not style.KINDS[look[0]].get("unlocked")  # formulas are locked
            if (ws.title, row, col) in checks:
                continue
            for target, ref in exercise.references(formula):
                target = target or ws.title
                reads_blank = target in blanks and exercise.covers(ref, blanks[target])
                assert not reads_blank, (ws.title, row, formula)
    for name, target in plan.names.items():
        title, ref = split_target(target)
        assert not (title in blanks and exercise.covers(ref, blanks[title])) or name.startswith("exercise_")
    # the weights, the pixels and the choices take typing
    for name in ("conv1_f1_grey", "dense1_w1", "image_R", "zoom1_filter", "target_class"):
        title, row, col = cell_of(plan, name)
        assert style.KINDS[plan[title].cells[row, col][2][0]].get("unlocked"), name


class Typed(float):
    """An answer typed as a formula (=0.25), whose value is right."""

    def formula(self) -> str:
        return f"={float(self)!r}"


def fill(sheet, answers):
    """The worksheet's plan with answers typed in: exercise number -> a number, a text or Typed."""
    for e in sheet.exercises:
        if e.number in answers:
            cells, answer = sheet.plan[e.sheet].cells, answers[e.number]
            formula = answer.formula() if isinstance(answer, Typed) else None
            cells[e.row, e.col] = (formula, answer, cells[e.row, e.col][2])


def answers_for(sheet):
    """Right (rounded to the decimals asked), 5% off and more (wrong), a text (wrong), the right
    value as a formula (wrong), or blank, in turn."""
    answers = {}
    for e in sheet.exercises:
        truth = sheet.key.expected[e.sheet, e.row, e.col]
        kind = e.number % 5
        if kind == 1:
            answers[e.number] = round(truth, e.decimals)
        elif kind == 2:
            answers[e.number] = truth * 1.05 + 1
        elif kind == 3:
            answers[e.number] = "don't know"
        elif kind == 4:
            answers[e.number] = Typed(round(truth, e.decimals))
    return answers


def expected_after(sheet, answers, truths):
    """Every formula cell of the filled worksheet: the walkthrough's `truths` (in the worksheet's
    places, its twins included), each check by record.right, the score, and the list's mirrors."""
    expected = {}
    for (title, row, col), value in sheet.plan.expected().items():
        twin = title.removesuffix("_true")
        expected[title, row, col] = truths.get((twin, row, col), value)
    score = 0
    for e in sheet.exercises:
        answer, truth = answers.get(e.number), truths[e.sheet, e.row, e.col]
        if isinstance(answer, Typed):  # a formula cell now, whose value is the answer
            expected[e.sheet, e.row, e.col] = float(answer)
        # a formula counts wrong, as `check` counts it
        check = "" if answer is None else int(not isinstance(answer, Typed) and record.right(answer, truth))
        score += check == 1
        expected[cell_of(sheet.plan, exercise.check_name(e.number))] = check
        row = exercise.list_row(sheet.plan, e.number)
        expected[exercise.SHEET, row, 4] = "" if answer is None else answer
        expected[exercise.SHEET, row, 5] = check
    expected[cell_of(sheet.plan, exercise.SCORE)] = score
    return expected, score


def edit_pixel(sheet, pixels, i, j, level):
    """Type a new grey level into pixel (i, j) of the worksheet; the pixels the engine then sees."""
    changed = pixels.copy()
    for channel in "RGB":
        title, row, col = cell_of(sheet.plan, f"image_{channel}")
        cells = sheet.plan[title].cells
        cells[row + i, col + j] = (None, level, cells[row + i, col + j][2])
    changed[i, j, :] = level
    return changed


def test_a_filled_worksheet_recalculates_to_the_walkthrough_and_counts_the_right_answers(tmp_path,
                                                                                         calc_profile):
    """Right, wrong, text and blank answers in LibreOffice: every other cell equals the walkthrough
    (probabilities, loss, gradients, saliency), each check follows record.right, and the score
    counts the right ones; also after a pixel is changed, when the checks follow the new truth."""
    model, pixels = tiny_case()
    sheet = build(model, pixels)
    answers = answers_for(sheet)
    fill(sheet, answers)
    filled = tmp_path / "filled.xlsx"
    sheet.save(filled)
    expected, score = expected_after(sheet, answers, sheet.key.expected)
    assert 0 < score < len(sheet.exercises)

    edited = build(model, pixels)
    fill(edited, answers)
    changed_pixels = edit_pixel(edited, pixels, 2, 3, 9 - int(pixels[2, 3, 0]))
    key = edited.key
    predicted = key.plan["Loss"].cells[cell_of(key.plan, "target_class")[1:]][1]
    truths = build_walkthrough(model, changed_pixels, Texts("en"), with_backward=True, untrained=True,
                               target_index=list(model.classes).index(predicted),
                               saliency_index=list(model.classes).index(predicted),
                               zoom_choices=zoom_choices(key)).expected
    assert truths != key.expected
    changed = tmp_path / "changed.xlsx"
    edited.save(changed)
    changed_expected, changed_score = expected_after(edited, answers, truths)

    recalculated = convert([filled, changed], tmp_path / "calc", calc_profile)
    compare(filled, recalculated[0], expected)
    compare(changed, recalculated[1], changed_expected)
    values = openpyxl.load_workbook(recalculated[0], data_only=True)
    title, row, col = cell_of(sheet.plan, exercise.SCORE)
    assert values[title].cell(row, col).value == score
    title, row, col = cell_of(sheet.plan, exercise.COUNT)
    assert values[title].cell(row, col).value == len(sheet.exercises)


def test_gnumeric_recalculates_a_filled_worksheet_alike(tmp_path):
    model, pixels = tiny_case(seed=3)
    sheet = build(model, pixels, seed=3)
    answers = answers_for(sheet)
    fill(sheet, answers)
    path = tmp_path / "filled.xlsx"
    sheet.save(path)
    expected, _ = expected_after(sheet, answers, sheet.key.expected)
    compare(path, recalculate(path, tmp_path / "gnumeric.xlsx"), expected)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_exercise_command_writes_a_worksheet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("exercise", "--tiny", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "wrote worksheet.xlsx: 12 exercises" in result.output
    kept = record.read(openpyxl.load_workbook("worksheet.xlsx"), "worksheet.xlsx")
    assert kept.options["seed"] == 2 and len(kept.exercises) == 12
    result = run("exercise", "--forward-only", "--count", "4", "-o", "four.xlsx")
    assert result.exit_code == 0, result.output
    assert {e.kind for e in record.read(openpyxl.load_workbook("four.xlsx"), "f").exercises} <= set(
        exercise.FORWARD_KINDS)


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "--count"),
    (["--tiny", "--count", "200"], "--count 200: this walkthrough has only"),
    (["--tiny", "--pdf", "w.pdf", "--key-pdf", "w.pdf"], "--key-pdf w.pdf"),
    (["--tiny", "-o", "w.pdf"], "-o w.pdf"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run("exercise", *args)
    assert result.exit_code != 0 and message in result.output
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output and lines[-1].startswith("Error:")
    assert len(lines) == 1 or lines[0].startswith("Usage:")  # click's usage line for a bad value
    assert list(tmp_path.iterdir()) == []


# pages of the printed worksheet and of its key: the list of exercises, and each sheet with a blank or
# a number one needs, a page each (the Overview's table of sizes one more). A tiny network's takes 14
# pages: 12 sheets with blanks, the list, and the pixels and the kernels a student needs before them.
@pytest.mark.parametrize("args, most", [(["--tiny"], 14), ([], 24)])
def test_the_worksheet_prints_with_empty_boxes_and_its_key_with_the_answers(tmp_path, args, most):
    soffice()  # a failure, not a skip, without LibreOffice
    xlsx, pdf, key_pdf = tmp_path / "w.xlsx", tmp_path / "w.pdf", tmp_path / "key.pdf"
    result = run("exercise", *args, "-o", xlsx, "--pdf", pdf, "--key-pdf", key_pdf)
    assert result.exit_code == 0, result.output
    sheet, key = pages(pdf), pages(key_pdf)
    assert len(sheet) == len(key) <= most
    sheet_text, key_text = (" ".join(page_text(page) for page in document) for document in (sheet, key))
    kept = record.read(openpyxl.load_workbook(xlsx), xlsx.name)
    values = openpyxl.load_workbook(xlsx, data_only=True)
    for e in kept.exercises:
        label = re.compile(f"Q{e.number}(?!\\d)")
        assert len(label.findall(sheet_text)) == 2  # in the list, and beside its box
        assert not label.search(key_text)
        truth = values[exercise.TWIN.format(e.sheet)].cell(e.row, e.col).value
        assert f"{truth:.{e.decimals}f}" in key_text
    assert sheet_text.count("\u2713") == 0 and key_text.count("\u2713") == 2 * len(kept.exercises)


def test_the_default_worksheet_recalculates_to_the_walkthrough(tmp_path, calc_profile):
    """The default network (its Overview's heat maps read every map, through the twins)."""
    model, pixels = default_case()
    sheet = exercise.build_worksheet(model, pixels, Texts("en"), len(exercise.KINDS), 5, {},
                                     with_backward=True, bundled=True)
    answers = answers_for(sheet)
    fill(sheet, answers)
    path = tmp_path / "default.xlsx"
    sheet.save(path)
    expected, score = expected_after(sheet, answers, sheet.key.expected)
    assert score == 3
    [recalculated] = convert([path], tmp_path / "calc", calc_profile)
    compare(path, recalculated, expected)


def test_a_new_user_prints_a_tiny_worksheet_from_the_command_line(tmp_path):
    """What the replay of a new user runs: one process, no warning, the files it names."""
    done = run_cli(["exercise", "--tiny", "-o", "x.xlsx", "--pdf", "x.pdf"], tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not [noise for noise in NOISE if noise in done.stdout + done.stderr]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x.pdf", "x.xlsx"]
    assert done.stdout.startswith("wrote x.xlsx: 12 exercises")
