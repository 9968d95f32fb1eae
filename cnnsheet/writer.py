"""A workbook plan -> an .xlsx file. The only module that knows the file format.

Every part of the file is written here as text: the package's content types and relationships,
the workbook (sheets, defined names, print areas), the styles (one cell format per style key of the
plan), each sheet and its drawing with the pictures and the bar chart, and the theme (the default
Office theme, cnnsheet/theme1.xml, as openpyxl writes it: the chart takes its colours and lines
from it, and without it LibreOffice draws the bars in no colour at all). The cells, tens of thousands
of formulas, carry the engine's value beside each formula (`<f>` and `<v>`), so that a viewer that
does not recalculate (Excel's Protected View, previews, pandas) shows the numbers. Excel still
recalculates everything on load (fullCalcOnLoad).

Why not openpyxl: importing it took 0.15 s, and building and saving everything but the cells
through its objects 0.11 s, of the 1.8 s `cnnsheet explain` took on the default walkthrough
(measured on one machine, the least of several runs); the same parts take 0.03 s here, most of it
reading the plan's cells for their style keys and their extent. openpyxl's output is what we know
Excel opens without a repair prompt, so the XML here is openpyxl's element for element, in the
order the schema asks, with the namespaces declared as openpyxl declares them without lxml and
without the copy of the default palette openpyxl adds to the styles. tests/openpyxl_reference.py
keeps the openpyxl-built workbook and tests/test_parts.py holds the two side by side.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass

from cnnsheet import style
from cnnsheet.files import write_atomically
from cnnsheet.layout import COLUMNS, MAX_ROWS, a1, absolute, area, bounds
from cnnsheet.plan import (
    MAX_TEXT,
    BarChart,
    Highlight,
    LineChart,
    Picture,
    PrintSetup,
    Scale,
    SheetPlan,
    WorkbookPlan,
    conditional_rules,
    too_long,
)
from cnnsheet.printing import MARGINS, PAGE_COUNT, PAPER_SIZES, THIS_PAGE, glue_punctuation, header_size
from cnnsheet.resources import theme_path

# zlib level of the zip. Measured on the default walkthrough: level 1 saves it in 0.32 s as 1.44 MB,
# level 6 in 0.39 s as 1.25 MB, level 9 in 0.76 s as 1.23 MB.
COMPRESSION = 1
# The time of every part, in the zip and in the core properties: a fixed one, so that the same
# command gives the same bytes (the earliest a zip can hold; XlsxWriter writes the same).
FIXED_TIME = (1980, 1, 1, 0, 0, 0)

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
DRAWINGML = "http://schemas.openxmlformats.org/drawingml/2006/main"
CHARTML = "http://schemas.openxmlformats.org/drawingml/2006/chart"
SPREADSHEET_DRAWING = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006"
# Namespaces are declared on a part's root, as openpyxl declares them when lxml is not installed:
# Gnumeric drops a chart whose drawing declares them on the inner elements (openpyxl with lxml).
DRAWING_NAMESPACES = (f'xmlns="{SPREADSHEET_DRAWING}" xmlns:a="{DRAWINGML}" xmlns:c="{CHARTML}" '
                      f'xmlns:r="{OFFICE}"')
_OPENXML = "application/vnd.openxmlformats-officedocument"
# kind of part -> (its content type, the type of the relationship that points to it)
PART_TYPES = {
    "workbook": (f"{_OPENXML}.spreadsheetml.sheet.main+xml", f"{OFFICE}/officeDocument"),
    "worksheet": (f"{_OPENXML}.spreadsheetml.worksheet+xml", f"{OFFICE}/worksheet"),
    "styles": (f"{_OPENXML}.spreadsheetml.styles+xml", f"{OFFICE}/styles"),
    "theme": (f"{_OPENXML}.theme+xml", f"{OFFICE}/theme"),
    "drawing": (f"{_OPENXML}.drawing+xml", f"{OFFICE}/drawing"),
    "chart": (f"{_OPENXML}.drawingml.chart+xml", f"{OFFICE}/chart"),
    "image": ("image/png", f"{OFFICE}/image"),
    "core": ("application/vnd.openxmlformats-package.core-properties+xml",
             f"{PACKAGE}/relationships/metadata/core-properties"),
    "app": (f"{_OPENXML}.extended-properties+xml", f"{OFFICE}/extended-properties"),
}
# the parts every file has, by kind
FIXED_PARTS = {"app": "docProps/app.xml", "core": "docProps/core.xml", "workbook": "xl/workbook.xml",
               "styles": "xl/styles.xml", "theme": "xl/theme/theme1.xml"}


def save(plan: WorkbookPlan, path, cached_values: bool = True) -> None:
    """Write the workbook atomically: never a half-written file. Without `cached_values` the
    formulas carry no values (as openpyxl writes them), to measure what the values cost."""
    write_atomically(path, lambda tmp: _write(plan, tmp, cached_values))


def _write(plan: WorkbookPlan, target, cached_values: bool = True) -> None:
    parts = _parts(plan)
    styles, style_ids, dxf_ids = _styles(plan)
    with zipfile.ZipFile(target, "w") as out:
        put = functools.partial(_put, out)
        put("[Content_Types].xml", _content_types(parts))
        put("_rels/.rels", _relationships(
            [("workbook", FIXED_PARTS["workbook"]), ("core", FIXED_PARTS["core"]),
             ("app", FIXED_PARTS["app"])]))
        put(FIXED_PARTS["app"], APP)
        put(FIXED_PARTS["core"], _core(FIXED_TIME))
        put(FIXED_PARTS["workbook"], _workbook(plan))
        put(_relationships_part(FIXED_PARTS["workbook"]), _relationships(
            [("worksheet", "/" + part.sheet) for part in parts]
            + [("styles", "styles.xml"), ("theme", "theme/theme1.xml")]))
        put(FIXED_PARTS["styles"], styles)
        put(FIXED_PARTS["theme"], theme_path().read_bytes())
        for sheet, part in zip(plan.sheets, parts):
            with out.open(_entry(part.sheet), "w", force_zip64=True) as stream:
                for chunk in _worksheet(sheet, style_ids, dxf_ids, part.drawing is not None,
                                        cached_values):
                    stream.write(chunk)
            if part.drawing is None:
                continue
            put(_relationships_part(part.sheet), _relationships([("drawing", "/" + part.drawing)]))
            put(part.drawing, _drawing(sheet))
            put(_relationships_part(part.drawing), _relationships(
                [("chart", "/" + name) for name in part.charts]
                + [("image", "/" + name) for name in part.images]))
            for chart, name in zip(sheet.charts, part.charts):
                draw = _line_chart if isinstance(chart, LineChart) else _bar_chart
                put(name, draw(sheet.title, chart))
            for picture, name in zip(sheet.pictures, part.images):
                put(name, picture.png)


def _entry(name: str) -> zipfile.ZipInfo:
    """A part of the zip, compressed, at the fixed time."""
    entry = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    entry.compress_type = zipfile.ZIP_DEFLATED
    # ZipFile.open takes the level only from the entry; Python 3.13 names it compress_level and
    # keeps this name working
    entry._compresslevel = COMPRESSION
    entry.external_attr = 0o600 << 16  # rw-------, what writestr gives a part named by a string
    return entry


def _put(out: zipfile.ZipFile, name: str, data) -> None:
    out.writestr(_entry(name), data)


# ---- the package: which parts there are and how they point to each other ----------------------
@dataclass(frozen=True)
class _SheetParts:
    """The parts of one sheet: its XML and, if it shows a chart or a picture, its drawing."""

    sheet: str
    drawing: str | None
    charts: tuple
    images: tuple


def _parts(plan: WorkbookPlan) -> list[_SheetParts]:
    """Each sheet's parts; drawings, charts and images are numbered across the workbook, in the
    order of the sheets."""
    parts, drawings, charts, images = [], 0, 0, 0
    for number, sheet in enumerate(plan.sheets, 1):
        drawing = None
        if sheet.charts or sheet.pictures:
            drawings += 1
            drawing = f"xl/drawings/drawing{drawings}.xml"
        parts.append(_SheetParts(
            f"xl/worksheets/sheet{number}.xml", drawing,
            tuple(f"xl/charts/chart{charts + n}.xml" for n in range(1, len(sheet.charts) + 1)),
            tuple(f"xl/media/image{images + n}.png" for n in range(1, len(sheet.pictures) + 1))))
        charts += len(sheet.charts)
        images += len(sheet.pictures)
    return parts


def _content_types(parts: list[_SheetParts]) -> str:
    defaults = [("rels", "application/vnd.openxmlformats-package.relationships+xml"),
                ("xml", "application/xml")]
    if any(part.images for part in parts):
        defaults.append(("png", PART_TYPES["image"][0]))
    overrides = list(FIXED_PARTS.items())
    for part in parts:
        overrides.append(("worksheet", part.sheet))
        if part.drawing:
            overrides.append(("drawing", part.drawing))
        overrides += [("chart", name) for name in part.charts]
    return (f'<Types xmlns="{PACKAGE}/content-types">'
            + "".join(f'<Default Extension="{extension}" ContentType="{kind}"/>'
                      for extension, kind in defaults)
            + "".join(f'<Override PartName="/{name}" ContentType="{PART_TYPES[kind][0]}"/>'
                      for kind, name in overrides)
            + "</Types>")


def _relationships(targets: list[tuple[str, str]]) -> str:
    """A relationships part: (kind of part, target) -> rId1, rId2, ... in order. The callers give
    the targets as openpyxl writes them: absolute for sheets, drawings, charts and images
    ('/xl/worksheets/sheet1.xml'), relative for the styles and the theme."""
    return (f'<Relationships xmlns="{PACKAGE}/relationships">'
            + "".join(f'<Relationship Type="{PART_TYPES[kind][1]}" Target="{target}" Id="rId{n}"/>'
                      for n, (kind, target) in enumerate(targets, 1))
            + "</Relationships>")


def _relationships_part(part: str) -> str:
    """'xl/worksheets/sheet1.xml' -> 'xl/worksheets/_rels/sheet1.xml.rels'."""
    folder, _, name = part.rpartition("/")
    return f"{folder}/_rels/{name}.rels"


# The extended properties: only the application's name. LibreOffice takes a file whose application's
# name begins "Microsoft" as Excel's and then lays it out as Excel would (heights of rows, in print),
# as it did the files openpyxl wrote ("Microsoft Excel Compatible / Openpyxl"), on which the layout
# of printing.py was measured.
APP = ('<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
       "<Application>Microsoft Excel Compatible / cnnsheet</Application></Properties>")


def _core(when: tuple) -> str:
    """The core properties: who made the file and when (UTC)."""
    stamp = "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z".format(*when)
    return (f'<cp:coreProperties xmlns:cp="{PACKAGE}/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:creator>cnnsheet</dc:creator>'
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>'
            "</cp:coreProperties>")


# ---- the workbook: sheets, defined names, print areas ----------------------------------------
WORKBOOK_VIEW = ('<bookViews><workbookView visibility="visible" minimized="0" showHorizontalScroll="1" '
                 'showVerticalScroll="1" showSheetTabs="1" tabRatio="600" firstSheet="0" activeTab="0" '
                 'autoFilterDateGrouping="1"/></bookViews>')


SHEET_STATES = {False: "visible", True: "hidden"}


def _workbook(plan: WorkbookPlan) -> str:
    sheets = "".join(f'<sheet name="{_attribute(sheet.title)}" sheetId="{number}" '
                     f'state="{SHEET_STATES[sheet.hidden]}" r:id="rId{number}"/>'
                     for number, sheet in enumerate(plan.sheets, 1))
    names = [f'<definedName name="{_attribute(name)}">{_xml(target)}</definedName>'
             for name, target in plan.names.items()]
    for index, sheet in enumerate(plan.sheets):
        names += _print_names(sheet, index)
    defined = f"<definedNames>{''.join(names)}</definedNames>" if names else ""
    return (f'<workbook xmlns="{MAIN}" xmlns:r="{OFFICE}"><workbookPr/><workbookProtection/>{WORKBOOK_VIEW}'
            f'<sheets>{sheets}</sheets>{defined}<calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>')


def _print_names(sheet: SheetPlan, index: int) -> list[str]:
    """A sheet's rows repeated on every page and its print area: names local to the sheet."""
    setup, quoted = sheet.printing, _xml(_quoted(sheet.title))
    names = []
    if setup.title_rows:
        first, last = setup.title_rows
        names.append(f'<definedName name="_xlnm.Print_Titles" localSheetId="{index}">'
                     f"{quoted}!${first}:${last}</definedName>")
    if setup.area:
        names.append(f'<definedName name="_xlnm.Print_Area" localSheetId="{index}">'
                     f"{quoted}!{absolute(setup.area)}</definedName>")
    return names


def _quoted(title: str) -> str:
    """A sheet name quoted, as defined names, links and charts refer to it: always, as openpyxl
    does (formulas quote only where needed: layout.quote_sheet)."""
    return "'" + title.replace("'", "''") + "'"


# ---- styles: one cell format per style key, one differential format per highlight look --------
# Excel's own codes for number formats; any other is declared in the file from 164 on
BUILTIN_FORMATS = {"General": 0, "0": 1, "0.00": 2, "#,##0": 3, "#,##0.00": 4, "0%": 9, "0.00%": 10,
                   "0.00E+00": 11}
FIRST_CUSTOM_FORMAT = 164
# The Normal style's font, Excel's default (the theme's body font) whatever the language: Excel
# measures column widths in its digits, and the widths of style.py were measured so.
NORMAL_FONT = ('<font><name val="Calibri"/><family val="2"/><color theme="1"/><sz val="11"/>'
               '<scheme val="minor"/></font>')
NO_FILL, GREY_FILL = "<fill><patternFill/></fill>", '<fill><patternFill patternType="gray125"/></fill>'
NO_BORDER = "<border><left/><right/><top/><bottom/><diagonal/></border>"
# a look's key -> its alignment; the first that a look has counts
ALIGNMENTS = {"centre": '<alignment horizontal="center" vertical="center"/>',
              "wrap": '<alignment vertical="top" wrapText="1"/>'}
TABLE_STYLES = ('<tableStyles count="0" defaultTableStyle="TableStyleMedium9" '
                'defaultPivotStyle="PivotStyleLight16"/>')


def _styles(plan: WorkbookPlan) -> tuple[str, dict, dict]:
    """styles.xml, the cell format index of each style key, and the differential format index of
    each highlight's (look, colour). Equal fonts, fills, borders and formats are declared once."""
    font_name = style.FONTS.get(plan.lang, style.FONTS["en"])
    formats, fonts, fills, borders = {}, {NORMAL_FONT: 0}, {NO_FILL: 0, GREY_FILL: 1}, {NO_BORDER: 0}
    cell_formats = {_cell_format(0, 0, 0, 0, "", False): 0}
    style_ids = {}
    for kind, fmt in sorted({cell[2] for sheet in plan.sheets for cell in sheet.cells.values()}):
        look = style.KINDS[kind]
        number = BUILTIN_FORMATS.get(fmt)
        if number is None:
            number = formats.setdefault(fmt, FIRST_CUSTOM_FORMAT + len(formats))
        font = _index(fonts, _font(font_name, look))
        fill = _index(fills, _fill(look["fill"])) if "fill" in look else 0
        border = _index(borders, _border(look["frame"])) if "frame" in look else 0
        cell_format = _cell_format(number, font, fill, border, _alignment(look), look.get("unlocked", False))
        style_ids[kind, fmt] = _index(cell_formats, cell_format)
    differential, dxf_ids = {}, {}
    for sheet in plan.sheets:
        for highlight in sheet.highlights:
            which = highlight.look, highlight.colour
            if which not in dxf_ids:
                dxf_ids[which] = _index(differential, _differential(highlight, font_name))
    numbers = "".join(f'<numFmt numFmtId="{number}" formatCode="{_attribute(fmt)}"/>'
                      for fmt, number in formats.items())
    xml = "".join([
        f'<styleSheet xmlns="{MAIN}">',
        f'<numFmts count="{len(formats)}">{numbers}</numFmts>' if formats else "",
        _listed("fonts", fonts), _listed("fills", fills), _listed("borders", borders),
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>',
        _listed("cellXfs", cell_formats),
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0" hidden="0"/></cellStyles>',
        _listed("dxfs", differential) if differential else "",  # openpyxl leaves out an empty list
        TABLE_STYLES,
        "</styleSheet>"])
    return xml, style_ids, dxf_ids


def _index(table: dict, item: str) -> int:
    """The index of `item` in an ordered table of distinct items, added at the end if new."""
    return table.setdefault(item, len(table))


def _listed(tag: str, table: dict) -> str:
    return f'<{tag} count="{len(table)}">{"".join(table)}</{tag}>'


def _font(name: str, look: dict) -> str:
    bold = '<b val="1"/>' if look.get("bold") else ""
    colour = f'<color rgb="00{look["color"]}"/>' if "color" in look else ""
    underline = '<u val="single"/>' if look.get("underline") else ""
    return f'<font><name val="{_attribute(name)}"/>{bold}{colour}<sz val="{look["size"]}"/>{underline}</font>'


def _alignment(look: dict) -> str:
    return next((alignment for key, alignment in ALIGNMENTS.items() if look.get(key)), "")


def _fill(colour: str) -> str:
    return f'<fill><patternFill patternType="solid"><fgColor rgb="00{colour}"/></patternFill></fill>'


def _border(colour: str) -> str:
    """A thin frame on all four sides."""
    line = f' style="thin"><color rgb="00{colour}"/>'
    return f"<border><left{line}</left><right{line}</right><top{line}</top><bottom{line}</bottom></border>"


def _cell_format(number: int, font: int, fill: int, border: int, alignment: str, unlocked: bool) -> str:
    """A cell format; an unlocked one takes typing on a protected sheet (every cell is locked
    unless its format says otherwise)."""
    applied = (' applyAlignment="1"' if alignment else "") + (' applyProtection="1"' if unlocked else "")
    inside = alignment + ('<protection locked="0" hidden="0"/>' if unlocked else "")
    head = (f'<xf numFmtId="{number}" fontId="{font}" fillId="{fill}" borderId="{border}"{applied} '
            f'pivotButton="0" quotePrefix="0" xfId="0"')
    return f"{head}>{inside}</xf>" if inside else f"{head}/>"


def _differential(highlight: Highlight, font_name: str) -> str:
    """What a highlight draws: a thin border in its colour, and maybe bold figures."""
    colour = style.highlight_colour(highlight.look, highlight.colour)
    bold = style.HIGHLIGHTS[highlight.look]["bold"]
    font = f'<font><name val="{_attribute(font_name)}"/><b val="1"/></font>' if bold else ""
    return f"<dxf>{font}{_border(colour)}</dxf>"


# ---- a sheet ---------------------------------------------------------------------------------
# never fit to page, which would shrink the numbers: the plan's scale holds
SHEET_PROPERTIES = ('<sheetPr><outlinePr summaryBelow="1" summaryRight="1"/><pageSetUpPr fitToPage="0"/>'
                    "</sheetPr>")
SHEET_FORMAT = '<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/>'
# A protected sheet without a password, as openpyxl writes `protection.sheet = True`: every cell
# can be selected, locked cells take no typing; formats, rows, columns, links and sorting stay free.
SHEET_PROTECTION = ('<sheetProtection selectLockedCells="0" selectUnlockedCells="0" sheet="1" objects="0" '
                    'insertRows="1" insertHyperlinks="1" autoFilter="1" scenarios="0" formatColumns="1" '
                    'deleteColumns="1" insertColumns="1" pivotTables="1" deleteRows="1" formatCells="1" '
                    'formatRows="1" sort="1"/>')


def _worksheet(sheet: SheetPlan, style_ids: dict, dxf_ids: dict, drawing: bool, cached_values: bool):
    """The sheet's XML in chunks, its elements in the order of the schema (CT_Worksheet)."""
    yield (f'<worksheet xmlns="{MAIN}">{SHEET_PROPERTIES}<dimension ref="{_dimension(sheet)}"/>'
           f"{_sheet_view(sheet)}{SHEET_FORMAT}").encode()
    yield _columns(sheet)
    yield from _sheet_data(sheet, style_ids, cached_values)
    yield SHEET_PROTECTION.encode() if sheet.protected else b""
    yield _merges(sheet)
    yield "".join([
        _conditional_formats(sheet, dxf_ids),
        _validations(sheet),
        _links(sheet),
        _print_setup(sheet.printing),
        f'<drawing xmlns:r="{OFFICE}" r:id="rId1"/>' if drawing else "",
        "</worksheet>"]).encode()


# (columns frozen, rows frozen) -> the pane that scrolls, where the cursor is
ACTIVE_PANES = {(True, False): "topRight", (False, True): "bottomLeft", (True, True): "bottomRight"}


def _sheet_view(sheet: SheetPlan) -> str:
    """The zoom and the frozen panes: rows above and columns left of `sheet.freeze` stay put."""
    cursor = 'activeCell="A1" sqref="A1"'
    top, left = bounds(sheet.freeze)[:2] if sheet.freeze else (1, 1)
    if top == 1 and left == 1:
        return (f'<sheetViews><sheetView zoomScale="{sheet.zoom}" workbookViewId="0">'
                f"<selection {cursor}/></sheetView></sheetViews>")
    active = ACTIVE_PANES[left > 1, top > 1]
    splits = (f'xSplit="{left - 1}" ' if left > 1 else "") + (f'ySplit="{top - 1}" ' if top > 1 else "")
    others = '<selection pane="topRight"/><selection pane="bottomLeft"/>' if active == "bottomRight" else ""
    return (f'<sheetViews><sheetView zoomScale="{sheet.zoom}" workbookViewId="0">'
            f'<pane {splits}topLeftCell="{sheet.freeze}" activePane="{active}" state="frozen"/>'
            f'{others}<selection pane="{active}" {cursor}/></sheetView></sheetViews>')


def _distinct(areas) -> dict:
    """(top, left, bottom, right) -> reference, of each area once."""
    return {bounds(ref): ref for text in areas for ref in text.split()}


def _sqref(areas) -> str:
    """Areas as a list of references: each once, ordered by column, then row (as openpyxl does)."""
    distinct = _distinct(areas)
    return " ".join(distinct[key] for key in sorted(distinct, key=_by_column))


def _by_column(key):
    top, left, bottom, right = key
    return left, top, right, bottom


def _conditional_formats(sheet: SheetPlan, dxf_ids: dict) -> str:
    """Colour scales, then the highlights that draw over them (plan.conditional_rules); rules on the
    same areas share one <conditionalFormatting>, and each rule's priority is its place in that order."""
    groups: dict[frozenset, tuple] = {}
    rules = conditional_rules(sheet)
    for priority, (areas, rule) in enumerate(rules, 1):
        if isinstance(rule, Highlight):
            xml = _highlight_rule(rule, priority, dxf_ids[rule.look, rule.colour])
        else:
            xml = _colour_rule(areas, rule, priority)
        groups.setdefault(frozenset(_distinct(areas)), (areas, []))[1].append(xml)
    return "".join(f'<conditionalFormatting sqref="{_sqref(areas)}">{"".join(xml)}</conditionalFormatting>'
                   for areas, xml in groups.values())


def _colour_rule(areas: list[str], scale: Scale, priority: int) -> str:
    """The rule of a Scale, as (type, value, colour) stops. Bounds that follow the values are cfvo
    formulas or the maximum."""
    if scale.kind == "channel":
        stops = [("num", 0, style.CHANNEL_ZERO.get(scale.channel, "000000")),
                 ("num", scale.high, style.CHANNEL_COLOURS[scale.channel])]
    elif scale.kind == "fixed":
        stops = [("num", scale.low, style.WHITE), ("num", scale.high, style.SEQUENTIAL)]
    elif scale.kind == "sequential":
        stops = [("num", 0, style.WHITE), ("max", None, style.SEQUENTIAL)]
    else:
        cells = ",".join(absolute(a) for a in areas)
        largest = f"MAX(MAX({cells}),-MIN({cells}),1E-300)"  # 1E-300: an all-zero map stays white
        stops = [("formula", f"-{largest}", style.BLUE), ("num", 0, style.WHITE),
                 ("formula", largest, style.RED)]
    values = "".join(f'<cfvo type="{kind}"/>' if value is None
                     else f'<cfvo type="{kind}" val="{_attribute(_value(value))}"/>'
                     for kind, value, _ in stops)
    colours = "".join(f'<color rgb="00{colour}"/>' for _, _, colour in stops)
    return (f'<cfRule type="colorScale" priority="{priority}"><colorScale>{values}{colours}</colorScale>'
            "</cfRule>")


def _highlight_rule(highlight: Highlight, priority: int, dxf_id: int) -> str:
    """A formula rule drawing its differential format (a border, maybe bold) where it is true."""
    return (f'<cfRule type="expression" priority="{priority}" dxfId="{dxf_id}">'
            f'<formula>{_xml(highlight.formula.removeprefix("="))}</formula></cfRule>')


def _validations(sheet: SheetPlan) -> str:
    """Drop-downs (a list from a defined name), then cells that take only whole numbers."""
    rules = []
    for drop_down in sheet.drop_downs:
        rules.append(f'<dataValidation sqref="{_sqref([drop_down.ref])}" showDropDown="0" '
                     'showInputMessage="0" showErrorMessage="1" allowBlank="0" '
                     f'errorTitle="{_attribute(drop_down.title)}" error="{_attribute(drop_down.message)}" '
                     f'type="list" errorStyle="stop"><formula1>{_xml(drop_down.source)}</formula1>'
                     "</dataValidation>")
    for rule in sheet.whole_numbers:
        prompt = f' prompt="{_attribute(rule.prompt)}"' if rule.prompt else ""
        rules.append(f'<dataValidation sqref="{_sqref(rule.refs)}" showDropDown="0" '
                     f'showInputMessage="{int(bool(rule.prompt))}" showErrorMessage="1" allowBlank="0" '
                     f'errorTitle="{_attribute(rule.title)}" error="{_attribute(rule.message)}" '
                     f'promptTitle="{_attribute(rule.title)}"{prompt} type="{rule.kind}" errorStyle="stop" '
                     f'operator="between"><formula1>{rule.low}</formula1><formula2>{rule.high}</formula2>'
                     "</dataValidation>")
    if not rules:
        return ""
    return f'<dataValidations count="{len(rules)}">{"".join(rules)}</dataValidations>'


def _links(sheet: SheetPlan) -> str:
    """Cells that jump to a cell of another sheet, in the order of the cells."""
    targets = {(row, col): (target, cell) for row, col, target, cell in sheet.links}
    if not targets:
        return ""
    links = "".join(f'<hyperlink ref="{a1(row, col)}" location="{_attribute(_quoted(target))}!{cell}"/>'
                    for (row, col), (target, cell) in sorted(targets.items()))
    return f"<hyperlinks>{links}</hyperlinks>"


def _print_setup(setup: PrintSetup) -> str:
    """Margins, orientation and scale, header and footer, page breaks (the area and the title rows
    are names of the workbook: _print_names)."""
    side, top, around = (_value(MARGINS[key]) for key in ("side", "top", "header"))
    margins = (f'<pageMargins left="{side}" right="{side}" top="{top}" bottom="{top}" header="{around}" '
               f'footer="{around}"/>')
    orientation = "landscape" if setup.landscape else "portrait"
    order = "downThenOver" if setup.down_then_over else "overThenDown"
    page = (f'<pageSetup paperSize="{PAPER_SIZES[setup.paper]}" scale="{setup.scale}" '
            f'pageOrder="{order}" orientation="{orientation}"/>')
    # codes: &L, &C, &R a part; &9 a size; &A the sheet's name, &P the page, &N the pages; && an &
    size = f"&{header_size(setup.scale)} "
    header = (f"&L{size}{setup.header.replace('&', '&&')}" if setup.header else "") + f"&R{size}&A"
    fields = setup.footer.replace("&", "&&").replace(THIS_PAGE, "&P").replace(PAGE_COUNT, "&N")
    footer = f"&C{size}{fields}" if setup.footer else ""
    header_footer = (f"<headerFooter><oddHeader>{_xml(header)}</oddHeader><oddFooter>{_xml(footer)}"
                     "</oddFooter><evenHeader></evenHeader><evenFooter></evenFooter><firstHeader>"
                     "</firstHeader><firstFooter></firstFooter></headerFooter>")
    return margins + page + header_footer + _breaks("rowBreaks", setup.row_breaks) + _breaks(
        "colBreaks", setup.col_breaks)


def _breaks(tag: str, starts: list) -> str:
    """Manual page breaks: a new page starts at each row (column) of `starts`, so the break's id is
    the row (column) before it."""
    if not starts:
        return ""
    breaks = "".join(f'<brk id="{start - 1}" min="0" max="16383" man="1"/>' for start in starts)
    return f'<{tag} count="{len(starts)}" manualBreakCount="{len(starts)}">{breaks}</{tag}>'


# ---- drawings: the bar chart and the pictures -------------------------------------------------
EMU_PER_CM, EMU_PER_PIXEL = 360_000, 9525
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _drawing(sheet: SheetPlan) -> str:
    """Where the sheet's charts, then its pictures, sit: their top-left cells and their sizes."""
    anchors = []
    for number, chart in enumerate(sheet.charts, 1):
        width, height = (EMU_PER_CM * cm for cm in style.CHART_SIZE)
        anchors.append(_anchor(chart.anchor, width, height) + (
            f'<graphicFrame><nvGraphicFramePr><cNvPr id="{number}" name="Chart {number}"/>'
            f'<cNvGraphicFramePr/></nvGraphicFramePr><xfrm/><a:graphic><a:graphicData uri="{CHARTML}">'
            f'<c:chart r:id="rId{number}"/></a:graphicData></a:graphic></graphicFrame><clientData/>'
            "</oneCellAnchor>"))
    for number, picture in enumerate(sheet.pictures, len(sheet.charts) + 1):
        width, height = (EMU_PER_PIXEL * pixels for pixels in _png_size(picture))
        anchors.append(_anchor(picture.anchor, width, height) + (
            f'<pic><nvPicPr><cNvPr id="{number}" name="Image {number}" descr="Picture"/><cNvPicPr/>'
            f'</nvPicPr><blipFill><a:blip cstate="print" r:embed="rId{number}"/><a:stretch><a:fillRect/>'
            '</a:stretch></blipFill><spPr><a:prstGeom prst="rect"/></spPr></pic><clientData/>'
            "</oneCellAnchor>"))
    return f'<wsDr {DRAWING_NAMESPACES}>{"".join(anchors)}</wsDr>'


def _anchor(cell: str, width: int, height: int) -> str:
    """The opening of an anchor at a cell's top-left corner (0-based row and column)."""
    row, col = bounds(cell)[:2]
    return (f"<oneCellAnchor><from><col>{col - 1}</col><colOff>0</colOff><row>{row - 1}</row>"
            f'<rowOff>0</rowOff></from><ext cx="{width}" cy="{height}"/>')


def _png_size(picture: Picture) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's header (IHDR)."""
    png = picture.png
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError(f"the picture at {picture.anchor} is not a PNG (it starts {png[:16]!r})")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _bar_chart(sheet_title: str, chart: BarChart) -> str:
    """A bar chart whose categories are text and whose caches hold the current values: no legend,
    the value axis from 0 to 100% in steps of 25%."""
    sheet = _xml(_quoted(sheet_title))
    categories = "".join(f'<pt idx="{i}"><v>{_xml(v)}</v></pt>' for i, v in enumerate(chart.category_cache))
    values = "".join(f'<pt idx="{i}"><v>{_value(float(v))}</v></pt>' for i, v in enumerate(chart.value_cache))
    return (
        f'<chartSpace xmlns="{CHARTML}" xmlns:a="{DRAWINGML}"><chart><title><tx><rich><a:bodyPr/><a:p>'
        f"<a:pPr><a:defRPr/></a:pPr><a:r><a:t>{_xml(chart.title)}</a:t></a:r></a:p></rich></tx></title>"
        '<plotArea><barChart><barDir val="col"/><grouping val="clustered"/><ser><idx val="0"/>'
        '<order val="0"/><spPr><a:ln><a:prstDash val="solid"/></a:ln></spPr>'
        f"<cat><strRef><f>{sheet}!{absolute(chart.categories)}</f><strCache>"
        f'<ptCount val="{len(chart.category_cache)}"/>{categories}</strCache></strRef></cat>'
        f"<val><numRef><f>{sheet}!{absolute(chart.values)}</f><numCache><formatCode>General</formatCode>"
        f'<ptCount val="{len(chart.value_cache)}"/>{values}</numCache></numRef></val></ser>'
        '<gapWidth val="150"/><axId val="10"/><axId val="100"/></barChart>'
        '<catAx><axId val="10"/><scaling><orientation val="minMax"/></scaling><axPos val="l"/>'
        '<majorTickMark val="none"/><minorTickMark val="none"/><crossAx val="100"/><lblOffset val="100"/>'
        '</catAx><valAx><axId val="100"/><scaling><orientation val="minMax"/><max val="1"/><min val="0"/>'
        '</scaling><axPos val="l"/><majorGridlines/><numFmt formatCode="0%" sourceLinked="0"/>'
        '<majorTickMark val="none"/><minorTickMark val="none"/><crossAx val="10"/><majorUnit val="0.25"/>'
        '</valAx></plotArea><plotVisOnly val="1"/><dispBlanksAs val="gap"/></chart></chartSpace>')


def _line_chart(sheet_title: str, chart: LineChart) -> str:
    """A line without markers over numbered categories, caches holding the current values, no
    legend, not smoothed (LibreOffice smooths a line that does not say); the value axis as the chart
    asks (openpyxl's LineChart, element for element)."""
    sheet = _xml(_quoted(sheet_title))

    def cache(values) -> str:
        points = "".join(f'<pt idx="{i}"><v>{_value(float(v))}</v></pt>' for i, v in enumerate(values))
        return f'<numCache><formatCode>General</formatCode><ptCount val="{len(values)}"/>{points}</numCache>'

    bounds_xml = "".join(f'<{key} val="{_value(float(value))}"/>'
                         for key, value in (("max", chart.high), ("min", chart.low)) if value is not None)
    percent = ('<numFmt formatCode="0%" sourceLinked="0"/>', '<majorUnit val="0.25"/>') if chart.percent \
        else (f'<numFmt formatCode="{_attribute(chart.value_format)}" sourceLinked="0"/>', "")
    skip = (f'<tickLblSkip val="{chart.label_every}"/><tickMarkSkip val="{chart.label_every}"/>'
            if chart.label_every > 1 else "")
    line = '<spPr><a:ln><a:prstDash val="solid"/></a:ln></spPr>'
    return (
        f'<chartSpace xmlns="{CHARTML}" xmlns:a="{DRAWINGML}"><chart><title><tx><rich><a:bodyPr/><a:p>'
        f"<a:pPr><a:defRPr/></a:pPr><a:r><a:t>{_xml(chart.title)}</a:t></a:r></a:p></rich></tx></title>"
        f'<plotArea><lineChart><grouping val="standard"/><ser><idx val="0"/><order val="0"/>{line}'
        f'<marker><symbol val="none"/>{line}</marker>'
        f"<cat><numRef><f>{sheet}!{absolute(chart.categories)}</f>{cache(chart.category_cache)}</numRef></cat>"
        f"<val><numRef><f>{sheet}!{absolute(chart.values)}</f>{cache(chart.value_cache)}</numRef></val>"
        '<smooth val="0"/></ser>'
        '<axId val="10"/><axId val="100"/></lineChart>'
        '<catAx><axId val="10"/><scaling><orientation val="minMax"/></scaling><axPos val="l"/>'
        '<majorTickMark val="none"/><minorTickMark val="none"/><crossAx val="100"/><lblOffset val="100"/>'
        f'{skip}</catAx><valAx><axId val="100"/><scaling><orientation val="minMax"/>{bounds_xml}</scaling>'
        f'<axPos val="l"/><majorGridlines/>{percent[0]}<majorTickMark val="none"/>'
        f'<minorTickMark val="none"/><crossAx val="10"/>{percent[1]}'
        '</valAx></plotArea><plotVisOnly val="1"/><dispBlanksAs val="gap"/></chart></chartSpace>')


# ---- the cells -------------------------------------------------------------------------------
def _merges(sheet: SheetPlan) -> bytes:
    """The <mergeCells> element: cells shown as one."""
    if not sheet.merges:
        return b""
    cells = "".join(f'<mergeCell ref="{ref}"/>' for ref in sheet.merges)
    return f'<mergeCells count="{len(sheet.merges)}">{cells}</mergeCells>'.encode()


def _columns(sheet: SheetPlan) -> bytes:
    """The <cols> element (it comes just before <sheetData>): runs of equal widths merged."""
    runs = []  # [first, last, width]
    for col in sorted(sheet.widths):
        width = sheet.widths[col]
        if runs and runs[-1][1] == col - 1 and runs[-1][2] == width:
            runs[-1][1] = col
        else:
            runs.append([col, col, width])
    if not runs:
        return b""
    cols = "".join(f'<col min="{first}" max="{last}" width="{width}" customWidth="1"/>'
                   for first, last, width in runs)
    return f"<cols>{cols}</cols>".encode()


def _dimension(sheet: SheetPlan) -> str:
    if not sheet.cells:
        return "A1"
    rows, cols = zip(*sheet.cells)
    return area(min(rows), min(cols), max(rows), max(cols))


def _xml(text: str) -> str:
    """Text as XML character data."""
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _attribute(text: str) -> str:
    """Text as the value of an attribute in double quotes; line breaks and tabs stay what they are
    (written plainly, a reader would take them for spaces)."""
    return (_xml(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
            .replace("\t", "&#9;"))


def _value(value) -> str:
    """A number as openpyxl writes one (16 significant digits, no '.0'); a formula as it is."""
    return value if isinstance(value, str) else f"{value:.16g}"


def _sheet_data(sheet: SheetPlan, style_ids: dict, cached_values: bool = True, rows_per_chunk: int = 256):
    """The <sheetData> element in chunks: rows in order, each formula with its cached value.
    (The loop is written for speed: it runs once per cell, 10^5 times for the default workbook.)"""
    rows: dict[int, list] = {}
    for (row, col), cell in sheet.cells.items():
        if row in rows:
            rows[row].append((col, cell))
        else:
            rows[row] = [(col, cell)]
    # a wrapped text breaks into lines where the spreadsheet chooses: no line starts with '。'
    wrapped = {key for key in style_ids if style.KINDS[key[0]].get("wrap")}
    out = ["<sheetData>"]
    append, heights = out.append, sheet.heights
    for number, row in enumerate(sorted(rows.keys() | heights.keys()), 1):
        if row > MAX_ROWS:
            raise ValueError(f"row {row} is beyond Excel's last row")
        height = heights.get(row)
        append(f'<row r="{row}" ht="{height}" customHeight="1">' if height else f'<row r="{row}">')
        cells = rows.get(row, [])
        cells.sort(key=_first)
        for col, (formula, value, key) in cells:
            if formula is not None:
                if "&" in formula or "<" in formula or ">" in formula:
                    formula = _xml(formula)
                if not cached_values:
                    append(f'<c r="{COLUMNS[col]}{row}" s="{style_ids[key]}"><f>{formula[1:]}</f></c>')
                elif value.__class__ is str:
                    append(f'<c r="{COLUMNS[col]}{row}" s="{style_ids[key]}" t="str"><f>{formula[1:]}</f>'
                           f'<v>{_xml(value)}</v></c>')
                else:
                    append(f'<c r="{COLUMNS[col]}{row}" s="{style_ids[key]}"><f>{formula[1:]}</f>'
                           f'<v>{value!r}</v></c>')
            elif value.__class__ is str:
                if key in wrapped:
                    value = _glued(value)
                space = ' xml:space="preserve"' if value != value.strip() else ""
                append(f'<c r="{COLUMNS[col]}{row}" s="{style_ids[key]}" t="inlineStr"><is><t{space}>'
                       f'{_xml(value)}</t></is></c>')
            elif value is None:  # an empty cell with a look: a worksheet's answer
                append(f'<c r="{COLUMNS[col]}{row}" s="{style_ids[key]}"/>')
            else:
                append(f'<c r="{COLUMNS[col]}{row}" s="{style_ids[key]}"><v>{value!r}</v></c>')
        append("</row>")
        if number % rows_per_chunk == 0:
            yield "".join(out).encode()
            out.clear()
    append("</sheetData>")
    yield "".join(out).encode()


def _glued(text: str) -> str:
    """A wrapped text's punctuation glued to its neighbours, unless that would make it longer than
    a cell holds (the glue is invisible: the text lacks nothing without it)."""
    glued = glue_punctuation(text)
    return text if too_long(glued, MAX_TEXT) else glued


def _first(item):
    return item[0]
