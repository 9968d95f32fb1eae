"""The Overview: links to every sheet, and the network at a glance, whose small heat maps read the
real sheets in the order of the pass, with their sheets' colour scales."""

import re

import numpy as np
from helpers import default_case
from test_texts import pixels, two_blocks

from cnnsheet.layout import COLUMNS
from cnnsheet.texts import Texts
from cnnsheet.workbook import build_walkthrough

REFERENCE = re.compile(r"^=([A-Za-z0-9_]+)!([A-Z]+)(\d+)$")


def thumbnails(plan):
    """(row, col) -> (sheet, row, col) read, for every heat-map cell of the Overview."""
    read = {}
    for (row, col), (formula, _, look) in plan["Overview"].cells.items():
        if look == ("thumb", ";;;"):
            sheet, letters, number = REFERENCE.match(formula).groups()
            read[row, col] = (sheet, int(number), COLUMNS.index(letters))
    return read


def test_the_overview_links_to_every_sheet_new_ones_included():
    model, photo = default_case()
    plan = build_walkthrough(model, photo, with_backward=True).plan
    linked = {target for _, _, target, _ in plan["Overview"].links}
    assert linked == set(plan.sheetnames) - {"Overview"}
    assert {"NewFilters1", "NewConv1", "NewSoftmax", "Mask1", "Rotated1"} <= linked


def test_a_maps_link_opens_its_sheet_at_that_maps_label():
    model, photo = default_case()
    plan = build_walkthrough(model, photo).plan
    overview = plan["Overview"]
    opened = {}
    for row, col, target, cell in overview.links:
        letters, number = re.match(r"([A-Z]+)(\d+)$", cell).groups()
        where = (int(number), COLUMNS.index(letters))
        opened[overview.cells[row, col][1], target] = plan[target].cells.get(where)
    conv_labels = [key for key in opened if key[1] == "Conv1" and key[0] != "Conv1"]
    assert len(conv_labels) == model.layers[0].weight.shape[0] >= 2
    for label, target in conv_labels:  # each filter's link lands on that filter's own label
        assert opened[label, target][1] == label


def test_the_heat_maps_read_every_map_of_the_pass_in_order_with_the_engines_values():
    for model, photo in (default_case(), (two_blocks(), pixels(20))):
        plan = build_walkthrough(model, photo, Texts("zh"), with_backward=True).plan
        read = thumbnails(plan)
        assert read
        order = []
        for (row, col), (sheet, r, c) in sorted(read.items()):
            formula, value, _ = plan["Overview"].cells[row, col]
            source = plan[sheet].cells[r, c]
            assert value == source[1] or (source[0] is None and value == 0)
            if sheet not in order:
                order.append(sheet)
        conv = [s for s in plan.sheetnames if re.match(r"^(Conv|ReLU|Pool)\d$", s)]
        dense = [s for s in plan.sheetnames if re.match(r"^Dense\d$", s)]
        assert order == ["Input", *conv, *dense, "Softmax"]
        # every value of a map that is no larger than 32 x 32 is shown
        assert {(r, c) for s, r, c in read.values() if s == "Conv1"} == {
            where for where, cell in plan["Conv1"].cells.items() if cell[2][0] in ("number", "zero")}
        for areas, scale in plan["Overview"].scales:
            first = read[tuple(int(n) if n.isdigit() else COLUMNS.index(n)
                               for n in reversed(re.match(r"([A-Z]+)(\d+)", areas[0]).groups()))]
            sheet_kinds = {s.kind for _, s in plan[first[0]].scales}
            assert scale.kind in sheet_kinds


def test_a_large_map_is_shown_with_every_kth_value():
    from cnnsheet import shapes
    from cnnsheet.model import Model
    from cnnsheet.train import Architecture
    model = Model(Architecture(size=70, filters=2, pool=2).config(shapes.CLASSES)).init(0)
    plan = build_walkthrough(model, np.zeros((70, 70, 3), np.uint8)).plan
    shown = {(r, c) for s, r, c in thumbnails(plan).values() if s == "Input"}
    assert 3 * 24 * 24 == len(shown)  # 70 / ceil(70 / 32) -> 24 per side
