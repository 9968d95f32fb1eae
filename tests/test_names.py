"""Every defined name of a walkthrough is spelled by cnnsheet.names, and only those it spells."""

import numpy as np
import pytest
from helpers import small_model

from cnnsheet import names
from cnnsheet.layers import Conv, Dense, MaxPool
from cnnsheet.layout import valid_name
from cnnsheet.sheets.common import channel_names
from cnnsheet.workbook import build_walkthrough


@pytest.mark.parametrize("spelled, expected", [
    (names.conv_kernel(2, 3, "c1"), "conv2_f3_c1"),
    (names.conv_kernel(1, 1, "R", names.NEW_PASS), "new_conv1_f1_R"),
    (names.conv_bias(1, 4), "conv1_f4_bias"),
    (names.dense_weights(2, 10, names.NEW_PASS), "new_dense2_w10"),
    (names.dense_bias(1, 3), "dense1_b3"),
    (names.dense_inputs(1), "dense1_in"),
    (names.choice(names.zoom(2), "filter"), "zoom2_filter"),
    (names.zoom_field(1, "cols"), "zoom1_field_cols"),
    (names.pool_max(3), "pool3_max"),
    (names.probabilities(names.NEW_PASS), "new_probabilities"),
])
def test_spellings(spelled, expected):
    assert spelled == expected and valid_name(spelled)


def every_name(model, with_backward: bool) -> set:
    """The names a walkthrough of `model` must define, from its layers alone."""
    expected = {names.image(c) for c in "RGB"}
    expected |= {spell(c) for c in channel_names(model.channels, True) for spell in (names.mean, names.std)}
    expected |= {names.CLASS_NAMES, names.TARGET_CLASS, names.used(names.TARGET_CLASS), names.ONEHOT,
                 names.LOSS}
    expected |= {names.occlusion(key) for key in (*names.OCCLUSION_KEYS, "rows", "cols")}
    convs = [layer for layer in model.layers if isinstance(layer, Conv)]
    pools = [layer for layer in model.layers if isinstance(layer, MaxPool)]
    denses = [layer for layer in model.layers if isinstance(layer, Dense)]
    for n in range(1, len(convs) + 1):
        expected |= {names.choice(names.zoom(n), key) for key in names.CHOICE_KEYS}
        expected |= {names.zoom_products(n), names.zoom_value(n), names.zoom_field(n, "rows"),
                     names.zoom_field(n, "cols")}
    for n in range(1, len(pools) + 1):
        expected |= {names.choice(names.pool_choice(n), key) for key in names.CHOICE_KEYS}
        expected.add(names.pool_max(n))
    for prefix in ("", names.NEW_PASS) if with_backward else ("",):
        for n, layer in enumerate(convs, 1):
            channels = channel_names(layer.in_channels, n == 1)
            for f in range(1, layer.filters + 1):
                expected |= {names.conv_kernel(n, f, c, prefix) for c in channels}
                expected.add(names.conv_bias(n, f, prefix))
        for n, layer in enumerate(denses, 1):
            expected.add(names.dense_inputs(n, prefix))
            for j in range(1, layer.units + 1):
                expected |= {names.dense_weights(n, j, prefix), names.dense_bias(n, j, prefix)}
        expected |= {names.flatten(prefix), names.logits(prefix), names.probabilities(prefix)}
    if with_backward:
        expected |= {names.DLOGITS, names.LEARNING_RATE, names.LOSS_AFTER_STEP, names.SALIENCY_CLASS,
                     names.used(names.SALIENCY_CLASS),
                     names.SALIENCY, names.SALIENCY_MODE, names.SALIENCY_MODES, names.SALIENCY_RULE,
                     names.GRADCAM, names.GRADCAM_IMAGE}
    return expected


@pytest.mark.parametrize("with_backward", [False, True])
def test_a_walkthrough_defines_exactly_the_names_the_module_spells(with_backward):
    model = small_model(channels=1, hidden=(3,), blocks=[{"filters": 2, "kernel": 3, "pool": 2},
                                                          {"filters": 2, "kernel": 2}])
    pixels = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    walkthrough = build_walkthrough(model, pixels, with_backward=with_backward)
    assert set(walkthrough.names) == every_name(model, with_backward)
