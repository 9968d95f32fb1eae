"""Random networks fit for a lesson: untrained weights that leave no filter dead on the picture,
and the `--tiny` network, small and whole-numbered enough to follow with pencil and paper.

A filter is dead on a picture when its map after the ReLU is zero everywhere: everything it feeds
is then 0, and with one filter every probability is 1/classes. Both draws below try the seed asked
for first and then the next seeds in turn (seed + 1, seed + 2, ...), so a seed always gives the
same network, and say which seed they used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from cnnsheet.config import FORMAT, VERSION
from cnnsheet.errors import CnnsheetError
from cnnsheet.images import square_and_resize
from cnnsheet.layers import Conv, Flatten, ReLU
from cnnsheet.model import Model

MAX_DRAWS = 50  # seeds tried before giving up (an untrained network) or refusing (a tiny one)

# The tiny network: a grey picture of LEVELS + 1 shades (0 black .. 9 white), one conv of 3x3
# filters, ReLU, 2x2 max-pool, flatten, one dense layer to the classes.
TINY_SIZES = range(4, 9)  # 4 is the least a 3x3 conv and a 2x2 pool leave a cell of
TINY_SIZE = 6
TINY_FILTERS = (1, 2)
TINY_KERNEL, TINY_POOL = 3, 2
LEVELS = 9
CONV_WEIGHTS = (-2, 2)  # whole numbers, both ends included
CONV_BIASES = (-2, 2)
DENSE_WEIGHTS = (-1, 1)
# The class scores the dense biases are set to reach: distinct whole numbers 0 to SCORE_TOP. Scores
# as far apart as random weights put them (tens) give probabilities of 0 and 1, and a lesson on the
# softmax needs a network that is not quite sure.
SCORE_TOP = 3


@dataclass
class Draw:
    """A network drawn for a picture, the seed that made it and the seeds passed over."""

    model: Model
    seed: int
    skipped: int  # seeds tried before `seed`; with `settled` False, the draw kept the first anyway
    settled: bool = True
    redrawn: int = 0  # filters of `seed`'s network drawn again, when every seed left one dead


def dead_filters(model: Model, pixels: np.ndarray) -> list[tuple[str, int]]:
    """Each (ReLU layer, 1-based filter) before the flatten whose map is zero everywhere on
    these uint8 pixels (H, W, 3)."""
    trace = model.predict(pixels)
    dead = []
    for layer in model.layers:
        if isinstance(layer, Flatten):
            break
        if isinstance(layer, ReLU):
            maps = trace.tensors[layer.name][0]  # (F, H, W)
            dead += [(layer.name, f + 1) for f in range(len(maps)) if not (maps[f] > 0).any()]
    return dead


def untrained(config: dict, pixels: np.ndarray, seed: int) -> Draw:
    """He-initialised weights (Model.init) from the first seed from `seed` on that leaves no
    filter dead on the pixels. When none of MAX_DRAWS does (likely with many filters in a second
    block, whose small maps one filter easily misses), the network of `seed` with its dead filters
    drawn again; where a picture of one colour leaves some dead even so, the network of `seed`
    as it was, marked unsettled."""
    for skipped in range(MAX_DRAWS):
        model = Model(config).init(seed + skipped)
        if not dead_filters(model, pixels):
            return Draw(model, seed + skipped, skipped)
    model = Model(config).init(seed)
    redrawn = redraw_dead_filters(model, pixels, seed)
    if dead_filters(model, pixels):  # drawing again did not help either: keep the seed's own
        return Draw(Model(config).init(seed), seed, MAX_DRAWS, settled=False)
    return Draw(model, seed, MAX_DRAWS, redrawn=redrawn)


def redraw_dead_filters(model: Model, pixels: np.ndarray, seed: int) -> int:
    """Draw the weights of dead filters again (He, from a generator of `seed` of its own), the
    earliest first, since the maps after it depend on it; returns how many filters were."""
    rng = np.random.default_rng([seed, 1])
    redrawn = set()
    for _ in range(MAX_DRAWS):
        dead = dead_filters(model, pixels)
        if not dead:
            break
        relu, f = dead[0]
        before = model.layers[:[layer.name for layer in model.layers].index(relu)]
        conv = next((layer for layer in reversed(before) if isinstance(layer, Conv)), None)
        if conv is None:  # a ReLU of the input itself: nothing to draw
            break
        fan_in = int(np.prod(conv.weight.shape[1:]))
        conv.weight[f - 1] = rng.normal(0.0, np.sqrt(2.0 / fan_in), conv.weight.shape[1:])
        redrawn.add((conv.name, f))
    return len(redrawn)


def tiny_config(classes, size: int = TINY_SIZE, filters: int = 2) -> dict:
    """The tiny network's config. Its input is the picture's level itself: mean 0 and std 1/255
    undo the division by 255 that every network's input starts with."""
    if size not in TINY_SIZES:
        raise CnnsheetError(f"--size {size}: a tiny network takes pictures of "
                            f"{TINY_SIZES[0]} to {TINY_SIZES[-1]} pixels a side")
    if filters not in TINY_FILTERS:
        raise CnnsheetError(f"--filters {filters}: a tiny network has 1 or 2 filters")
    if not 2 <= len(classes) <= 3:
        raise CnnsheetError(f"a tiny network has 2 or 3 classes, not {len(classes)}")
    return {"format": FORMAT, "version": VERSION,
            "input": {"size": size, "channels": 1, "mean": [0.0], "std": [1 / 255]},
            "layers": [{"type": "conv", "name": "conv1", "filters": filters, "kernel": TINY_KERNEL},
                       {"type": "relu"},
                       {"type": "maxpool", "size": TINY_POOL, "stride": TINY_POOL},
                       {"type": "flatten"},
                       {"type": "dense", "name": "dense", "units": len(classes)}],
            "classes": list(classes)}


def reads_levels(model: Model) -> bool:
    """Whether a network reads its pixels as they are: a tiny network's grey levels 0-9."""
    return model.channels == 1 and model.mean[0] == 0 and model.std[0] * 255 == 1


def brightest(model: Model) -> int:
    """The value of a white pixel: 9 for a tiny network, else 255."""
    return LEVELS if reads_levels(model) else 255


def tiny_pixels(image: Image.Image, size: int = TINY_SIZE) -> np.ndarray:
    """A photo reduced to size x size grey levels 0 (its darkest) to 9 (its lightest), as uint8
    RGB (H, W, 3) with R = G = B = the level: the Image sheet shows the levels, the network sees
    them. The contrast is stretched first: a faint drawing would otherwise be all 7s and 8s."""
    grey = ImageOps.autocontrast(square_and_resize(image, size).convert("L"))
    levels = np.rint(np.asarray(grey, dtype=np.float64) * LEVELS / 255).astype(np.uint8)  # (H, W)
    return np.repeat(levels[:, :, None], 3, axis=2)


def whole(rng: np.random.Generator, span: tuple[int, int], shape) -> np.ndarray:
    low, high = span
    return rng.integers(low, high + 1, shape).astype(np.float64)


def tiny_weights(model: Model, pixels: np.ndarray, seed: int) -> Model:
    """Whole conv weights and biases and whole dense weights drawn in the spans above; the dense
    biases then put the class scores on distinct whole numbers 0 to SCORE_TOP, drawn too."""
    rng = np.random.default_rng(seed)
    conv, dense = model.layers[0], model.layers[-1]
    conv.weight[...] = whole(rng, CONV_WEIGHTS, conv.weight.shape)
    conv.bias[...] = whole(rng, CONV_BIASES, conv.bias.shape)
    dense.weight[...] = whole(rng, DENSE_WEIGHTS, dense.weight.shape)
    scores = rng.choice(SCORE_TOP + 1, size=len(dense.bias), replace=False)
    dense.bias[...] = scores - model.predict(pixels).logits[0]  # the logits with zero biases
    return model


def tiny(classes, pixels: np.ndarray, seed: int, filters: int = 2) -> Draw:
    """The tiny network for these pixels (from tiny_pixels): the first seed from `seed` on whose
    conv leaves no filter dead. A picture of one level may leave every filter dead: refused."""
    config = tiny_config(classes, len(pixels), filters)
    for skipped in range(MAX_DRAWS):
        model = tiny_weights(Model(config), pixels, seed + skipped)
        if not dead_filters(model, pixels):
            return Draw(model, seed + skipped, skipped)
    raise CnnsheetError(f"every tiny network of seeds {seed} to {seed + MAX_DRAWS - 1} leaves a filter "
                        f"dead (zero everywhere after the ReLU) on this picture")
