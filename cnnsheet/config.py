"""A model's configuration, checked: the JSON a model file holds, and the shapes it implies.

A config is a JSON object: `format` and `version`, `input` (size, channels, mean and std per
channel), `classes` (their names) and `layers` (each a `type` with its whole-number settings).
Everything here is arithmetic on that object; no array is made, so a config that asks for more
than the machine has is refused before anything is allocated.
"""

from __future__ import annotations

import math
from collections import Counter

from cnnsheet import budget
from cnnsheet.errors import CnnsheetError
from cnnsheet.layers import MaxPool, conv_output_size

FORMAT, VERSION = "cnnsheet.model", 1
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
LARGEST = {"filters": budget.MAX_FILTERS, "units": budget.MAX_UNITS}  # else MAX_LAYER_NUMBER


def short(value) -> str:
    """A value from a file, shown in a message: escaped, and cut when long."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_integer(value) -> bool:
    """A whole number in JSON: True and False are numbers to Python, not to a config."""
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(value, smallest: int, where: str, largest: int) -> int:
    if not _is_integer(value) or value < smallest:
        raise CnnsheetError(f"{where} must be a whole number >= {smallest}, got {short(value)}")
    if value > largest and value.bit_length() > 64:  # thousands of digits: say how many, not which
        raise CnnsheetError(f"{where} is a number of {len(str(value)):,} digits; the limit is {largest:,}")
    return budget.check_number(value, largest, where)


def check_array_names(expected, given) -> None:
    """Refuse arrays the layers do not have (shown escaped: they may come from a file), then
    arrays they need and lack."""
    unknown = sorted(set(given) - set(expected))
    missing = sorted(set(expected) - set(given))
    if unknown:
        raise CnnsheetError(f"unexpected array(s): {', '.join(short(name) for name in unknown)}")
    if missing:
        raise CnnsheetError(f"missing array(s): {', '.join(missing)}")


def check_class_names(classes) -> None:
    """Class names become cells, drop-down entries and lines on a terminal: short printable text."""
    if not isinstance(classes, list) or len(classes) < 2:
        raise CnnsheetError("config needs a list of at least two class names")
    budget.check_number(len(classes), budget.MAX_CLASSES, "the number of classes")
    for name in classes:
        if not isinstance(name, str) or not name.strip():
            raise CnnsheetError(f"class names must be non-empty text, got {short(name)}")
        if not name.isprintable():
            raise CnnsheetError(f"the class name {short(name)} holds a control or unprintable character")
        if len(name) > budget.MAX_CLASS_NAME:
            raise CnnsheetError(f"the class name {short(name)} is longer than "
                                f"{budget.MAX_CLASS_NAME} characters")
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise CnnsheetError(f"duplicate class names: {', '.join(duplicates)}")
    clashes = differ_only_by_case(classes)
    if clashes:
        raise CnnsheetError(f"the class names {', '.join(map(short, clashes))} differ only by capitals, "
                            f"which a spreadsheet does not tell apart")


def differ_only_by_case(names) -> list[str]:
    """The names equal to another once capitals are ignored. A spreadsheet compares text without
    regard to case (and so does the workbook's choice of a class), so no two classes may differ
    only by it; casefold also counts 'ß' and 'ss' as one, which errs on the safe side."""
    folded = Counter(name.casefold() for name in names)
    return sorted(name for name in names if folded[name.casefold()] > 1)


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
    if not _is_integer(channels) or channels not in (1, 3):
        raise CnnsheetError(f"input channels must be 1 (grey) or 3 (RGB), got {short(channels)}")
    stats = {}
    for key, default in (("mean", 0.0), ("std", 1.0)):
        values = source.get(key, [default] * channels)
        if (not isinstance(values, list) or len(values) != channels
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in values)):
            raise CnnsheetError(f"input {key} must be a list of {channels} finite numbers, "
                                f"got {short(values)}")
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
        given = raw.get("type") if isinstance(raw, dict) else raw
        if not isinstance(given, str) or given not in INTEGER_KEYS:  # a list or object is no type
            kinds = ", ".join(INTEGER_KEYS)
            raise CnnsheetError(f"layer {index}: type must be one of {kinds}, got {short(given)}")
        kind = raw["type"]
        counts[kind] = counts.get(kind, 0) + 1
        name = raw.get("name", f"{PREFIX[kind]}{counts[kind] if kind != 'flatten' else ''}")
        if not isinstance(name, str) or not name.isidentifier() or name in names:
            raise CnnsheetError(f"layer {index}: name {short(name)} is not a unique identifier")
        names.add(name)
        layer = {"type": kind, "name": name}
        for key, (smallest, default) in INTEGER_KEYS[kind].items():
            value = raw.get(key, default)
            if kind == "maxpool" and key == "stride" and value is None:
                value = layer["size"]
            layer[key] = _integer(value, smallest, f"layer {index} ({name}) {key}",
                                  LARGEST.get(key, budget.MAX_LAYER_NUMBER))
        layers.append(layer)

    _check_order(layers)
    if layers[-1]["units"] != len(classes):
        raise CnnsheetError(
            f"the last layer has {layers[-1]['units']} units but there are {len(classes)} classes"
        )
    extra = {k: v for k, v in config.items() if k not in ("format", "version", "input", "layers", "classes")}
    return {"format": FORMAT, "version": VERSION,
            "input": {"size": size, "channels": channels, **stats},
            "layers": layers, "classes": list(classes), **extra}


def _check_order(layers: list[dict]) -> None:
    """The orders the sheets draw: image layers (conv, relu, maxpool, in any order), one flatten,
    then dense layers, each followed by at most one relu (drawn on the dense layer's sheet), the
    last dense giving the class scores."""
    kinds = [layer["type"] for layer in layers]
    if kinds.count("flatten") != 1:
        raise CnnsheetError("the layers need exactly one flatten between the image layers and dense")
    flat = kinds.index("flatten")
    for index, layer in enumerate(layers):
        where = f"layer {index + 1} ({layer['name']})"
        if index < flat and layer["type"] not in SPATIAL_KINDS:
            raise CnnsheetError(f"{where}: only conv, relu and maxpool layers may come before flatten")
        if index > flat and layer["type"] not in ("dense", "relu"):
            raise CnnsheetError(f"{where}: only dense and relu layers may come after flatten")
        if index > flat and layer["type"] == "relu" and kinds[index - 1] != "dense":
            raise CnnsheetError(f"{where}: after flatten a relu must come right after a dense layer, "
                                f"not after {kinds[index - 1]}")
    if kinds[-1] != "dense":
        raise CnnsheetError("the last layer must be dense (its outputs are the class scores)")


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


def config_and_shapes(config: dict) -> tuple[dict, list[tuple]]:
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
