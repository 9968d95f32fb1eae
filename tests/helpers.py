"""Small builders shared by the tests."""

import numpy as np
from openpyxl.utils.cell import coordinate_to_tuple

from cnnsheet.model import Model


def config(size=12, channels=3, blocks=(), hidden=(), classes=("a", "b", "c"), **extra):
    """A model config: `blocks` is a list of dicts with conv keys and optional pool keys."""
    layers = []
    for number, block in enumerate(blocks, 1):
        conv = {k: v for k, v in block.items() if not k.startswith("pool")}
        layers += [{"type": "conv", "name": f"conv{number}", **conv}, {"type": "relu"}]
        if block.get("pool"):
            layers.append({"type": "maxpool", "size": block["pool"],
                           "stride": block.get("pool_stride", block["pool"])})
    layers.append({"type": "flatten"})
    for number, units in enumerate(hidden, 1):
        layers += [{"type": "dense", "name": f"hidden{number}", "units": units}, {"type": "relu"}]
    layers.append({"type": "dense", "name": "logits", "units": len(classes)})
    return {"format": "cnnsheet.model", "version": 1,
            "input": {"size": size, "channels": channels, "mean": [0.5] * channels,
                      "std": [0.25] * channels},
            "layers": layers, "classes": list(classes), **extra}


def small_model(seed=0, **kwargs) -> Model:
    kwargs.setdefault("blocks", [{"filters": 2, "kernel": 3, "pool": 2}])
    return Model(config(**kwargs)).init(seed)


def random_pixels(rng, n, size):
    return rng.integers(0, 256, size=(n, size, size, 3)).astype(np.uint8)


def default_case():
    """The bundled model and the bundled photo, as `cnnsheet explain` uses them by default."""
    from cnnsheet.images import load_photo
    from cnnsheet.modelfile import load_model
    from cnnsheet.resources import default_model_path, default_photo_path

    model = load_model(default_model_path())
    return model, load_photo(default_photo_path(), model.input_size)


def zoom_choices(walkthrough) -> dict:
    """The 0-based (filter, row, col) each Zoom sheet and each pool's choice hold, by name prefix
    ("zoom1", "pool1"): after an edit elsewhere the engine's default choice may move, a typed
    one does not."""
    choices = {}
    for name in walkthrough.names:
        if name.endswith("_filter") and name.startswith(("zoom", "pool")):
            prefix = name.removesuffix("_filter")
            picked = []
            for key in ("filter", "row", "col"):
                sheet, ref = walkthrough.names[f"{prefix}_{key}"].rsplit("!", 1)
                row, col = coordinate_to_tuple(ref.replace("$", ""))
                picked.append(walkthrough.plan[sheet.strip("'")].cells[row, col][1] - 1)
            choices[prefix] = tuple(picked)
    return choices
