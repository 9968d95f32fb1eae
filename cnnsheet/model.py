"""A small sequential CNN: the layers a checked config asks for, and the passes through them.

The config is checked in cnnsheet/config.py and the model file read and written in
cnnsheet/modelfile.py. The network sees x = (pixel / 255 - mean[c]) / std[c] for pixels 0-255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cnnsheet import budget
from cnnsheet.config import check_array_names, config_and_shapes
from cnnsheet.errors import CnnsheetError
from cnnsheet.layers import (
    Conv,
    Dense,
    Flatten,
    MaxPool,
    ReLU,
    softmax_cross_entropy_backward,
    softmax_parts,
)

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's mode "L": grey from R, G, B
REAL_KINDS = "fiu"  # numpy dtype kinds a weight may have: float, signed and unsigned integer


def grey(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (..., 3) -> their grey levels (...), by the luma weights, as floats."""
    return np.asarray(pixels, dtype=np.float64) @ np.array(LUMA)


@dataclass
class Trace:
    """Every tensor of one forward pass by name, in order, and what the backward pass needs."""

    tensors: dict  # "input", one per layer ("conv1", "relu1", ...), "probabilities"
    caches: dict = field(repr=False, default_factory=dict)
    exps: np.ndarray | None = field(repr=False, default=None)  # the softmax's exp(z - max z) (N, K)

    @property
    def logits(self) -> np.ndarray:
        return self.tensors[list(self.tensors)[-2]]

    @property
    def probabilities(self) -> np.ndarray:
        return self.tensors["probabilities"]

    @property
    def exp_sums(self) -> np.ndarray:
        """The softmax's denominators (N,)."""
        return self.exps.sum(axis=-1)

    @property
    def probability_sums(self) -> np.ndarray:
        """Each picture's probabilities added up (N,): 1 but for rounding."""
        return self.probabilities.sum(axis=-1)


@dataclass
class Descent:
    """One step of gradient descent on one picture: the stepped network, its pass on the same
    input, and the loss before and after."""

    model: Model
    trace: Trace
    loss_before: float
    loss_after: float

    @property
    def loss_change(self) -> float:
        return self.loss_after - self.loss_before


@dataclass
class Gradients:
    """Gradients of one backward pass: per tensor name and per parameter ("conv1.weight")."""

    tensors: dict
    params: dict


def make_layer(spec: dict, shape: tuple):
    """The layer of a checked config's spec, reading a tensor of `shape`."""
    name, kind = spec["name"], spec["type"]
    if kind == "conv":
        return Conv(name, shape[0], spec["filters"], spec["kernel"], spec["stride"],
                    spec["padding"], spec["dilation"])
    if kind == "maxpool":
        return MaxPool(name, spec["size"], spec["stride"])
    if kind == "dense":
        return Dense(name, shape[0], spec["units"])
    return {"relu": ReLU, "flatten": Flatten}[kind](name)


def checked_array(key: str, value, shape: tuple) -> np.ndarray:
    """A parameter array as given (a model file's, or training's): its shape, real numbers, finite."""
    value = np.asarray(value)
    if value.shape != shape:
        raise CnnsheetError(f"{key} has shape {value.shape}, the layers need {shape}")
    if value.dtype.kind not in REAL_KINDS:
        raise CnnsheetError(f"{key} holds {value.dtype} values, not real numbers")
    if not np.all(np.isfinite(value)):
        raise CnnsheetError(f"{key} holds values that are not finite numbers")
    return value


class Model:
    """A sequential CNN built from a config; parameters start at zero until set or initialised."""

    def __init__(self, config: dict):
        # the sizes first, by arithmetic: a config may ask for more than the machine has
        self.config, shapes = config_and_shapes(config)
        budget.check_network(self.config["layers"], shapes)
        self.classes = self.config["classes"]
        self.source = None  # the file it was read from, to name it in messages
        source = self.config["input"]
        self.input_size, self.channels = source["size"], source["channels"]
        self.mean, self.std = np.array(source["mean"]), np.array(source["std"])
        self.layers, self.shapes = [], [(self.channels, self.input_size, self.input_size)]
        for spec in self.config["layers"]:
            try:
                layer = make_layer(spec, self.shapes[-1])
                self.shapes.append(layer.output_shape(self.shapes[-1]))
            except CnnsheetError as error:
                raise CnnsheetError(f"{spec['name']}: {error}") from None
            self.layers.append(layer)

    # ---- parameters -------------------------------------------------------------------------
    def params(self) -> dict:
        """Every parameter array by its file name ("conv1.weight"); the arrays are live views."""
        return {f"{layer.name}.{key}": value
                for layer in self.layers for key, value in layer.params().items()}

    def set_params(self, arrays: dict) -> None:
        """Copy arrays into the model, checking names, shapes and finiteness."""
        expected = self.params()
        check_array_names(expected, arrays)
        for key, target in expected.items():
            target[...] = checked_array(key, arrays[key], target.shape)

    def init(self, seed: int = 0) -> Model:
        """He initialisation for weights (normal, std sqrt(2 / fan_in)); biases start at 0."""
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            if hasattr(layer, "weight"):
                fan_in = int(np.prod(layer.weight.shape[1:]))
                layer.weight[...] = rng.normal(0.0, math.sqrt(2.0 / fan_in), layer.weight.shape)
                layer.bias[...] = 0.0
        return self

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
        trace.exps, trace.tensors["probabilities"] = softmax_parts(x)
        return trace

    def backward(self, trace: Trace, dlogits: np.ndarray, need_input_grad=True,
                 relu_rule: str = "gradient") -> Gradients:
        """Chain dlogits back through every layer: gradients of every tensor and parameter. A
        `relu_rule` other than "gradient" (see RELU_RULES) makes it a saliency pass's backward
        pass, no longer the gradient, at every ReLU."""
        grads = Gradients({}, {})
        dy = dlogits
        for layer in reversed(self.layers):
            grads.tensors[layer.name] = dy
            first = layer is self.layers[0]
            rule = {"rule": relu_rule} if isinstance(layer, ReLU) else {}
            dy, param_grads = layer.backward(dy, trace.caches[layer.name],
                                             need_input_grad or not first, **rule)
            for key, value in param_grads.items():
                grads.params[f"{layer.name}.{key}"] = value
        if need_input_grad:
            grads.tensors["input"] = dy
        return grads

    def loss(self, trace: Trace, labels) -> np.ndarray:
        """Cross-entropy of each sample (N,), as log-sum-exp of the logits minus the true one: the
        same number as -ln p, and finite even where p rounds to 0."""
        logits = trace.logits  # (N, K)
        labels = np.asarray(labels)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]

    def loss_gradient(self, trace: Trace, labels) -> np.ndarray:
        """d (mean loss) / d logits (N, K): p - onehot, over N."""
        return softmax_cross_entropy_backward(trace.probabilities, np.asarray(labels))

    def step(self, grads: Gradients, rate: float) -> Model:
        """A new model whose parameters took one step of gradient descent: w - rate x dL/dw."""
        stepped = Model(self.config)
        stepped.set_params({name: value - rate * grads.params[name] for name, value in self.params().items()})
        return stepped

    def descend(self, trace: Trace, grads: Gradients, labels, rate: float) -> Descent:
        """One step on the picture of `trace` (gradients `grads`), and the mean loss before and after."""
        after = self.step(grads, rate)
        after_trace = after.forward(trace.tensors["input"])
        return Descent(after, after_trace, float(self.loss(trace, labels).mean()),
                       float(after.loss(after_trace, labels).mean()))

    def gradients(self, x: np.ndarray, labels, need_input_grad=True):
        """Forward, per-sample losses (N,), and the gradients of their mean."""
        labels = np.asarray(labels)
        trace = self.forward(x)
        dlogits = softmax_cross_entropy_backward(trace.probabilities, labels)
        return trace, self.loss(trace, labels), self.backward(trace, dlogits, need_input_grad)

    def saliency(self, pixels: np.ndarray, class_index: int,
                 relu_rule: str = "gradient") -> tuple[np.ndarray, np.ndarray]:
        """d(logit of class)/d(pixel 0-255) as (N, 3, H, W), and its max |.| over colours (N, H, W);
        with another `relu_rule`, the guided or deconvnet version of that gradient."""
        trace = self.forward(self.preprocess(pixels))
        seed = np.zeros_like(trace.logits)
        seed[:, class_index] = 1.0
        dx = self.backward(trace, seed, relu_rule=relu_rule).tensors["input"]  # (N, C, H, W)
        dpixels = dx / (255.0 * self.std[:, None, None])
        if self.channels == 1:  # back through the luma weights to R, G and B
            dpixels = dpixels * np.array(LUMA)[:, None, None]
        return dpixels, np.abs(dpixels).max(axis=1)

    def predict(self, pixels: np.ndarray) -> Trace:
        """The forward pass on uint8 pixels; refuses scores that are not finite numbers (weights
        so large that float64 overflows), which no table, JSON or workbook could show."""
        with np.errstate(over="ignore", invalid="ignore"):
            trace = self.forward(self.preprocess(pixels))
        if not (np.all(np.isfinite(trace.logits)) and np.all(np.isfinite(trace.probabilities))):
            where = f"{self.source}: " if self.source else ""
            raise CnnsheetError(f"{where}the class scores are not finite numbers: the weights are too "
                                f"large for float64")
        return trace
