"""A small sequential CNN: its configuration, its model file, and the passes through it.

The model file is one `.npz` that numpy alone can read: a 0-d array `config` holding JSON, and
`<layer>.weight` / `<layer>.bias` arrays in PyTorch's layouts. The network sees
x = (pixel / 255 - mean[c]) / std[c] for pixels 0-255.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnsheet import budget
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import write_atomically
from cnnsheet.layers import (
    Conv,
    Dense,
    Flatten,
    MaxPool,
    ReLU,
    conv_output_size,
    softmax_cross_entropy_backward,
    softmax_parts,
)

FORMAT, VERSION = "cnnsheet.model", 1
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's mode "L": grey from R, G, B
SPATIAL_KINDS = ("conv", "relu", "maxpool")
REAL_KINDS = "fiu"  # numpy dtype kinds a weight may have: float, signed and unsigned integer
PREFIX = {"conv": "conv", "relu": "relu", "maxpool": "pool", "flatten": "flatten", "dense": "dense"}
INTEGER_KEYS = {  # key: (smallest allowed value, default or None when required)
    "conv": {"filters": (1, None), "kernel": (1, None), "stride": (1, 1), "padding": (0, 0),
             "dilation": (1, 1)},
    "maxpool": {"size": (1, None), "stride": (1, None)},
    "dense": {"units": (1, None)},
    "relu": {},
    "flatten": {},
}
LARGEST = {"filters": budget.MAX_FILTERS, "units": budget.MAX_UNITS}  # else MAX_LAYER_NUMBER


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


@dataclass
class LayerSummary:
    name: str
    kind: str
    output_shape: tuple
    parameters: int
    note: str = ""


def _integer(value, smallest: int, where: str, largest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
        raise CnnsheetError(f"{where} must be a whole number >= {smallest}, got {_short(value)}")
    return budget.check_number(value, largest, where)


def _short(value) -> str:
    """A value from a file, shown in a message: escaped, and cut when long."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_array_names(expected, given) -> None:
    """Refuse arrays the layers do not have (shown escaped: they may come from a file), then
    arrays they need and lack."""
    unknown = sorted(set(given) - set(expected))
    missing = sorted(set(expected) - set(given))
    if unknown:
        raise CnnsheetError(f"unexpected array(s): {', '.join(_short(name) for name in unknown)}")
    if missing:
        raise CnnsheetError(f"missing array(s): {', '.join(missing)}")


def check_class_names(classes) -> None:
    """Class names become cells, drop-down entries and lines on a terminal: short printable text."""
    if not isinstance(classes, list) or len(classes) < 2:
        raise CnnsheetError("config needs a list of at least two class names")
    budget.check_number(len(classes), budget.MAX_CLASSES, "the number of classes")
    for name in classes:
        if not isinstance(name, str) or not name.strip():
            raise CnnsheetError(f"class names must be non-empty text, got {_short(name)}")
        if not name.isprintable():
            raise CnnsheetError(f"the class name {_short(name)} holds a control or unprintable character")
        if len(name) > budget.MAX_CLASS_NAME:
            raise CnnsheetError(f"the class name {_short(name)} is longer than "
                                f"{budget.MAX_CLASS_NAME} characters")
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise CnnsheetError(f"duplicate class names: {', '.join(duplicates)}")


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
    size = _integer(source.get("size"), 1, "input size", budget.MAX_INPUT_SIZE)
    channels = source.get("channels")
    if channels not in (1, 3):
        raise CnnsheetError(f"input channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    stats = {}
    for key, default in (("mean", 0.0), ("std", 1.0)):
        values = source.get(key, [default] * channels)
        if (not isinstance(values, list) or len(values) != channels
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in values)):
            raise CnnsheetError(f"input {key} must be a list of {channels} finite numbers, "
                                f"got {_short(values)}")
        stats[key] = [float(v) for v in values]
    if any(v <= 0 for v in stats["std"]):
        raise CnnsheetError(f"input std must be positive, got {stats['std']}")

    classes = config.get("classes")
    check_class_names(classes)

    raw_layers = config.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise CnnsheetError("config has no layers")
    budget.check_number(len(raw_layers), budget.MAX_LAYERS, "the number of layers")
    layers, counts, names = [], {}, set()
    for index, raw in enumerate(raw_layers, 1):
        if not isinstance(raw, dict) or raw.get("type") not in INTEGER_KEYS:
            kinds = ", ".join(INTEGER_KEYS)
            raise CnnsheetError(f"layer {index}: type must be one of {kinds}, got {_short(raw)}")
        kind = raw["type"]
        counts[kind] = counts.get(kind, 0) + 1
        name = raw.get("name", f"{PREFIX[kind]}{counts[kind] if kind != 'flatten' else ''}")
        if not isinstance(name, str) or not name.isidentifier() or name in names:
            raise CnnsheetError(f"layer {index}: name {_short(name)} is not a unique identifier")
        names.add(name)
        layer = {"type": kind, "name": name}
        for key, (smallest, default) in INTEGER_KEYS[kind].items():
            value = raw.get(key, default)
            if kind == "maxpool" and key == "stride" and value is None:
                value = layer["size"]
            layer[key] = _integer(value, smallest, f"layer {index} ({name}) {key}",
                                  LARGEST.get(key, budget.MAX_LAYER_NUMBER))
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


def _output_shape(spec: dict, shape: tuple) -> tuple:
    """A layer's output shape by arithmetic alone, before any of its arrays exist."""
    kind = spec["type"]
    if kind == "conv":
        _, H, W = shape
        return (spec["filters"], *[conv_output_size(n, spec["kernel"], spec["stride"], spec["padding"],
                                                    spec["dilation"]) for n in (H, W)])
    if kind == "maxpool":
        return MaxPool(spec["name"], spec["size"], spec["stride"]).output_shape(shape)
    if kind == "flatten":
        return (math.prod(shape),)
    if kind == "dense":
        return (spec["units"],)
    return shape


def plan(config: dict) -> tuple[dict, list[tuple]]:
    """A config checked and normalised, and the input shape followed by every layer's output
    shape, by arithmetic: no array is made."""
    config = _check_config(config)
    source = config["input"]
    shapes = [(source["channels"], source["size"], source["size"])]
    for spec in config["layers"]:
        try:
            shapes.append(_output_shape(spec, shapes[-1]))
        except CnnsheetError as error:
            raise CnnsheetError(f"{spec['name']}: {error}") from None
    return config, shapes


class Model:
    """A sequential CNN built from a config; parameters start at zero until set or initialised."""

    def __init__(self, config: dict):
        # the sizes first, by arithmetic: a config may ask for more than the machine has
        self.config, shapes = plan(config)
        budget.check_network(self.config["layers"], shapes)
        self.classes = self.config["classes"]
        self.source = None  # the file it was read from, to name it in messages
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
        check_array_names(expected, arrays)
        for key, target in expected.items():
            value = np.asarray(arrays[key])
            if value.shape != target.shape:
                raise CnnsheetError(f"{key} has shape {value.shape}, the layers need {target.shape}")
            if value.dtype.kind not in REAL_KINDS:
                raise CnnsheetError(f"{key} holds {value.dtype} values, not real numbers")
            if not np.all(np.isfinite(value)):
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
        trace.exps, trace.tensors["probabilities"] = softmax_parts(x)
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
        """The forward pass on uint8 pixels; refuses scores that are not finite numbers (weights
        so large that float64 overflows), which no table, JSON or workbook could show."""
        with np.errstate(over="ignore", invalid="ignore"):
            trace = self.forward(self.preprocess(pixels))
        if not (np.all(np.isfinite(trace.logits)) and np.all(np.isfinite(trace.probabilities))):
            where = f"{self.source}: " if self.source else ""
            raise CnnsheetError(f"{where}the class scores are not finite numbers: the weights are too "
                                f"large for float64")
        return trace

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
    """Read and check a model file; every problem is a CnnsheetError naming the file.

    The zip's table of contents is read first and every member is checked against the config
    (name, dtype, shape and declared size) before a byte of it is decompressed."""
    path = Path(path)
    if not path.is_file():
        raise CnnsheetError(f"{path}: no such model file" if not path.exists() else f"{path}: not a file")
    try:
        with open(path, "rb") as handle:
            _check_zip_directory(handle)
            with zipfile.ZipFile(handle) as archive:
                model = _read_model(archive)
    except CnnsheetError as error:
        raise CnnsheetError(f"{path}: {error}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise CnnsheetError(f"{path}: not a cnnsheet model file (.npz): {error}") from None
    except OSError as error:
        raise CnnsheetError(f"{path}: cannot be read ({error.strerror or error})") from None
    model.source = path
    return model


END_OF_DIRECTORY = b"PK\x05\x06"  # the zip record that says where the table of contents is


def _check_zip_directory(handle) -> None:
    """Refuse a zip whose table of contents is too large before zipfile reads it into memory."""
    handle.seek(0, 2)
    size = handle.tell()
    if size > budget.MAX_MODEL_BYTES:
        raise CnnsheetError(f"the file is {size:,} bytes; a model file is at most {budget.MAX_MODEL_BYTES:,}")
    tail_size = min(size, 22 + 65535)  # the record and a comment of up to 64 KB
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(END_OF_DIRECTORY)
    if at < 0 or len(tail) - at < 22:
        raise CnnsheetError("not a cnnsheet model file (.npz): not a zip archive")
    entries, directory_size = struct.unpack("<HI", tail[at + 10:at + 16])
    if entries > budget.MAX_MEMBERS or directory_size > budget.MAX_ZIP_DIRECTORY_BYTES:
        raise CnnsheetError(f"the archive lists {entries:,} members in {directory_size:,} bytes; a model "
                            f"file has at most {budget.MAX_MEMBERS}")
    handle.seek(0)


def _read_model(archive: zipfile.ZipFile) -> Model:
    members = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy") or info.filename[:-4] in members:
            raise CnnsheetError(f"unexpected member {_short(info.filename)} (a model file holds "
                                f"config.npy and one .npy per weight and bias)")
        members[info.filename[:-4]] = info
    if "config" not in members:
        raise CnnsheetError("not a cnnsheet model file (no 'config' array)")
    total = sum(info.file_size for info in members.values())
    if total > budget.MAX_MODEL_BYTES:
        raise CnnsheetError(f"the arrays would take {total:,} bytes uncompressed; a model file holds "
                            f"at most {budget.MAX_MODEL_BYTES:,}")
    if members["config"].file_size > budget.MAX_CONFIG_BYTES:
        raise CnnsheetError(f"config takes {members['config'].file_size:,} bytes; the limit is "
                            f"{budget.MAX_CONFIG_BYTES:,}")
    text = _read_member(archive, members.pop("config"), "config", (), "U")
    try:
        config = json.loads(str(text[()]))
    except json.JSONDecodeError as error:
        raise CnnsheetError(f"config is not valid JSON ({error})") from None
    except RecursionError:
        raise CnnsheetError("config is nested too deeply to be a model's JSON") from None
    model = Model(config)
    expected = model.params()
    check_array_names(expected, members)  # before a member is read
    model.set_params({key: _read_member(archive, info, key, expected[key].shape, REAL_KINDS)
                      for key, info in members.items()})
    return model


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, shape: tuple, kinds: str):
    """One .npy member: its header checked against the expected shape and dtype kinds, and its
    declared size against what that header implies, before the data is decompressed."""
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                found, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                found, fortran, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as error:
            raise CnnsheetError(f"{key} is not a plain numpy array ({error})") from None
        if dtype.hasobject or dtype.kind not in kinds:
            raise CnnsheetError(f"{key} holds {dtype.name} values, not "
                                f"{'text' if kinds == 'U' else 'real numbers'}")
        if tuple(found) != tuple(shape):
            raise CnnsheetError(f"{key} has shape {tuple(found)}, the layers need {tuple(shape)}")
        data_bytes = math.prod(found) * dtype.itemsize
        if info.file_size != member.tell() + data_bytes:
            raise CnnsheetError(f"{key} declares {info.file_size:,} bytes but a {dtype} array of shape "
                                f"{tuple(found)} takes {data_bytes:,}")
        data = member.read(data_bytes)
    if len(data) != data_bytes:
        raise CnnsheetError(f"{key} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(found, order="F" if fortran else "C")
