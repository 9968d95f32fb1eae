"""The command line: parse options, call the library, print. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import math
import signal
import time
import warnings
from pathlib import Path

import click
import numpy as np

from cnnsheet import __version__, budget, memory, shapes
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_output
from cnnsheet.images import load_image, load_photo, square_and_resize
from cnnsheet.model import Model, load_model
from cnnsheet.resources import default_model_path, default_photo_path
from cnnsheet.texts import LANGUAGES, Texts
from cnnsheet.train import (
    DEFAULT_SAMPLES,
    KERNEL_AND_POOL,
    Architecture,
    BatchEnd,
    Dataset,
    EpochEnd,
    Hyperparameters,
    check_training,
    fit,
    list_folder,
    new_model,
    read_folder,
    split,
)

STOP_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


def shown(text) -> str:
    """Text for the terminal: control characters (from a file or folder name, a class name)
    escaped as \\x1b, \\n, ..., so that nothing printed can move the cursor or recolour it."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which every comparison lets through."""

    name = "float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


def stop(signum, _frame):
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that a half-written file is removed on the way."""
    raise SystemExit(f"cnnsheet: stopped by {signal.Signals(signum).name}")


def user_errors(command):
    """Turn a CnnsheetError into click's one-line 'Error: ...' and exit status 1; a Python
    warning becomes such an error too, so nothing but that line reaches stderr."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        for number in STOP_SIGNALS:
            signal.signal(number, stop)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                for about_code in (DeprecationWarning, PendingDeprecationWarning):  # not the input's
                    warnings.simplefilter("ignore", about_code)
                return command(*args, **kwargs)
        except CnnsheetError as error:
            raise click.ClickException(shown(error)) from None
        except Warning as warning:
            raise click.ClickException(f"stopped by an unexpected warning: "
                                       f"{shown(warning)}") from None
        except RecursionError:
            raise click.ClickException("an input is nested too deeply to be read") from None
        except MemoryError:  # the budget should have refused first; say what to lower anyway
            raise click.ClickException(f"out of memory: {budget.SHAPE_ADVICE}, or a smaller "
                                       f"--batch-size") from None

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
    trace = network.predict(pixels)  # refuses scores that are not finite numbers
    logits, probabilities = trace.logits[0], trace.probabilities[0]
    predicted = network.classes[int(probabilities.argmax())]
    result = {"classes": network.classes, "logits": logits.tolist(),
              "probabilities": probabilities.tolist(), "predicted": predicted}
    if true_index is not None:
        result["loss"] = float(network.loss(trace, [true_index])[0])
    if as_json:
        click.echo(json.dumps(result, allow_nan=False))
        return
    names = [shown(name) for name in network.classes]
    click.echo(f"{shown(image)}: {shown(predicted)} ({probabilities.max():.1%})")
    width = max(len(name) for name in names)
    for name, p in zip(names, probabilities):
        click.echo(f"  {name:<{width}}  {p:7.2%}  {'#' * round(p * 30)}")
    if true_index is not None:
        p_true = probabilities[true_index]
        click.echo(f"loss with true class {shown(repr(label))}: -ln({p_true:.4f}) = {result['loss']:.4f}")


def architecture_options(command):
    """The shape of a network, shared by `train` and `explain --untrained`."""
    default = Architecture()
    options = [
        click.option("--size", type=click.IntRange(4, 512), default=default.size, show_default=True,
                     help="Input width and height in pixels."),
        click.option("--filters", type=click.IntRange(1, 64), default=default.filters,
                     show_default=True, help="Filters per conv layer."),
        click.option("--kernel", type=click.IntRange(1, 15), default=None,
                     show_default=by_blocks(0), help="Kernel width and height."),
        click.option("--stride", type=click.IntRange(1, 8), default=default.stride,
                     show_default=True, help="Conv stride."),
        click.option("--padding", type=click.IntRange(0, 8), default=default.padding,
                     show_default=True, help="Zero padding around each conv input."),
        click.option("--dilation", type=click.IntRange(1, 8), default=default.dilation,
                     show_default=True, help="Conv dilation (1: an ordinary kernel)."),
        click.option("--pool", type=click.IntRange(1, 8), default=None, show_default=by_blocks(1),
                     help="Max-pool size and stride (1: no pooling)."),
        click.option("--blocks", type=click.IntRange(1, 3), default=default.blocks,
                     show_default=True, help="Number of conv -> ReLU -> pool blocks."),
        click.option("--hidden", type=click.IntRange(0, 512), default=default.hidden,
                     show_default=True, help="Units of a hidden dense layer (0: none)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def by_blocks(which: int) -> str:
    """The default of --kernel or --pool as help shows it: it follows --blocks."""
    values = {}
    for blocks, pair in KERNEL_AND_POOL.items():
        values.setdefault(pair[which], []).append(str(blocks))
    return "; ".join(f"{value} for {' or '.join(blocks)} block{'s' * (blocks != ['1'])}"
                     for value, blocks in values.items())


def architecture_from(options: dict) -> Architecture:
    keys = Architecture.__dataclass_fields__
    return Architecture(**{key: options.pop(key) for key in list(options) if key in keys})


@main.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("model.npz"),
              show_default=True, help="Where to write the model file.")
@architecture_options
@click.option("--epochs", type=click.IntRange(1, 1000), default=Hyperparameters.epochs,
              show_default=True, help="Passes over the training pictures.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=Hyperparameters.batch_size,
              show_default=True, help="Pictures per gradient step.")
@click.option("--lr", "learning_rate", type=FiniteFloat(0, min_open=True),
              default=Hyperparameters.learning_rate, show_default=True,
              help="Learning rate at the start (it decays to 0 along a cosine).")
@click.option("--momentum", type=FiniteFloat(0, 1, max_open=True),
              default=Hyperparameters.momentum, show_default=True, help="SGD momentum.")
@click.option("--weight-decay", type=FiniteFloat(0), default=Hyperparameters.weight_decay,
              show_default=True, help="L2 penalty on the weights.")
@click.option("--val-split", "validation_split", type=FiniteFloat(0, 1, max_open=True),
              default=Hyperparameters.validation_split, show_default=True,
              help="Fraction of the pictures held out for validation.")
@click.option("--seed", type=click.IntRange(0), default=Hyperparameters.seed, show_default=True,
              help="Seed of the shuffling, the initial weights and the synthetic shapes.")
@click.option("--samples", type=click.IntRange(30), default=DEFAULT_SAMPLES, show_default=True,
              help="How many synthetic shapes to draw (without DATA_DIR).")
@click.option("--flips/--no-flips", default=None,
              help="Also train on pictures turned by 90 degrees and mirrored. "
                   "[default: on for the shapes, off for a folder]")
@user_errors
def train(data_dir, output, samples, **options):
    """Train a model on DATA_DIR (one sub-folder of photos per class) or, without it, on
    synthetic circles, squares and triangles. Writes the model file atomically."""
    check_output(output, "model")
    memory.keep_freed_memory()
    architecture = architecture_from(options)
    architecture.check()
    if options["flips"] is None:
        options["flips"] = data_dir is None
    hp = Hyperparameters(**options)
    folder = None if data_dir is None else list_folder(data_dir)
    count = samples if folder is None else sum(map(len, folder[1]))
    check_training(architecture, count, hp.batch_size)
    started = time.perf_counter()
    if folder is None:
        click.echo(f"drawing {samples} synthetic shapes ({', '.join(shapes.CLASSES)}) ...")
        pixels, labels = shapes.generate(samples, architecture.size, hp.seed)
        dataset = Dataset(pixels, labels, list(shapes.CLASSES), [])
    else:
        dataset = read_folder(data_dir, architecture.size, folder)
        for _path, reason in dataset.skipped:
            click.echo(f"warning: skipped {shown(reason)}", err=True)
    training, validation = split(dataset, hp.validation_split, hp.seed)
    model = new_model(architecture, dataset.classes, training[0], hp.seed)
    click.echo(f"training on {len(training[1])} pictures, validating on {len(validation[1])}; "
               f"{model.parameter_count:,} parameters")
    last = None
    try:
        events = fit(model, training, validation, hp)
        for event in events:
            bar = click.progressbar(length=event.batches, label=f"epoch {event.epoch}/{hp.epochs}",
                                    item_show_func=loss_text)
            with bar:
                while isinstance(event, BatchEnd):
                    bar.update(1, event.running_loss)
                    event = next(events)
            last = event
            click.echo(epoch_line(event))
        model.save(output)
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted: {shown(output)} was not written") from None
    seconds = time.perf_counter() - started
    accuracy = last.validation_accuracy if last.validation_accuracy is not None else last.train_accuracy
    which = "validation" if last.validation_accuracy is not None else "training"
    skipped = f", {len(dataset.skipped)} unreadable file(s) skipped" if dataset.skipped else ""
    click.echo(f"wrote {shown(output)}: {accuracy:.1%} {which} accuracy, {len(dataset.labels)} pictures, "
               f"{hp.epochs} epochs, {seconds:.1f} s{skipped}")


def loss_text(loss: float | None) -> str | None:
    """What the progress bar shows after the bar: the running loss (none before the first batch)."""
    return None if loss is None else f"loss {loss:.3f}"


def epoch_line(event: EpochEnd) -> str:
    line = (f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.3f}, "
            f"accuracy {event.train_accuracy:.1%}")
    if event.validation_loss is not None:
        line += f"; validation loss {event.validation_loss:.3f}, accuracy {event.validation_accuracy:.1%}"
    return line


@main.command()
@click.argument("photo", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("walkthrough.xlsx"),
              show_default=True, help="Where to write the workbook.")
@MODEL_OPTION
@click.option("--label", default=None,
              help="The true class shown on the Loss sheet. [default: the predicted class]")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True,
              help="Language of the explanations.")
@click.option("--templates", type=click.Path(path_type=Path), default=None,
              help="A folder with your own en.toml / zh.toml explanation texts.")
@click.option("--forward-only", is_flag=True,
              help="Leave out the backward pass, the gradient-descent step and the saliency map.")
@click.option("--untrained", is_flag=True,
              help="Explain a randomly initialised network shaped by the options below.")
@architecture_options
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed of the random weights (with --untrained).")
@click.option("--pdf", type=click.Path(path_type=Path), default=None,
              help="Also print a handout to this PDF: the overview and one page per step "
                   "(needs LibreOffice).")
@click.pass_context
@user_errors
def explain(ctx, photo, output, model, label, lang, templates, forward_only, untrained, seed, pdf,
            **options):
    """Write a workbook that walks through one pass of the network on PHOTO, every number a live
    formula. Without PHOTO it uses a bundled drawing; without --model, the bundled shapes model."""
    # the workbook's modules are imported here: predict and train start faster
    from cnnsheet import handout
    from cnnsheet.workbook import build_walkthrough

    ctx.with_resource(memory.no_cycle_collection())  # on again once the command and its plan are done

    shaped = [f"--{key}" for key in options
              if ctx.get_parameter_source(key) is not click.core.ParameterSource.DEFAULT]
    if untrained and model:
        raise CnnsheetError("--untrained and --model exclude each other")
    if shaped and not untrained:
        raise CnnsheetError(f"{', '.join(shaped)} shape(s) an untrained network: add --untrained")
    photo = photo or default_photo_path()
    check_output(output, "workbook", inputs=[photo, model])
    if untrained:
        network = Model(architecture_from(options).config(shapes.CLASSES)).init(seed)
    else:
        network = load_model(model or default_model_path())
    budget.check_workbook(network, with_backward=not forward_only)
    true_index = class_index(network, label)
    texts = Texts(lang, templates)
    soffice = None
    if pdf:
        check_output(pdf, "pdf", inputs=[photo, model, output], option="--pdf")
        soffice = handout.find_soffice()  # before any work
    image = load_image(photo)  # the whole photo, for the overview
    pixels = np.asarray(square_and_resize(image, network.input_size), dtype=np.uint8)
    walkthrough = build_walkthrough(network, pixels, texts, true_index, image, shown(photo.name),
                                    with_backward=not forward_only, untrained=untrained,
                                    bundled=model is None and not untrained)
    walkthrough.save(output)
    if pdf:
        handout.save_pdf(walkthrough.plan, pdf, soffice)
    probabilities = network.predict(pixels).probabilities[0]
    best = int(probabilities.argmax())
    click.echo(f"wrote {shown(output)}: {shown(photo.name)} -> {shown(network.classes[best])} "
               f"({probabilities[best]:.1%}); {len(walkthrough.sheetnames)} sheets, "
               f"{walkthrough.formula_count:,} formulas")
    if pdf:
        click.echo(f"wrote {shown(pdf)}: the handout")
    if untrained:
        click.echo("note: the weights are random (--untrained), so the prediction means nothing yet")
    elif model is None:
        click.echo(f"note: the bundled model knows only {', '.join(network.classes)} and calls any "
                   f"photo one of them; train your own with `cnnsheet train DATA_DIR`")
