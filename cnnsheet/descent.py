"""Gradient descent step by step on a few small grey pictures: the engine of `cnnsheet descent`.

Every step runs the forward and backward pass of ALL pictures (their losses are what `losses`
reports at the start of the step), then averages the gradients of the pictures in the step's batch
and moves every weight by `-learning_rate * mean gradient`. One more forward pass after the last
step gives the last loss. The workbook (descent_sheets.py) places these numbers; it computes none.

Shape legend: n pictures, S input size (S x S, grey), F filters, k kernel, Co = S - k + 1 the conv
output, q the pool size, P = Co // q the pooled size, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnsheet import budget
from cnnsheet.errors import CnnsheetError
from cnnsheet.layers import Conv, Dense, Flatten, MaxPool, ReLU, softmax_parts
from cnnsheet.model import LUMA, Model
from cnnsheet.modelfile import load_model
from cnnsheet.resources import samples_dir
from cnnsheet.train import list_folder, read_folder

DESCENT_SAMPLES = "descent"  # the bundled pictures: samples/descent/<class>/<name>.png
SIZE, FILTERS, KERNEL, POOL = 8, 2, 3, 2
STEPS = 20
# Chosen on the bundled pictures (tests/test_descent.py holds the lesson): at this rate the loss
# falls below 70% of its start in 20 steps, at ten times it jumps about, at a hundredth it crawls.
LEARNING_RATE = 0.3
# The rates the workbook's drop-down offers, as multiples of the chosen one: the lesson's three
# and a few between them.
RATE_LADDER = (0.01, 0.03, 0.1, 0.3, 1, 3, 10)
KINDS = (Conv, ReLU, MaxPool, Flatten, Dense)


def descent_config(classes, size: int = SIZE, filters: int = FILTERS) -> dict:
    """A model config the workbook can train: grey input, one conv block, one dense layer."""
    return {"format": "cnnsheet.model", "version": 1,
            "input": {"size": size, "channels": 1, "mean": [0.5], "std": [0.5]},  # -1 to 1
            "layers": [{"type": "conv", "name": "conv1", "filters": filters, "kernel": KERNEL},
                       {"type": "relu", "name": "relu1"},
                       {"type": "maxpool", "name": "pool1", "size": POOL, "stride": POOL},
                       {"type": "flatten", "name": "flatten"},
                       {"type": "dense", "name": "dense1", "units": len(classes)}],
            "classes": list(classes)}


def check_model(model: Model) -> None:
    """Refuse a model the descent workbook cannot lay out, saying what it needs."""
    where = f"{model.source}: " if model.source else ""
    kinds = tuple(type(layer) for layer in model.layers)
    if model.channels != 1 or kinds != KINDS:
        raise CnnsheetError(f"{where}descent trains a grey network of conv, relu, maxpool, flatten, "
                            f"dense; this model has {model.channels} channel(s) and the layers "
                            f"{', '.join(layer.kind for layer in model.layers)}")
    conv, _, pool = model.layers[:3]
    if (conv.stride, conv.padding, conv.dilation) != (1, 0, 1) or pool.stride != pool.size:
        raise CnnsheetError(f"{where}descent needs a conv of stride 1 without padding or dilation "
                            f"and a pool whose stride is its size")


def check_run(model: Model, pictures: int, steps: int, batch: int) -> None:
    """The model, the pictures, the steps and the batch against the budget, before any work."""
    check_model(model)
    conv = model.layers[0]
    budget.check_descent(model.input_size, conv.filters, conv.kernel, len(model.classes), pictures,
                         steps, batch, model.layers[2].size)


def grey(pixels: np.ndarray) -> np.ndarray:
    """RGB pixels (n, S, S, 3) -> grey 0-255 (n, S, S) as Pillow's mode "L" rounds them."""
    return np.clip(np.rint(pixels.astype(np.float64) @ np.array(LUMA)), 0, 255).astype(np.uint8)


def members(step: int, n: int, batch: int) -> np.ndarray:
    """1 for the pictures step `step` (1-based) uses: (step-1)*B+1 ... (step-1)*B+B, cyclically."""
    index = np.arange(n)
    return ((index - (step - 1) * batch) % n < min(batch, n)).astype(np.float64)  # (n,)


@dataclass
class Step:
    """What the workbook shows of one step: the weights at its start, the pass of every picture,
    and (for every step but the final pass) the gradients and the batch."""

    params: dict  # name -> array, at the start of the step
    tensors: dict  # "conv1", "relu1", "pool1", "logits", "probabilities": (n, ...)
    losses: np.ndarray  # (n,)
    correct: np.ndarray  # (n,) 1 where the true class has the largest score
    member: np.ndarray | None = None  # (n,)
    dtensors: dict | None = None  # "logits", "pool1", "conv1": each picture's own gradient
    picture_grads: dict | None = None  # name -> (n, *shape): each picture's own gradient
    mean_grads: dict | None = None  # name -> array: the batch's mean

    @property
    def loss(self) -> float:
        return float(self.losses.mean())

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


@dataclass
class Descent:
    model: Model  # the start
    pixels: np.ndarray  # (n, S, S) uint8 grey
    labels: np.ndarray  # (n,)
    names: list  # each picture's name
    rate: float
    batch: int
    steps: list  # Step, N + 1 of them: the last is the final pass, without gradients
    skipped: list = field(default_factory=list)  # (path, reason) of each file of the folder not read

    @property
    def losses(self) -> list[float]:
        return [step.loss for step in self.steps]

    @property
    def accuracies(self) -> list[float]:
        return [step.accuracy for step in self.steps]

    def inputs(self) -> np.ndarray:
        return network_input(self.model, self.pixels)


def network_input(model: Model, pixels: np.ndarray) -> np.ndarray:
    """Grey pixels (n, S, S) -> the network's input (n, 1, S, S)."""
    x = pixels[:, None].astype(np.float64) / 255.0
    return (x - model.mean[0]) / model.std[0]


def passes(model: Model, x: np.ndarray, labels: np.ndarray) -> Step:
    """The forward pass of every picture, and each one's loss and whether it is right."""
    with np.errstate(over="ignore", invalid="ignore"):
        trace = model.forward(x)
        losses = model.loss(trace, labels)
    logits = trace.logits
    if not (np.all(np.isfinite(logits)) and np.all(np.isfinite(losses))):
        raise CnnsheetError("the scores grew beyond what float64 holds: lower --lr or --steps")
    correct = (logits[np.arange(len(labels)), labels] == logits.max(axis=1)).astype(np.float64)
    tensors = {name: trace.tensors[name] for name in ("conv1", "relu1", "pool1")}
    tensors.update(logits=logits, probabilities=softmax_parts(logits)[1])
    params = {name: value.copy() for name, value in model.params().items()}
    return Step(params, tensors, losses, correct)


def gradients(model: Model, x: np.ndarray, labels: np.ndarray, step: Step) -> None:
    """Each picture's gradients of its own loss (the sheet shows every one), into `step`."""
    per_picture, dtensors = {}, {"logits": [], "pool1": [], "conv1": []}
    for i in range(len(labels)):
        _, _, grads = model.gradients(x[i:i + 1], labels[i:i + 1], need_input_grad=False)
        for name, value in grads.params.items():
            per_picture.setdefault(name, []).append(value)
        dtensors["logits"].append(grads.tensors["dense1"][0])  # (K,)
        dtensors["pool1"].append(grads.tensors["flatten"][0].reshape(step.tensors["pool1"].shape[1:]))
        dtensors["conv1"].append(grads.tensors["relu1"][0] * (step.tensors["conv1"][i] > 0))
    step.picture_grads = {name: np.array(values) for name, values in per_picture.items()}
    step.dtensors = {name: np.array(values) for name, values in dtensors.items()}


def run(model: Model, pixels: np.ndarray, labels, steps: int = STEPS, rate: float = LEARNING_RATE,
        batch: int | None = None, names=None) -> Descent:
    """`steps` steps of mini-batch gradient descent from `model` (left unchanged) on grey pixels."""
    pixels, labels = np.asarray(pixels, dtype=np.uint8), np.asarray(labels)
    n = len(labels)
    batch = n if batch is None else batch
    check_run(model, n, steps, batch)
    walker = Model(model.config)
    walker.set_params(model.params())
    x = network_input(model, pixels)
    history = []
    for t in range(1, steps + 1):
        step = passes(walker, x, labels)
        gradients(walker, x, labels, step)
        step.member = members(t, n, batch)
        count = step.member.sum()
        step.mean_grads = {name: np.tensordot(step.member, grads, axes=1) / count
                           for name, grads in step.picture_grads.items()}
        history.append(step)
        stepped = {name: step.params[name] - rate * step.mean_grads[name] for name in step.params}
        if not all(np.all(np.isfinite(value)) for value in stepped.values()):
            raise CnnsheetError(f"step {t}: the weights grew beyond what float64 holds: lower --lr "
                                f"or --steps")
        walker.set_params(stepped)
    history.append(passes(walker, x, labels))
    names = list(names) if names is not None else [f"{i + 1}" for i in range(n)]
    return Descent(model, pixels, labels, names, rate, batch, history)


def bundled_folder() -> Path:
    return samples_dir() / DESCENT_SAMPLES


def start_model(classes, seed: int = 0) -> Model:
    """The default start: a small random network (He initialisation) for these classes."""
    return Model(descent_config(classes)).init(seed)


def prepare(folder=None, model_path=None, seed: int = 0, steps: int = STEPS, rate: float = LEARNING_RATE,
            batch: int | None = None) -> Descent:
    """What `cnnsheet descent` runs: the pictures of `folder` (default: the bundled drawings), the
    start (a model file, or a random network for their classes), every check before any picture is
    read, then the steps."""
    folder = Path(folder) if folder is not None else bundled_folder()
    classes, files = list_folder(folder)
    count = sum(map(len, files))
    if not count:
        raise CnnsheetError(f"{folder}: its class folders hold no pictures")
    if model_path is not None:
        model = load_model(model_path)
        if model.classes != classes:
            raise CnnsheetError(f"{model_path}: the model's classes ({', '.join(model.classes)}) are not "
                                f"the picture folders ({', '.join(classes)})")
    else:
        model = start_model(classes, seed)
    # the files count as pictures here (none is read yet); a file that is no picture is skipped below
    check_run(model, count, steps, min(batch or count, count))
    # read as `train` reads, but whole: a picture of the network's size stays as drawn
    pictures = read_folder(folder, model.input_size, (classes, files), quick=False)
    if batch is None or batch > len(pictures.labels):  # a batch of all the pictures or more: the full batch
        batch = len(pictures.labels)
    names = [f"{path.parent.name}/{path.name}" for path in pictures.paths]
    descent = run(model, grey(pictures.pixels), pictures.labels.tolist(), steps, rate, batch, names)
    descent.skipped = pictures.skipped
    return descent
