"""Training: a teacher's folder of photos or the synthetic shapes, mini-batch SGD with momentum.

`fit` is a generator: it yields an event after every batch and every epoch, so that the command
line can draw progress bars while this module never prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnsheet import budget
from cnnsheet.config import FORMAT, VERSION, check_class_names, config_and_shapes
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_input, inside
from cnnsheet.images import load_photo
from cnnsheet.model import Model
from cnnsheet.modelfile import load_model
from cnnsheet.resources import default_model_path

DEFAULT_SAMPLES = 12000  # synthetic shapes drawn when no folder is given


# Kernel and pool size when not given, by the number of blocks: one block of 5 then a pool of 4
# (28 -> 24 -> 6); deeper networks take 3 and 2 each block, so that 28 pixels last three blocks
# (28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1).
KERNEL_AND_POOL = {1: (5, 4), 2: (3, 2), 3: (3, 2)}


@dataclass(frozen=True)
class Architecture:
    """The shape of a network: conv blocks (conv -> ReLU -> max-pool), then dense layers.

    Kernel and pool left as None follow the number of blocks (KERNEL_AND_POOL), so that the
    defaults always make a working network."""

    size: int = 28
    filters: int = 8
    kernel: int | None = None
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    pool: int | None = None
    blocks: int = 1
    hidden: int = 32

    def __post_init__(self):
        kernel, pool = KERNEL_AND_POOL.get(self.blocks, KERNEL_AND_POOL[max(KERNEL_AND_POOL)])
        if self.kernel is None:
            object.__setattr__(self, "kernel", kernel)
        if self.pool is None:
            object.__setattr__(self, "pool", pool)

    def check(self) -> Model:
        """Fail now, with the numbers, if the layers do not fit the input size or the budget."""
        return Model(self.config(["a", "b"]))

    def config(self, classes, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> dict:
        layers = []
        for block in range(1, self.blocks + 1):
            layers += [{"type": "conv", "name": f"conv{block}", "filters": self.filters,
                        "kernel": self.kernel, "stride": self.stride, "padding": self.padding,
                        "dilation": self.dilation},
                       {"type": "relu"}]
            if self.pool > 1:
                layers.append({"type": "maxpool", "size": self.pool, "stride": self.pool})
        layers.append({"type": "flatten"})
        if self.hidden:
            layers += [{"type": "dense", "name": "hidden", "units": self.hidden}, {"type": "relu"}]
        layers.append({"type": "dense", "name": "dense", "units": len(classes)})
        return {"format": FORMAT, "version": VERSION,
                "input": {"size": self.size, "channels": 3, "mean": [float(m) for m in mean],
                          "std": [float(s) for s in std]},
                "layers": layers, "classes": list(classes)}


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 3e-3
    validation_split: float = 0.1
    seed: int = 0
    flips: bool = False  # also show pictures turned by 90 degrees and mirrored (shapes, not faces)
    # The arithmetic of training. float32 halves the bytes every step moves and doubles what a
    # matrix product does per instruction, and SGD's own noise dwarfs its rounding; the model
    # file, predictions and the workbook stay float64.
    dtype: str = "float32"


@dataclass
class Dataset:
    pixels: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) class indices
    classes: list
    skipped: list  # (path, reason) of files that could not be read
    notes: list = field(default_factory=list)  # what the user should know of files that were read
    paths: list = field(default_factory=list)  # the file of each picture read


@dataclass
class BatchEnd:
    epoch: int
    batch: int
    batches: int
    running_loss: float


@dataclass
class EpochEnd:
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    validation_loss: float | None
    validation_accuracy: float | None


def list_folder(folder) -> tuple[list[str], list[list[Path]]]:
    """The classes of a training folder (sub-folder names, sorted) and the files of each; nothing
    is read yet, so that the budget can be checked first."""
    folder = check_input(folder, "folder")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for class_dir in class_dirs:
        check_input(class_dir, "folder")
    _check_linked_classes(folder, class_dirs)
    if len(class_dirs) < 2:
        found = ", ".join(p.name for p in class_dirs) or "none"
        raise CnnsheetError(f"{folder}: needs at least two class sub-folders (found: {found})")
    classes = [p.name for p in class_dirs]
    try:
        check_class_names(classes)
    except CnnsheetError as error:
        raise CnnsheetError(f"{folder}: {error}: rename that sub-folder") from None
    files = [sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
             for class_dir in class_dirs]
    return classes, files


def _check_linked_classes(folder: Path, class_dirs: list[Path]) -> None:
    """A class folder that is a link must not hold the data folder or another class, nor lie in
    another class: its photos would be trained on twice, under a wrong name. (A folder that is
    not a link lies in the data folder and holds none of its siblings.)"""
    for link in (d for d in class_dirs if d.is_symlink()):
        for other in class_dirs:
            if other != link and inside(link, other):
                raise CnnsheetError(f"{link}: a link into {other}; a class folder must hold only its "
                                    f"own photos")
        for other in [folder, *class_dirs]:
            if other != link and inside(other, link):
                raise CnnsheetError(f"{link}: a link to a folder that holds {other}; a class folder "
                                    f"must hold only its own photos")


def read_folder(folder, size: int, files=None, quick: bool = True) -> Dataset:
    """One sub-folder per class (class name = folder name, sorted); unreadable files are skipped.
    quick: large JPEGs are decoded smaller (images.load_photo), as training can afford."""
    classes, class_files = files or list_folder(folder)
    pixels = np.empty((sum(map(len, class_files)), size, size, 3), dtype=np.uint8)  # (N, H, W, 3)
    labels, paths, skipped, notes = [], [], [], []
    for index, (name, class_paths) in enumerate(zip(classes, class_files)):
        read = 0
        for path in class_paths:
            try:
                pixels[len(labels)] = load_photo(path, size, notes, quick)
            except CnnsheetError as error:
                skipped.append((path, str(error)))
                continue
            labels.append(index)
            paths.append(path)
            read += 1
        if read == 0:
            raise CnnsheetError(f"{Path(folder) / name}: class {name!r} has no readable images")
    return Dataset(pixels[:len(labels)], np.array(labels), classes, skipped, notes, paths)


def check_training(architecture: Architecture, samples: int, batch_size: int) -> None:
    """The pictures and one batch's working set against the budget, before any is read or drawn."""
    config, shapes = config_and_shapes(architecture.config(["a", "b"]))
    budget.check_training(config["layers"], shapes, samples, batch_size)


def split(dataset: Dataset, fraction: float, seed: int):
    """Shuffle with the seed and hold out `fraction` for validation (at least one per class if any)."""
    if not 0 <= fraction < 1:
        raise CnnsheetError(f"--val-split must be at least 0 and below 1, got {fraction}")
    order = np.random.default_rng(np.random.SeedSequence([seed, 1])).permutation(len(dataset.labels))
    held = int(round(len(order) * fraction))
    if fraction > 0:
        held = max(held, 1)
    if held >= len(order):
        raise CnnsheetError(f"--val-split {fraction} leaves nothing to train on ({len(order)} images)")
    val, train = order[:held], order[held:]
    return ((dataset.pixels[train], dataset.labels[train]),
            (dataset.pixels[val], dataset.labels[val]))


def channel_statistics(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each colour channel of pixel / 255 (N, H, W, 3), counted in
    integers: exact, and no float64 copy of the whole set."""
    counts = np.zeros((pixels.shape[-1], 256), dtype=np.int64)
    for start in range(0, len(pixels), STATISTICS_CHUNK):
        chunk = pixels[start:start + STATISTICS_CHUNK].reshape(-1, pixels.shape[-1])
        for channel in range(pixels.shape[-1]):
            counts[channel] += np.bincount(chunk[:, channel], minlength=256)
    levels = np.arange(256) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ levels / total
    variance = counts @ (levels ** 2) / total - mean ** 2
    return mean, np.maximum(np.sqrt(np.maximum(variance, 0.0)), 1e-3)


STATISTICS_CHUNK = 1024  # pictures per step of channel_statistics


def evaluate(model: Model, pixels, labels, batch_size: int = 256) -> tuple[float, float]:
    """Mean loss and accuracy over a set of pictures."""
    losses, correct = [], 0
    for start in range(0, len(labels), batch_size):
        trace = model.predict(pixels[start:start + batch_size])
        batch_labels = labels[start:start + batch_size]
        losses.append(model.loss(trace, batch_labels))
        correct += int((trace.probabilities.argmax(axis=1) == batch_labels).sum())
    return float(np.concatenate(losses).mean()), correct / len(labels)


def validation_line(right: int, total: int) -> str:
    """How many held-out pictures the model got right, and how far that figure goes: the range
    where the accuracy on new pictures like these lies with 95% confidence (Wilson's interval,
    which stays sensible for a handful of pictures and for 0 or all of them right)."""
    z2 = CONFIDENCE_Z ** 2
    p = right / total
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = CONFIDENCE_Z * math.sqrt(p * (1 - p) / total + z2 / (4 * total ** 2)) / (1 + z2 / total)
    low, high = max(centre - half, 0.0), min(centre + half, 1.0)
    digits = 0 if total < FEW_PICTURES * 10 else 1
    line = f"validation: {right:,} of {total:,} right ({p:.{digits}%}); with {total:,} picture"
    line += "s" * (total != 1)
    if total < FEW_PICTURES:
        return (f"{line} this is a rough guide: new pictures like these may score anywhere from "
                f"{low:.0%} to {high:.0%}")
    return f"{line}, new pictures like these should score {low:.{digits}%} to {high:.{digits}%}"


CONFIDENCE_Z = 1.96  # a 95% interval
FEW_PICTURES = 30  # below this many validation pictures the range is wide: say it is rough


def fit(model: Model, train, validation, hp: Hyperparameters):
    """Train `model` in place; yields a BatchEnd after each batch and an EpochEnd after each epoch."""
    pixels, labels = train
    rng = np.random.default_rng(np.random.SeedSequence([hp.seed, 2]))
    work, weights = working_copy(model, hp.dtype)
    table = pixel_table(model, hp.dtype)
    params = work.params()
    # Every parameter is a view into `weights`, so that a step is a few operations on one array
    # rather than a few for each parameter. Weight decay pulls weights to 0, not biases.
    decay = np.concatenate([np.full(value.size, hp.weight_decay if name.endswith(".weight") else 0.0)
                            for name, value in params.items()]).astype(hp.dtype)
    velocity, step, pull = np.zeros_like(weights), np.empty_like(weights), np.empty_like(weights)
    batches = -(-len(labels) // hp.batch_size)
    for epoch in range(1, hp.epochs + 1):
        # cosine decay: large steps first, then settle (measured: 93.5% -> 98.5% on fresh shapes);
        # a Python float, so that the step is worked out in hp.dtype (a NumPy float64 made it float64)
        learning_rate = hp.learning_rate * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / hp.epochs))
        order = rng.permutation(len(labels))
        total, seen, correct = 0.0, 0, 0
        for batch in range(batches):
            chosen = order[batch * hp.batch_size:(batch + 1) * hp.batch_size]
            x = batch_input(model, table, pixels[chosen], hp, rng)
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
                trace, losses, grads = work.gradients(x, labels[chosen], need_input_grad=False)
                np.concatenate([grads.params[name].ravel() for name in params], out=step)
                step += np.multiply(decay, weights, out=pull)  # the gradient of the decay
                step *= learning_rate
                velocity *= hp.momentum
                velocity -= step
                weights += velocity
            if not np.all(np.isfinite(losses)) or largest_weight(weights) > DIVERGED:
                raise CnnsheetError(f"training diverged in epoch {epoch}, batch {batch + 1}: lower "
                                    f"the learning rate (--lr, now {hp.learning_rate:g})")
            total += float(losses.sum())
            seen += len(chosen)
            correct += int((trace.probabilities.argmax(axis=1) == labels[chosen]).sum())
            yield BatchEnd(epoch, batch + 1, batches, total / seen)
        model.set_params(params)
        val_loss = val_acc = None
        if len(validation[1]):
            val_loss, val_acc = evaluate(model, *validation, batch_size=hp.batch_size)
        yield EpochEnd(epoch, hp.epochs, total / seen, correct / seen, val_loss, val_acc)


def batch_input(model: Model, table, pixels: np.ndarray, hp: Hyperparameters, rng) -> np.ndarray:
    """The network's input (N, C, H, W) in hp.dtype for a batch of pixels (N, H, W, 3); with
    hp.flips turned by a random multiple of 90 degrees and maybe mirrored: 8 views of a shape.
    The pixels are turned before they become numbers, in the copy network_input makes anyway."""
    if hp.flips:
        pixels = np.rot90(pixels, k=int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            pixels = pixels[:, :, ::-1]
    return network_input(model, table, pixels, hp.dtype)


def pixel_table(model: Model, dtype: str) -> np.ndarray | None:
    """The network's input for every channel and pixel value (C, 256), worked out by
    `model.preprocess` itself, so that a batch is looked up instead of computed: 0.1 ms for 32
    pictures instead of 1.4 ms (measured), the same numbers. None for a grey model, whose one
    channel mixes all three colours."""
    if model.channels != 3:
        return None
    levels = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(1, 1, 256, 3)  # one row, all levels
    return model.preprocess(levels)[0, :, 0, :].astype(dtype)  # (3, 256)


def network_input(model: Model, table, pixels: np.ndarray, dtype: str) -> np.ndarray:
    """model.preprocess(pixels) in `dtype`, through the table when there is one."""
    if table is None:
        return model.preprocess(pixels).astype(dtype, copy=False)
    # the channels first, as bytes: each look-up then reads and writes whole pictures (measured:
    # 0.14 ms a default batch, against 0.2 looking up each channel's every third byte)
    pixels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))  # (N, C, H, W)
    x = np.empty(pixels.shape, dtype=dtype)
    for channel in range(3):
        np.take(table[channel], pixels[:, channel], out=x[:, channel])
    return x


def working_copy(model: Model, dtype: str) -> tuple[Model, np.ndarray]:
    """The model with its parameters in `dtype`, for the steps of training, each a view into one
    flat array of them all, which is returned too (in the order of `params()`)."""
    work = Model(model.config)
    weights = np.concatenate([value.ravel() for value in model.params().values()]).astype(dtype)
    start = 0
    for layer, source in zip(work.layers, model.layers):
        for key, value in source.params().items():
            setattr(layer, key, weights[start:start + value.size].reshape(value.shape))
            start += value.size
    return work, weights


# Weights this large mean the steps overshoot: He initialisation starts them below 1 and weight
# decay keeps trained ones within a few units; a million is far past any useful network.
DIVERGED = 1e6


def largest_weight(weights: np.ndarray) -> float:
    """The largest |value| of an array of parameters (inf when one is not finite)."""
    largest = float(np.max(np.abs(weights), initial=0.0))
    return largest if np.isfinite(largest) else float("inf")  # nan too, which a comparison passes over


def new_model(architecture: Architecture, classes, train_pixels, seed: int,
              start: Model | None = None) -> Model:
    """A He-initialised model whose input normalisation comes from the training pictures; or, from
    a `start` that fits (start_difference), a model that starts as `start` learned, every layer but
    the last, with `start`'s normalisation (the one those layers learned with). Its last layer,
    for the new classes, starts at zero: every class equally likely, the loss ln(classes), where a
    random last layer on learned features starts far off (a loss of 3 to 9 for 3 classes)."""
    if start is None:
        mean, std = channel_statistics(train_pixels)
        return Model(architecture.config(classes, mean, std)).init(seed)
    model = Model(architecture.config(classes, start.mean, start.std))
    kept, last = model.params(), f"{model.layers[-1].name}."
    for key, value in start.params().items():
        if not key.startswith(last):
            kept[key][...] = value
    return model


def starting_point(choice: str | None, architecture: Architecture) -> tuple[Model | None, str]:
    """What `train --start` chose: the model whose learned layers training starts from (None, the
    default: random weights), and a line that says so."""
    if choice is None or choice.lower() == "random":
        return None, "starting from random weights"
    if not choice:
        raise CnnsheetError("--start: the name is empty; give bundled, random or a model file")
    bundled = choice.lower() == "bundled"
    path = default_model_path() if bundled else Path(choice)
    if not bundled and not path.exists() and not path.is_symlink():
        raise CnnsheetError(f"--start {choice}: no such model file (--start takes bundled, random or a "
                            f"model file)")
    start = load_model(path)
    name = "the bundled model" if bundled else str(path)
    difference = start_difference(architecture, start)
    if difference:
        raise CnnsheetError(f"--start {choice}: {name} differs from these options: {difference}")
    layers = [layer.name for layer in start.layers[:-1] if layer.params()]
    return start, (f"starting from the learned layers {', '.join(layers)} of {name}; the last layer starts "
                   f"at zero, for these classes")


def start_difference(architecture: Architecture, start: Model) -> str | None:
    """Where a model of `architecture` differs from `start` before its last layer, in words; None
    when it takes every learned layer but the last from `start`."""
    mine = Model(architecture.config(start.classes, start.mean, start.std)).config
    if mine["input"]["size"] != start.input_size:
        return f"its input is {start.input_size} pixels a side, the options ask for {mine['input']['size']}"
    if mine["input"] != start.config["input"]:
        return f"its input has {start.channels} channel(s), the options ask for 3"
    layers, theirs = mine["layers"], start.config["layers"]
    if [layer["name"] for layer in layers] != [layer["name"] for layer in theirs]:
        return (f"its layers are {', '.join(layer['name'] for layer in theirs)}, the options make "
                f"{', '.join(layer['name'] for layer in layers)}")
    for mine_layer, their_layer in zip(layers[:-1], theirs):
        differ = [(key, value) for key, value in mine_layer.items() if value != their_layer.get(key)]
        if differ:
            return "; ".join(f"{their_layer['name']} has {key} {their_layer.get(key)}, the options ask for "
                             f"{value}" for key, value in differ)
    return None
