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

from cnnsheet import __version__, budget, memory, modelfile, photos, shapes, threads
from cnnsheet import untrained as untrained_networks
from cnnsheet.descent import LEARNING_RATE as DESCENT_RATE
from cnnsheet.descent import STEPS as DESCENT_STEPS
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import EXTENSIONS, check_input, check_output, inside
from cnnsheet.lesson import Lesson, Network, prediction
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
    starting_point,
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


def looks_like_option(value) -> bool:
    """Whether an option's value is an option itself: in `--pdf -o out.xlsx` click gives --pdf
    the value '-o', and out.xlsx becomes the photo."""
    return isinstance(value, str) and re.fullmatch(r"--?[A-Za-z][\w-]*", value) is not None


class NamedPath(click.Path):
    """A path the user names: not empty (pathlib would read it as '.'), and, as an option's
    value, not something that looks like an option."""

    def __init__(self, path_type=Path):
        super().__init__(path_type=path_type)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value:
            self.fail("the name is empty", param, ctx)
        if isinstance(param, click.Option) and looks_like_option(value):
            self.fail(f"{value} looks like an option, not a name (a file of that name is ./{value})",
                      param, ctx)
        return super().convert(value, param, ctx)


class Word(click.ParamType):
    """An option's text value (a class name, --start's choice) that does not look like an option."""

    name = "text"

    def convert(self, value, param, ctx):
        if looks_like_option(value):
            self.fail(f"{value} looks like an option, not a value", param, ctx)
        return value


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
    "--model", type=NamedPath(), default=None,
    help="Model file (.npz). Default: the bundled shapes model (circle, square, triangle).",
)


@main.command()
@click.argument("images", metavar="PHOTO...", nargs=-1, required=True, type=NamedPath())
@MODEL_OPTION
@click.option("--label", type=Word(), default=None, help="The true class, to report the cross-entropy loss.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object instead of a table (for several photos: one a line, with "
                   "the photo's name).")
@user_errors
def predict(images, model, label, as_json):
    """Classify each PHOTO and print the probability of every class. For several photos, or a
    folder of them, one line each; photos that cannot be read are listed at the end."""
    if len(images) > 1 or os.path.isdir(images[0]):
        return predict_class(images, model, label, as_json)
    image = images[0]
    check_input(image, "photo")
    if model is not None:
        check_input(model, "model", "--model")
    network = load_model(model or default_model_path())
    true_index = class_index(network, label)
    notes = []
    result = prediction(network, image, true_index, notes)
    for note in notes:
        click.echo(f"note: {shown(note)}", err=True)
    if as_json:
        echo(json.dumps(result, allow_nan=False))
        return
    names = [shown(name) for name in network.classes]
    probabilities = result["probabilities"]
    echo(f"{shown(image)}: {shown(result['predicted'])} ({max(probabilities):.1%})")
    width = max(len(name) for name in names)
    for name, p in zip(names, probabilities):
        echo(f"  {name:<{width}}  {p:7.2%}  {'#' * round(p * 30)}")
    if true_index is not None:
        p_true = probabilities[true_index]
        echo(f"loss with true class {shown(repr(label))}: -ln({p_true:.4f}) = {result['loss']:.4f}")


def predict_class(images, model, label, as_json) -> None:
    """predict on several photos or folders: a line (or a JSON object) per photo as it is read."""
    if model is not None:
        check_input(model, "model", "--model")
    network = load_model(model or default_model_path())
    true_index = class_index(network, label)
    found, failed, skipped = photos.gather(images)
    total = len(found) + len(failed)  # the photos, and the folders without one
    for note in skipped:
        click.echo(f"note: {shown(note)}", err=True)
    for photo in found:
        notes = []
        try:
            result = prediction(network, photo, true_index, notes)
        except CnnsheetError as error:
            failed.append((photo, str(error)))
            continue
        for note in notes:
            click.echo(f"note: {shown(note)}", err=True)
        if as_json:
            echo(json.dumps({"photo": str(photo), **result}, allow_nan=False))
            continue
        loss = f", loss {result['loss']:.4f}" if true_index is not None else ""
        echo(f"{shown(photo)}: {shown(result['predicted'])} ({max(result['probabilities']):.1%}){loss}")
    report_failures(failed, total, "classified")


def report_failures(failed: list, total: int, done: str) -> None:
    """The photos (and folders) a run over many could not use, one line each on stderr, then the
    error that makes the exit status 1; nothing when all went well. A run of one photo (a folder
    that holds one, or none) ends in that photo's own error."""
    if not failed:
        return
    if total == 1:  # the one photo named: its own error, as for explain or predict on one photo
        raise CnnsheetError(failed[0][1])
    for _path, reason in failed:
        click.echo(f"error: {shown(reason)}", err=True)
    raise CnnsheetError(f"{len(failed)} of {total} photo{'s' * (total != 1)} could not be {done} "
                        f"(listed above)")


def architecture_options(command, explain: bool = False):
    """The shape of a network, shared by `train` and `explain --untrained`; `explain`: the help
    says what --size and --filters give with --untrained and with --tiny, whose defaults differ."""
    default = Architecture()
    size_default, filters_default = default.size, default.filters
    if explain:
        low, high = untrained_networks.TINY_SIZES[0], untrained_networks.TINY_SIZES[-1]
        size_default = (f"{default.size} with --untrained; {untrained_networks.TINY_SIZE} "
                        f"({low} to {high}) with --tiny")
        filters_default = (f"{default.filters} with --untrained; {untrained_networks.TINY_FILTERS[-1]} "
                           f"({' or '.join(map(str, untrained_networks.TINY_FILTERS))}) with --tiny")
    options = [
        click.option("--size", type=Whole(4, 512), default=default.size, show_default=size_default,
                     help="Input width and height in pixels."),
        click.option("--filters", type=Whole(1, 64), default=default.filters,
                     show_default=filters_default, help="Filters per conv layer."),
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
@click.argument("data_dir", required=False, type=NamedPath())
@click.option("-o", "--output", type=NamedPath(), default=Path("model.npz"),
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
@click.option("--start", type=Word(), default="random", show_default=True, metavar="random|bundled|MODEL",
              help="Start from random weights, or from the learned layers of the bundled model or of "
                   "a model file with these options' layers; the last layer then starts at zero, "
                   "for the folder's classes.")
@user_errors
def train(data_dir, output, samples, start, **options):
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
    start, start_line = starting_point(start, architecture)
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
    model = new_model(architecture, dataset.classes, training[0], hp.seed, start)
    echo(start_line)
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


def verdict(made) -> str:
    """'triangle (94.9%)': a workbook's predicted class and its probability."""
    return f"{shown(made.predicted)} ({made.probability:.1%})"


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


def lesson_options(seed_help: str):
    """The options of a walkthrough's network, photo texts and parts, shared by explain and
    exercise."""
    options = [
        MODEL_OPTION,
        click.option("--label", type=Word(), default=None,
                     help="The true class shown on the Loss sheet. [default: the predicted class]"),
        click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True,
                     help="Language of the explanations."),
        click.option("--templates", type=NamedPath(), default=None,
                     help="A folder with your own en.toml / zh.toml explanation texts."),
        click.option("--forward-only", is_flag=True,
                     help="Leave out the backward pass, the gradient-descent step and the saliency map."),
        click.option("--untrained", is_flag=True,
                     help="Explain a randomly initialised network shaped by the options below."),
        click.option("--tiny", is_flag=True,
                     help="A network to follow with pencil and paper: the photo as 6x6 grey levels 0-9 "
                          "(--size 4 to 8), one conv of 2 (--filters 1 or 2) 3x3 filters, ReLU, 2x2 "
                          "max-pool and a dense layer, every weight a whole number."),
        functools.partial(architecture_options, explain=True),
        click.option("--seed", type=Whole(0), default=0, show_default=True, help=seed_help),
        click.option("--paper", type=click.Choice(sorted(PAPER_SIZES)), default=None,
                     callback=lambda _ctx, _param, value: value or default_paper(os.environ),
                     help="The paper the workbook's pages (and a PDF) are set for. [default: from the "
                          "locale (LC_PAPER, LANG): letter in the US and Canada, else a4]"),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def chosen_network(ctx, photos: list, model, untrained: bool, tiny: bool, seed: int, options: dict,
                   seed_draws_only: bool = True) -> Network:
    """The network the options ask for. The options that exclude each other are refused first, then
    photos and model that cannot be read, before any is. `seed_draws_only`: --seed means nothing
    without random weights."""
    def given(key):
        return ctx.get_parameter_source(key) is not click.core.ParameterSource.DEFAULT

    shaped = [f"--{key}" for key in options if given(key)]
    if tiny:
        refuse_with_tiny(shaped, untrained, model)
    if untrained and model:
        raise CnnsheetError("--untrained and --model exclude each other")
    if shaped and not (untrained or tiny):
        raise CnnsheetError(f"{', '.join(shaped)} shape(s) an untrained network: add --untrained")
    if seed_draws_only and given("seed") and not (untrained or tiny):
        raise CnnsheetError("--seed draws the random weights of --untrained or --tiny: add one, or leave "
                            "--seed out")
    for photo in photos:
        check_input(photo, "photo")
    if model is not None:
        check_input(model, "model", "--model")
    if tiny:
        size = options["size"] if "--size" in shaped else untrained_networks.TINY_SIZE
        filters = options["filters"] if "--filters" in shaped else untrained_networks.TINY_FILTERS[-1]
        return Network(Model(untrained_networks.tiny_config(shapes.CLASSES, size, filters)), draws="--tiny",
                       seed=seed)
    if untrained:
        return Network(Model(architecture_from(options).config(shapes.CLASSES)), draws="--untrained",
                       seed=seed)
    return Network(path=model)


CLASS_FOLDER = Path("walkthroughs")  # where several photos' workbooks go without -o


@main.command()
@click.argument("paths", metavar="[PHOTO]...", nargs=-1, type=NamedPath())
@click.option("-o", "--output", type=NamedPath(str), default=None,
              help="Where to write the workbook; for several photos, a folder of them or a name "
                   "ending in /, the folder to write one workbook per photo into (made if missing). "
                   f"[default: walkthrough.xlsx; {CLASS_FOLDER}/ for several photos]")
@lesson_options("Seed of the random weights (with --untrained or --tiny).")
@click.option("--pdf", type=NamedPath(), default=None,
              help="Also print a handout to this PDF: the overview and one page per step "
                   "(needs LibreOffice). For several photos, the folder for one handout per photo.")
@click.pass_context
@user_errors
def explain(ctx, paths, output, model, label, lang, templates, forward_only, untrained, tiny, seed,
            paper, pdf, **options):
    """Write a workbook that walks through one pass of the network on PHOTO, every number a live
    formula. Without PHOTO it uses a bundled drawing; without --model, the bundled shapes model.
    Several photos, or a folder of them, give a workbook each, named after the photo."""
    # -o out/ asks for a folder even for one photo, as a shell's photos/*.jpg may give one
    asked_folder = output is not None and output.endswith(("/", os.sep))
    many = asked_folder or len(paths) > 1 or (len(paths) == 1 and os.path.isdir(paths[0]))
    output = Path(output) if output is not None else None
    photo = paths[0] if paths and not many else None
    network = chosen_network(ctx, [photo] if photo else [], model, untrained, tiny, seed, options)
    if many:
        output = output or CLASS_FOLDER
        run = (f"the folder {paths[0]}" if len(paths) == 1 and os.path.isdir(paths[0])
               else f"{len(paths)} photos" if len(paths) > 1 else "-o ending in /")
        for where, option, kind, noun in ((None if asked_folder else output, "-o", "workbook", "workbook"),
                                          (pdf, "--pdf", "pdf", "handout")):
            if where is not None and where.suffix.lower() == EXTENSIONS[kind] and not where.is_dir():
                raise CnnsheetError(f"{option} {where}: with {run}, a {noun} per photo goes into a folder "
                                    f"(a name ending in /), not into one file")
    else:
        ctx.with_resource(memory.no_cycle_collection())  # on again once the command and its plan are done
        # the bundled drawing suits the bundled model; with one's own model it may be a surprise
        bundled_photo = photo is None and model is not None
        photo = photo or default_photo_path()
        output = output or Path("walkthrough.xlsx")
        check_output(output, "workbook", inputs=[photo, model])
    budget.check_workbook(network.model, with_backward=not forward_only)
    lesson = Lesson(network, class_index(network.model, label), Texts(lang, templates), forward_only,
                    paper)
    if many:
        return explain_class(lesson, paths or [default_photo_path()], output, pdf, model)
    if pdf:
        check_output(pdf, "pdf", inputs=[photo, model, output], option="--pdf")
        lesson.find_soffice()  # before any work
    made = lesson.write(photo, output, pdf, shown(photo.name))
    for note in made.photo_notes:
        click.echo(f"note: {shown(note)}", err=True)
    written(f"wrote {shown(output)}: {shown(photo.name)} -> {verdict(made)}; {made.sheets} sheets, "
            f"{made.formulas:,} formulas", output)
    if pdf:
        written(f"wrote {shown(pdf)}: the handout", pdf)
    if made.note:
        written(f"note: {made.note}", output)
    if bundled_photo:
        click.echo(f"note: no PHOTO was given, so the workbook explains the bundled drawing "
                   f"{photo.name}", err=True)


def explain_class(lesson: Lesson, paths, folder: Path, pdf_folder: Path | None, model) -> None:
    """explain on several photos or folders: a workbook (and handout) each, in one folder, under
    one progress bar; every photo that fails is named at the end."""
    if pdf_folder:
        lesson.find_soffice()
    found, failed, skipped = photos.gather(paths)
    total = len(found) + len(failed)  # the photos, and the folders without one
    for note in skipped:
        click.echo(f"note: {shown(note)}", err=True)
    if found:  # no empty folder is left behind when there is nothing to write
        photos.output_folder(folder)
        if pdf_folder:
            photos.output_folder(pdf_folder, "--pdf")
    done, photo_notes, notes = [], {}, {}  # notes in dicts: each said once, however many photos share it
    bar = click.progressbar(list(zip(found, photos.output_names(found))), label="explaining",
                            item_show_func=lambda job: job and shown(job[0].name),
                            hidden=dumb_terminal() or not sys.stdout.isatty())
    try:
        with bar:
            for photo, name in bar:
                output = folder / f"{name}.xlsx"
                pdf = pdf_folder / f"{name}.pdf" if pdf_folder else None
                try:
                    check_output(output, "workbook", inputs=[photo, model])
                    if pdf:
                        check_output(pdf, "pdf", inputs=[photo, model, output], option="--pdf")
                    with memory.no_cycle_collection():
                        made = lesson.write(photo, output, pdf, shown(photo.name))
                except CnnsheetError as error:
                    failed.append((photo, str(error)))
                    continue
                handout = f", handout {shown(pdf)}" if pdf else ""
                done.append(f"wrote {shown(output)}: {shown(photo)} -> {verdict(made)}{handout}")
                photo_notes.update(dict.fromkeys(made.photo_notes))
                if made.note:
                    notes[made.note] = None
    except KeyboardInterrupt:
        for line in done:
            written(line, folder)
        raise click.ClickException(f"interrupted: {len(done)} of {len(found)} workbook(s) were written "
                                   f"in {shown(folder)}") from None
    except OSError as error:  # only the progress bar writes here unguarded
        raise stdout_failed(error) from None
    for line in done:
        written(line, folder)
    for note in notes:
        written(f"note: {note}", folder)
    for note in photo_notes:
        click.echo(f"note: {shown(note)}", err=True)
    report_failures(failed, total, "explained")


@main.command()
@click.argument("photo", required=False, type=NamedPath())
@click.option("-o", "--output", type=NamedPath(), default=Path("worksheet.xlsx"),
              show_default=True, help="Where to write the worksheet.")
@lesson_options("Seed of the cells to blank (neighbours get different ones), and of the random weights "
                "(with --untrained or --tiny).")
@click.option("--count", type=Whole(1, 200), default=None,
              help="How many cells to blank. [default: one of each kind of step: 12, or 10 with "
                   "--forward-only]")
@click.option("--pdf", type=NamedPath(), default=None,
              help="Also print the worksheet to this PDF, the answers as empty boxes (needs LibreOffice).")
@click.option("--key-pdf", type=NamedPath(), default=None,
              help="Also print the same pages with the answers filled in (needs LibreOffice).")
@click.pass_context
@user_errors
def exercise(ctx, photo, output, model, label, lang, templates, forward_only, untrained, tiny, seed, paper,
             count, pdf, key_pdf, **options):
    """Write a worksheet: the walkthrough of PHOTO (as `explain` writes it with the same options)
    with some cells left empty for a student to work out, each checked as it is typed. `explain`
    with the same options (with --tiny or --untrained, the same --seed too) writes the key."""
    from cnnsheet import exercise as worksheets
    from cnnsheet import handout

    ctx.with_resource(memory.no_cycle_collection())
    network = chosen_network(ctx, [photo] if photo else [], model, untrained, tiny, seed, options,
                             seed_draws_only=False)
    bundled_photo = photo is None and model is not None
    photo = photo or default_photo_path()
    check_output(output, "workbook", inputs=[photo, model])
    budget.check_workbook(network.model, with_backward=not forward_only)
    lesson = Lesson(network, class_index(network.model, label), Texts(lang, templates), forward_only, paper)
    soffice = None
    if pdf and key_pdf and pdf.resolve() == key_pdf.resolve():
        raise CnnsheetError(f"--key-pdf {shown(key_pdf)}: the same file as --pdf; the key needs its own")
    for path, option in ((pdf, "--pdf"), (key_pdf, "--key-pdf")):
        if path:
            check_output(path, "pdf", inputs=[photo, model, output], option=option)
            soffice = handout.find_soffice()  # before any work
    read = lesson.read(photo)
    for note in read.notes:
        click.echo(f"note: {shown(note)}", err=True)
    count = count or len(worksheets.FORWARD_KINDS if forward_only else worksheets.KINDS)
    # what the record keeps of the options, for `check` (the texts' own folder, which sets where
    # the cells are, as its full path: check reads it again)
    options = {"tiny": tiny, "untrained": untrained, "bundled": network.bundled, "label": label,
               "photo_name": shown(photo.name),
               "templates": None if templates is None else str(Path(templates).resolve())}
    sheet = worksheets.build_worksheet(read.network, read.pixels, lesson.texts, count, seed, options,
                                       target_index=lesson.true_index, photo=read.image,
                                       photo_name=shown(photo.name), **lesson.workbook_options())
    sheet.save(output)
    if pdf:
        worksheets.save_pdf(sheet, pdf, soffice, key=False)
    if key_pdf:
        worksheets.save_pdf(sheet, key_pdf, soffice, key=True)
    count = len(sheet.exercises)
    # explain's --seed draws weights only: with a model file's, the key is written without it
    seed_given = ctx.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT
    same = "the same options" + (" but --seed" if seed_given and network.draws is None else "")
    written(f"wrote {shown(output)}: {count} exercise{'s' * (count != 1)} on {shown(photo.name)}; "
            f"{len(sheet.plan.sheets)} sheets, {sheet.formula_count:,} formulas; `cnnsheet explain` with "
            f"{same} writes the key", output)
    for path, what in ((pdf, "the worksheet to print"), (key_pdf, "the key to print")):
        if path:
            written(f"wrote {shown(path)}: {what}", path)
    note = network.note(read.draw)
    if note:
        written(f"note: {note}", output)
    if bundled_photo:
        click.echo(f"note: no PHOTO was given, so the worksheet is on the bundled drawing "
                   f"{photo.name}", err=True)


@main.command()
@click.argument("data_dir", required=False, type=NamedPath())
@click.option("-o", "--output", type=NamedPath(), default=Path("learn.xlsx"),
              show_default=True, help="Where to write the workbook.")
@click.option("--model", type=NamedPath(), default=None,
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
@click.option("--templates", type=NamedPath(), default=None,
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
    for _path, reason in run.skipped:  # as train does: the rest of the folder still teaches
        click.echo(f"warning: skipped {shown(reason)}", err=True)
    book = build_descent(run, texts)
    book.save(output)
    losses, accuracies = run.losses, run.accuracies
    written(f"wrote {shown(output)}: {len(run.labels)} pictures, {steps} steps at learning rate "
            f"{learning_rate:g}, batch {run.batch}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
            f"accuracy {accuracies[0]:.0%} -> {accuracies[-1]:.0%}; {len(book.plan.sheets)} sheets, "
            f"{book.formula_count:,} formulas", output)


@main.command()
@click.argument("files", nargs=-1, required=True, type=NamedPath())
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV: a header, then one row per file: file, score, count, wrong, blank, error.")
@user_errors
def check(files, as_csv):
    """Grade worksheets made by `cnnsheet exercise` and filled in by students: for each FILE its
    score out of its exercises, and which are wrong or blank (sheet and cell). Every answer is
    recomputed from the pixels, weights and choices the file itself holds; no check cell or score
    in it is trusted. Exit status 1 when a file could not be graded (the others still are)."""
    import csv
    import io

    from cnnsheet.check import grade

    table = io.StringIO()
    rows = csv.writer(table, lineterminator="")

    def line(*cells):
        table.seek(0)
        table.truncate()
        rows.writerow(cells)
        echo(table.getvalue())

    if as_csv:
        line("file", "score", "count", "wrong", "blank", "error")
    failed = 0
    for path in files:
        try:
            result = grade(path)
        except CnnsheetError as error:
            failed += 1
            click.echo(f"Error: {cut(shown(error))}", err=True)
            if as_csv:  # the reason, without the file's name that starts the row already
                line(path, "", "", "", "", str(error).removeprefix(f"{path}: "))
            continue
        wrong, blank = result.cells("wrong"), result.cells("blank")
        if as_csv:
            line(path, result.score, result.count, "; ".join(wrong), "; ".join(blank), "")
            continue
        parts = [f"{shown(path)}: {result.score} of {result.count} right"]
        parts += [f"{kind}: {', '.join(map(shown, cells))}"
                  for kind, cells in (("wrong", wrong), ("blank", blank)) if cells]
        echo("; ".join(parts))
    if failed:
        sys.exit(1)
