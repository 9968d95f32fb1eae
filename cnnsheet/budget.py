"""Every size that comes from an option or a file, checked against an explicit limit before
anything is allocated, decompressed or resized.

Each limit is a named constant with the reason for its number. The checks only do arithmetic on
shapes and counts, so a refusal takes microseconds; their messages say what to lower.
"""

from __future__ import annotations

import math

from cnnsheet.errors import CnnsheetError

MiB = 1024 * 1024

# ---- the network ----------------------------------------------------------------------------
# The largest input the command line offers: 512 x 512 x 3 is already 786,432 pixels, far more
# than a workbook can show, and a model file asking for more is a mistake or an attack.
MAX_INPUT_SIZE = 512
# Eight times the command line's 64, for models trained elsewhere; more is no "small" CNN.
MAX_FILTERS = 512
# Hidden units: the command line offers 512; a dense layer of 4096 is VGG's, the largest classic.
MAX_UNITS = 4096
# ImageNet has 1000 classes; every class is a row of the Softmax and Loss sheets.
MAX_CLASSES = 1000
# A class name is a cell and a drop-down entry; 100 characters is a sentence, not a name.
MAX_CLASS_NAME = 100
# Layers of a model file: 3 conv blocks and 2 dense layers take 12; 64 leaves room for any
# hand-made network a workbook could still show.
MAX_LAYERS = 64
# Kernel, stride, padding, dilation and pool size: none is useful beyond the largest input.
MAX_LAYER_NUMBER = MAX_INPUT_SIZE
# Ten million weights are 80 MB as float64; training holds four copies (weights, gradients,
# momentum, the step), 320 MB. The default model has 9,795.
MAX_PARAMETERS = 10_000_000
# One picture's pass (every tensor, the im2col windows of each conv, and their gradients) as
# float64. Half a gigabyte stays well inside a 2 GB machine next to Python and the libraries.
MAX_WORKING_BYTES = 512 * MiB
# What a pass keeps per picture, as multiples of its tensors and of its im2col windows: the
# forward tensors, the ReLU and pool masks, the gradients of each tensor and the padded input
# gradient (3x), and each conv's windows and their gradient (2x). An upper bound, not a guess.
TENSOR_COPIES, WINDOW_COPIES = 3, 2

# ---- the model file -------------------------------------------------------------------------
# A model file holds the config and two arrays per conv or dense layer.
MAX_MEMBERS = 1 + 2 * MAX_LAYERS
# The JSON config as numpy stores it (4 bytes a character): a million characters hold 1000 class
# names of 100 characters with room to spare.
MAX_CONFIG_BYTES = 4 * MiB
# The zip's table of contents: about 100 bytes an entry; this is ten times what MAX_MEMBERS need.
MAX_ZIP_DIRECTORY_BYTES = 10 * MAX_MEMBERS * 100
# The whole file, uncompressed: every parameter as float64, plus the config.
MAX_MODEL_BYTES = 8 * MAX_PARAMETERS + MAX_CONFIG_BYTES + MiB

# ---- photos ---------------------------------------------------------------------------------
# A 48-megapixel phone photo (8064 x 6048) fits. A decoded copy is 3 bytes a pixel (192 MB at
# most) and reading makes up to three (decode, EXIF turn, colour conversion). Pillow only warns
# up to twice its own limit (89 million pixels), which lets a 12000 x 12000 picture through.
MAX_PHOTO_PIXELS = 64_000_000
# A teacher's template file is a page of text; a megabyte is a book.
MAX_TEMPLATE_BYTES = 1 * MiB
# Each line of a template text is one cell. Excel holds 32,767 characters a cell; the numbers and
# names filled into the placeholders need a little of that.
MAX_TEMPLATE_LINE = 30_000

# ---- training -------------------------------------------------------------------------------
# The training pictures stay in memory as uint8: 512 MB is 12,000 pictures of 119 x 119, or
# 228,000 of the default 28 x 28. The default set takes 28 MB.
MAX_DATASET_BYTES = 512 * MiB
# The command line's --batch-size limit; a batch's working set is checked below as well.
MAX_BATCH_SIZE = 4096

# ---- the workbook ---------------------------------------------------------------------------
# Every cell the workbook holds, numbers, formulas and labels, as workbook_sheets counts them sheet
# by sheet (an upper bound, held to every sheet of real walkthroughs by the tests). Measured near the
# limit (untrained, with the backward pass): one block at 118 x 118 is counted 1,910,047 and holds
# 1,899,922 cells; it plans and writes in 28 s with a peak of 800 MB; two blocks at 108 x 108,
# 1,909,279 and 1,884,630, in 23 s and 790 MB.
# Two million keeps a walkthrough under a gigabyte and about half a minute.
MAX_CELLS = 2_000_000
MAX_ROWS, MAX_COLUMNS, MAX_FORMULA = 1_048_576, 16_384, 8_192  # Excel's own limits
# Cells of a sheet that are not the tensor: title, link, explanation lines, labels (at most).
SHEET_OVERHEAD = 80
# The longest term of a formula, "SUMPRODUCT(NewReLU2!AAA1000:AAA1014,new_conv3_f512_c512)+" (57
# characters) with room to spare: bounds formula lengths before one is written.
TERM_CHARACTERS = 64

SHAPE_ADVICE = ("use a smaller input size (--size), fewer filters (--filters) or hidden units "
                "(--hidden), or more pooling (--pool) or stride (--stride)")
MAPS_ADVICE = ("use a smaller input size (--size), fewer filters (--filters), or more pooling (--pool) "
               "or stride (--stride)")  # for what the feature maps alone decide


def check_number(value: int, largest: int, where: str) -> int:
    """One whole number from an option or a file, against its limit."""
    if value > largest:
        raise CnnsheetError(f"{where} is {value:,}; the limit is {largest:,}")
    return value


def conv_windows(spec: dict, in_shape: tuple, out_shape: tuple) -> int:
    """Floats of one conv's im2col matrix: (C * k * k) x (Ho * Wo) per picture."""
    C = in_shape[0]
    _, Ho, Wo = out_shape
    return C * spec["kernel"] ** 2 * Ho * Wo


def parameters(spec: dict, in_shape: tuple) -> int:
    if spec["type"] == "conv":
        return spec["filters"] * (in_shape[0] * spec["kernel"] ** 2 + 1)
    if spec["type"] == "dense":
        return spec["units"] * (math.prod(in_shape) + 1)
    return 0


def pass_floats(specs: list[dict], shapes: list[tuple]) -> int:
    """Floats one picture's forward and backward pass holds at once (an upper bound)."""
    tensors = sum(math.prod(shape) for shape in shapes)
    windows = sum(conv_windows(spec, before, after)
                  for spec, before, after in zip(specs, shapes, shapes[1:]) if spec["type"] == "conv")
    return TENSOR_COPIES * tensors + WINDOW_COPIES * windows


def check_network(specs: list[dict], shapes: list[tuple]) -> None:
    """Parameters and one picture's working set, from the layer specs and their output shapes
    (shapes[0] is the input); called before any array is allocated."""
    count = sum(parameters(spec, before) for spec, before in zip(specs, shapes))
    if count > MAX_PARAMETERS:
        raise CnnsheetError(f"the network would have {count:,} parameters (the limit is "
                            f"{MAX_PARAMETERS:,}): {SHAPE_ADVICE}")
    working = 8 * pass_floats(specs, shapes)
    if working > MAX_WORKING_BYTES:
        raise CnnsheetError(f"one picture's pass would take {working / MiB:,.0f} MB (the limit is "
                            f"{MAX_WORKING_BYTES / MiB:,.0f} MB): {SHAPE_ADVICE}")


def check_training(specs: list[dict], shapes: list[tuple], samples: int, batch_size: int) -> None:
    """The training pictures (uint8) and one batch's float64 working set, before any is drawn."""
    check_number(batch_size, MAX_BATCH_SIZE, "--batch-size")
    C, H, W = 3, shapes[0][1], shapes[0][2]
    pictures = samples * C * H * W
    if pictures > MAX_DATASET_BYTES:
        raise CnnsheetError(f"{samples:,} pictures of {H}x{W} take {pictures / MiB:,.0f} MB (the limit "
                            f"is {MAX_DATASET_BYTES / MiB:,.0f} MB): lower --size or --samples, "
                            f"or train on fewer photos")
    working = 8 * batch_size * pass_floats(specs, shapes)
    if working > MAX_WORKING_BYTES:
        raise CnnsheetError(f"a batch of {batch_size} would take {working / MiB:,.0f} MB (the limit "
                            f"is {MAX_WORKING_BYTES / MiB:,.0f} MB): lower --batch-size or --size")


def check_photo(path, width: int, height: int) -> None:
    """Width x height from the file's header, before a pixel is decoded."""
    if width * height > MAX_PHOTO_PIXELS:
        raise CnnsheetError(f"{path}: {width}x{height} is {width * height:,} pixels; the limit is "
                            f"{MAX_PHOTO_PIXELS:,}: shrink the photo first")


# ---- the workbook ---------------------------------------------------------------------------
def tensor_cells(shape: tuple, border: int = 0) -> int:
    """A (C, H, W) tensor as Book.blocks lays it out: each channel's block with its zero border
    and its label."""
    C, H, W = shape
    return C * ((H + 2 * border) * (W + 2 * border) + 1)


def kernel_cells(layer, channels: int) -> int:
    """A conv's kernels as filter_bands lays them out: a labelled span x span block per filter
    and input channel, and each filter's bias with its label."""
    return layer.filters * (channels * (layer.span ** 2 + 1) + 2)


def zoom_cells(layer, channels: int, shapes) -> int:
    """A Zoom sheet: a window, a kernel and the products per input channel, the sums and the
    choice, and the 0/1 flags of the rows and columns of every earlier tensor."""
    widest = max(max(shape[1:]) for shape in shapes if len(shape) == 3)
    span = layer.span
    return channels * (3 * span * span + 3 * span + 6) + 60 + (len(shapes) + 2) * (2 * widest + 4)


def gradcam_cells(model) -> int:
    """The Grad-CAM sheet: the classes and their seeds, a row per hidden dense layer, the pooled
    maps' gradient, the weights, the map at A's resolution (A: the last layer before flatten that
    is not a max-pool), and the photo's size twice (the map brought up, the grey photo)."""
    layers, shapes = model.layers, model.shapes  # shapes[i] is the input of layers[i]
    K, S = len(model.classes), model.input_size
    flat = next(i for i, layer in enumerate(layers) if layer.kind == "flatten")
    below = [i for i in range(flat) if layers[i].kind != "maxpool"]
    activation = shapes[below[-1] + 1] if below else shapes[0]  # (C, H, W)
    hidden = sum(shape[0] + 1 for layer, shape in zip(layers[flat + 1:], shapes[flat + 2:])
                 if layer.kind == "dense")
    return (2 * K + 2 + hidden + tensor_cells(shapes[flat]) + 1 + 2 * activation[0] + 2
            + tensor_cells((1, *activation[1:])) + 1 + 2 * (S * S + 1))


def glance_cells(shapes) -> int:
    """The Overview's heat maps. A map side s is drawn in at most 24 cells when s < 24 (magnified)
    and at most min(s, 32) otherwise (every k-th value); a vector of n values is a strip 3 cells
    high and at most 96 (n < 96, magnified) or min(n, 200) cells wide; each with a label."""
    def side(s):
        return 24 if s < 24 else min(s, 32)

    def strip(n):
        return 3 * (96 if n < 96 else min(n, 200)) + 2

    maps = sum(shape[0] * (side(shape[1]) * side(shape[2]) + 1) + 2 if len(shape) == 3 else strip(shape[0])
               for shape in shapes)
    return maps + strip(shapes[-1][0])  # and the probabilities


def workbook_sheets(model, with_backward: bool) -> dict[str, int]:
    """Every sheet the walkthrough makes, by title, with an upper bound of
    the cells it holds (numbers, formulas and labels; SHEET_OVERHEAD for its title and texts).
    Arithmetic on shapes only. It follows the pipeline of workbook.build_walkthrough sheet by
    sheet. A new sheet is a new entry here: Book.sheet refuses to plan a sheet not named here, so
    one left out fails on its first run, and a test holds every sheet of real walkthroughs to its
    bound."""
    layers, shapes = model.layers, model.shapes  # shapes[i] is the input of layers[i]
    K, S = len(model.classes), model.input_size
    flat = next(i for i, layer in enumerate(layers) if layer.kind == "flatten")
    sheets = {}

    def add(title: str, cells: int):
        sheets[title] = cells + SHEET_OVERHEAD

    def border_for(index: int) -> int:  # as Book.border_for: the padding of the conv that reads it
        return layers[index].padding if index < len(layers) and layers[index].kind == "conv" else 0

    add("Overview", 0)  # filled last: its size is known once every sheet is
    add("Image", 3 * (S * S + 1) + 2 * S + 12)
    add("Input", tensor_cells(shapes[0], border_for(0)) + 3 * shapes[0][0] + 2)
    where = {"input": "Input"}  # a tensor -> the title of its sheet in the first pass

    def forward(prefix: str):
        numbers = {}
        for index, (layer, before, after) in enumerate(zip(layers, shapes, shapes[1:])):
            kind = {"conv": "Conv", "maxpool": "Pool", "flatten": "Flatten", "dense": "Dense",
                    "relu": "ReLU" if index < flat else None}[layer.kind]
            if kind is None:  # a ReLU after a dense layer: a row of its sheet
                where[layer.name] = where[layers[index - 1].name]
                continue
            numbers[kind] = number = numbers.get(kind, 0) + 1
            title = prefix + kind + ("" if kind == "Flatten" else str(number))
            if kind == "Conv":
                add(f"{prefix}Filters{number}", kernel_cells(layer, before[0]))
            if kind == "Flatten":
                cells = 5 * (after[0] + 1)
            elif kind == "Dense":
                m, n = after[0], before[0]
                cells = m * n + 2 * n + 5 * m + 5
            else:
                cells = tensor_cells(after, border_for(index + 1))
            if kind == "Pool" and not prefix:  # the choice of one cell: its window and the winner
                cells += 2 * layer.size * (layer.size + 1) + 30
            add(title, cells)
            if not prefix:
                where[layer.name] = title
                if kind == "Conv":
                    add(f"Zoom{number}", zoom_cells(layer, before[0], shapes))
        add(f"{prefix}Softmax", 4 * K + 8)

    forward("")
    add("Loss", 3 * K + 10)
    if with_backward:
        shared = set()  # the Mask and Rotated sheets, made once for both backward passes
        add("dLogits", 4 * K + 4)
        chain(model, "d", True, False, where, shared, add)
        add("Step", 12)
        forward("New")
        add("Saliency", S * S + 2 * K + 20)
        chain(model, "s", False, True, where, shared, add)
        add("sImage", tensor_cells((3, S, S)))
        add("Grad-CAM", gradcam_cells(model))
    sheets["Overview"] += 60 + glance_cells(shapes) + 9 * len(sheets)  # its table: a row a sheet
    return sheets


def chain(model, tag: str, with_params: bool, to_input: bool, where: dict, shared: set, add):
    """The sheets of one backward pass (passes.chain): the gradient of each tensor, each conv's
    dFilters, and the Mask, Spread and Rotated sheets that the gradients read."""
    layers, shapes = model.layers, model.shapes
    flat = next(i for i, layer in enumerate(layers) if layer.kind == "flatten")
    border = 0  # of the incoming gradient's blocks
    for index in range(len(layers) - 1, -1, -1):
        layer, before, after = layers[index], shapes[index], shapes[index + 1]
        below = where[layers[index - 1].name] if index else "Input"  # the sheet of this layer's input
        if layer.kind == "dense":
            m, n = after[0], before[0]
            add(tag + where[layer.name], (m * n + 2 * n + m if with_params else 0) + n + 3 * m + 8)
        elif layer.kind == "flatten":
            add(tag + below, tensor_cells(before))
            border = 0
        elif layer.kind == "maxpool":
            mask = "Mask" + where[layer.name][len("Pool"):]
            if mask not in shared:
                shared.add(mask)
                add(mask, tensor_cells(before))
            add(tag + below, tensor_cells(before))
            border = 0
        elif layer.kind == "relu" and index < flat:
            conv = layers[index - 1] if index else None
            border = (conv.span - 1 if conv is not None and conv.kind == "conv" and conv.stride == 1
                      and (index - 1 > 0 or to_input) else 0)
            add(tag + below, tensor_cells(before, border))
        elif layer.kind == "conv":
            number = where[layer.name][len("Conv"):]
            need_input = index > 0 or to_input
            if layer.stride > 1 or not (border >= layer.span - 1 or not need_input):
                F, Ho, Wo = after
                spread = (F, (Ho - 1) * layer.stride + 1, (Wo - 1) * layer.stride + 1)
                add(f"{tag}Spread{number}", tensor_cells(spread, layer.span - 1 if need_input else 0))
            if with_params:
                add(f"{tag}Filters{number}", kernel_cells(layer, before[0]))
            if need_input:
                if f"Rotated{number}" not in shared:
                    shared.add(f"Rotated{number}")
                    add(f"Rotated{number}", kernel_cells(layer, before[0]))
                add(tag + below, tensor_cells(before))
            border = 0


def workbook_cells(model, with_backward: bool) -> int:
    """An upper bound of every cell the walkthrough holds."""
    return sum(workbook_sheets(model, with_backward).values())


def longest_formula(model, with_backward: bool) -> int:
    """An upper bound of the characters of the longest formula: a conv cell has a SUMPRODUCT per
    input channel, a gradient cell one per filter, a pooling mask one IF per window."""
    lengths = [0]
    for layer, before in zip(model.layers, model.shapes):
        if layer.kind == "conv":
            lengths.append(before[0] * TERM_CHARACTERS)
            if with_backward:
                lengths.append(layer.filters * TERM_CHARACTERS)
        elif layer.kind == "maxpool" and with_backward:
            overlap = -(-layer.size // layer.stride)
            lengths.append(overlap * overlap * 2 * TERM_CHARACTERS)
    return max(lengths)


def check_workbook(model, with_backward: bool) -> dict[str, int]:
    """Refuse, before any work, a network whose workbook breaks Excel's limits or any patience;
    returns the count of its sheets (workbook_sheets), which the planning holds every sheet to."""
    backward_hint = ", or --forward-only" if with_backward else ""
    column = max((math.prod(shape) for shape in model.shapes if len(shape) == 1), default=0)
    if column + SHEET_OVERHEAD > MAX_ROWS:
        raise CnnsheetError(f"the flattened vector has {column:,} values, one row each; Excel allows "
                            f"{MAX_ROWS:,} rows: {MAPS_ADVICE}")
    longest = longest_formula(model, with_backward)
    if longest > MAX_FORMULA:
        raise CnnsheetError(f"a formula would be up to {longest:,} characters long; Excel allows "
                            f"{MAX_FORMULA:,}: use fewer filters (--filters){backward_hint}")
    sheets = workbook_sheets(model, with_backward)
    cells = sum(sheets.values())
    if cells > MAX_CELLS:
        raise CnnsheetError(f"the workbook would hold about {cells:,} cells (the limit is "
                            f"{MAX_CELLS:,}): {SHAPE_ADVICE}{backward_hint}")
    return sheets


# ---- cnnsheet descent -----------------------------------------------------------------------
# Every step of `cnnsheet descent` is a sheet holding the forward and backward pass of every
# picture, about 350 formulas a picture at the default 8 x 8 input, 2 filters and 3 classes: 16
# pictures and 50 steps make some 280,000 formulas, which LibreOffice still recalculates in
# seconds. Larger inputs, filters or classes grow each picture's share (the input size squared).
MAX_DESCENT_PICTURES = 16
MAX_DESCENT_STEPS = 50
MAX_DESCENT_SIZE = 16
MAX_DESCENT_FILTERS = 4
MAX_DESCENT_CLASSES = 5
MAX_DESCENT_FORMULAS = 400_000


def descent_formulas(size: int, filters: int, kernel: int, classes: int, pictures: int, steps: int,
                     pool: int = 2) -> int:
    """An upper bound of the formulas of a descent workbook: per picture and step the conv, ReLU,
    pool and their gradients, the scores, and the weight gradients; per sheet the weights and the
    mean gradient; the pictures' inputs, the table of losses and the heat maps of one filter."""
    conv = (size - kernel + 1) ** 2
    pooled = ((size - kernel + 1) // pool) ** 2
    forward = filters * (2 * conv + pooled) + 4 * classes + 4
    backward = filters * (conv + pooled + kernel * kernel + 1) + classes * (filters * pooled + 2)
    weights = filters * (kernel * kernel + 1) + classes * (filters * pooled + 1)
    sheets = (steps + 1) * (pictures * forward + 2 * weights + 3) + steps * pictures * backward
    return sheets + pictures * (size ** 2 + classes) + 2 * (steps + 1) + 5 * kernel ** 2



def _at_most(value: int, largest: int, what: str, advice: str) -> None:
    if value > largest:
        raise CnnsheetError(f"descent: {what} is {value:,}; the limit is {largest:,}: {advice}")


def check_descent(size: int, filters: int, kernel: int, classes: int, pictures: int = 1,
                  steps: int = 1, batch: int = 1, pool: int = 2) -> None:
    """The network, the pictures, the steps and the batch of `cnnsheet descent`, by arithmetic,
    before anything is read or built."""
    _at_most(size, MAX_DESCENT_SIZE, "the input size", "use a model with a smaller input")
    _at_most(filters, MAX_DESCENT_FILTERS, "the number of filters", "use a model with fewer filters")
    _at_most(classes, MAX_DESCENT_CLASSES, "the number of classes", "use fewer class folders")
    _at_most(pictures, MAX_DESCENT_PICTURES, "the number of pictures", "use fewer pictures")
    _at_most(steps, MAX_DESCENT_STEPS, "the number of steps", "lower --steps")
    if batch < 1:
        raise CnnsheetError(f"descent: --batch must be at least 1, got {batch}")
    formulas = descent_formulas(size, filters, kernel, classes, pictures, steps, pool)
    if formulas > MAX_DESCENT_FORMULAS:
        raise CnnsheetError(f"descent: the workbook would hold about {formulas:,} formulas (the limit is "
                            f"{MAX_DESCENT_FORMULAS:,}): lower --steps, or use fewer pictures, "
                            f"fewer filters or a smaller input")
