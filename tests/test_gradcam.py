"""Grad-CAM: the engine against torch (weights, map, and the map brought up to the photo by a
transposed convolution), the receptive fields that line the map up with the pixels, and the
max-pool's winner of a window of ties, the same in the engine and in torch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import default_case, small_model
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_oracle import torch_gradcam

from cnnsheet import budget
from cnnsheet.fields import covering, field_origin, receptive_field, receptive_field_size
from cnnsheet.gradcam import activation_name, gradcam, upsample_layers
from cnnsheet.layers import MaxPool
from cnnsheet.workbook import build_walkthrough

ARCHITECTURES = {  # blocks, hidden units, input size, channels
    "two blocks": ([{"filters": 3, "kernel": 3, "pool": 2}, {"filters": 2, "kernel": 2, "pool": 2}],
                   [6], 14, 3),
    "padded, strided, overlapping pool": (
        [{"filters": 3, "kernel": 3, "padding": 2, "stride": 2, "pool": 3, "pool_stride": 2}], [5], 14, 3),
    "dilated, then no pool": (
        [{"filters": 2, "kernel": 3, "dilation": 2, "padding": 1}, {"filters": 3, "kernel": 3}], [], 12, 3),
    "grey, two hidden layers": ([{"filters": 2, "kernel": 3, "pool": 2}], [5, 4], 10, 1),
}


def torch_case(model, pixels, k):
    layers = upsample_layers(model)
    size, jump = receptive_field_size(layers)
    return torch_gradcam(model, pixels, k, activation_name(model), size, jump, field_origin(layers))


def assert_like_torch(model, pixels, k):
    cam = gradcam(model, model.predict(pixels), k)
    weights, heat, image = torch_case(model, pixels, k)
    np.testing.assert_allclose(cam.weights, weights, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(cam.cam, heat, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(cam.image, image, rtol=1e-9, atol=1e-15)
    assert (cam.image >= 0).all() and cam.image.shape == (model.input_size, model.input_size)
    return cam


def test_the_default_models_gradcam_is_torchs_for_every_class():
    model, pixels = default_case()
    maps = [assert_like_torch(model, pixels, k).cam for k in range(len(model.classes))]
    assert maps[2].max() > 0 and not np.allclose(maps[0], maps[2])


@pytest.mark.parametrize("case", ARCHITECTURES)
def test_gradcam_is_torchs_on_random_architectures(case):
    blocks, hidden, size, channels = ARCHITECTURES[case]
    model = small_model(seed=3, size=size, hidden=hidden, blocks=blocks, channels=channels)
    pixels = np.random.default_rng(5).integers(0, 256, (size, size, 3)).astype(np.uint8)
    lit = [assert_like_torch(model, pixels, k).cam.max() for k in range(3)]
    assert max(lit) > 0  # some class lights something up: the comparison is not of zeros only


def test_the_pooled_gradient_sums_to_the_gradient_of_the_map_it_pools():
    """What the sheet's weights rely on: a max-pool hands each window's gradient whole to one cell,
    so the sums per map agree, overlapping windows (3 every 2) included."""
    blocks, hidden, size, channels = ARCHITECTURES["padded, strided, overlapping pool"]
    model = small_model(seed=3, size=size, hidden=hidden, blocks=blocks, channels=channels)
    pixels = np.random.default_rng(5).integers(0, 256, (size, size, 3)).astype(np.uint8)
    cam = gradcam(model, model.predict(pixels), 1)
    pooled = cam.gradients["pool1"][0]  # (C, Ho, Wo)
    assert pooled.shape != cam.gradient.shape
    np.testing.assert_allclose(pooled.sum(axis=(1, 2)), cam.gradient.sum(axis=(1, 2)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("blocks", [
    [{"filters": 2, "kernel": 3, "pool": 2}],
    [{"filters": 2, "kernel": 3, "padding": 2, "stride": 2, "pool": 3, "pool_stride": 2}],
    [{"filters": 2, "kernel": 5, "padding": 1}, {"filters": 2, "kernel": 3, "stride": 3, "padding": 2}],
])
def test_covering_is_the_cells_whose_receptive_field_holds_the_pixel(blocks):
    """Without dilation's holes a field is its whole span, so the cells that cover a pixel are those
    whose receptive field (the Zoom sheets' sets, clipped at the edges) holds it."""
    model = small_model(size=13, blocks=blocks)
    last = max(i for i, layer in enumerate(model.layers) if layer.kind in ("conv", "relu"))
    layers = model.layers[:last + 1]
    sizes = [shape[1] for shape in model.shapes[:len(layers)]]
    out = model.shapes[len(layers)][1]
    for pixel in range(13):
        want = [i for i in range(out) if pixel in receptive_field(layers, sizes, i)]
        assert list(covering(layers, pixel, out)) == want


@pytest.mark.parametrize("origin_layers, origin", [
    ([], 0),
    ([{"filters": 1, "kernel": 3, "padding": 1}], -1),
    ([{"filters": 1, "kernel": 3, "padding": 1, "stride": 2}, {"filters": 1, "kernel": 3, "padding": 2}], -5),
])
def test_field_origin_steps_back_by_each_padding_times_the_jump(origin_layers, origin):
    layers = small_model(size=12, blocks=origin_layers).layers if origin_layers else []
    assert field_origin([layer for layer in layers if layer.kind == "conv"]) == origin


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_window_of_ties_routes_to_the_same_cell_as_torch(data):
    """Max-pool ties, zeros above all (a ReLU's output is full of them, and the deconvnet rule lets
    gradient through them): the engine's winner is torch's, the first maximum in row-major order."""
    q = data.draw(st.integers(2, 3), label="size")
    t = data.draw(st.integers(1, q), label="stride")
    side = data.draw(st.integers(q, 7), label="side")
    values = data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.0]), min_size=2 * side * side,
                                max_size=2 * side * side))
    x = np.array(values).reshape(1, 2, side, side)
    pool = MaxPool("pool", q, t)
    y, cache = pool.forward(x)
    dy = np.random.default_rng(0).normal(size=y.shape)
    dx, _ = pool.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt, indices = F.max_pool2d(xt, q, t, return_indices=True)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    flat = indices.numpy()  # (1, 2, Ho, Wo): the winner of each window, as row * side + col
    for c in range(2):
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                window, winner = pool.one_output(x[0], c, i, j)
                row, col = np.unravel_index(int(np.argmax(winner)), winner.shape)
                assert (i * t + row) * side + j * t + col == flat[0, c, i, j]


@pytest.mark.parametrize("case", ARCHITECTURES)
def test_the_budget_counts_the_gradcam_sheet(case):
    blocks, hidden, size, channels = ARCHITECTURES[case]
    model = small_model(seed=3, size=size, hidden=hidden, blocks=blocks, channels=channels)
    pixels = np.random.default_rng(5).integers(0, 256, (size, size, 3)).astype(np.uint8)
    sheet = build_walkthrough(model, pixels, with_backward=True).plan["Grad-CAM"]
    counted = budget.workbook_sheets(model, True)["Grad-CAM"]  # its cells and SHEET_OVERHEAD for its texts
    assert len(sheet.cells) <= counted <= 2 * len(sheet.cells)
