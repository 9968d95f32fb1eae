"""What the network looks at, live: the grey square over the photo (occlusion_*) and the saliency
pass's rule at the ReLUs (saliency_mode), typed into a saved workbook, recalculated by LibreOffice
(and once by Gnumeric), against the engine cell by cell and against torch."""

import numpy as np
import openpyxl
import pytest
import torch
from gnumeric import recalculate
from helpers import default_case, small_model, zoom_choices
from libreoffice import compare, convert
from openpyxl.utils.cell import range_boundaries
from test_gradcam import torch_case
from torch_oracle import torch_forward, torch_params, torch_saliency

from cnnsheet import names
from cnnsheet.images import Occlusion
from cnnsheet.layers import RELU_RULES
from cnnsheet.workbook import build_walkthrough


def two_blocks():
    """Two conv blocks and a hidden dense layer with its ReLU; dark flat pixels in one corner
    give pooling windows of tied zeros, through which the deconvnet rule lets gradient pass."""
    model = small_model(seed=6, size=14, hidden=[6], blocks=[{"filters": 3, "kernel": 3, "pool": 2},
                                                             {"filters": 2, "kernel": 2, "pool": 2}])
    pixels = np.random.default_rng(3).integers(0, 256, (14, 14, 3)).astype(np.uint8)
    pixels[:7, :7] = 1
    return model, pixels


def cell(walkthrough, name):
    """(sheet, row, col) of the top-left cell of a defined name."""
    sheet, ref = walkthrough.names[name].rsplit("!", 1)
    left, top, _, _ = range_boundaries(ref.replace("$", ""))
    return sheet.strip("'"), top, left


def read_area(path, walkthrough, name) -> np.ndarray:
    sheet, ref = walkthrough.names[name].rsplit("!", 1)
    values = openpyxl.load_workbook(path, data_only=True)[sheet.strip("'")]
    return np.array([[c.value for c in row] for row in values[ref.replace("$", "")]], dtype=float)


def typed(walkthrough, path, out, **entries):
    """`path` with the cells of the named entries typed over, saved at `out`."""
    book = openpyxl.load_workbook(path)
    for name, value in entries.items():
        sheet, row, col = cell(walkthrough, name)
        book[sheet].cell(row, col).value = value
    book.save(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", ["default", "two_blocks"])
def test_each_saliency_mode_typed_follows_the_engine_and_torch(tmp_path, calc_profile, case):
    """A workbook made with one rule, the next rule typed into saliency_mode: Calc gives every
    cell the engine's value for the typed rule, and the saliency map is torch's."""
    model, pixels = default_case() if case == "default" else two_blocks()
    paths, wanted = [], []
    maps, cams = {}, {}
    for number, made_with in enumerate(RELU_RULES):
        mode = RELU_RULES[(number + 1) % len(RELU_RULES)]
        walkthrough = build_walkthrough(model, pixels, with_backward=True, saliency_mode=made_with)
        walkthrough.save(tmp_path / f"{made_with}.xlsx")
        paths.append(typed(walkthrough, tmp_path / f"{made_with}.xlsx", tmp_path / f"{mode}.xlsx",
                           **{names.SALIENCY_MODE: mode}))
        expected = build_walkthrough(model, pixels, with_backward=True, saliency_mode=mode)
        assert expected.expected != walkthrough.expected  # the typing must change what is checked
        wanted.append((mode, expected))
    for path, recalculated, (mode, expected) in zip(paths, convert(paths, tmp_path / "calc", calc_profile),
                                                    wanted):
        compare(path, recalculated, expected.expected)
        chosen = int(model.predict(pixels).probabilities[0].argmax())
        heat = np.abs(torch_saliency(model, pixels[None], chosen, mode)[0]).max(axis=0)
        maps[mode] = read_area(recalculated, expected, names.SALIENCY)
        np.testing.assert_allclose(maps[mode], heat, rtol=1e-9, atol=1e-12)
        cams[mode] = assert_gradcam_is_torchs(recalculated, expected, model, pixels, chosen)
    assert not np.allclose(maps["gradient"], maps["guided"])
    assert not np.allclose(maps["guided"], maps["deconvnet"])
    # Grad-CAM follows the plain gradient whatever the rule: the same numbers for the three
    for mode in RELU_RULES[1:]:
        np.testing.assert_allclose(cams[mode], cams[RELU_RULES[0]], rtol=1e-12, atol=1e-15)


def assert_gradcam_is_torchs(recalculated, walkthrough, model, pixels, chosen):
    """The recalculated gradcam and gradcam_image are torch's; returns them."""
    _, heat, image = torch_case(model, pixels, chosen)
    cam = read_area(recalculated, walkthrough, names.GRADCAM)
    np.testing.assert_allclose(cam, heat, rtol=1e-9, atol=1e-12)
    upsampled = read_area(recalculated, walkthrough, names.GRADCAM_IMAGE)
    np.testing.assert_allclose(upsampled, image, rtol=1e-9, atol=1e-12)
    assert cam.max() > 0 and (upsampled >= 0).all()
    return np.concatenate([cam.ravel(), upsampled.ravel()])


@pytest.mark.slow
def test_gnumeric_follows_the_deconvnet_rule(tmp_path):
    model, pixels = two_blocks()
    walkthrough = build_walkthrough(model, pixels, with_backward=True)
    walkthrough.save(tmp_path / "made.xlsx")
    path = typed(walkthrough, tmp_path / "made.xlsx", tmp_path / "typed.xlsx",
                 **{names.SALIENCY_MODE: "deconvnet"})
    expected = build_walkthrough(model, pixels, with_backward=True, saliency_mode="deconvnet")
    recalculated = recalculate(path, tmp_path / "gnumeric.xlsx")
    assert compare(path, recalculated, expected.expected) > 1000
    chosen = int(model.predict(pixels).probabilities[0].argmax())
    assert_gradcam_is_torchs(recalculated, expected, model, pixels, chosen)


def torch_probabilities(model, pixels) -> np.ndarray:
    x = torch.tensor(model.preprocess(pixels), dtype=torch.float64)
    return torch_forward(model, x, torch_params(model, False))["probabilities"].numpy()[0]


@pytest.mark.slow
def test_the_grey_square_typed_on_and_off_follows_the_engine_and_torch(tmp_path, calc_profile):
    """The square typed over a workbook made without it (with a saliency rule typed too), and
    taken off one made with it: every cell is the engine's for what was typed, the probabilities
    and the saliency map are torch's for the covered photo."""
    square = Occlusion(row=12, col=1, size=16, value=0)
    default, two = default_case(), two_blocks()
    cases = [  # (model, photo, made with, typed, the square typed, the rule typed)
        (*default, Occlusion(), "gradient", square, "guided"),
        (*default, square, "deconvnet", Occlusion(), "gradient"),
        (*two, Occlusion(), "gradient", Occlusion(3, 4, 5, 200), "deconvnet"),
    ]
    paths, wanted = [], []
    for number, (model, pixels, made_square, made_rule, square, rule) in enumerate(cases):
        made = build_walkthrough(model, pixels, with_backward=True, occlusion=made_square,
                                 saliency_mode=made_rule)
        made.save(tmp_path / f"made{number}.xlsx")
        entries = {names.occlusion(key): getattr(square, key) for key in names.OCCLUSION_KEYS}
        paths.append(typed(made, tmp_path / f"made{number}.xlsx", tmp_path / f"typed{number}.xlsx",
                           **entries, **{names.SALIENCY_MODE: rule}))
        # the classes of the Loss and Saliency sheets stay those the made workbook picked
        chosen = int(model.predict(made_square.apply(pixels)).probabilities[0].argmax())
        expected = build_walkthrough(model, pixels, with_backward=True, occlusion=square, saliency_mode=rule,
                                     target_index=chosen, saliency_index=chosen,
                                     zoom_choices=zoom_choices(made))
        assert expected.expected != made.expected
        wanted.append((model, square.apply(pixels), rule, chosen, expected))
    for path, recalculated, (model, seen, rule, chosen, expected) in zip(
            paths, convert(paths, tmp_path / "calc", calc_profile), wanted):
        compare(path, recalculated, expected.expected)
        p = read_area(recalculated, expected, names.probabilities()).ravel()
        np.testing.assert_allclose(p, torch_probabilities(model, seen), rtol=1e-9, atol=1e-15)
        heat = np.abs(torch_saliency(model, seen[None], chosen, rule)[0]).max(axis=0)
        np.testing.assert_allclose(read_area(recalculated, expected, names.SALIENCY), heat,
                                   rtol=1e-9, atol=1e-12)
        assert_gradcam_is_torchs(recalculated, expected, model, seen, chosen)
    covered, uncovered = (w[4].expected for w in wanted[:2])
    assert covered != uncovered


def test_the_square_is_cut_at_the_edge_and_off_at_size_0():
    pixels = np.arange(5 * 5 * 3, dtype=np.uint8).reshape(5, 5, 3)
    assert (Occlusion(size=0).apply(pixels) == pixels).all()
    seen = Occlusion(row=4, col=2, size=3, value=7).apply(pixels)
    changed = (seen != pixels).any(axis=2)
    assert changed.sum() == 2 * 3 and changed[3:, 1:4].all() and (seen[3:, 1:4] == 7).all()


def test_two_blocks_has_windows_of_tied_zeros_that_the_deconvnet_rule_feeds():
    """What makes the LibreOffice and Gnumeric cases above test the max-pool's tie rule (the Mask
    sheets' formulas, the engine and torch pick the same cell): pooling windows of zeros only, each
    handed a gradient by the deconvnet rule, which must land on the window's first cell."""
    model, pixels = two_blocks()
    trace = model.predict(pixels)
    chosen = int(trace.probabilities[0].argmax())
    seed = np.eye(len(model.classes))[chosen][None]
    grads = model.backward(trace, seed, relu_rule="deconvnet").tensors
    for relu, pool in (("relu1", "pool1"), ("relu2", "pool2")):
        x = trace.tensors[relu][0]  # (C, H, W)
        C, Ho, Wo = trace.tensors[pool][0].shape
        windows = x[:, :2 * Ho, :2 * Wo].reshape(C, Ho, 2, Wo, 2)
        zeros = windows.max(axis=(2, 4)) == 0  # (C, Ho, Wo)
        assert (grads[pool][0][zeros] != 0).sum() >= 2


def test_the_image_sheets_hint_fits_drawings_and_photos():
    """The bundled shapes model sees drawings: no eyes to cover there, a triangle's corner instead."""
    model, pixels = default_case()
    texts = {}
    for bundled in (True, False):
        sheet = build_walkthrough(model, pixels, bundled=bundled).plan["Image"]
        texts[bundled] = " ".join(v for f, v, _ in sheet.cells.values() if isinstance(v, str))
    assert "corner of the triangle" in texts[True] and "eyes" not in texts[True]
    assert "eyes" in texts[False] and "triangle" not in texts[False]
