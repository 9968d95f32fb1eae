"""Hypothesis strategies shared by the engine and workbook tests."""

import numpy as np
from helpers import config
from hypothesis import assume
from hypothesis import strategies as st

from cnnsheet.errors import CnnsheetError
from cnnsheet.model import Model

block_strategy = st.fixed_dictionaries({
    "filters": st.integers(1, 4), "kernel": st.integers(1, 4), "stride": st.integers(1, 3),
    "padding": st.integers(0, 2), "dilation": st.integers(1, 2),
    "pool": st.sampled_from([0, 1, 2, 3]), "pool_stride": st.integers(1, 3),
})
# Class names a teacher might type, including ones a spreadsheet could mistake for formulas.
CLASS_NAMES = ["cat", "Cats", "dog", "=1+1", "@SUM(A1)", "+3", "-x", "'quoted'", "小猫", "a b"]


@st.composite
def models(draw, sizes=(6, 20), min_blocks=1, max_blocks=3, tricky_names=False):
    """A valid random model (min_blocks to max_blocks conv blocks, maybe a hidden dense layer)."""
    channels = draw(st.sampled_from([1, 3]))
    blocks = draw(st.lists(block_strategy, min_size=min_blocks, max_size=max_blocks))
    hidden = draw(st.lists(st.integers(1, 6), max_size=1))
    count = draw(st.integers(2, 4))
    classes = (draw(st.lists(st.sampled_from(CLASS_NAMES), min_size=count, max_size=count, unique=True))
               if tricky_names else [f"class{i}" for i in range(count)])
    size = draw(st.integers(*sizes))
    try:
        model = Model(config(size, channels, blocks, hidden, classes))
    except CnnsheetError:
        assume(False)
    return model


@st.composite
def architectures(draw):
    """A random model with random parameters and a batch for it; integer values make real ties."""
    model = draw(models())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch = draw(st.integers(1, 3))
    shape = (batch, model.channels, model.input_size, model.input_size)
    if draw(st.booleans()):  # small integers: sums are exact in float64, so ties are real ties
        x = rng.integers(-2, 3, size=shape).astype(float)
        for array in model.params().values():
            array[...] = rng.integers(-1, 2, size=array.shape)
    else:
        x = rng.normal(size=shape)
        model.init(int(rng.integers(1000)))
        for array in model.params().values():
            array += rng.normal(scale=0.1, size=array.shape)
    labels = rng.integers(0, len(model.classes), size=batch)
    return model, x, labels
