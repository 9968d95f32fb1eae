"""What explain (and exercise) do for each photo, apart from the terminal: the network the options
chose, its weights drawn for the photo where they are random, and the photo's workbook written."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cnnsheet import untrained as untrained_networks
from cnnsheet.images import load_image, load_photo, square_and_resize
from cnnsheet.model import Model
from cnnsheet.modelfile import load_model
from cnnsheet.resources import default_model_path
from cnnsheet.texts import Texts


@dataclass
class Network:
    """The network that explain (and exercise) show, as the options chose it: a model file's, read
    when first asked for (after the output is checked), or the shape of one whose weights are drawn
    for each photo (--untrained, --tiny)."""

    shape: Model | None = None  # the drawn network's shape; None: a model file's
    path: Path | None = None  # that model file; None: the bundled one
    draws: str | None = None  # "--tiny" or "--untrained": weights drawn for the photo
    seed: int = 0

    @functools.cached_property
    def model(self) -> Model:
        return self.shape or load_model(self.path or default_model_path())

    @property
    def bundled(self) -> bool:
        """The bundled shapes model."""
        return self.shape is None and self.path is None

    def for_photo(self, image):
        """The photo's pixels as the network reads them, the network with its weights, and the
        draw of those weights (None for a model file's)."""
        draw = None
        if self.draws == "--tiny":
            pixels = untrained_networks.tiny_pixels(image, self.model.input_size)
            draw = untrained_networks.tiny(self.model.classes, pixels, self.seed,
                                           self.model.layers[0].weight.shape[0])
        else:
            pixels = np.asarray(square_and_resize(image, self.model.input_size), dtype=np.uint8)
        if self.draws == "--untrained":
            draw = untrained_networks.untrained(self.model.config, pixels, self.seed)
        return pixels, (draw.model if draw else self.model), draw

    def note(self, draw) -> str | None:
        """What the terminal says about the weights, after the file is written."""
        if draw:
            return draw_note(draw, self.seed, self.draws)
        if self.bundled:
            return (f"the bundled model knows only {', '.join(self.model.classes)} and calls any photo "
                    f"one of them; train your own with `cnnsheet train DATA_DIR`")
        return None


def draw_note(draw, seed: int, option: str) -> str:
    """What the terminal says about random weights: which seed made them, and why not the one asked."""
    kind = "whole numbers drawn at random" if option == "--tiny" else "random"
    note = f"the weights are {kind} ({option}, seed {draw.seed}), so the prediction means nothing"
    if draw.redrawn:
        return note + f"; every seed from {seed} to {seed + draw.skipped - 1} left a filter dead (zero " \
                      f"after the ReLU) on this picture, so {draw.redrawn} filter(s) of seed {seed} were " \
                      f"drawn again"
    if not draw.settled:
        return note + f"; every seed from {seed} to {seed + draw.skipped - 1} leaves a filter dead " \
                      f"(zero after the ReLU) on this picture"
    if draw.skipped:
        passed = {1: f"seed {seed}", 2: f"seeds {seed} and {seed + 1}"}.get(
            draw.skipped, f"seeds {seed} to {draw.seed - 1}")
        return note + f"; {passed} left a filter dead (zero after the ReLU) on this picture, " \
                      f"so seed {draw.seed} was used"
    return note


def prediction(network: Model, photo, true_index: int | None, notes: list) -> dict:
    """The network's scores and probabilities for one photo, and its loss when the class is known."""
    pixels = load_photo(photo, network.input_size, notes)
    trace = network.predict(pixels)  # refuses scores that are not finite numbers
    logits, probabilities = trace.logits[0], trace.probabilities[0]
    result = {"classes": network.classes, "logits": logits.tolist(),
              "probabilities": probabilities.tolist(),
              "predicted": network.classes[int(probabilities.argmax())]}
    if true_index is not None:
        result["loss"] = float(network.loss(trace, [true_index])[0])
    return result


@dataclass
class Read:
    """One photo as a lesson reads it."""

    image: Image.Image  # the whole photo, upright
    pixels: np.ndarray  # as the network reads them
    network: Model  # with its weights (drawn for this photo with --tiny or --untrained)
    draw: object  # that draw (untrained.Draw), or None
    notes: list  # what reading the photo noticed


@dataclass
class Made:
    """What one photo's workbook came to, for the terminal."""

    predicted: str  # the predicted class
    probability: float  # and its probability
    sheets: int
    formulas: int
    photo_notes: list  # what reading the photo noticed
    note: str | None  # what the terminal says of the weights


@dataclass
class Lesson:
    """What every photo of one explain shares: the network, the true class, texts and parts."""

    network: Network
    true_index: int | None
    texts: Texts
    forward_only: bool
    paper: str
    soffice: str | None = None

    def find_soffice(self) -> None:
        from cnnsheet import handout  # the workbook's modules are imported late: predict starts faster

        self.soffice = handout.find_soffice()

    def read(self, photo: Path) -> Read:
        """The photo as this lesson's workbooks show it."""
        notes = []
        image = load_image(photo, notes)  # the whole photo, for the overview
        pixels, network, draw = self.network.for_photo(image)
        return Read(image, pixels, network, draw, notes)

    def workbook_options(self) -> dict:
        """What build_walkthrough (and exercise.build_worksheet) take from the options."""
        return {"with_backward": not self.forward_only, "untrained": self.network.draws is not None,
                "bundled": self.network.bundled, "paper": self.paper}

    def write(self, photo: Path, output: Path, pdf: Path | None, photo_name: str) -> Made:
        """Write the photo's workbook to `output` (and its handout to `pdf`); `photo_name` is how
        the workbook names the photo."""
        from cnnsheet import handout
        from cnnsheet.workbook import build_walkthrough

        read = self.read(photo)
        walkthrough = build_walkthrough(read.network, read.pixels, self.texts, self.true_index, read.image,
                                        photo_name, **self.workbook_options())
        walkthrough.save(output)
        if pdf:
            handout.save_pdf(walkthrough.plan, pdf, self.soffice)
        probabilities = read.network.predict(read.pixels).probabilities[0]
        best = int(probabilities.argmax())
        return Made(read.network.classes[best], float(probabilities[best]), len(walkthrough.sheetnames),
                    walkthrough.formula_count, read.notes, self.network.note(read.draw))
