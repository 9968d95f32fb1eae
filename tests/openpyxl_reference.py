"""The writer as it was before it wrote every part itself: openpyxl built and saved a skeleton (all
but the cells), and each sheet's <sheetData> was replaced by the writer's cells. Kept as the
reference that tests/test_parts.py holds the writer against: openpyxl's output is what we know
Excel opens without a repair prompt.

The cells, columns and merged areas are the writer's own (`_sheet_data`, `_columns`, `_merges`,
`_dimension`), as they were then.
"""

import io
import re
import zipfile

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference, Series
from openpyxl.chart.data_source import AxDataSource, NumData, NumRef, NumVal, StrData, StrRef, StrVal
from openpyxl.drawing.image import Image as SheetImage
from openpyxl.formatting.rule import ColorScaleRule, Rule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.styles.differential import DifferentialStyle
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.pagebreak import Break

from cnnsheet import style
from cnnsheet.layout import MAX_COLUMNS, absolute, area
from cnnsheet.plan import Highlight, PrintSetup, Scale, SheetPlan, WorkbookPlan, conditional_rules
from cnnsheet.plan import LineChart as PlanLineChart
from cnnsheet.printing import MARGINS, PAGE_COUNT, PAPER_SIZES, THIS_PAGE, header_size
from cnnsheet.writer import COMPRESSION, _columns, _dimension, _merges, _sheet_data

SAMPLE_COLUMN = MAX_COLUMNS  # the style samples sit in the last column of the first sheet
_SAMPLE = re.compile(rb'<c [^>]*?r="XFD(\d+)"[^>]*?>|<c [^>]*?r="XFD(\d+)"[^>]*?/>')
_S_ATTRIBUTE = re.compile(rb'\bs="(\d+)"')
_SHEET_DATA = re.compile(rb"<sheetData\s*/>|<sheetData>.*</sheetData>", re.S)
_PROTECTION = re.compile(rb"\s*<sheetProtection [^>]*/>")
_DIMENSION = re.compile(rb'<dimension ref="[^"]*"\s*/>')
_SHEET_PART = re.compile(rb'<sheet [^>]*?name="([^"]*)"[^>]*?r:id="([^"]*)"')
_RELATIONSHIP = re.compile(rb'<Relationship [^>]*?Id="([^"]*)"[^>]*?Target="([^"]*)"'
                           rb'|<Relationship [^>]*?Target="([^"]*)"[^>]*?Id="([^"]*)"')


def write_reference(plan: WorkbookPlan, target, cached_values: bool = True) -> None:
    skeleton, keys = _skeleton(plan)
    buffer = io.BytesIO()
    skeleton.save(buffer)
    with zipfile.ZipFile(buffer) as source:
        parts = _sheet_parts(source)
        sample_sheet = source.read(parts[plan.sheets[0].title])
        style_ids = _style_ids(sample_sheet, keys)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION) as out:
            by_part = {part: plan[title] for title, part in parts.items()}
            for item in source.infolist():
                data = source.read(item.filename)
                sheet = by_part.get(item.filename)
                if sheet is None:
                    out.writestr(item.filename, data)
                    continue
                with out.open(item.filename, "w", force_zip64=True) as stream:
                    for chunk in _with_cells(data, sheet, style_ids, cached_values):
                        stream.write(chunk)


# ---- the skeleton: everything but the cells, through openpyxl ---------------------------------
def _skeleton(plan: WorkbookPlan):
    book = Workbook()
    book.remove(book.active)
    font_name = style.FONTS.get(plan.lang, style.FONTS["en"])
    for sheet in plan.sheets:
        ws = book.create_sheet(sheet.title)
        if sheet.freeze:
            ws.freeze_panes = sheet.freeze
        ws.sheet_view.zoomScale = sheet.zoom
        ws.protection.sheet = sheet.protected
        if sheet.hidden:
            ws.sheet_state = "hidden"
        _print_setup(ws, sheet.printing)
        for areas, rule in conditional_rules(sheet):  # the scales, then the highlights over them
            made = (_highlight_rule(rule, font_name) if isinstance(rule, Highlight)
                    else _colour_rule(areas, rule))
            ws.conditional_formatting.add(" ".join(areas), made)
        for drop_down in sheet.drop_downs:
            validation = DataValidation(type="list", formula1=drop_down.source, allow_blank=False,
                                        showErrorMessage=True, errorStyle="stop",
                                        errorTitle=drop_down.title, error=drop_down.message)
            validation.add(drop_down.ref)
            ws.add_data_validation(validation)
        for rule in sheet.whole_numbers:
            validation = DataValidation(type="whole", operator="between", formula1=str(rule.low),
                                        formula2=str(rule.high), allow_blank=False,
                                        showErrorMessage=True, errorStyle="stop",
                                        errorTitle=rule.title, error=rule.message,
                                        showInputMessage=bool(rule.prompt), promptTitle=rule.title,
                                        prompt=rule.prompt or None)
            for ref in rule.refs:
                validation.add(ref)
            ws.add_data_validation(validation)
        for row, col, target, cell in sheet.links:
            ref = area(row, col, row, col)
            ws.cell(row, col).hyperlink = Hyperlink(ref=ref, location=f"'{target}'!{cell}")
        for chart in sheet.charts:
            draw = _line_chart if isinstance(chart, PlanLineChart) else _bar_chart
            ws.add_chart(draw(ws, chart), chart.anchor)
        for picture in sheet.pictures:
            ws.add_image(SheetImage(io.BytesIO(picture.png)), picture.anchor)
    for name, target in plan.names.items():
        book.defined_names[name] = DefinedName(name, attr_text=target)
    book.calculation.fullCalcOnLoad = True
    # one sample cell per style key, whose style index is read back from the saved XML
    keys = sorted({cell[2] for sheet in plan.sheets for cell in sheet.cells.values()})
    first = book[plan.sheets[0].title]
    for row, (kind, fmt) in enumerate(keys, 1):
        cell = first.cell(row, SAMPLE_COLUMN)
        look = style.KINDS[kind]
        cell.font = Font(name=font_name, size=look["size"], bold=look.get("bold", False),
                         color=look.get("color"), underline="single" if look.get("underline") else None)
        if "fill" in look:
            cell.fill = PatternFill("solid", fgColor=look["fill"])
        if "frame" in look:
            side = Side(style="thin", color=look["frame"])
            cell.border = Border(left=side, right=side, top=side, bottom=side)
        if look.get("centre"):
            cell.alignment = Alignment(horizontal="center", vertical="center")
        elif look.get("wrap"):
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        if look.get("unlocked"):
            cell.protection = Protection(locked=False)
        cell.number_format = fmt
    return book, keys


def _print_setup(ws, setup: PrintSetup) -> None:
    """Print settings: the plan's area, breaks, title rows, scale, header and footer."""
    ws.page_setup.orientation = "landscape" if setup.landscape else "portrait"
    ws.page_setup.scale = setup.scale
    ws.page_setup.paperSize = PAPER_SIZES[setup.paper]
    ws.page_setup.pageOrder = "downThenOver" if setup.down_then_over else "overThenDown"
    ws.sheet_properties.pageSetUpPr.fitToPage = False
    ws.page_margins = PageMargins(left=MARGINS["side"], right=MARGINS["side"], top=MARGINS["top"],
                                  bottom=MARGINS["top"], header=MARGINS["header"], footer=MARGINS["header"])
    if setup.area:
        ws.print_area = setup.area
    if setup.title_rows:
        ws.print_title_rows = f"{setup.title_rows[0]}:{setup.title_rows[1]}"
    for row in setup.row_breaks:  # Break(id=n): the page ends after row n
        ws.row_breaks.append(Break(id=row - 1))
    for col in setup.col_breaks:
        ws.col_breaks.append(Break(id=col - 1))
    size = header_size(setup.scale)
    if setup.header:
        ws.oddHeader.left.text = setup.header.replace("&", "&&")
        ws.oddHeader.left.size = size
    ws.oddHeader.right.text = "&A"
    ws.oddHeader.right.size = size
    if setup.footer:
        ws.oddFooter.center.text = (setup.footer.replace("&", "&&").replace(THIS_PAGE, "&P")
                                    .replace(PAGE_COUNT, "&N"))
        ws.oddFooter.center.size = size


def _colour_rule(areas: list[str], scale: Scale) -> ColorScaleRule:
    """The rule of a Scale. Bounds that follow the values are cfvo formulas or min/max."""
    if scale.kind == "channel":
        return ColorScaleRule(start_type="num", start_value=0, start_color="000000",
                              end_type="num", end_value=scale.high,
                              end_color=style.CHANNEL_COLOURS[scale.channel])
    if scale.kind == "fixed":
        return ColorScaleRule(start_type="num", start_value=scale.low, start_color=style.WHITE,
                              end_type="num", end_value=scale.high, end_color=style.SEQUENTIAL)
    if scale.kind == "sequential":
        return ColorScaleRule(start_type="num", start_value=0, start_color=style.WHITE,
                              end_type="max", end_color=style.SEQUENTIAL)
    cells = ",".join(absolute(a) for a in areas)
    largest = f"MAX(MAX({cells}),-MIN({cells}),1E-300)"  # 1E-300: an all-zero map stays white
    return ColorScaleRule(start_type="formula", start_value=f"-{largest}", start_color=style.BLUE,
                          mid_type="num", mid_value=0, mid_color=style.WHITE,
                          end_type="formula", end_value=largest, end_color=style.RED)


def _highlight_rule(highlight: Highlight, font_name: str) -> Rule:
    """A formula rule drawing a border (and maybe bold figures) where the formula is true. A
    shared colour scale's range puts it in the same conditional format as the scale."""
    look = style.HIGHLIGHTS[highlight.look]
    colour = style.highlight_colour(highlight.look, highlight.colour)
    side = Side(style="thin", color=colour)
    dxf = DifferentialStyle(border=Border(left=side, right=side, top=side, bottom=side),
                            font=Font(name=font_name, bold=True) if look["bold"] else None)
    return Rule(type="expression", dxf=dxf, formula=[highlight.formula.removeprefix("=")])


def _bar_chart(ws, plan_chart) -> BarChart:
    """A bar chart whose categories are text and whose caches hold the current values."""
    chart = BarChart()
    chart.title = plan_chart.title
    chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 1
    chart.y_axis.majorUnit, chart.y_axis.number_format = 0.25, "0%"
    chart.legend = None
    series = Series(Reference(ws, range_string=f"'{ws.title}'!{absolute(plan_chart.values)}"))
    series.val.numRef.numCache = NumData(
        formatCode="General", ptCount=len(plan_chart.value_cache),
        pt=[NumVal(idx=i, v=float(v)) for i, v in enumerate(plan_chart.value_cache)])
    series.cat = AxDataSource(strRef=StrRef(
        f=f"'{ws.title}'!{absolute(plan_chart.categories)}",
        strCache=StrData(ptCount=len(plan_chart.category_cache),
                         pt=[StrVal(idx=i, v=v) for i, v in enumerate(plan_chart.category_cache)])))
    chart.series.append(series)
    chart.height, chart.width = 7, 12
    return chart


def _numbers(values) -> NumData:
    return NumData(formatCode="General", ptCount=len(values),
                   pt=[NumVal(idx=i, v=float(v)) for i, v in enumerate(values)])


def _line_chart(ws, plan_chart) -> LineChart:
    """One line over numbered categories, the caches holding the current values."""
    chart = LineChart()
    chart.title = plan_chart.title
    chart.y_axis.scaling.min, chart.y_axis.scaling.max = plan_chart.low, plan_chart.high
    if plan_chart.percent:
        chart.y_axis.majorUnit, chart.y_axis.number_format = 0.25, "0%"
    else:
        chart.y_axis.number_format = plan_chart.value_format
    if plan_chart.label_every > 1:
        chart.x_axis.tickLblSkip = chart.x_axis.tickMarkSkip = plan_chart.label_every
    chart.legend = None
    series = Series(Reference(ws, range_string=f"'{ws.title}'!{absolute(plan_chart.values)}"))
    series.val.numRef.numCache = _numbers(plan_chart.value_cache)
    series.cat = AxDataSource(numRef=NumRef(f=f"'{ws.title}'!{absolute(plan_chart.categories)}",
                                            numCache=_numbers(plan_chart.category_cache)))
    series.smooth = False
    chart.series.append(series)
    chart.height, chart.width = 7, 12
    return chart


# ---- reading openpyxl's output back ----------------------------------------------------------
def _sheet_parts(source: zipfile.ZipFile) -> dict:
    """Sheet title -> its part in the zip, from xl/workbook.xml and its relationships."""
    targets = {}
    for match in _RELATIONSHIP.finditer(source.read("xl/_rels/workbook.xml.rels")):
        rid, target = (match[1], match[2]) if match[1] else (match[4], match[3])
        targets[rid] = target.decode()
    parts = {}
    for match in _SHEET_PART.finditer(source.read("xl/workbook.xml")):
        target = targets[match[2]]
        title = _unescape(match[1].decode())
        parts[title] = target.lstrip("/") if target.startswith("/") else "xl/" + target
    return parts


def _unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))


def _style_ids(sheet_xml: bytes, keys: list) -> dict:
    """Style key -> the cell format index openpyxl gave its sample (no `s`: the default, 0)."""
    ids = {}
    for match in _SAMPLE.finditer(sheet_xml):
        row = int(match[1] or match[2])
        found = _S_ATTRIBUTE.search(match[0])
        ids[keys[row - 1]] = int(found[1]) if found else 0
    missing = [k for k in keys if k not in ids]
    if missing:
        raise RuntimeError(f"openpyxl wrote no style sample for {missing[:3]}: has its output changed?")
    return ids


def _with_cells(sheet_xml: bytes, sheet: SheetPlan, style_ids: dict, cached_values: bool):
    """The sheet's XML in chunks: openpyxl's, with the columns and cells put in."""
    dimension = f'<dimension ref="{_dimension(sheet)}"/>'.encode()
    sheet_xml = _DIMENSION.sub(lambda _: dimension, sheet_xml, count=1)
    found = _SHEET_DATA.search(sheet_xml)
    yield sheet_xml[:found.start()]
    yield _columns(sheet)
    yield from _sheet_data(sheet, style_ids, cached_values)
    rest = sheet_xml[found.end():]
    protection = _PROTECTION.match(rest)  # the schema puts it between the cells and the merged ones
    if protection:
        yield protection[0]
        rest = rest[protection.end():]
    yield _merges(sheet)  # the element that follows <sheetData> in a sheet of ours
    yield rest
