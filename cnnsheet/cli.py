"""The command line: parse options, call the library, print. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import click
import numpy as np

from cnnsheet import __version__, budget, memory, modelfile, shapes, threads
from cnnsheet import untrained as untrained_networks
from cnnsheet.descent import LEARNING_RATE as DESCENT_RATE
from cnnsheet.descent import STEPS as DESCENT_STEPS
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_input, check_output, inside
from cnnsheet.images import load_image, load_photo, square_and_resize
from cnnsheet.model import Model
from cnnsheet.modelfile import load_model
from cnnsheet.printing import PAPER_SIZES, default_paper
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
    validation_line,
)

MOST_SAMPLES = 10**12  # far beyond the budget, which then names the memory they would take
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


def shown(text) -> str:
    """Text for the terminal: control characters (from a file or folder name, a class name)
    escaped as \\x1b, \\n, ..., so that nothing printed can move the cursor or recolour it."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


LONG_WORD = re.compile(r"\S{121,}")


def cut(message: str) -> str:
    """A message with every word over 120 characters (a 4000-digit number typed as an option, a
    file name longer than the file system takes) cut to its ends and its length, so that the
    line stays a line to read."""
    return LONG_WORD.sub(lambda word: f"{word[0][:50]}...{word[0][-20:]} ({len(word[0]):,} characters)",
                         message)


def echo(text: str = "") -> None:
    """Print a line on stdout. Characters its encoding lacks come out as \\u escapes (see
    main); a stdout that cannot be written (a full disk, /dev/full) is a CnnsheetError."""
    try:
        click.echo(text)
    except OSError as error:
        raise stdout_failed(error) from None


def stdout_failed(error: OSError) -> CnnsheetError:
    """The error for a stdout that refused a write; stdout is pointed at the null device so that
    Python's own flush at exit does not fail again with a traceback."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
        pass
    return CnnsheetError(f"standard output cannot be written ({error.strerror or error})")


class Commands(click.Group):
    """The command group. Help and --version are printed by click before any command runs: on a
    stdout that cannot be written they end in one line too, not a traceback."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except OSError as error:
            if not printing(error):  # another file's error, which a command failed to catch
                raise
            click.echo(f"Error: {stdout_failed(error)}", err=True)
            sys.exit(1)


def printing(error: OSError) -> bool:
    """Whether the error came from click printing (help, the version) on the terminal."""
    return any(frame.f_code is click.echo.__code__ for frame, _ in traceback.walk_tb(error.__traceback__))


class CutValues:
    """For a click type: its message about a value the user typed quotes a long one cut short."""

    def fail(self, message, param=None, ctx=None):
        super().fail(cut(str(message)), param, ctx)


class Whole(CutValues, click.IntRange):
    """An IntRange whose messages cut a very long value."""


class FiniteFloat(CutValues, click.FloatRange):
    """A FloatRange that also refuses nan and inf, which every comparison lets through."""

    name = "float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


class InputPath(click.Path):
    """A path the user names; an empty one is refused (pathlib would read it as '.')."""

    def __init__(self):
        super().__init__(path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value:
            self.fail("the name is empty", param, ctx)
        return super().convert(value, param, ctx)


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
            raise click.ClickException(cut(shown(error))) from None
        except Warning as warning:
            raise click.ClickException(f"stopped by an unexpected warning: "
                                       f"{shown(warning)}") from None
        except RecursionError:
            raise click.ClickException("an input is nested too deeply to be read") from None
        except MemoryError:  # the budget should have refused first; say what to lower anyway
            raise click.ClickException(f"out of memory: {budget.SHAPE_ADVICE}, or a smaller "
                                       f"--batch-size") from None

    return wrapper


def refuse_with_tiny(shaped: list[str], untrained: bool, model) -> None:
    """--tiny fixes the network's shape but for its size and filter count, and draws its own weights."""
    if untrained or model:
        raise CnnsheetError(f"--tiny and {'--untrained' if untrained else '--model'} exclude each other")
    others = [option for option in shaped if option not in ("--size", "--filters")]
    if others:
        raise CnnsheetError(f"--tiny fixes the network's shape: {', '.join(others)} cannot change it "
                            f"(--size and --filters can)")


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


def class_index(model, label: str | None) -> int | None:
    if label is None:
        return None
    # without regard to case, as the workbook's class cells (no two classes differ only by it)
    folded = [name.casefold() for name in model.classes]
    if label.casefold() not in folded:
        raise CnnsheetError(f"--label {label!r} is not a class of this model: {', '.join(model.classes)}")
    return folded.index(label.casefold())


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnnsheet")
def main():
    """Turn a photo into a spreadsheet that shows, cell by cell, how a small CNN sees it."""
    threads.choose_blas_threads()  # the process's choice, not the library's: see cnnsheet.threads
    # a class name in Chinese on a stdout whose encoding lacks it (cp1252, ascii) is printed as
    # \\u escapes, not a crash after the work is done
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")


MODEL_OPTION = click.option(
    "--model", type=InputPath(), default=None,
    help="Model file (.npz). Default: the bundled shapes model (circle, square, triangle).",
)


@main.command()
@click.argument("image", type=InputPath())
@MODEL_OPTION
@click.option("--label", default=None, help="The true class, to report the cross-entropy loss.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@user_errors
def predict(image, model, label, as_json):
    """Classify IMAGE and print the probability of every class."""
    check_input(image, "photo")
    if model is not None:
        check_input(model, "model", "--model")
    network = load_model(model or default_model_path())
    true_index = class_index(network, label)
    notes = []
    pixels = load_photo(image, network.input_size, notes)
    trace = network.predict(pixels)  # refuses scores that are not finite numbers
    logits, probabilities = trace.logits[0], trace.probabilities[0]
    predicted = network.classes[int(probabilities.argmax())]
    result = {"classes": network.classes, "logits": logits.tolist(),
              "probabilities": probabilities.tolist(), "predicted": predicted}
    if true_index is not None:
        result["loss"] = float(network.loss(trace, [true_index])[0])
    for note in notes:
        click.echo(f"note: {shown(note)}", err=True)
    if as_json:
        echo(json.dumps(result, allow_nan=False))
        return
    names = [shown(name) for name in network.classes]
    echo(f"{shown(image)}: {shown(predicted)} ({probabilities.max():.1%})")
    width = max(len(name) for name in names)
    for name, p in zip(names, probabilities):
        echo(f"  {name:<{width}}  {p:7.2%}  {'#' * round(p * 30)}")
    if true_index is not None:
        p_true = probabilities[true_index]
        echo(f"loss with true class {shown(repr(label))}: -ln({p_true:.4f}) = {result['loss']:.4f}")


def architecture_options(command):
    """The shape of a network, shared by `train` and `explain --untrained`."""
    default = Architecture()
    options = [
        click.option("--size", type=Whole(4, 512), default=default.size, show_default=True,
                     help="Input width and height in pixels."),
        click.option("--filters", type=Whole(1, 64), default=default.filters,
                     show_default=True, help="Filters per conv layer."),
        click.option("--kernel", type=Whole(1, 15), default=None,
                     show_default=by_blocks(0), help="Kernel width and height."),
        click.option("--stride", type=Whole(1, 8), default=default.stride,
                     show_default=True, help="Conv stride."),
        click.option("--padding", type=Whole(0, 8), default=default.padding,
                     show_default=True, help="Zero padding around each conv input."),
        click.option("--dilation", type=Whole(1, 8), default=default.dilation,
                     show_default=True, help="Conv dilation (1: an ordinary kernel)."),
        click.option("--pool", type=Whole(1, 8), default=None, show_default=by_blocks(1),
                     help="Max-pool size and stride (1: no pooling)."),
        click.option("--blocks", type=Whole(1, 3), default=default.blocks,
                     show_default=True, help="Number of conv -> ReLU -> pool blocks."),
        click.option("--hidden", type=Whole(0, 512), default=default.hidden,
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
@click.argument("data_dir", required=False, type=InputPath())
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("model.npz"),
              show_default=True, help="Where to write the model file.")
@architecture_options
@click.option("--epochs", type=Whole(1, 1000), default=Hyperparameters.epochs,
              show_default=True, help="Passes over the training pictures.")
@click.option("--batch-size", type=Whole(1, 4096), default=Hyperparameters.batch_size,
              show_default=True, help="Pictures per gradient step.")
@click.option("--lr", "learning_rate", type=FiniteFloat(0, min_open=True),
              default=Hyperparameters.learning_rate, show_default=True,
              help="Learning rate at the start (it decays to 0 along a cosine).")
@click.option("--momentum", type=FiniteFloat(0, 1, max_open=True),
              default=Hyperparameters.momentum, show_default=True, help="SGD momentum.")
@click.option("--weight-decay", type=FiniteFloat(0, 1), default=Hyperparameters.weight_decay,
              show_default=True, help="L2 penalty on the weights (at most 1).")
@click.option("--val-split", "validation_split", type=FiniteFloat(0, 1, max_open=True),
              default=Hyperparameters.validation_split, show_default=True,
              help="Fraction of the pictures held out for validation.")
@click.option("--seed", type=Whole(0), default=Hyperparameters.seed, show_default=True,
              help="Seed of the shuffling, the initial weights and the synthetic shapes.")
@click.option("--samples", type=Whole(30, MOST_SAMPLES), default=DEFAULT_SAMPLES, show_default=True,
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
    for class_name in folder[0] if folder else []:  # also through a linked class folder
        if inside(output.parent, data_dir / class_name):
            raise CnnsheetError(f"-o {output}: inside the class folder {data_dir / class_name}, where it "
                                f"would replace or join the training photos; write the model elsewhere")
    count = samples if folder is None else sum(map(len, folder[1]))
    check_training(architecture, count, hp.batch_size)
    started = time.perf_counter()
    if folder is None:
        echo(f"drawing {samples} synthetic shapes ({', '.join(shapes.CLASSES)}) ...")
        pixels, labels = shapes.generate(samples, architecture.size, hp.seed)
        dataset = Dataset(pixels, labels, list(shapes.CLASSES), [])
    else:
        dataset = read_folder(data_dir, architecture.size, folder)
        for _path, reason in dataset.skipped:
            click.echo(f"warning: skipped {shown(reason)}", err=True)
        if dataset.notes:
            click.echo(f"note: {len(dataset.notes)} animated or multi-page picture(s), of which only the "
                       f"first frame is used, e.g. {shown(dataset.notes[0])}", err=True)
    training, validation = split(dataset, hp.validation_split, hp.seed)
    model = new_model(architecture, dataset.classes, training[0], hp.seed)
    echo(f"training on {len(training[1])} pictures, validating on {len(validation[1])}; "
         f"{model.parameter_count:,} parameters")
    last = None
    try:
        events = fit(model, training, validation, hp)
        for event in events:
            bar = click.progressbar(length=event.batches, label=f"epoch {event.epoch}/{hp.epochs}",
                                    item_show_func=loss_text, hidden=dumb_terminal())
            with bar:
                while isinstance(event, BatchEnd):
                    bar.update(1, event.running_loss)
                    event = next(events)
            last = event
            echo(epoch_line(event))
        modelfile.save(model, output)  # its own errors are CnnsheetErrors
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted: {shown(output)} was not written") from None
    except OSError as error:  # only the progress bar writes here unguarded
        raise stdout_failed(error) from None
    seconds = time.perf_counter() - started
    accuracy = last.validation_accuracy if last.validation_accuracy is not None else last.train_accuracy
    which = "validation" if last.validation_accuracy is not None else "training"
    skipped = f", {len(dataset.skipped)} unreadable file(s) skipped" if dataset.skipped else ""
    written(f"wrote {shown(output)}: {accuracy:.1%} {which} accuracy, {len(dataset.labels)} pictures, "
            f"{hp.epochs} epoch{'s' * (hp.epochs != 1)}, {seconds:.1f} s{skipped}", output)
    if last.validation_accuracy is not None:
        held = len(validation[1])
        written(validation_line(round(last.validation_accuracy * held), held), output)


def written(line: str, output) -> None:
    """The line that reports a written file; when stdout fails, the error says the file is there."""
    try:
        echo(line)
    except CnnsheetError as error:
        raise CnnsheetError(f"{shown(output)} was written, but {error}") from None


def dumb_terminal() -> bool:
    """TERM=dumb: a terminal that shows escape codes as text, so no progress bar is drawn."""
    return os.environ.get("TERM") == "dumb"



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
@click.argument("photo", required=False, type=InputPath())
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("walkthrough.xlsx"),
              show_default=True, help="Where to write the workbook.")
@MODEL_OPTION
@click.option("--label", default=None,
              help="The true class shown on the Loss sheet. [default: the predicted class]")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True,
              help="Language of the explanations.")
@click.option("--templates", type=InputPath(), default=None,
              help="A folder with your own en.toml / zh.toml explanation texts.")
@click.option("--forward-only", is_flag=True,
              help="Leave out the backward pass, the gradient-descent step and the saliency map.")
@click.option("--untrained", is_flag=True,
              help="Explain a randomly initialised network shaped by the options below.")
@click.option("--tiny", is_flag=True,
              help="A network to follow with pencil and paper: the photo as 6x6 grey levels 0-9 "
                   "(--size 4 to 8), one conv of 2 (--filters 1 or 2) 3x3 filters, ReLU, 2x2 max-pool "
                   "and a dense layer, every weight a whole number.")
@architecture_options
@click.option("--seed", type=Whole(0), default=0, show_default=True,
              help="Seed of the random weights (with --untrained or --tiny).")
@click.option("--pdf", type=click.Path(path_type=Path), default=None,
              help="Also print a handout to this PDF: the overview and one page per step "
                   "(needs LibreOffice).")
@click.option("--paper", type=click.Choice(sorted(PAPER_SIZES)), default=None,
              help="The paper the handout and the workbook's pages are set for. [default: from the "
                   "locale (LC_PAPER, LANG): letter in the US and Canada, else a4]")
@click.pass_context
@user_errors
def explain(ctx, photo, output, model, label, lang, templates, forward_only, untrained, tiny, seed,
            pdf, paper, **options):
    """Write a workbook that walks through one pass of the network on PHOTO, every number a live
    formula. Without PHOTO it uses a bundled drawing; without --model, the bundled shapes model."""
    # the workbook's modules are imported here: predict and train start faster
    from cnnsheet import handout
    from cnnsheet.workbook import build_walkthrough

    ctx.with_resource(memory.no_cycle_collection())  # on again once the command and its plan are done

    shaped = [f"--{key}" for key in options
              if ctx.get_parameter_source(key) is not click.core.ParameterSource.DEFAULT]
    if tiny:
        refuse_with_tiny(shaped, untrained, model)
    if untrained and model:
        raise CnnsheetError("--untrained and --model exclude each other")
    if shaped and not (untrained or tiny):
        raise CnnsheetError(f"{', '.join(shaped)} shape(s) an untrained network: add --untrained")
    if ctx.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT and not (untrained or tiny):
        raise CnnsheetError("--seed draws the random weights of --untrained or --tiny: add one, or leave "
                            "--seed out")
    # the bundled drawing suits the bundled model; with one's own model it may be a surprise
    bundled_photo = photo is None and model is not None
    if photo is not None:
        check_input(photo, "photo")
    if model is not None:
        check_input(model, "model", "--model")
    photo = photo or default_photo_path()
    check_output(output, "workbook", inputs=[photo, model])
    if tiny:
        size = options["size"] if "--size" in shaped else untrained_networks.TINY_SIZE
        filters = options["filters"] if "--filters" in shaped else untrained_networks.TINY_FILTERS[-1]
        network = Model(untrained_networks.tiny_config(shapes.CLASSES, size, filters))
    elif untrained:
        network = Model(architecture_from(options).config(shapes.CLASSES))  # weights drawn below
    else:
        network = load_model(model or default_model_path())
    budget.check_workbook(network, with_backward=not forward_only)
    true_index = class_index(network, label)
    texts = Texts(lang, templates)
    soffice = None
    if pdf:
        check_output(pdf, "pdf", inputs=[photo, model, output], option="--pdf")
        soffice = handout.find_soffice()  # before any work
    notes = []
    image = load_image(photo, notes)  # the whole photo, for the overview
    for note in notes:
        click.echo(f"note: {shown(note)}", err=True)
    draw = None
    if tiny:
        pixels = untrained_networks.tiny_pixels(image, network.input_size)
        draw = untrained_networks.tiny(network.classes, pixels, seed, network.layers[0].weight.shape[0])
    else:
        pixels = np.asarray(square_and_resize(image, network.input_size), dtype=np.uint8)
    if untrained:
        draw = untrained_networks.untrained(network.config, pixels, seed)
    network = draw.model if draw else network
    walkthrough = build_walkthrough(network, pixels, texts, true_index, image, shown(photo.name),
                                    with_backward=not forward_only, untrained=untrained or tiny,
                                    bundled=model is None and not (untrained or tiny),
                                    paper=paper or default_paper(os.environ))
    walkthrough.save(output)
    if pdf:
        handout.save_pdf(walkthrough.plan, pdf, soffice)
    probabilities = network.predict(pixels).probabilities[0]
    best = int(probabilities.argmax())
    written(f"wrote {shown(output)}: {shown(photo.name)} -> {shown(network.classes[best])} "
            f"({probabilities[best]:.1%}); {len(walkthrough.sheetnames)} sheets, "
            f"{walkthrough.formula_count:,} formulas", output)
    if pdf:
        written(f"wrote {shown(pdf)}: the handout", pdf)
    if draw:
        written(f"note: {draw_note(draw, seed, '--tiny' if tiny else '--untrained')}", output)
    elif model is None:
        written(f"note: the bundled model knows only {', '.join(network.classes)} and calls any "
                f"photo one of them; train your own with `cnnsheet train DATA_DIR`", output)
    if bundled_photo:
        click.echo(f"note: no PHOTO was given, so the workbook explains the bundled drawing "
                   f"{photo.name}", err=True)


@main.command()
@click.argument("data_dir", required=False, type=InputPath())
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("learn.xlsx"),
              show_default=True, help="Where to write the workbook.")
@click.option("--model", type=InputPath(), default=None,
              help="The starting network (.npz: grey input, conv, relu, maxpool, flatten, dense). "
                   "[default: a small random one]")
@click.option("--seed", type=Whole(0), default=0, show_default=True,
              help="Seed of the random starting network.")
@click.option("--steps", type=Whole(1), default=DESCENT_STEPS, show_default=True,
              help="Steps of gradient descent.")
@click.option("--lr", "learning_rate", type=FiniteFloat(0, min_open=True), default=DESCENT_RATE,
              show_default=True, help="The learning rate (the workbook offers others to pick).")
@click.option("--batch", type=Whole(1), default=None,
              help="Pictures per step, taken in turn. [default: all of them]")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True,
              help="Language of the explanations.")
@click.option("--templates", type=InputPath(), default=None,
              help="A folder with your own en.toml / zh.toml explanation texts.")
@user_errors
def descent(data_dir, output, model, seed, steps, learning_rate, batch, lang, templates):
    """Write a workbook in which a small CNN learns from a few pictures by gradient descent, every
    step a sheet of live formulas. DATA_DIR holds one sub-folder of pictures per class (at most 16
    pictures); without it, bundled drawings of three classes."""
    from cnnsheet.descent import prepare
    from cnnsheet.descent_book import build_descent

    if data_dir is not None:
        check_input(data_dir, "folder")
    if model is not None:
        check_input(model, "model", "--model")
    check_output(output, "workbook", inputs=[model])
    texts = Texts(lang, templates)
    run = prepare(data_dir, model, seed, steps, learning_rate, batch)
    book = build_descent(run, texts)
    book.save(output)
    losses, accuracies = run.losses, run.accuracies
    written(f"wrote {shown(output)}: {len(run.labels)} pictures, {steps} steps at learning rate "
            f"{learning_rate:g}, batch {run.batch}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
            f"accuracy {accuracies[0]:.0%} -> {accuracies[-1]:.0%}; {len(book.plan.sheets)} sheets, "
            f"{book.formula_count:,} formulas", output)
