"""What the workbook says: true texts for untrained and bundled models, step numbers that match
the sheets, colour legends, and number formats that fit the magnitude. Plans only, no file."""

import re

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import default_case

from cnnsheet import shapes, style
from cnnsheet.cli import main
from cnnsheet.model import Model
from cnnsheet.texts import Texts
from cnnsheet.train import Architecture
from cnnsheet.workbook import build_walkthrough


def texts_of(sheet) -> list[str]:
    return [value for formula, value, _ in sheet.cells.values() if formula is None and isinstance(value, str)]


def all_texts(plan) -> str:
    return "\n".join(text for sheet in plan.sheets for text in texts_of(sheet))


def two_blocks(**extra) -> Model:
    return Model(Architecture(size=20, blocks=2, pool=2, hidden=6, **extra).config(shapes.CLASSES)).init(0)


def pixels(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)


@pytest.mark.parametrize("lang, random, learned", [("en", "random", "learned in training"),
                                                   ("zh", "随机", "训练中学到")])
def test_untrained_workbooks_say_the_weights_are_random(lang, random, learned):
    plan = build_walkthrough(two_blocks(), pixels(20), Texts(lang), with_backward=True, untrained=True).plan
    everything = all_texts(plan)
    assert learned not in everything
    assert "training pictures" not in everything and "来自训练图片" not in everything
    assert random in "".join(texts_of(plan["Overview"]))
    assert random in "".join(texts_of(plan["Filters1"])) and random in "".join(texts_of(plan["Filters2"]))
    trained = build_walkthrough(two_blocks(), pixels(20), Texts(lang)).plan
    assert learned in all_texts(trained)


def test_the_bundled_model_says_what_it_knows_and_zh_shows_its_classes_in_chinese():
    model, photo = default_case()
    plan = build_walkthrough(model, photo, bundled=True).plan
    note = [t for t in texts_of(plan["Overview"]) if "circle, a square and a triangle" in t]
    assert note and "cnnsheet train" in note[0]
    assert not any("cnnsheet train" in t for t in texts_of(build_walkthrough(model, photo).plan["Overview"]))
    zh = build_walkthrough(model, photo, Texts("zh"), with_backward=True, bundled=True).plan
    assert [zh["Softmax"].cells[r, 2][1] for r in range(9, 12)] == ["圆形", "正方形", "三角形"]
    [predicted] = [c for c in zh["Overview"].cells.values() if c[0] and c[0].startswith("=INDEX(class_names")]
    assert predicted[1] == "三角形"  # the prediction, a live formula's value
    assert "cnnsheet train" in "".join(texts_of(zh["Overview"]))


def test_the_cli_says_what_the_bundled_model_knows(tmp_path):
    result = CliRunner().invoke(main, ["explain", "--forward-only", "-o", str(tmp_path / "w.xlsx")])
    assert result.exit_code == 0, result.output
    assert "knows only circle, square, triangle" in result.output and "cnnsheet train" in result.output
    untrained = ["explain", "--forward-only", "--untrained", "-o", str(tmp_path / "u.xlsx")]
    result = CliRunner().invoke(main, untrained)
    assert "random" in result.output and "knows only" not in result.output


def test_class_names_shown_fall_back_when_a_translation_would_repeat_one():
    texts = Texts("zh")
    assert texts.class_names(["circle", "dog"]) == ["圆形", "dog"]
    assert texts.class_names(["circle", "圆形"]) == ["circle", "圆形"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_step_numbers_follow_the_sheets(lang):
    plan = build_walkthrough(two_blocks(), pixels(20), Texts(lang), with_backward=True, untrained=True).plan
    label = {"en": (r"^Step (\d+) - ", r"^Backward (\d+) - ", r"^Saliency pass (\d+) - "),
             "zh": (r"^第 (\d+) 步 - ", r"^反向传播第 (\d+) 步 - ", r"^显著图反向传播第 (\d+) 步 - ")}[lang]
    titles = [(sheet.title, sheet.cells[1, 1][1]) for sheet in plan.sheets]
    for pattern in label:
        numbers = [int(m[1]) for _, title in titles if (m := re.match(pattern, title))]
        assert numbers == list(range(1, len(numbers) + 1)), (pattern, numbers)
    forward = [t for t in titles if not t[0].startswith(("New", "Overview", "Step", "Saliency"))
               and re.match(label[0], t[1])]
    assert [t[0] for t in forward] == ["Image", "Input", "Filters1", "Conv1", "ReLU1", "Pool1", "Filters2",
                                       "Conv2", "ReLU2", "Pool2", "Flatten", "Dense1", "Dense2", "Softmax",
                                       "Loss"]
    title = dict(titles)
    assert "Dense1" in title["Dense1"] and "Dense2" in title["dDense2"]
    assert "ReLU2" in title["Mask2"] and "ReLU1" in title["Mask1"]  # a Mask is numbered after its pool
    assert plan.sheetnames.index("Mask2") < plan.sheetnames.index("Mask1")
    new = re.search(r"(\d+)", title["NewConv2"])[1]
    assert new == re.search(r"(\d+)", title["Conv2"])[1]  # the New... sheets repeat the numbers


def test_every_coloured_sheet_says_what_its_colours_mean():
    # "Colours:", or on a sheet of two scales "Colours of the ReLU row:"
    for lang, legend in (("en", r"^Colours( of [^:]+)?:"), ("zh", r"^([^，。：]{1,16}的)?颜色：")):
        plan = build_walkthrough(two_blocks(), pixels(20), Texts(lang), with_backward=True).plan
        for sheet in plan.sheets:
            if sheet.scales:
                assert any(re.match(legend, t) for t in texts_of(sheet)), sheet.title


def test_the_texts_read_as_prose_and_the_backward_pass_points_the_right_way():
    model, photo = default_case()
    plan = build_walkthrough(model, photo, with_backward=True).plan
    everything = all_texts(plan)
    assert "(s)" not in everything and ".0 times" not in everything
    assert "one pixel at a time" in everything and "16 times fewer" in everything
    assert "passed back from sheet dLogits" in "".join(texts_of(plan["dDense2"]))
    assert "passed back from sheet dDense2" in "".join(texts_of(plan["dDense1"]))
    assert any(t.startswith("gradient dW") for t in texts_of(plan["dDense1"]))
    assert "lattice" in "".join(texts_of(plan["Mask1"]))
    assert "bright" not in "".join(texts_of(plan["Saliency"]))
    assert "too large" in "".join(texts_of(plan["Step"]))


@pytest.mark.parametrize("lang, said", [
    ("en", "so they leave out the last row and the last column, as in PyTorch"),
    ("zh", "所以最后 1 行和最后 1 列被舍去")])
def test_what_pooling_leaves_out_reads_as_a_sentence(lang, said):
    model = Model(Architecture(size=13, kernel=3, pool=2).config(shapes.CLASSES)).init(0)
    plan = build_walkthrough(model, pixels(13), Texts(lang)).plan
    assert said in "".join(texts_of(plan["Pool1"]))


@pytest.mark.parametrize("values, fmt, shown", [
    ([9248, -3], "#,##0", "9,248"), ([255, 0], "0", "255"), ([12.3, -1], "0.0", "12.3"),
    ([3.14159, -1], "0.00", "3.14"), ([0.5, -0.1], "0.000", "0.500"), ([0.0191, 0], "0.0000", "0.0191"),
    ([0.0191, -0.01], "0.000", "0.019"), ([0.00456, 0], "0.0000", "0.0046"),
    ([0.00456, -0.001], "0E+0", "5E-3"), ([2.2e-5, 0], "0E+0", "2E-5"), ([0, 0], "0.00", "0.00"),
])
def test_number_formats_fit_the_magnitude_in_six_characters(values, fmt, shown):
    assert style.number_format(np.array(values)) == fmt
    assert excel_like(max(values, key=abs), fmt) == shown
    assert len(("-" if min(values) < 0 else "") + shown) <= style.TENSOR_CHARACTERS


def excel_like(value: float, fmt: str) -> str:
    """How a spreadsheet shows a positive value in these few formats."""
    if fmt == "#,##0":
        return f"{value:,.0f}"
    if fmt == "0E+0":
        mantissa, exponent = f"{value:.0E}".split("E")
        return f"{mantissa}E{int(exponent)}"
    decimals = len(fmt.split(".")[1]) if "." in fmt else 0
    return f"{value:.{decimals}f}"


def test_a_tiny_loss_is_not_shown_as_zero_and_one_format_serves_every_loss():
    assert [excel_like(v, style.LOSS) for v in (2.2e-5, 0.0534, 0.0)] == ["0.000022", "0.053400", "0.000000"]
    model, photo = default_case()
    plan = build_walkthrough(model, photo, with_backward=True).plan
    losses = [cell[2] for sheet in ("Overview", "Loss", "Step") for cell in plan[sheet].cells.values()
              if cell[0] and any(word in cell[0] for word in ("loss", "LN("))]
    assert len(losses) == 5 and {fmt for _, fmt in losses} == {style.LOSS}
    change = [c for c in plan["Step"].cells.values() if c[0] and re.fullmatch(r"=C\d+-C\d+", c[0])]
    assert [c[2][1] for c in change] == [style.LOSS_CHANGE]
    [overview_params] = [c for c in plan["Overview"].cells.values() if c[0] and c[0].startswith("=SUM(")]
    assert overview_params[2] == ("big", "#,##0")


def test_editable_cells_look_alike_and_pixels_take_whole_numbers_0_to_255():
    model, photo = default_case()
    plan = build_walkthrough(model, photo, with_backward=True).plan
    assert style.KINDS["pixel"]["frame"] == style.KINDS["input"]["frame"]
    assert "frame" not in style.KINDS["mirror"]
    *square, rule = plan["Image"].whole_numbers
    assert (rule.low, rule.high, len(rule.refs)) == (0, 255, 3)
    assert [(r.low, r.high) for r in square] == [(1, 28), (1, 28), (0, 28), (0, 255)]  # the grey square
    for name in ("target_class", "learning_rate", "saliency_class", "saliency_mode", "occlusion_row",
                 "occlusion_col", "occlusion_size", "occlusion_value"):
        sheet, ref = plan.names[name].split("!")
        row = int(ref.replace("$", "").lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        col = ord(ref.replace("$", "")[0]) - 64
        assert plan[sheet].cells[row, col][2][0] == "input", name
    mirrors = [c for c in plan["Overview"].cells.values() if c[0] in ("=target_class_used", "=learning_rate",
                                                                     "=saliency_class_used")]
    assert len(mirrors) == 3 and all(c[2][0] == "mirror" for c in mirrors)
