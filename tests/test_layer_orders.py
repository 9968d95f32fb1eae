"""Layer orders: every order the model loader accepts gives a workbook whose cached values are
what its own formulas compute (recalculated by LibreOffice), and the orders the sheets cannot draw
are refused, naming the layer."""


import numpy as np
import pytest
from helpers import config
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from libreoffice import cached_values_match, compare, convert

from cnnsheet.errors import CnnsheetError
from cnnsheet.model import Model
from cnnsheet.workbook import build_walkthrough

CLASSES = ["a", "b", "c"]


def layer_config(size: int, channels: int, layers: list[dict]) -> dict:
    return {**config(size, channels, classes=CLASSES), "layers": layers}


spatial_layers = st.one_of(
    st.fixed_dictionaries({"type": st.just("conv"), "filters": st.integers(1, 2),
                           "kernel": st.integers(1, 3), "stride": st.integers(1, 2),
                           "padding": st.integers(0, 1), "dilation": st.integers(1, 2)}),
    st.just({"type": "relu"}),
    st.fixed_dictionaries({"type": st.just("maxpool"), "size": st.integers(1, 2),
                           "stride": st.integers(1, 2)}),
)
flat_layers = st.one_of(st.just({"type": "relu"}),
                        st.fixed_dictionaries({"type": st.just("dense"), "units": st.integers(1, 4)}))


@st.composite
def accepted_orders(draw):
    """Any sequence of image layers, flatten, any sequence of dense and relu layers, the class
    scores: kept only when the loader accepts it, so that what is tested is what it accepts."""
    layers = (draw(st.lists(spatial_layers, max_size=5)) + [{"type": "flatten"}]
              + draw(st.lists(flat_layers, max_size=4))
              + [{"type": "dense", "units": len(CLASSES)}])
    try:
        model = Model(layer_config(draw(st.integers(5, 10)), draw(st.sampled_from([1, 3])), layers))
    except CnnsheetError:
        assume(False)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    model.init(seed % 1000)
    for array in model.params().values():
        array += rng.normal(scale=0.2, size=array.shape)
    pixels = rng.integers(0, 256, size=(model.input_size, model.input_size, 3)).astype(np.uint8)
    return model, pixels, int(rng.integers(len(CLASSES)))


# No shrinking: each try starts LibreOffice, and the failure already names the layer order.
@pytest.mark.slow
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
@given(st.lists(accepted_orders(), min_size=4, max_size=4))
def test_every_accepted_layer_order_caches_what_its_formulas_compute(tmp_path_factory, calc_profile, batch):
    folder = tmp_path_factory.mktemp("orders")
    paths, walkthroughs = [], []
    for number, (model, pixels, target_index) in enumerate(batch):
        walkthrough = build_walkthrough(model, pixels, target_index=target_index, with_backward=True,
                                        untrained=True)
        paths.append(folder / f"order{number}.xlsx")
        walkthrough.save(paths[-1])
        walkthroughs.append(walkthrough)
    for path, recalculated, walkthrough, (model, _, _) in zip(
            paths, convert(paths, folder / "calc", calc_profile), walkthroughs, batch):
        order = " ".join(layer.kind for layer in model.layers)
        try:
            cached_values_match(path, recalculated)
            compare(path, recalculated, walkthrough.expected)
        except AssertionError as error:
            raise AssertionError(f"layers {order}: {error}") from None
