"""Grad-CAM, live: the plain gradient of the chosen class's score back to the last conv block's
maps A, one weight per map (its mean gradient), the map max(0, sum_k a_k A_k), and that map
brought up to the photo's size beside the photo in grey.

The saliency pass's sheets follow saliency_mode at every ReLU, Grad-CAM never does, so the few
steps from the score down to A are redone here with the plain rule, compactly: through the dense
layers to the flattened maps, and from there to the weights in one sum per map. A max-pool hands
each window's gradient whole to one cell of its input (overlapping windows or not, whichever
cell wins a tie), so the gradient of map k of A sums to that of map k of the pooled maps: the
sum over the pooled map is the sum over A_k, and A's own gradient need not be drawn.
"""

from __future__ import annotations

from cnnsheet import names, style
from cnnsheet.fields import covering
from cnnsheet.gradcam import activation_index, gradcam, upsample_layers
from cnnsheet.layers import Dense, Flatten, ReLU, onehot_formula
from cnnsheet.layout import LEFT, Block, Vector, a1, area, on
from cnnsheet.model import LUMA, grey
from cnnsheet.sheets.common import Book, OverviewRow, PassSheets, channel_names, square_cells, tensor
from cnnsheet.untrained import brightest


def gradcam_sheet(book: Book, first: PassSheets) -> OverviewRow:
    """The Grad-CAM sheet, at the end of the workbook, for the class of the Saliency sheet."""
    model, trace = book.model, book.trace
    cam = gradcam(model, trace, book.saliency_index)
    a_index = activation_index(model)
    a_blocks, a_sheet = first.maps[cam.layer]
    size = model.input_size
    field, jump = book.field_of(model.layers[a_index]) if a_index >= 0 else (1, 1)
    colours = ((style.DIVERGING, book.texts("gradcam", "grids_gradients")),  # each legend names its grids
               (style.SEQUENTIAL_SCALE, book.texts("gradcam", "grids_maps")))
    ws, top = book.sheet("Grad-CAM", "gradcam", ("body", "body_pool", "body_upsample"), numbering=None,
                         title="Grad-CAM", colours=colours,
                         layer=a_sheet, field=field, jump=jump, size=size)
    # what it shows first (the handout prints a sheet's first block), then how it is made
    heat, photo, row = heat_places(book, ws, top)
    seed = seed_row(book, ws, row)
    upstream, row = dense_rows(book, ws, first, cam, seed, row + 4)
    flat_blocks, row = pooled_gradient(book, ws, first, cam, upstream, row)
    weights, row = weight_row(book, ws, cam, flat_blocks, row)
    cam_blocks, row = cam_map(book, ws, cam, weights, a_blocks, a_sheet, row)
    heat_map(book, ws, cam, cam_blocks[0], heat, photo, first)
    square_cells(ws, top, row, max(LEFT + size, ws_right(ws)))
    return OverviewRow(ws.title, "gradcam", (size, size))


def ws_right(ws) -> int:
    """The rightmost column that holds a cell."""
    return max(col for _, col in ws.cells)


def heat_places(book: Book, ws, top: int) -> tuple[Block, Block, int]:
    """Where the map at the photo's size goes, and the grey photo beneath it; the next free row."""
    size = book.model.input_size
    ws.label(top, LEFT, book.texts("gradcam", "image"))
    heat = Block(ws.title, top + 1, LEFT, size, size)
    ws.label(top + size + 2, LEFT, book.texts("gradcam", "photo"))
    photo = Block(ws.title, top + size + 3, LEFT, size, size)
    for block in (heat, photo):
        ws.keep.append((block.top - 1, LEFT, block.top + size - 1, LEFT + size - 1))
    return heat, photo, photo.top + size + 1


def seed_row(book: Book, ws, top: int) -> Vector:
    """The classes across and, below, 1 for the class of the Saliency sheet: d score / d logits."""
    ws.label(top, LEFT, book.texts("gradcam", "seed"))
    for k, name in enumerate(book.class_names):
        ws.text(top + 1, LEFT + k, name)
        ws.formula(top + 2, LEFT + k, onehot_formula(a1(top + 1, LEFT + k), names.used(names.SALIENCY_CLASS)),
                   float(k == book.saliency_index), style.key("value", "0"))
    return Vector(ws.title, top + 2, LEFT, len(book.class_names), across=True)


def dense_rows(book: Book, ws, first: PassSheets, cam, seed: Vector, row: int) -> tuple[Vector, int]:
    """d score / d each hidden dense layer's output, a row each from the last layer down, by the
    plain rule at its ReLU; returns the first dense layer's row (the seed when there is one dense
    layer) and the next free row."""
    layers = book.model.layers
    denses = [layer for layer in layers if isinstance(layer, Dense)]
    upstream = seed
    for layer, above in zip(reversed(denses[:-1]), reversed(denses[1:])):
        g, g_above = first.dense[layer.name], first.dense[above.name]
        relu_after = isinstance(layers[layers.index(layer) + 1], ReLU)
        values = cam.gradients[layer.name][0]
        ws.label(row, LEFT, book.texts("gradcam", "dense_row", sheet=g.sheet))
        row += 1
        look = style.key("number", style.number_format(values))
        for j in range(layer.units):
            total = f"SUMPRODUCT({on(g_above.sheet, g_above.weight_row(j, above.units))},{upstream.data})"
            formula = (ReLU.backward_formula(on(g.sheet, a1(g.out_row, g.first + j)), total) if relu_after
                       else f"={total}")
            ws.formula(row, LEFT + j, formula, values[j], look)
        upstream = Vector(ws.title, row, LEFT, layer.units, across=True)
        ws.scale(upstream.data, style.DIVERGING)
        row += 2
    return upstream, row


def pooled_gradient(book: Book, ws, first: PassSheets, cam, upstream: Vector, row: int):
    """d score / d the flattened maps, laid out as the maps they flatten (the pooled maps)."""
    layers = book.model.layers
    flat = next(layer for layer in layers if isinstance(layer, Flatten))
    dense = layers[layers.index(flat) + 1]
    g = first.dense[dense.name]
    source = book.previous_name(flat)
    values = cam.gradients[source][0]  # (C, Ho, Wo)
    C, Ho, Wo = values.shape
    in_blocks, in_sheet = first.maps[source]
    ws.label(row, LEFT, book.texts("gradcam", "pooled", sheet=in_sheet))
    blocks = book.blocks(ws, row + 1, values, [b.label for b in in_blocks])

    def formula(c, i, j):
        index = (c * Ho + i) * Wo + j  # flatten's (C, H, W) order
        return f"=SUMPRODUCT({on(g.sheet, g.weight_row(index, dense.units))},{upstream.data})"

    tensor(ws, blocks, values, formula, style.DIVERGING)
    return blocks, blocks[-1].top + Ho + 1


def weight_row(book: Book, ws, cam, flat_blocks, row: int) -> tuple[list, int]:
    """a_k: the sum of map k's gradient over the pooled map (the same as over A_k) / A's cells;
    each two cells wide, for the digits of a small number. Returns their cells."""
    C, H, W = cam.gradient.shape
    ws.label(row, LEFT, book.texts("gradcam", "weights", cells=H * W))
    small = float(abs(cam.weights).max()) < 0.01
    look = style.key("heading", "0.00E+00" if small else "0.0000")  # two cells: room for the digits
    cells = []
    for k, block in enumerate(flat_blocks):
        col = LEFT + 2 * k
        ws.label(row + 1, col, block.label)
        ws.formula(row + 2, col, f"=SUM({block.data})/{H * W}", cam.weights[k], look)
        ws.merges.append(area(row + 2, col, row + 2, col + 1))
        cells.append(a1(row + 2, col))
    ws.scale(cells, style.DIVERGING)
    return cells, row + 4


def cam_map(book: Book, ws, cam, weights: list, a_blocks, a_sheet: str, row: int):
    """max(0, sum_k a_k A_k) at A's resolution."""
    H, W = cam.cam.shape
    ws.label(row, LEFT, book.texts("gradcam", "map", sheet=a_sheet))
    blocks = book.blocks(ws, row + 1, cam.cam[None], ["gradcam"])

    def formula(c, i, j):
        terms = "+".join(f"{weights[k]}*{block.address(i, j)}" for k, block in enumerate(a_blocks))
        return f"=MAX(0,{terms})"

    tensor(ws, blocks, cam.cam[None], formula, style.SEQUENTIAL_SCALE, fmt=map_format(cam.cam))
    book.name(names.GRADCAM, ws, blocks[0].data)
    return blocks, blocks[0].top + H + 1


def heat_map(book: Book, ws, cam, cam_block: Block, heat: Block, photo: Block, first: PassSheets):
    """The map at the photo's size, each pixel the mean of the cells that can see it, and beneath
    it the photo in grey as the network sees it (the grey square included)."""
    model = book.model
    size = model.input_size
    layers = upsample_layers(model)
    H, W = cam.cam.shape
    rows = [covering(layers, y, H) for y in range(size)]
    cols = [covering(layers, x, W) for x in range(size)]

    def upsampled(c, y, x):
        r, k = rows[y], cols[x]
        if not (r and k):  # no receptive field reaches this pixel
            return None
        return f"=AVERAGE({cam_block.window(r.start, k.start, len(r), len(k))})"

    tensor(ws, [heat], cam.image[None], upsampled, style.SEQUENTIAL_SCALE, fmt=map_format(cam.image))
    book.name(names.GRADCAM_IMAGE, ws, heat.data)
    channels = channel_names(model.channels, True)
    input_blocks = first.maps["input"].blocks
    seen = grey(book.pixels)[None]  # (1, size, size): the covered photo

    def pixel(c, y, x):  # back from the scaled input to 0-255, then to grey
        levels = [f"({block.address(y, x)}*{names.std(name)}+{names.mean(name)})*255"
                  for block, name in zip(input_blocks, channels)]
        if len(levels) == 1:
            return f"={levels[0]}"
        return "=" + "+".join(f"{w}*{level}" for w, level in zip(LUMA, levels))

    white = brightest(model)
    tensor(ws, [photo], seen, pixel, style.channel_scale("grey", white), fmt="0")


def map_format(values) -> str:
    """A map's number format, one digit narrower than a tensor's: "0.0000" does not fit the cells
    of a map as wide as the photo, and the colours carry the small differences."""
    fmt = style.number_format(values)
    return "0.000" if fmt == "0.0000" else fmt
