"""The NumPy engine against torch (float64) and against central finite differences."""

import numpy as np
import pytest
import torch
from helpers import config, random_pixels, small_model
from hypothesis import HealthCheck, assume, given, settings
from strategies import architectures
from torch_oracle import torch_forward, torch_params, torch_pass, torch_saliency

from cnnsheet.errors import CnnsheetError
from cnnsheet.layers import RELU_RULES, Conv, MaxPool, conv_output_size
from cnnsheet.model import Model

TOLERANCE = {"rtol": 1e-10, "atol": 1e-12}

def ties_between_nonzero_maxima(model, trace) -> bool:
    """Whether some pooling window has two equal largest values other than 0. In floats such a tie
    comes from an overlapping pool that copied one value twice; NumPy and torch add the products
    of the next conv in different orders, so the two copies may differ in their last bit in one
    of them and the gradient goes to a different cell. Ties are tested exactly by the integer
    cases, whose sums are exact in both."""
    names = list(trace.tensors)
    for layer in model.layers:
        if isinstance(layer, MaxPool):
            x = trace.tensors[names[names.index(layer.name) - 1]]  # (N, C, H, W)
            q, t = layer.size, layer.stride
            windows = np.lib.stride_tricks.sliding_window_view(x, (q, q), axis=(2, 3))[:, :, ::t, ::t]
            ranked = np.sort(windows.reshape(*windows.shape[:4], q * q), axis=-1)
            if q > 1 and np.any((ranked[..., -1] == ranked[..., -2]) & (ranked[..., -1] != 0)):
                return True
    return False


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(architectures())
def test_every_tensor_and_gradient_matches_torch(case):
    model, x, labels = case
    trace, losses, grads = model.gradients(x, labels)
    integers = np.array_equal(x, np.round(x))
    assume(integers or not ties_between_nonzero_maxima(model, trace))
    tensors, tensor_grads, param_grads = torch_pass(model, x, labels)
    assert list(trace.tensors) == list(tensors)
    for name, value in tensors.items():
        np.testing.assert_allclose(trace.tensors[name], value, **TOLERANCE, err_msg=name)
    assert set(grads.tensors) == set(tensor_grads)
    for name, value in tensor_grads.items():
        np.testing.assert_allclose(grads.tensors[name], value, **TOLERANCE, err_msg=f"d {name}")
    assert set(grads.params) == set(param_grads)
    for name, value in param_grads.items():
        np.testing.assert_allclose(grads.params[name], value, **TOLERANCE, err_msg=f"d {name}")


def test_pooling_ties_go_to_the_first_maximum_in_row_major_order():
    model = Model(config(4, blocks=[{"filters": 1, "kernel": 1, "pool": 2}], classes=("a", "b")))
    model.params()["conv1.weight"][...] = 1.0
    x = np.zeros((1, 3, 4, 4))  # after the 1x1 conv, every window is all ties
    x[0, 0, 2, 3] = x[0, 0, 3, 2] = 5.0  # a tie of two maxima in the last window
    trace = model.forward(x)
    dpool = np.ones((1, 1, 2, 2))
    dx, _ = model.layers[2].backward(dpool, trace.caches["pool1"])
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[0, 2] = expected[2, 0] = expected[2, 3] = 1.0
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size, stride, height, width", [(4, 4, 24, 24), (2, 2, 7, 8), (2, 2, 7, 9),
                                                         (2, 3, 8, 11), (3, 5, 13, 12), (1, 1, 3, 4),
                                                         (2, 1, 6, 5)])
def test_the_pool_alone_matches_torch_with_ties(dtype, size, stride, height, width):
    """Every path of MaxPool (windows tiling whole rows, a dropped row or column, gaps between
    windows, overlapping windows) against torch's max_pool2d, in both dtypes: small integers and a
    ReLU's zeros make ties in most windows, where torch and the engine give the gradient to the
    first maximum."""
    rng = np.random.default_rng(size * 100 + stride * 10 + height)
    x = np.maximum(rng.integers(-3, 3, (3, 4, height, width)), 0).astype(dtype)
    pool = MaxPool("pool1", size, stride)
    y, cache = pool.forward(x)
    dy = rng.normal(size=y.shape).astype(dtype)
    dx, _ = pool.backward(dy, cache)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, size, stride)
    ty.backward(torch.tensor(dy))
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(y, ty.detach().numpy())
    # overlapping windows add their shares in another order than torch's: the last bit may differ
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    tx.grad = None
    torch.nn.functional.max_pool2d(tx, size, stride).sum().backward()
    np.testing.assert_array_equal(pool.windows_won(cache), tx.grad.numpy())  # the winners alone


def test_gradients_match_central_finite_differences():
    rng = np.random.default_rng(3)
    model = small_model(seed=4, size=7, blocks=[{"filters": 2, "kernel": 3, "stride": 2,
                                                 "padding": 1, "dilation": 1, "pool": 2}],
                        hidden=[3])
    x, labels = rng.normal(size=(2, 3, 7, 7)), np.array([1, 2])
    _, _, grads = model.gradients(x, labels)

    def mean_loss():
        return model.loss(model.forward(x), labels).mean()

    eps = 1e-6
    for name, array in [*model.params().items(), ("input", x)]:
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + eps
            plus = mean_loss()
            array[index] = saved - eps
            minus = mean_loss()
            array[index] = saved
            numeric[index] = (plus - minus) / (2 * eps)
        analytic = grads.tensors["input"] if name == "input" else grads.params[name]
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("channels", [1, 3])
def test_saliency_is_the_gradient_of_one_logit_with_respect_to_the_pixels(channels):
    model = small_model(seed=1, size=8, channels=channels, hidden=[4])
    pixels = random_pixels(np.random.default_rng(0), 2, 8)
    dpixels, heat = model.saliency(pixels, class_index=2)

    p = torch.tensor(pixels.astype(float), requires_grad=True)
    x = p.permute(0, 3, 1, 2) / 255.0  # (N, 3, H, W)
    if channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)[:, None, None]
        x = (x * luma).sum(1, keepdim=True)
    logits = torch_forward(model, (x - 0.5) / 0.25, torch_params(model, False))["logits"]
    logits[:, 2].sum().backward()
    expected = p.grad.numpy().transpose(0, 3, 1, 2)
    np.testing.assert_allclose(dpixels, expected, **TOLERANCE)
    np.testing.assert_allclose(heat, np.abs(expected).max(axis=1), **TOLERANCE)


def test_preprocess_normalises_each_channel():
    model = small_model(size=4)
    pixels = np.full((4, 4, 3), 255, dtype=np.uint8)
    pixels[..., 1] = 0
    x = model.preprocess(pixels)
    assert x.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(x[0, :, 0, 0], [(1 - 0.5) / 0.25, (0 - 0.5) / 0.25, (1 - 0.5) / 0.25])


@pytest.mark.parametrize("n, kernel, stride, padding, dilation, expected", [
    (5, 3, 1, 0, 1, 3),    # the article's 5x5x3 input and 3x3x3 filter
    (5, 3, 1, 1, 1, 5),    # ... with zero padding 1 the size is kept
    (6, 3, 1, 0, 1, 4),    # 6x6 image, 3x3 kernel -> 4x4
    (7, 3, 2, 0, 1, 3),    # stride 2
    (8, 3, 2, 1, 1, 4),    # floor((8 + 2 - 3) / 2) + 1
    (7, 3, 1, 0, 2, 3),    # dilation 2: a 3x3 kernel spans 5 pixels
    (30, 5, 1, 0, 1, 26),  # the 30x30 input and 5x5 filters of the parameter-count example
    (3, 3, 1, 0, 1, 1),
])
def test_output_size_formula(n, kernel, stride, padding, dilation, expected):
    assert conv_output_size(n, kernel, stride, padding, dilation) == expected


def test_a_kernel_that_does_not_fit_is_an_error_with_the_numbers():
    with pytest.raises(CnnsheetError, match="kernel 3 .* spreads it over 5 pixels.* padded input 4"):
        conv_output_size(4, 3, dilation=2)
    with pytest.raises(CnnsheetError, match="conv1: kernel 7 is larger than the padded input 6"):
        Model(config(6, blocks=[{"filters": 1, "kernel": 7}]))


def test_one_output_pixel_is_27_products_plus_a_bias():
    model = Model(config(5, blocks=[{"filters": 2, "kernel": 3}])).init(0)
    x = np.random.default_rng(1).normal(size=(1, 3, 5, 5))
    conv = model.forward(x).tensors["conv1"]
    assert conv.shape == (1, 2, 3, 3)
    w, b = model.params()["conv1.weight"], model.params()["conv1.bias"]
    assert w[1].size == 27
    np.testing.assert_allclose(conv[0, 1, 2, 1], np.sum(x[0, :, 2:5, 1:4] * w[1]) + b[1], rtol=1e-12)
    padded = Model(config(5, blocks=[{"filters": 2, "kernel": 3, "padding": 1}]))
    assert padded.shapes[1] == (2, 5, 5)


def test_parameter_counts_of_the_articles_example():
    classes = [f"c{i}" for i in range(200)]
    model = Model(config(30, channels=1, classes=classes,
                         blocks=[{"filters": 10, "kernel": 5, "pool": 2}]))
    shapes = {layer.name: shape for layer, shape in zip(model.layers, model.shapes[1:])}
    counts = {layer.name: sum(v.size for v in layer.params().values()) for layer in model.layers}
    assert shapes["conv1"] == (10, 26, 26) and counts["conv1"] == 260
    assert shapes["pool1"] == (10, 13, 13)
    assert shapes["flatten"] == (1690,)
    assert counts["logits"] == 338_200
    assert model.parameter_count == 338_460


def test_a_pool_that_does_not_tile_its_input_is_floored():
    model = Model(config(7, blocks=[{"filters": 1, "kernel": 2, "pool": 2}]))  # 6x6 -> fine
    pool = model.layers[2]
    assert pool.dropped(model.shapes[2]) == (0, 0)
    model = Model(config(8, blocks=[{"filters": 1, "kernel": 2, "pool": 2}]))  # 7x7 -> 3x3
    pool = model.layers[2]
    assert model.shapes[3] == (1, 3, 3)
    assert pool.dropped(model.shapes[2]) == (1, 1)
    x = np.random.default_rng(0).normal(size=(1, 1, 7, 7))
    dx, _ = pool.backward(np.ones((1, 1, 3, 3)), pool.forward(x)[1])
    assert not dx[0, 0, 6].any() and not dx[0, 0, :, 6].any()  # the dropped row and column get nothing


# ---- what the sheets place, term by term --------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(architectures())
def test_one_output_of_each_conv_and_pool_is_the_forward_pass_term_by_term(case):
    model, x, _ = case
    trace = model.forward(x)
    names = list(trace.tensors)
    for layer in model.layers:
        if not isinstance(layer, (Conv, MaxPool)):
            continue
        before = trace.tensors[names[names.index(layer.name) - 1]][0]  # (C, H, W)
        after = trace.tensors[layer.name][0]  # (F, Ho, Wo)
        for f, i, j in {(0, 0, 0), tuple(n - 1 for n in after.shape)}:
            if isinstance(layer, Conv):
                neuron = layer.one_output(before, f, i, j)
                np.testing.assert_allclose(neuron.total, after[f, i, j], **TOLERANCE)
                np.testing.assert_allclose(neuron.products.sum(), neuron.sum, **TOLERANCE)
                d = layer.dilation
                np.testing.assert_array_equal(neuron.kernel[:, ::d, ::d], layer.weight[f])
            else:
                window, winner = layer.one_output(before, f, i, j)
                assert window.max() == after[f, i, j] and winner.sum() == 1
                assert window[winner == 1][0] == after[f, i, j]
        if isinstance(layer, MaxPool):  # the windows won: the gradient of an all-ones map
            won = layer.windows_won(trace.caches[layer.name])
            assert won.sum() == trace.tensors[layer.name].size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(architectures())
def test_the_spread_gradient_and_turned_kernels_give_the_input_gradient(case):
    """d input = the spread gradient, framed by span - 1 zeros, convolved with the turned kernels
    (the formula of the d sheets), summed over filters, cut back to the unpadded input."""
    model, x, labels = case
    trace, _, grads = model.gradients(x, labels)
    names = list(trace.tensors)
    for layer in model.layers:
        if not isinstance(layer, Conv):
            continue
        previous = names[names.index(layer.name) - 1]
        dz, dx = grads.tensors[layer.name][0], grads.tensors[previous][0]  # (F, Ho, Wo), (C, H, W)
        spread = layer.spread(dz)  # (F, Hd, Wd)
        assert np.array_equal(spread[:, ::layer.stride, ::layer.stride], dz)
        F, C, span, p = layer.filters, layer.in_channels, layer.span, layer.padding
        turned = layer.turned_kernels().reshape(F, C, span, span)
        framed = np.pad(spread, ((0, 0), (span - 1, span - 1), (span - 1, span - 1)))
        _, H, W = dx.shape
        for y, x_ in {(0, 0), (H - 1, W - 1), (H // 2, W // 3)}:
            top, left = y + p, x_ + p  # in the padded input, which the framed map's windows tile
            if top >= framed.shape[1] - span + 1 or left >= framed.shape[2] - span + 1:
                assert np.allclose(dx[:, y, x_], 0)  # no window reached it
                continue
            window = framed[:, top:top + span, left:left + span]  # (F, span, span)
            expected = np.einsum("fab,fcab->c", window, turned)
            np.testing.assert_allclose(dx[:, y, x_], expected, **TOLERANCE)


def test_one_step_of_descent_moves_every_parameter_against_its_gradient_and_lowers_the_loss():
    model = small_model(seed=3)
    x = model.preprocess(random_pixels(np.random.default_rng(0), 1, model.input_size))
    trace = model.forward(x)
    grads = model.backward(trace, model.loss_gradient(trace, [1]))
    descent = model.descend(trace, grads, [1], 0.01)
    for name, value in model.params().items():
        np.testing.assert_array_equal(descent.model.params()[name], value - 0.01 * grads.params[name])
    assert descent.loss_before == model.loss(trace, [1])[0]
    np.testing.assert_allclose(descent.loss_after,
                               -np.log(descent.model.forward(x).probabilities[0, 1]), **TOLERANCE)
    assert descent.loss_after < descent.loss_before
    assert descent.loss_change == descent.loss_after - descent.loss_before


@pytest.mark.parametrize("rule", RELU_RULES)
@pytest.mark.parametrize("flat", [False, True])
def test_the_saliency_rules_match_torch(rule, flat):
    """Plain, guided and deconvnet saliency through two conv blocks and a hidden ReLU; flat dark
    pictures give pooling windows of tied zeros, where only the first cell may take the gradient."""
    model = small_model(seed=4, size=12, hidden=[5], blocks=[{"filters": 3, "kernel": 3, "pool": 2},
                                                           {"filters": 2, "kernel": 2, "pool": 2}])
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 3, (2, 12, 12, 3)).astype(np.uint8) if flat else random_pixels(rng, 2, 12)
    dpixels, heat = model.saliency(pixels, class_index=1, relu_rule=rule)
    expected = torch_saliency(model, pixels, 1, rule)
    assert np.abs(expected).max() > 0  # something came through
    np.testing.assert_allclose(dpixels, expected, **TOLERANCE)
    np.testing.assert_allclose(heat, np.abs(expected).max(axis=1), **TOLERANCE)


def test_the_saliency_rules_differ():
    model = small_model(seed=4, size=12, hidden=[5])
    pixels = random_pixels(np.random.default_rng(2), 1, 12)
    maps = [model.saliency(pixels, 0, rule)[0] for rule in RELU_RULES]
    assert not np.allclose(maps[0], maps[1]) and not np.allclose(maps[1], maps[2])
