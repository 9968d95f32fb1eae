"""The Zoom sheets: one conv neuron taken apart, live, and the receptive field it highlights.

The receptive-field arithmetic is held against a brute-force reference computed by the engine;
the sheets are recalculated by LibreOffice (and once by Gnumeric) with the default choice and
after a student types another one, and compared with values computed here from the engine's
tensors."""

import re

import numpy as np
import openpyxl
import pytest
from gnumeric import recalculate
from helpers import config, default_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libreoffice import compare, convert
from openpyxl.utils.cell import range_boundaries
from strategies import models
from test_writer import sheet_part

from cnnsheet.fields import receptive_field, receptive_field_size
from cnnsheet.layers import Conv
from cnnsheet.layout import COLUMNS
from cnnsheet.model import Model
from cnnsheet.sheets.choice import CHOOSE_LIMIT
from cnnsheet.sheets.overview import TABLE
from cnnsheet.workbook import build_walkthrough


def influence(model: Model, index: int, out_row: int, out_col: int) -> np.ndarray:
    """Brute force: which input pixels change output (filter 1, out_row, out_col) of layer
    `index`. With every weight 1, every bias 0 and a black input, a single pixel set to 1 sends a
    positive value along every path it has (ReLUs pass it, a max pool picks it): the output moves
    exactly when the pixel is connected to it."""
    for name, array in model.params().items():
        array[...] = 0.0 if name.endswith("bias") else 1.0
    size = model.input_size
    batch = np.zeros((size * size, model.channels, size, size))
    batch[np.arange(size * size), 0, np.arange(size * size) // size, np.arange(size * size) % size] = 1
    out = model.forward(batch).tensors[model.layers[index].name]  # (N, F, Ho, Wo)
    return (out[:, 0, out_row, out_col] != 0).reshape(size, size)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(models(), st.data())
def test_the_receptive_field_is_every_pixel_that_can_move_the_neuron(model, data):
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, Conv)]
    index = data.draw(st.sampled_from(convs))
    _, Ho, Wo = model.shapes[index + 1]
    row, col = data.draw(st.integers(0, Ho - 1)), data.draw(st.integers(0, Wo - 1))
    sizes = [shape[1] for shape in model.shapes[:index + 1]]
    rows = receptive_field(model.layers[:index + 1], sizes, row)
    cols = receptive_field(model.layers[:index + 1], sizes, col)
    expected = np.zeros((model.input_size, model.input_size), dtype=bool)
    expected[np.ix_(sorted(rows), sorted(cols))] = True
    np.testing.assert_array_equal(influence(model, index, row, col), expected)


@pytest.mark.parametrize("blocks, size, jump", [
    ([{"filters": 1, "kernel": 3}], 3, 1),
    ([{"filters": 1, "kernel": 3, "dilation": 2}], 5, 1),
    ([{"filters": 1, "kernel": 3, "stride": 2}, {"filters": 1, "kernel": 3}], 7, 2),
    ([{"filters": 1, "kernel": 5, "pool": 2}, {"filters": 1, "kernel": 3}], 10, 2),  # 5, 6, 6+2x2
    ([{"filters": 1, "kernel": 3, "pool": 2}, {"filters": 1, "kernel": 3, "pool": 2}], 8, 2),  # 3, 4, 4+2x2
])
def test_receptive_field_size_and_jump(blocks, size, jump):
    model = Model(config(32, blocks=blocks))
    convs = [layer for layer in model.layers if isinstance(layer, Conv)]
    last = model.layers.index(convs[-1])
    assert receptive_field_size(model.layers[:last + 1]) == (size, jump)


# ---- the sheets, recalculated ------------------------------------------------------------------
def cell_of(walkthrough, name):
    """(sheet, row, col) of the top-left cell a defined name points at."""
    sheet, ref = walkthrough.names[name].rsplit("!", 1)
    left, top, _, _ = range_boundaries(ref.replace("$", ""))
    return sheet.strip("'"), top, left


def by_hand(model: Model, pixels, number: int, choice):
    """What Zoom<number> must show for a 0-based (filter, row, col), from the engine's tensors:
    the products (C, k, k), the total, and the photo's rows and columns that can reach it."""
    trace = model.predict(pixels)
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, Conv)]
    index = convs[number - 1]
    layer = model.layers[index]
    x = trace.tensors[list(trace.tensors)[index]][0]  # what the conv reads: (C, H, W)
    f, i, j = choice
    s, p, d, k = layer.stride, layer.padding, layer.dilation, layer.kernel
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    products = np.array([[[xp[c, i * s + a * d, j * s + b * d] * layer.weight[f, c, a, b]
                           for b in range(k)] for a in range(k)] for c in range(layer.in_channels)])
    total = trace.tensors[layer.name][0][f, i, j]
    np.testing.assert_allclose(products.sum() + layer.bias[f], total, rtol=1e-12, atol=1e-12)
    sizes = [shape[1] for shape in model.shapes[:index + 1]]
    field = (receptive_field(model.layers[:index + 1], sizes, i),
             receptive_field(model.layers[:index + 1], sizes, j))
    return products, total, field


def check_by_hand(walkthrough, recalculated, model, pixels, prefix, choice):
    """The named products, the value and the field flags of a recalculated file, against by_hand;
    for a pool's choice, its maximum. Returns how many products (or maxima) were checked."""
    if prefix.startswith("pool"):
        return check_pool_by_hand(walkthrough, recalculated, model, pixels, prefix, choice)
    number = int(prefix.removeprefix("zoom"))
    products, total, (rows, cols) = by_hand(model, pixels, number, choice)
    values = openpyxl.load_workbook(recalculated, data_only=True)
    sheet, top, left = cell_of(walkthrough, f"zoom{number}_products")
    C, k, _ = products.shape
    # one band of rows per channel, its k rows of products level with it: the rectangle is
    # (C - 1) bands and k rows tall, the rows between bands empty
    _, first_row, _, last_row = range_boundaries(
        walkthrough.names[f"zoom{number}_products"].rsplit("!", 1)[1].replace("$", ""))
    height = last_row - first_row + 1
    band = (height - k) // (C - 1) if C > 1 else 0
    assert height == (C - 1) * band + k
    got = np.array([[[values[sheet].cell(top + c * band + a, left + b).value for b in range(k)]
                     for a in range(k)] for c in range(C)], dtype=float)
    between = [values[sheet].cell(top + c * band + a, left + b).value
               for c in range(C - 1) for a in range(k, band) for b in range(k)]
    assert between == [None] * len(between)  # nothing else is summed
    np.testing.assert_allclose(got, products, rtol=1e-9, atol=1e-12)
    sheet, row, col = cell_of(walkthrough, f"zoom{number}_value")
    assert values[sheet].cell(row, col).value == pytest.approx(total, rel=1e-9, abs=1e-12)
    for name, wanted in (("rows", rows), ("cols", cols)):
        sheet, row, col = cell_of(walkthrough, f"zoom{number}_field_{name}")
        flags = [values[sheet].cell(row + y, col).value for y in range(model.input_size)]
        assert {y for y, flag in enumerate(flags) if flag == 1} == wanted
    return C * k * k


def check_pool_by_hand(walkthrough, recalculated, model, pixels, prefix, choice):
    trace = model.predict(pixels)
    pools = [layer for layer in model.layers if layer.kind == "maxpool"]
    layer = pools[int(prefix.removeprefix("pool")) - 1]
    f, i, j = choice
    x = trace.tensors[list(trace.tensors)[model.layers.index(layer)]][0]  # what the pool reads
    q, t = layer.size, layer.stride
    wanted = x[f, i * t:i * t + q, j * t:j * t + q].max()
    assert wanted == trace.tensors[layer.name][0][f, i, j]
    values = openpyxl.load_workbook(recalculated, data_only=True)
    sheet, row, col = cell_of(walkthrough, f"{prefix}_max")
    assert values[sheet].cell(row, col).value == pytest.approx(wanted, rel=1e-9, abs=1e-12)
    return 1


def choose(walkthrough, path, edited, choices: dict):
    """Type 1-based choices into the three yellow cells of each Zoom sheet, as a student would."""
    book = openpyxl.load_workbook(path)
    for prefix, (f, i, j) in choices.items():
        for key, value in (("filter", f), ("row", i), ("col", j)):
            sheet, row, col = cell_of(walkthrough, f"{prefix}_{key}")
            book[sheet].cell(row, col).value = value + 1
    book.save(edited)


def random_choices(model, rng) -> dict:
    choices, counts = {}, {"conv": 0, "maxpool": 0}
    for index, layer in enumerate(model.layers):
        if layer.kind in counts:
            counts[layer.kind] += 1
            F, Ho, Wo = model.shapes[index + 1]
            prefix = ("zoom" if layer.kind == "conv" else "pool") + str(counts[layer.kind])
            choices[prefix] = (int(rng.integers(F)), int(rng.integers(Ho)), int(rng.integers(Wo)))
    return choices


@st.composite
def cases(draw):
    model = draw(models(sizes=(5, 16)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    model.init(int(rng.integers(1000)))
    for array in model.params().values():
        array += rng.normal(scale=0.2, size=array.shape)
    pixels = rng.integers(0, 256, size=(model.input_size, model.input_size, 3)).astype(np.uint8)
    return model, pixels, random_choices(model, rng)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(cases(), min_size=4, max_size=4))
def test_zoom_sheets_follow_any_choice_in_libreoffice(tmp_path_factory, calc_profile, batch):
    """Random networks (stride, padding, dilation, pools, one to three blocks, grey or colour):
    every cell of every sheet with the default choice, then with random choices typed in."""
    folder = tmp_path_factory.mktemp("zoom")
    files = []  # (original, edited, walkthrough, expected after the edit, model, pixels, choices)
    for number, (model, pixels, choices) in enumerate(batch):
        walkthrough = build_walkthrough(model, pixels)
        original, edited = folder / f"case{number}.xlsx", folder / f"case{number}-edited.xlsx"
        walkthrough.save(original)
        choose(walkthrough, original, edited, choices)
        after = build_walkthrough(model, pixels, zoom_choices=choices).expected
        files.append((original, edited, walkthrough, after, model, pixels, choices))
    paths = [path for entry in files for path in entry[:2]]
    recalculated = iter(convert(paths, folder / "calc", calc_profile))
    for original, edited, walkthrough, after, model, pixels, choices in files:
        compare(original, next(recalculated), walkthrough.expected)
        edited_values = next(recalculated)
        zoom_cells = {key: value for key, value in after.items() if key[0].startswith("Zoom")}
        assert zoom_cells and compare(edited, edited_values, after) >= len(zoom_cells)
        for prefix, choice in choices.items():
            check_by_hand(walkthrough, edited_values, model, pixels, prefix, choice)


def hard_model() -> Model:
    """Grey input, stride 2 with padding and dilation 2, an overlapping pool, then a second
    block whose receptive field goes through all of it."""
    return Model(config(13, channels=1, classes=("a", "b", "c"), blocks=[
        {"filters": 2, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "pool": 2, "pool_stride": 1},
        {"filters": 3, "kernel": 2, "stride": 1, "padding": 1, "dilation": 1},
    ])).init(3)


def test_a_hard_case_in_libreoffice_and_gnumeric(tmp_path, calc_profile):
    model = hard_model()
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(13, 13, 3)).astype(np.uint8)
    walkthrough = build_walkthrough(model, pixels, with_backward=True)
    original, edited = tmp_path / "hard.xlsx", tmp_path / "hard-edited.xlsx"
    walkthrough.save(original)
    # at the edges, where the windows hang over the zero padding
    choices = {"zoom1": (1, 0, 3), "zoom2": (2, 4, 0), "pool1": (1, 4, 2)}
    choose(walkthrough, original, edited, choices)
    after = build_walkthrough(model, pixels, with_backward=True, zoom_choices=choices).expected
    calc = convert([original, edited], tmp_path / "calc", calc_profile)
    gnumeric = [recalculate(path, tmp_path / f"{path.stem}-gnumeric.xlsx") for path in (original, edited)]
    for values in (calc[0], gnumeric[0]):
        compare(original, values, walkthrough.expected)
    for values in (calc[1], gnumeric[1]):
        compare(edited, values, after)
        assert sum(check_by_hand(walkthrough, values, model, pixels, prefix, choice)
                   for prefix, choice in choices.items()) == 1 * 3 * 3 + 2 * 2 * 2 + 1


def test_the_default_choice_is_the_strongest_cell_of_filter_one():
    model, pixels = default_case()
    walkthrough = build_walkthrough(model, pixels)
    out = model.predict(pixels).tensors["conv1"][0][0]
    i, j = np.unravel_index(np.argmax(out), out.shape)
    plan = walkthrough.plan
    values = [plan[sheet].cells[row, col][1] for sheet, row, col in
              (cell_of(walkthrough, f"zoom1_{key}") for key in ("filter", "row", "col"))]
    assert values == [1, i + 1, j + 1]
    sheet, top, left = cell_of(walkthrough, "zoom1_products")
    # the R, G and B bands one under another, 5 rows of 5 products each, a band of 7 rows apart
    assert walkthrough.names["zoom1_products"].endswith(f"$T${top + 2 * 7 + 4}")
    assert walkthrough.expected[cell_of(walkthrough, "zoom1_value")] == pytest.approx(out[i, j])
    assert walkthrough.sheetnames.index("Zoom1") == walkthrough.sheetnames.index("Conv1") + 1


def test_the_choice_cells_refuse_anything_but_whole_numbers_in_range(tmp_path):
    model = hard_model()
    walkthrough = build_walkthrough(model, np.zeros((13, 13, 3), dtype=np.uint8))
    path = tmp_path / "w.xlsx"
    walkthrough.save(path)
    zoom = sheet_part(path, "Zoom2")
    found = re.findall(r"(<dataValidation [^>]*>)\s*<formula1>(\d+)</formula1>\s*<formula2>(\d+)</formula2>",
                       zoom)
    F, Ho, Wo = model.shapes[4]  # the output of conv2, the fourth layer
    assert [(low, high) for _, low, high in found] == [("1", str(F)), ("1", str(Ho)), ("1", str(Wo))]
    for tag, _, _ in found:
        assert 'type="whole"' in tag and 'operator="between"' in tag and 'showErrorMessage="1"' in tag
        assert 'errorStyle="stop"' in tag or "errorStyle" not in tag


def test_highlight_rules_follow_the_choice_names_and_share_the_colour_scales_ranges(tmp_path):
    """On the sheet the layer reads, its Conv sheet, the ReLU and pool after it, and the Image
    sheet, a formula rule names the choice cells; where the cells have a colour scale the rule
    sits in the same conditional format (LibreOffice draws only the first of two that overlap).
    The renders of the highlights before and after a change were looked at by eye."""
    model = hard_model()
    walkthrough = build_walkthrough(model, np.zeros((13, 13, 3), dtype=np.uint8))
    path = tmp_path / "w.xlsx"
    walkthrough.save(path)
    where = {"Input": ["zoom1_row", "zoom1_col"], "Conv1": ["zoom1_filter", "zoom1_row"],
             "ReLU1": ["zoom1_filter"], "Pool1": ["zoom1_filter", "zoom2_row", "zoom2_col"],
             "Conv2": ["zoom2_filter"], "ReLU2": ["zoom2_filter"],
             "Image": ["zoom1_field_rows", "zoom2_field_cols"]}
    for sheet, names in where.items():
        formats = re.findall(r"<conditionalFormatting .*?</conditionalFormatting>", sheet_part(path, sheet),
                             re.S)
        rules = " ".join(f for f in formats if 'type="expression"' in f)
        for name in names:
            assert re.search(rf"<formula>[^<]*\b{name}\b", rules), (sheet, name)
        alone = [f for f in formats if 'type="expression"' in f and "colorScale" not in f]
        assert not alone or sheet in ("Input", "Pool1")  # only the zero frames a conv reads


def test_the_overview_gives_each_conv_and_pool_its_receptive_field_and_jump():
    model = hard_model()
    plan = build_walkthrough(model, np.zeros((13, 13, 3), dtype=np.uint8)).plan
    overview = plan["Overview"]
    size_col, jump_col = TABLE["table_field"][0], TABLE["table_jump"][0]
    rows = {overview.cells[row, 1][1]: row for row, col in overview.cells
            if col == 1 and (row, size_col) in overview.cells}
    for sheet, last in (("Conv1", 1), ("Pool1", 3), ("Conv2", 4)):
        size, jump = receptive_field_size(model.layers[:last])
        assert [overview.cells[rows[sheet], col][1] for col in (size_col, jump_col)] == [size, jump], sheet
    conv2 = [overview.cells[rows["Conv2"], col][1] for col in (size_col, jump_col)]
    assert conv2 == [5 + (2 - 1) * 2 + (2 - 1) * 2, 2]  # conv1 spans 5, then pool1 and conv2
    size, jump = COLUMNS[size_col], COLUMNS[jump_col]
    assert overview.cells[rows["Conv2"], size_col][0] == f"={size}{rows['Pool1']}+(2-1)*{jump}{rows['Pool1']}"



def test_many_filters_are_picked_by_one_index_into_the_grid(tmp_path, calc_profile):
    """Past CHOOSE_LIMIT filters, CHOOSE would grow past Excel's limits: one INDEX into the
    whole grid of maps (or kernels, or biases), its offset computed from the filter's number.
    Checked in LibreOffice and Gnumeric with a choice in the last row of maps, after an edit."""
    model = Model(config(6, channels=1, blocks=[{"filters": CHOOSE_LIMIT + 3, "kernel": 2, "pool": 2}]))
    model.init(1)
    pixels = np.random.default_rng(2).integers(0, 256, size=(6, 6, 3)).astype(np.uint8)
    walkthrough = build_walkthrough(model, pixels)
    formula = walkthrough.plan["Zoom1"].cells[cell_of(walkthrough, "zoom1_value")[1] + 1, 3][0]
    assert "CHOOSE" not in formula and formula.startswith("=INDEX(Conv1!")
    original, edited = tmp_path / "many.xlsx", tmp_path / "many-edited.xlsx"
    walkthrough.save(original)
    choices = {"zoom1": (CHOOSE_LIMIT + 1, 4, 2), "pool1": (CHOOSE_LIMIT + 2, 1, 0)}
    choose(walkthrough, original, edited, choices)
    after = build_walkthrough(model, pixels, zoom_choices=choices).expected
    calc = convert([original, edited], tmp_path / "calc", calc_profile)
    compare(original, calc[0], walkthrough.expected)
    compare(edited, calc[1], after)
    compare(edited, recalculate(edited, tmp_path / "many-gnumeric.xlsx"), after)
    for prefix, choice in choices.items():
        check_by_hand(walkthrough, calc[1], model, pixels, prefix, choice)
