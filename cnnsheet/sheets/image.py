"""The photo as numbers: its pixels (Image), what the network sees (Input), and, at the end of
the saliency pass, the gradient of a class score with respect to each pixel (sImage)."""

from __future__ import annotations

from cnnsheet import names, style
from cnnsheet.fields import receptive_field_size
from cnnsheet.layout import LEFT, Vector, a1, area
from cnnsheet.model import LUMA
from cnnsheet.plan import Scale, WholeNumbers
from cnnsheet.sheets.common import Book, Maps, OverviewRow, channel_names, square_cells, tensor
from cnnsheet.untrained import brightest, reads_levels


def image_sheet(book: Book) -> tuple[Maps, tuple[Vector, Vector], OverviewRow]:
    """The photo's pixels, uncovered, with the grey square's cells above them; returns the pixels,
    the square's row and column flags, and the Overview's row."""
    size = book.model.input_size
    levels = reads_levels(book.model)  # --tiny: grey levels 0-9
    keys = ("body_levels" if levels else "body", "body_occlusion",
            "try_drawing" if book.drawings else "try_photo")
    white = brightest(book.model)
    channels = book.texts("image", "channels_levels" if levels else "channels")
    ws, top = book.sheet("Image", "image", keys, colours=(style.channel_scale("R", white),), size=size,
                         channels=channels)
    flags = occlusion_panel(book, ws, top)
    pixels = book.photo.transpose(2, 0, 1)  # (3, H, W): the photo uncovered
    blocks = book.blocks(ws, flags[1].top + 3, pixels, ["R", "G", "B"])
    look = style.key("level" if levels else "pixel", "0")
    for c, (channel, block) in enumerate(zip("RGB", blocks)):
        for i in range(size):
            for j in range(size):
                ws.number(*block.cell(i, j), int(pixels[c, i, j]), look)
        # a tiny network's grids are one grey picture three times: painted grey, as it looks
        ws.scale(block.data, style.channel_scale("grey" if reads_levels(book.model) else channel, white))
        book.name(names.image(channel), ws, block.data)
    ws.whole_numbers.append(WholeNumbers(tuple(block.data for block in blocks), 0, 255,
                                         book.texts("labels", "not_a_pixel_title"),
                                         book.texts("labels", "not_a_pixel")))
    square_cells(ws, top, blocks[-1].top + size, blocks[-1].left + size, style.PIXEL_CELL)
    for block in blocks:  # the square's outline: the cells a covered row and column meet at
        above, before = block.top - 1, block.left - 1
        ws.highlight((block.data,), f"AND(INDEX({names.occlusion('rows')},ROW()-{above}),"
                     f"INDEX({names.occlusion('cols')},COLUMN()-{before}))", "cover")
    row = OverviewRow(ws.title, book.texts("overview", "image_row"), (3, size, size))
    return Maps(blocks, ws.title), flags, row


def occlusion_panel(book: Book, ws, top: int) -> tuple[Vector, Vector]:
    """The four cells of the grey square (occlusion_row, _col, _size, _value) and, below them,
    the 0/1 flags of the rows and of the columns it covers, which the Input sheet's formulas
    read: a covered pixel is one whose row flag and column flag are both 1. Returns the flags
    (rows, columns)."""
    size, occlusion = book.model.input_size, book.occlusion
    white = brightest(book.model)  # 255, or 9 for a tiny network's grey levels
    value_col = LEFT + 14  # right of the labels, which run over the narrow pixel columns
    limits = {"row": (1, size), "col": (1, size), "size": (0, size), "value": (0, white)}
    for offset, key in enumerate(names.OCCLUSION_KEYS):
        row = top + offset
        ws.label(row, LEFT, book.texts("labels", f"occlusion_{key}", white=white))
        ws.number(row, value_col, getattr(occlusion, key), style.key("input", "0"))
        # three pixel columns wide: one is too narrow for "128" and shows ###
        ws.merges.append(area(row, value_col, row, value_col + 2))
        book.name(names.occlusion(key), ws, a1(row, value_col))
        low, high = limits[key]
        ws.whole_numbers.append(WholeNumbers((a1(row, value_col),), low, high,
                                             book.texts("labels", "not_a_whole_title"),
                                             book.texts("labels", "not_a_whole", low=low, high=high)))
    flags = []
    look = style.key("value", "0")
    for number, (key, start) in enumerate((("rows", "row"), ("cols", "col"))):
        row = top + 5 + 2 * number
        ws.label(row, LEFT, book.texts("labels", f"occlusion_{key}"))
        first, side = names.occlusion(start), names.occlusion("size")
        covered = occlusion.covered(getattr(occlusion, start), size)
        for k in range(size):
            ws.formula(row + 1, LEFT + k, f"=IF(AND({k + 1}>={first},{k + 1}<{first}+{side}),1,0)",
                       int(covered[k]), look)
        flags.append(Vector(ws.title, row + 1, LEFT, size, across=True))
        book.name(names.occlusion(key), ws, flags[-1].data)
    return tuple(flags)


def input_sheet(book: Book, image_maps: Maps, flags: tuple[Vector, Vector]) -> tuple[Maps, OverviewRow]:
    model = book.model
    channels = channel_names(model.channels, True)
    border = book.border_for(0)
    keys = ("body_levels" if reads_levels(model) else "body_untrained" if book.untrained else "body",)
    keys += ("body_padding",) if border else ()
    ws, top = book.sheet("Input", "input", keys, colours=(input_scale(model),),
                         width=book.texts.count("cells", border))
    # a small table of the normalisation constants, named mean_R, std_R, ...
    ws.label(top, LEFT, book.texts("labels", "mean"))
    ws.label(top + 1, LEFT, book.texts("labels", "std"))
    look = style.key("number", "0.0000")
    # 0.0000 would show 1/255 as 0.0039 (or #### in a pixel-wide column): a fraction says it
    mean_look, std_look = ((style.key("number", "0"), style.key("number", "?/???")) if reads_levels(model)
                           else (look, look))
    for c, channel in enumerate(channels):
        col = LEFT + 1 + 2 * c  # two tensor columns each: one is too narrow for -0.4850 and shows ###
        ws.label(top - 1, col, channel)
        ws.number(top, col, model.mean[c], mean_look)
        ws.number(top + 1, col, model.std[c], std_look)
        ws.merges += [area(top, col, top, col + 1), area(top + 1, col, top + 1, col + 1)]
        book.name(names.mean(channel), ws, a1(top, col))
        book.name(names.std(channel), ws, a1(top + 1, col))
    values = book.trace.tensors["input"][0]
    blocks = book.blocks(ws, top + 3, values, channels, border)

    rows, cols = flags

    def formula(c, i, j):  # each pixel, or the square's grey where its row and column are covered
        covered = f"{rows.address(i)}*{cols.address(j)}"
        pixels = [f"IF({covered},{names.occlusion('value')},{block.address(i, j)})"
                  for block in image_maps.blocks]
        return model.input_formula(c, pixels, names.mean(channels[c]), names.std(channels[c]))

    # a black pixel reads (0 - mean) / std: below zero whenever the mean is above it
    tensor(ws, blocks, values, formula, input_scale(model))
    return Maps(blocks, ws.title), OverviewRow(ws.title, book.texts("overview", "input_row"), values.shape,
                                               field=receptive_field_size([]))  # one pixel, one apart


def input_scale(model) -> Scale:
    return style.DIVERGING if (model.mean > 0).any() else style.SEQUENTIAL_SCALE


def pixel_gradients(book: Book, dinput_blocks, dinput_sheet, dpixels) -> tuple[Maps, OverviewRow]:
    """From the scaled input back to the 0-255 pixels: divide by 255 x std (and by the luma
    weights when the network sees grey)."""
    channels = channel_names(book.model.channels, True)
    ws, top = book.gradient_sheet("s", "Image", "simage")  # numbered on in the saliency pass
    blocks = book.blocks(ws, top, dpixels, ["R", "G", "B"])

    def formula(c, i, j):
        if book.model.channels == 1:
            return f"={LUMA[c]}*{dinput_blocks[0].address(i, j)}/(255*{names.std(channels[0])})"
        return f"={dinput_blocks[c].address(i, j)}/(255*{names.std(channels[c])})"

    tensor(ws, blocks, dpixels, formula, style.DIVERGING)
    return Maps(blocks, ws.title), OverviewRow(ws.title, "pixels", dpixels.shape)
