"""The command line: parse options, call the library, print. Nothing else lives here."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from cnnsheet import __version__
from cnnsheet.errors import CnnsheetError
from cnnsheet.images import load_photo
from cnnsheet.model import load_model
from cnnsheet.resources import default_model_path


def user_errors(command):
    """Turn a CnnsheetError into click's one-line 'Error: ...' and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CnnsheetError as error:
            raise click.ClickException(str(error)) from None

    return wrapper


def class_index(model, label: str | None) -> int | None:
    if label is None:
        return None
    if label not in model.classes:
        raise CnnsheetError(f"--label {label!r} is not a class of this model: {', '.join(model.classes)}")
    return model.classes.index(label)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnnsheet")
def main():
    """Turn a photo into a spreadsheet that shows, cell by cell, how a small CNN sees it."""


MODEL_OPTION = click.option(
    "--model", type=click.Path(path_type=Path), default=None,
    help="Model file (.npz). Default: the bundled shapes model (circle, square, triangle).",
)


@main.command()
@click.argument("image", type=click.Path(path_type=Path))
@MODEL_OPTION
@click.option("--label", default=None, help="The true class, to report the cross-entropy loss.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@user_errors
def predict(image, model, label, as_json):
    """Classify IMAGE and print the probability of every class."""
    network = load_model(model or default_model_path())
    true_index = class_index(network, label)
    pixels = load_photo(image, network.input_size)
    trace = network.predict(pixels)
    logits, probabilities = trace.logits[0], trace.probabilities[0]
    predicted = network.classes[int(probabilities.argmax())]
    result = {"classes": network.classes, "logits": logits.tolist(),
              "probabilities": probabilities.tolist(), "predicted": predicted}
    if true_index is not None:
        result["loss"] = float(network.loss(trace, [true_index])[0])
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{image}: {predicted} ({probabilities.max():.1%})")
    width = max(len(name) for name in network.classes)
    for name, p in zip(network.classes, probabilities):
        click.echo(f"  {name:<{width}}  {p:7.2%}  {'#' * round(p * 30)}")
    if true_index is not None:
        p_true = probabilities[true_index]
        click.echo(f"loss with true class {label!r}: -ln({p_true:.4f}) = {result['loss']:.4f}")
