"""The writer's parts held against openpyxl's: tests/openpyxl_reference.py writes each workbook the
way the writer did when openpyxl built everything but the cells, and openpyxl reads both back.

Every sheet's conditional formats (with their differential formats), data validations, links,
view, print settings, merged cells, sizes and cells (value, formula, number format, font, fill,
border, alignment), the defined names, the chart and the pictures must read the same, and every
part must hold openpyxl's elements in openpyxl's order. A meant difference: styles.xml holds no copy
of the default palette (openpyxl writes one). The reference takes the cells, merged cells, column
widths and the dimension from the writer itself (as the old writer did), so for those the check is
that openpyxl reads them back with the styles and sizes the plan asked for.
"""

import gc
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from gnumeric import recalculate
from helpers import default_case, small_model
from libreoffice import convert
from openpyxl.xml.functions import tostring
from openpyxl_reference import write_reference
from PIL import Image

from cnnsheet import shapes, writer
from cnnsheet.cli import main
from cnnsheet.errors import CnnsheetError
from cnnsheet.layout import area, bounds
from cnnsheet.model import Model
from cnnsheet.plan import (
    DropDown,
    Highlight,
    Picture,
    Scale,
    SheetPlan,
    WholeNumbers,
    WorkbookPlan,
    conditional_rules,
)
from cnnsheet.printing import PAGE_COUNT, THIS_PAGE
from cnnsheet.resources import default_photo_path
from cnnsheet.texts import Texts
from cnnsheet.train import Architecture
from cnnsheet.workbook import build_walkthrough

# part -> what the writer leaves out of openpyxl's: a copy of the default palette
LEFT_OUT = {"xl/styles.xml": rb"<colors>.*</colors>"}
MAX_SHOWN = 300  # characters of each value a difference shows


def _default():
    model, pixels = default_case()
    return build_walkthrough(model, pixels, photo=Image.open(default_photo_path()),
                             photo_name="drawn-triangle.jpg", with_backward=True)


def _two_blocks_untrained():
    """As `cnnsheet explain --blocks 2 --untrained` makes it."""
    model = Model(Architecture(blocks=2).config(shapes.CLASSES)).init(0)
    _, pixels = default_case()
    return build_walkthrough(model, pixels, with_backward=True, untrained=True)


def _chinese():
    model, pixels = default_case()
    return build_walkthrough(model, pixels, Texts("zh"), photo=Image.open(default_photo_path()),
                             with_backward=True)


def _tiny():
    """As `cnnsheet explain --tiny` makes it: grey levels 0-9 in a look and a colour scale of their own."""
    from cnnsheet import untrained

    pixels = untrained.tiny_pixels(Image.open(default_photo_path()))
    model = untrained.tiny(shapes.CLASSES, pixels, 0).model
    return build_walkthrough(model, pixels, photo=Image.open(default_photo_path()), with_backward=True,
                             untrained=True)


def _small():
    """Small enough to read back many times: every kind of part, in a few hundred cells; the Image
    sheet protected (its pixels unlocked) and the last sheet hidden, as no walkthrough has them."""
    model = small_model(size=8, hidden=(3,))
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    walkthrough = build_walkthrough(model, pixels, photo=Image.open(default_photo_path()), with_backward=True)
    walkthrough.plan["Image"].protected = True
    walkthrough.plan.sheets[-1].hidden = True
    # highlights that no walkthrough has: one on part of a colour scale's areas, one half outside
    conv = walkthrough.plan["Conv1"]
    top, left, bottom, right = bounds(conv.scales[0][0][0].split()[0])
    conv.highlight(area(top, left, top + 1, left + 1), "=TRUE", "chosen", 1)
    conv.highlight(area(bottom, right, bottom + 2, right + 2), "=ROW()>0", "field", 2)
    return walkthrough


def _hostile_texts():
    """Class names and a photo's name that the XML must escape and the sheets keep as text."""
    model = small_model(size=8, hidden=(3,), classes=('A & B <b>"x"', "=SUM(1,2)", "'猫' 🐱"))
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    return build_walkthrough(model, pixels, photo=Image.open(default_photo_path()),
                             photo_name="cat & <b>\"x\" 'y' =1 猫.jpg", with_backward=True)


CASES = {"default": _default, "two blocks untrained": _two_blocks_untrained, "zh": _chinese,
         "hostile texts": _hostile_texts, "small, protected and hidden": _small, "tiny": _tiny}


def written(walkthrough, folder: Path) -> tuple[Path, Path]:
    """The writer's file and openpyxl's reference, for one plan."""
    ours, reference = folder / "ours.xlsx", folder / "reference.xlsx"
    writer.save(walkthrough.plan, ours)
    write_reference(walkthrough.plan, reference)
    return ours, reference


# the three full-size workbooks take seconds each to write twice and read back
SLOW_CASES = {"default", "two blocks untrained", "zh"}


@pytest.fixture(scope="module", params=[pytest.param(name, marks=[pytest.mark.slow] * (name in SLOW_CASES))
                                        for name in CASES])
def pair(request, tmp_path_factory):
    return written(CASES[request.param](), tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    ours, reference = written(_small(), tmp_path_factory.mktemp("small"))
    return ours, describe(reference)


# ---- what openpyxl reads --------------------------------------------------------------------
def xml(item) -> str | None:
    """An openpyxl object as the XML it stands for (None stays None)."""
    return None if item is None else tostring(item.to_tree()).decode()


def rule(item, dxfs) -> tuple:
    """A conditional format rule with its differential format itself, not its index."""
    tree = item.to_tree()
    dxf_id = tree.attrib.pop("dxfId", None)
    dxf = dxfs[int(dxf_id)] if dxf_id is not None else None
    return tostring(tree).decode(), xml(dxf)


def look(cell, looks: dict) -> tuple:
    """A cell's value and how it shows (each look described once: `looks` keeps them by the
    cell's style indices)."""
    key = tuple(cell._style)
    if key not in looks:
        f = cell.font
        font = f.name, f.sz, f.b, f.color.rgb if f.color is not None else None, f.u, xml(f)
        looks[key] = (cell.number_format, font, xml(cell.fill), xml(cell.border), xml(cell.alignment),
                      xml(cell.protection))
    return cell.value, cell.data_type, looks[key]


def describe(path) -> dict:
    """(sheet or 'workbook', what) -> what openpyxl reads of it."""
    book = openpyxl.load_workbook(path)
    looks = {}
    dxfs = book._differential_styles.dxf
    found = {("workbook", "sheets"): book.sheetnames,
             ("workbook", "defined names"): {name: d.attr_text for name, d in book.defined_names.items()},
             ("workbook", "calculation"): xml(book.calculation)}
    for ws in book.worksheets:
        title = ws.title
        found[title, "conditional formats"] = [(str(cf.sqref), [rule(r, dxfs) for r in cf.rules])
                                              for cf in ws.conditional_formatting]
        found[title, "data validations"] = [xml(v) for v in ws.data_validations.dataValidation]
        found[title, "freeze panes"] = ws.freeze_panes
        found[title, "zoom"] = ws.sheet_view.zoomScale
        found[title, "view"] = xml(ws.views)
        found[title, "sheet format"] = xml(ws.sheet_format)
        found[title, "print area"] = ws.print_area
        found[title, "print titles"] = ws.print_title_rows, ws.print_title_cols
        found[title, "page breaks"] = xml(ws.row_breaks), xml(ws.col_breaks)
        found[title, "page setup"] = (ws.page_setup.orientation, ws.page_setup.scale,
                                      ws.sheet_properties.pageSetUpPr.fitToPage, xml(ws.page_setup),
                                      xml(ws.print_options), xml(ws.sheet_properties))
        found[title, "margins"] = xml(ws.page_margins)
        found[title, "protection"] = xml(ws.protection)
        found[title, "state"] = ws.sheet_state
        found[title, "header and footer"] = (ws.oddHeader.left.text, ws.oddHeader.right.text,
                                             ws.oddFooter.center.text, xml(ws.HeaderFooter))
        found[title, "merged cells"] = sorted(str(merged) for merged in ws.merged_cells.ranges)
        found[title, "column widths"] = {key: (d.min, d.max, d.width, d.customWidth)
                                         for key, d in ws.column_dimensions.items()}
        found[title, "row heights"] = {key: (d.height, d.customHeight)
                                       for key, d in ws.row_dimensions.items()}
        cells = ws._cells.values()  # the cells the file holds, not those openpyxl makes up on reading
        found[title, "cells"] = {cell.coordinate: look(cell, looks) for cell in cells}
        found[title, "links"] = {cell.coordinate: xml(cell.hyperlink) for cell in cells if cell.hyperlink}
        found[title, "charts"] = [(tostring(chart._write()).decode(), xml(chart.anchor))
                                  for chart in ws._charts]
        found[title, "pictures"] = [(xml(image.anchor), image._data()) for image in ws._images]
    return found


def differences(ours: dict, reference: dict) -> list[str]:
    """What reads differently, each 'sheet, what: ours != reference' (a few cells of a table)."""
    found = []
    for key in sorted(ours.keys() | reference.keys()):
        mine, theirs = ours.get(key), reference.get(key)
        if mine == theirs:
            continue
        if isinstance(mine, dict) and isinstance(theirs, dict):
            which = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            mine, theirs = ({k: d.get(k) for k in which[:3]} for d in (mine, theirs))
        found.append(f"{key}: {repr(mine)[:MAX_SHOWN]} != {repr(theirs)[:MAX_SHOWN]}")
    return found


def comparable(name: str, data: bytes) -> bytes:
    """A part as the comparisons below see it: without the cells (the same code writes them on both
    sides; what they hold is compared above) and without what the writer leaves out."""
    data = re.sub(rb"<sheetData>.*</sheetData>", b"<sheetData/>", data, flags=re.S)
    return re.sub(LEFT_OUT[name], b"", data, flags=re.S) if name in LEFT_OUT else data


def element_order(data: bytes) -> list[str]:
    """The tags of a part's elements in document order."""
    return [element.tag for element in ET.fromstring(data).iter()]


def xml_parts(ours: Path, reference: Path):
    """(name, our part, openpyxl's) of every XML part but the document's properties (name and
    time of writing) and the content types (compared as a set)."""
    with zipfile.ZipFile(ours) as mine, zipfile.ZipFile(reference) as theirs:
        assert sorted(mine.namelist()) == sorted(theirs.namelist())
        for name in mine.namelist():
            if name.endswith((".xml", ".rels")) and not name.startswith(("docProps/", "[Content_Types]")):
                yield name, comparable(name, mine.read(name)), comparable(name, theirs.read(name))


def content_types(path: Path) -> list:
    with zipfile.ZipFile(path) as archive:
        return sorted((entry.tag, sorted(entry.attrib.items()))
                      for entry in ET.fromstring(archive.read("[Content_Types].xml")))


# ---- the comparisons ------------------------------------------------------------------------
def test_openpyxl_reads_the_same_workbook_as_from_its_own_skeleton(pair):
    ours, reference = pair
    assert differences(describe(ours), describe(reference)) == []


def test_every_part_holds_openpyxls_elements_in_openpyxls_order(pair):
    compared = 0
    for name, mine, theirs in xml_parts(*pair):
        assert element_order(mine) == element_order(theirs), name
        compared += 1
    assert compared > 40  # the workbook, its styles and theme, every sheet, drawing and chart, the links


def test_every_part_is_openpyxls_xml_once_canonical(pair):
    """Elements, attributes and texts alike, once canonical (C14N 2.0: neither the order of the
    attributes nor where a namespace is declared counts); the content types alike in any order."""
    for name, mine, theirs in xml_parts(*pair):
        assert ET.canonicalize(mine.decode()) == ET.canonicalize(theirs.decode()), name
    assert content_types(pair[0]) == content_types(pair[1])


# ---- the comparisons can fail ---------------------------------------------------------------
# (part, text in the writer's file, what it becomes, the difference that must be seen)
CHANGES = [
    ("xl/worksheets/sheet2.xml", '<cfvo type="num" val="255"/>', "", "conditional formats"),
    ("xl/worksheets/sheet5.xml", '<cfvo type="num" val="0"/>', '<cfvo type="num" val="0.5"/>',
     "conditional formats"),
    ("xl/styles.xml", '<color rgb="00FF00FF"/></left>', '<color rgb="00FF00FE"/></left>',
     "conditional formats"),
    ("xl/worksheets/sheet2.xml", 'dxfId="0"', 'dxfId="1"', "conditional formats"),
    ("xl/worksheets/sheet1.xml", 'left="0.3"', 'left="0.31"', "margins"),
    ("xl/worksheets/sheet2.xml", 'errorStyle="stop"', 'errorStyle="warning"', "data validations"),
    ("xl/worksheets/sheet2.xml", 'showInputMessage="0"', 'showInputMessage="1"', "data validations"),
    ("xl/worksheets/sheet2.xml", "'Overview'!A1", "'Input'!A1", "links"),
    ("xl/worksheets/sheet2.xml", 'topLeftCell="A3"', 'topLeftCell="A4"', "freeze panes"),
    ("xl/worksheets/sheet2.xml", 'zoomScale="', 'zoomScale="1', "zoom"),
    ("xl/worksheets/sheet2.xml", 'scale="', 'scale="1', "page setup"),
    ("xl/worksheets/sheet2.xml", 'orientation="portrait"', 'orientation="landscape"', "page setup"),
    ("xl/worksheets/sheet2.xml", "&amp;R", "&amp;C", "header and footer"),
    ("xl/worksheets/sheet2.xml", 'width="', 'width="1', "column widths"),
    ("xl/worksheets/sheet2.xml", ' ht="', ' ht="1', "row heights"),
    ("xl/worksheets/sheet2.xml", 'defaultRowHeight="', 'defaultRowHeight="1', "sheet format"),
    ("xl/worksheets/sheet2.xml", "<mergeCell ", '<mergeCell ref="Z1:Z2"/><mergeCell ', "merged cells"),
    ("xl/worksheets/sheet2.xml", '<c r="A1" s="', '<c r="A1" s="0" was="', "cells"),
    ("xl/styles.xml", '<sz val="9"/>', '<sz val="8"/>', "cells"),
    ("xl/styles.xml", 'patternType="solid"', 'patternType="darkGray"', "cells"),
    ("xl/styles.xml", 'vertical="center"', 'vertical="top"', "cells"),
    ("xl/styles.xml", 'locked="0"', 'locked="1"', "cells"),
    ("xl/worksheets/sheet2.xml", 'formatCells="1"', 'formatCells="0"', "protection"),
    ("xl/worksheets/sheet2.xml", '<sheetProtection ', '<sheetProtection password="CC3D" ', "protection"),
    ("xl/workbook.xml", 'state="hidden"', 'state="visible"', "state"),
    ("xl/workbook.xml", "!$1:$2", "!$1:$3", "print titles"),
    ("xl/workbook.xml", "'Image'!$A$1", "'Image'!$B$1", "print area"),
    ("xl/workbook.xml", "<definedName ", '<definedName name="extra">Image!$A$1</definedName><definedName ',
     "defined names"),
    ("xl/charts/chart1.xml", "<v>0.", "<v>0.1", "charts"),
    ("xl/charts/chart1.xml", '<max val="1"/>', '<max val="2"/>', "charts"),
    ("xl/drawings/drawing2.xml", "<row>", "<row>1", "charts"),
    ("xl/drawings/drawing1.xml", 'cx="', 'cx="1', "pictures"),
    ("xl/media/image1.png", "IEND", "IENE", "pictures"),
]


def changed(path: Path, part: str, old: str, new: str, target: Path) -> Path:
    """A copy of the workbook with the first `old` of one part replaced by `new`."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name == part:
                assert old.encode() in data, f"{old!r} is not in {part}"
                data = data.replace(old.encode(), new.encode(), 1)
            out.writestr(name, data)
    return target


@pytest.mark.slow  # a second of reading back, 25 times
@pytest.mark.parametrize("part, old, new, what", CHANGES)
def test_the_comparison_sees_each_kind_of_change(small, tmp_path, part, old, new, what):
    ours, reference = small
    assert differences(describe(ours), reference) == []
    found = differences(describe(changed(ours, part, old, new, tmp_path / "changed.xlsx")), reference)
    assert any(what in difference for difference in found), found


def test_the_order_check_sees_elements_out_of_order(small):
    ours, _ = small
    with zipfile.ZipFile(ours) as archive:
        sheet = archive.read("xl/worksheets/sheet2.xml")
    hyperlinks = re.search(rb"<hyperlinks>.*</hyperlinks>", sheet)[0]
    swapped = sheet.replace(hyperlinks, b"").replace(b"<pageMargins", hyperlinks + b"<pageMargins", 1)
    moved = sheet.replace(hyperlinks, b"").replace(b"<dataValidations", hyperlinks + b"<dataValidations", 1)
    assert element_order(swapped) == element_order(sheet)  # the same place: no difference
    assert element_order(moved) != element_order(sheet)


# ---- what real plans do not hold ------------------------------------------------------------
@pytest.mark.parametrize("freeze", [None, "A1", "A3", "C1", "D14"])
def test_frozen_panes_as_openpyxl_writes_them(freeze):
    """Rows only, columns only, both, none."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.freeze_panes = freeze
    ws.sheet_view.zoomScale = 80
    plan = WorkbookPlan()
    sheet = plan.sheet("S")
    sheet.freeze, sheet.zoom = freeze, 80
    theirs = xml(ws.views).replace(' tabSelected="1"', "")  # with or without lxml: canonical
    assert ET.canonicalize(writer._sheet_view(sheet)) == ET.canonicalize(theirs)


HOSTILE = "A & B <c> \"d\" 'e' é 三角\ttab\nline"


def test_texts_reach_the_reader_unchanged(tmp_path):
    """Sheet names, validation texts, a chart's title and categories: escaped, never mangled."""
    plan = WorkbookPlan()
    title = "it's <&>"
    sheet = plan.sheet(title)
    sheet.text(1, 1, HOSTILE)
    sheet.text(2, 1, "=not a formula")
    sheet.drop_downs.append(DropDown("B2", "names", HOSTILE, HOSTILE))
    sheet.whole_numbers.append(WholeNumbers(("C3:D4",), 1, 9, HOSTILE, HOSTILE, prompt=HOSTILE))
    sheet.link(3, 1, "back", title)
    sheet.printing.area, sheet.printing.title_rows = "A1:D4", (1, 2)
    sheet.printing.header, sheet.printing.footer = HOSTILE, f"{{x}} {THIS_PAGE} & {PAGE_COUNT}"
    plan.name("names", title, "A1:A2")
    path = tmp_path / "texts.xlsx"
    writer.save(plan, path)
    ws = openpyxl.load_workbook(path)[title]
    assert [ws["A1"].value, ws["A2"].value, ws["A2"].data_type] == [HOSTILE, "=not a formula", "s"]
    drop_down, whole = ws.data_validations.dataValidation
    assert [drop_down.errorTitle, drop_down.error, whole.prompt, whole.promptTitle] == [HOSTILE] * 4
    assert ws["A3"].hyperlink.location == "'it''s <&>'!A1"
    assert ws.print_area == "'it''s <&>'!$A$1:$D$4"
    assert ws.oddHeader.left.text == HOSTILE.replace("&", "&&")
    assert ws.oddFooter.center.text == "{x} &P && &N"
    assert openpyxl.load_workbook(path).defined_names["names"].attr_text == "'it''s <&>'!$A$1:$A$2"


def test_gnumeric_keeps_the_charts_and_the_pictures(small, tmp_path):
    """Gnumeric drops a chart whose drawing declares its namespaces on the inner elements."""
    ours, _ = small
    with zipfile.ZipFile(recalculate(ours, tmp_path / "gnumeric.xlsx")) as archive:
        kept = [name for name in archive.namelist() if name.startswith(("xl/charts/", "xl/media/"))]
    assert sorted(kept) == ["xl/charts/chart1.xml", "xl/charts/chart2.xml", "xl/media/image1.png",
                            "xl/media/image2.png"]


def test_a_picture_must_be_a_png():
    with pytest.raises(ValueError, match="the picture at B2 is not a PNG"):
        writer._png_size(Picture(b"GIF89a" + bytes(30), "B2"))


EXPLAIN = """
import sys
from cnnsheet.cli import main
try:
    main(["explain", "-o", sys.argv[1]])
except SystemExit:
    pass
print(sorted(name for name in sys.modules if name.split(".")[0] == "openpyxl"))
"""


def test_explain_does_not_import_openpyxl(tmp_path):
    done = subprocess.run([sys.executable, "-c", EXPLAIN, str(tmp_path / "w.xlsx")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "w.xlsx").stat().st_size > 100_000



def test_explain_leaves_the_cycle_collector_as_it_found_it(tmp_path):
    """explain pauses it while the plan lives; a caller in the same process gets it back."""
    assert gc.isenabled()
    for arguments in (["explain", "-o", str(tmp_path / "w.xlsx")],
                      ["explain", "--untrained", "--model", "x"]):  # refused
        CliRunner().invoke(main, arguments)
        assert gc.isenabled(), arguments


def test_a_formula_longer_than_excel_takes_is_refused():
    sheet = WorkbookPlan().sheet("S")
    sheet.formula(1, 1, "=" + "1" * 8191, 1.0)  # 8,192 characters: Excel's longest
    for write in (lambda text: sheet.formula(1, 1, text, 1.0),
                  lambda text: sheet.formulas([((1, 1), text, 1.0)], ("number", "General"), None)):
        with pytest.raises(CnnsheetError, match="8,193 characters long; Excel allows 8,192"):
            write("=" + "1" * 8192)


@pytest.mark.slow
def test_calc_keeps_the_protection_the_unlocked_cells_and_the_hidden_sheet(small, tmp_path, calc_profile):
    """What Calc reads of a protected sheet and a hidden one, saved again: the pixels (a look that
    stays unlocked) take typing, the formulas and texts around them do not."""
    ours, _ = small
    [saved] = convert([ours], tmp_path / "calc", calc_profile)
    book = openpyxl.load_workbook(saved)
    image, last = book["Image"], book.worksheets[-1]
    assert image.protection.sheet and not book["Input"].protection.sheet
    pixels = [cell for row in image.iter_rows() for cell in row if isinstance(cell.value, int)]
    # the pixels and the grey square's four cells (occlusion_row, _col, _size, _value)
    assert len(pixels) == 3 * 8 * 8 + 4 and not any(cell.protection.locked for cell in pixels)
    assert image["A1"].value and image["A1"].protection.locked  # the title
    assert last.sheet_state == "hidden" and book["Image"].sheet_state == "visible"


# ---- conditional formats that LibreOffice draws ---------------------------------------------
SCALE = Scale("sequential")


@pytest.mark.parametrize("scales, highlight, rules", [
    # the same areas: one format, as before
    (["B2:D4"], "B2:D4", [("B2:D4", "X")]),
    # part of a scale: drawn in the scale's format, false outside its own cells
    (["B2:D4"], "C3", [("B2:D4", "IF(AND(ROW()>=3,ROW()<=3,COLUMN()>=3,COLUMN()<=3),X,FALSE)")]),
    # half outside: also on its own areas, for the cells no scale holds
    (["B2:D4"], "D4:E5", [("B2:D4", "IF(AND(ROW()>=4,ROW()<=5,COLUMN()>=4,COLUMN()<=5),X,FALSE)"),
                          ("D4:E5", "X")]),
    # two scales met, and none
    (["B2:B3", "D2:D3"], "B2:D2", [("B2:B3", "IF(AND(ROW()>=2,ROW()<=2,COLUMN()>=2,COLUMN()<=4),X,FALSE)"),
                                   ("D2:D3", "IF(AND(ROW()>=2,ROW()<=2,COLUMN()>=2,COLUMN()<=4),X,FALSE)"),
                                   ("B2:D2", "X")]),
    (["B2:B3"], "F9", [("F9", "X")]),
])
def test_a_highlight_joins_the_format_of_every_colour_scale_it_meets(scales, highlight, rules):
    """LibreOffice draws the first conditional format of a cell only: a highlight in a format of
    its own beside a colour scale's would not show (tried: a rendered page shows either the
    colours or the outline, never both, unless the two rules share one format)."""
    sheet = SheetPlan("S")
    for ref in scales:
        sheet.scale(ref, SCALE)
    sheet.highlight(highlight, "=X")
    made = conditional_rules(sheet)
    assert made[:len(scales)] == [([ref], SCALE) for ref in scales]
    assert [(" ".join(areas), rule.formula.removeprefix("=")) for areas, rule in made[len(scales):]] == rules
    assert all(isinstance(rule, Highlight) for _, rule in made[len(scales):])
