"""A small sequential CNN: its configuration, its model file, and the passes through it.

The model file is one `.npz` that numpy alone can read: a 0-d array `config` holding JSON, and
`<layer>.weight` / `<layer>.bias` arrays in PyTorch's layouts. The network sees
x = (pixel / 255 - mean[c]) / std[c] for pixels 0-255.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnsheet.errors import CnnsheetError
from cnnsheet.files import write_atomically
from cnnsheet.layers import (
    Conv,
    Dense,
    Flatten,
    MaxPool,
    ReLU,
    cross_entropy,
    softmax,
    softmax_cross_entropy_backward,
)

FORMAT, VERSION = "cnnsheet.model", 1
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's mode "L": grey from R, G, B
SPATIAL_KINDS = ("conv", "relu", "maxpool")
PREFIX = {"conv": "conv", "relu": "relu", "maxpool": "pool", "flatten": "flatten", "dense": "dense"}
INTEGER_KEYS = {  # key: (smallest allowed value, default or None when required)
    "conv": {"filters": (1, None), "kernel": (1, None), "stride": (1, 1), "padding": (0, 0),
             "dilation": (1, 1)},
    "maxpool": {"size": (1, None), "stride": (1, None)},
    "dense": {"units": (1, None)},
    "relu": {},
    "flatten": {},
}


@dataclass
class Trace:
    """Every tensor of one forward pass by name, in order, and what the backward pass needs."""

    tensors: dict  # "input", one per layer ("conv1", "relu1", ...), "probabilities"
    caches: dict = field(repr=False, default_factory=dict)

    @property
    def logits(self) -> np.ndarray:
        return self.tensors[list(self.tensors)[-2]]

    @property
    def probabilities(self) -> np.ndarray:
        return self.tensors["probabilities"]


@dataclass
class Gradients:
    """Gradients of one backward pass: per tensor name and per parameter ("conv1.weight")."""

    tensors: dict
    params: dict


@dataclass
class LayerSummary:
    name: str
    kind: str
    output_shape: tuple
    parameters: int
    note: str = ""


def _integer(value, smallest: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
        raise CnnsheetError(f"{where} must be a whole number >= {smallest}, got {value!r}")
    return value


def _check_config(config: dict) -> dict:
    """Validate a config dict (as read from JSON) and return a normalised copy with every default."""
    if not isinstance(config, dict):
        raise CnnsheetError("config is not a JSON object")
    if config.get("format") != FORMAT:
        raise CnnsheetError(f"unknown format {config.get('format')!r} (expected {FORMAT!r})")
    if config.get("version") != VERSION:
        raise CnnsheetError(f"unsupported version {config.get('version')!r} (this cnnsheet reads {VERSION})")
    source = config.get("input")
    if not isinstance(source, dict):
        raise CnnsheetError("config has no 'input' object")
    size = _integer(source.get("size"), 1, "input size")
    channels = source.get("channels")
    if channels not in (1, 3):
        raise CnnsheetError(f"input channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    stats = {}
    for key, default in (("mean", 0.0), ("std", 1.0)):
        values = source.get(key, [default] * channels)
        if (not isinstance(values, list) or len(values) != channels
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)):
            raise CnnsheetError(f"input {key} must be a list of {channels} finite numbers, got {values!r}")
        stats[key] = [float(v) for v in values]
    if any(v <= 0 for v in stats["std"]):
        raise CnnsheetError(f"input std must be positive, got {stats['std']}")

    classes = config.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise CnnsheetError("config needs a list of at least two class names")
    if not all(isinstance(c, str) and c.strip() for c in classes):
        raise CnnsheetError(f"class names must be non-empty text, got {classes!r}")
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise CnnsheetError(f"duplicate class names: {', '.join(duplicates)}")

    raw_layers = config.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise CnnsheetError("config has no layers")
    layers, counts, names = [], {}, set()
    for index, raw in enumerate(raw_layers, 1):
        if not isinstance(raw, dict) or raw.get("type") not in INTEGER_KEYS:
            kinds = ", ".join(INTEGER_KEYS)
            raise CnnsheetError(f"layer {index}: type must be one of {kinds}, got {raw!r}")
        kind = raw["type"]
        counts[kind] = counts.get(kind, 0) + 1
        name = raw.get("name", f"{PREFIX[kind]}{counts[kind] if kind != 'flatten' else ''}")
        if not isinstance(name, str) or not name.isidentifier() or name in names:
            raise CnnsheetError(f"layer {index}: name {name!r} is not a unique identifier")
        names.add(name)
        layer = {"type": kind, "name": name}
        for key, (smallest, default) in INTEGER_KEYS[kind].items():
            value = raw.get(key, default)
            if kind == "maxpool" and key == "stride" and value is None:
                value = layer["size"]
            layer[key] = _integer(value, smallest, f"layer {index} ({name}) {key}")
        layers.append(layer)

    kinds = [layer["type"] for layer in layers]
    if kinds.count("flatten") != 1:
        raise CnnsheetError("the layers need exactly one flatten between the image layers and dense")
    flat = kinds.index("flatten")
    if any(kind not in SPATIAL_KINDS for kind in kinds[:flat]):
        raise CnnsheetError("only conv, relu and maxpool layers may come before flatten")
    if any(kind not in ("dense", "relu") for kind in kinds[flat + 1:]):
        raise CnnsheetError("only dense and relu layers may come after flatten")
    if kinds[-1] != "dense":
        raise CnnsheetError("the last layer must be dense (its outputs are the class scores)")
    if layers[-1]["units"] != len(classes):
        raise CnnsheetError(
            f"the last layer has {layers[-1]['units']} units but there are {len(classes)} classes"
        )
    extra = {k: v for k, v in config.items() if k not in ("format", "version", "input", "layers", "classes")}
    return {"format": FORMAT, "version": VERSION,
            "input": {"size": size, "channels": channels, **stats},
            "layers": layers, "classes": list(classes), **extra}


class Model:
    """A sequential CNN built from a config; parameters start at zero until set or initialised."""

    def __init__(self, config: dict):
        self.config = _check_config(config)
        self.classes = self.config["classes"]
        source = self.config["input"]
        self.input_size, self.channels = source["size"], source["channels"]
        self.mean, self.std = np.array(source["mean"]), np.array(source["std"])
        self.layers, self.shapes = [], [(self.channels, self.input_size, self.input_size)]
        for spec in self.config["layers"]:
            try:
                layer = self._build(spec, self.shapes[-1])
                self.shapes.append(layer.output_shape(self.shapes[-1]))
            except CnnsheetError as error:
                raise CnnsheetError(f"{spec['name']}: {error}") from None
            self.layers.append(layer)

    @staticmethod
    def _build(spec: dict, shape: tuple):
        name, kind = spec["name"], spec["type"]
        if kind == "conv":
            return Conv(name, shape[0], spec["filters"], spec["kernel"], spec["stride"],
                        spec["padding"], spec["dilation"])
        if kind == "maxpool":
            return MaxPool(name, spec["size"], spec["stride"])
        if kind == "dense":
            return Dense(name, shape[0], spec["units"])
        return {"relu": ReLU, "flatten": Flatten}[kind](name)

    # ---- parameters -------------------------------------------------------------------------
    def params(self) -> dict:
        """Every parameter array by its file name ("conv1.weight"); the arrays are live views."""
        return {f"{layer.name}.{key}": value
                for layer in self.layers for key, value in layer.params().items()}

    def set_params(self, arrays: dict) -> None:
        """Copy arrays into the model, checking names, shapes and finiteness."""
        expected = self.params()
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        if missing:
            raise CnnsheetError(f"missing array(s): {', '.join(missing)}")
        if extra:
            raise CnnsheetError(f"unexpected array(s): {', '.join(extra)}")
        for key, target in expected.items():
            value = np.asarray(arrays[key])
            if value.shape != target.shape:
                raise CnnsheetError(f"{key} has shape {value.shape}, the layers need {target.shape}")
            if not np.issubdtype(value.dtype, np.number) or not np.all(np.isfinite(value)):
                raise CnnsheetError(f"{key} holds values that are not finite numbers")
            target[...] = value

    def init(self, seed: int = 0) -> Model:
        """He initialisation for weights (normal, std sqrt(2 / fan_in)); biases start at 0."""
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            if hasattr(layer, "weight"):
                fan_in = int(np.prod(layer.weight.shape[1:]))
                layer.weight[...] = rng.normal(0.0, math.sqrt(2.0 / fan_in), layer.weight.shape)
                layer.bias[...] = 0.0
        return self

    def summary(self) -> list[LayerSummary]:
        """One row per layer: output shape, parameter count, and a note where pixels are dropped."""
        rows = []
        for layer, before, after in zip(self.layers, self.shapes, self.shapes[1:]):
            count = sum(v.size for v in layer.params().values())
            note = ""
            if isinstance(layer, MaxPool):
                rows_dropped, cols_dropped = layer.dropped(before)
                if rows_dropped or cols_dropped:
                    note = (f"the pool does not tile {before[1]}x{before[2]}: the last "
                            f"{rows_dropped} row(s) and {cols_dropped} column(s) are dropped (floor)")
            rows.append(LayerSummary(layer.name, layer.kind, after, count, note))
        return rows

    @property
    def parameter_count(self) -> int:
        return sum(v.size for v in self.params().values())

    # ---- passes -----------------------------------------------------------------------------
    def preprocess(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (N, H, W, 3) or (H, W, 3) -> the network's input (N, C, H, W), float64."""
        pixels = np.asarray(pixels, dtype=np.float64)
        if pixels.ndim == 3:
            pixels = pixels[None]
        if self.channels == 1:
            pixels = pixels @ np.array(LUMA)[:, None]
        x = pixels.transpose(0, 3, 1, 2) / 255.0  # (N, C, H, W)
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def input_formula(self, channel: int, pixels: list[str], mean: str, std: str) -> str:
        """The spreadsheet twin of `preprocess` for one cell; `pixels` are its R, G, B cells."""
        if self.channels == 1:
            luma = "+".join(f"{w}*{p}" for w, p in zip(LUMA, pixels))
            return f"=(({luma})/255-{mean})/{std}"
        return f"=({pixels[channel]}/255-{mean})/{std}"

    def forward(self, x: np.ndarray) -> Trace:
        """Run the network on x (N, C, H, W); every intermediate tensor is kept by name."""
        trace = Trace({"input": x})
        for layer in self.layers:
            x, trace.caches[layer.name] = layer.forward(x)
            trace.tensors[layer.name] = x
        trace.tensors["probabilities"] = softmax(x)
        return trace

    def backward(self, trace: Trace, dlogits: np.ndarray, need_input_grad=True) -> Gradients:
        """Chain dlogits back through every layer: gradients of every tensor and parameter."""
        grads = Gradients({}, {})
        dy = dlogits
        for layer in reversed(self.layers):
            grads.tensors[layer.name] = dy
            first = layer is self.layers[0]
            dy, param_grads = layer.backward(dy, trace.caches[layer.name],
                                             need_input_grad or not first)
            for key, value in param_grads.items():
                grads.params[f"{layer.name}.{key}"] = value
        if need_input_grad:
            grads.tensors["input"] = dy
        return grads

    def loss(self, trace: Trace, labels) -> np.ndarray:
        """Cross-entropy of each sample (N,)."""
        return cross_entropy(trace.probabilities, np.asarray(labels))

    def gradients(self, x: np.ndarray, labels, need_input_grad=True):
        """Forward, per-sample losses (N,), and the gradients of their mean."""
        labels = np.asarray(labels)
        trace = self.forward(x)
        dlogits = softmax_cross_entropy_backward(trace.probabilities, labels)
        return trace, self.loss(trace, labels), self.backward(trace, dlogits, need_input_grad)

    def saliency(self, pixels: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        """d(logit of class)/d(pixel 0-255) as (N, 3, H, W), and its max |.| over colours (N, H, W)."""
        trace = self.forward(self.preprocess(pixels))
        seed = np.zeros_like(trace.logits)
        seed[:, class_index] = 1.0
        dx = self.backward(trace, seed).tensors["input"]  # (N, C, H, W)
        dpixels = dx / (255.0 * self.std[:, None, None])
        if self.channels == 1:  # back through the luma weights to R, G and B
            dpixels = dpixels * np.array(LUMA)[:, None, None]
        return dpixels, np.abs(dpixels).max(axis=1)

    def predict(self, pixels: np.ndarray) -> Trace:
        return self.forward(self.preprocess(pixels))

    # ---- the model file ---------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model atomically: a temporary file in the same folder, then a rename."""
        arrays = {"config": np.array(json.dumps(self.config))}
        arrays.update(self.params())

        def write(tmp):
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomically(path, write)


def load_model(path) -> Model:
    """Read and check a model file; every problem is a CnnsheetError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CnnsheetError(f"{path}: no such model file" if not path.exists() else f"{path}: not a file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # zipfile, pickle and format errors all mean the same to a user
        raise CnnsheetError(f"{path}: not a cnnsheet model file (.npz): {error}") from None
    if not isinstance(arrays, dict) or "config" not in arrays:
        raise CnnsheetError(f"{path}: not a cnnsheet model file (no 'config' array)")
    try:
        config = json.loads(str(arrays.pop("config")[()]))
        model = Model(config)
        model.set_params(arrays)
    except json.JSONDecodeError as error:
        raise CnnsheetError(f"{path}: config is not valid JSON ({error})") from None
    except CnnsheetError as error:
        raise CnnsheetError(f"{path}: {error}") from None
    return model
