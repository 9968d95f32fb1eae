"""The worksheet: the walkthrough with some cells blanked for a student to fill in, checked live.

A worksheet is a transform of the finished walkthrough plan, so the walkthrough written with the
same arguments is its key:

    pick(plan, count, seed, forward_only) -> exercises     which cells, one kind of step each
    worksheet(plan, exercises, texts)     -> plan          those cells blanked, in the same places

Each blank is an empty unlocked cell named exercise_<k> in a gold frame, with a live check
exercise_<k>_check beside it (1 right, 0 wrong, "" while blank; record.right's rule as a formula).

Everything after a blank still works. Every sheet S that holds a blank gets a hidden twin with
the same cells in the same places (its unqualified references then mean the twin itself; the
cells a student may type in become references to S, so the twin follows every edit). Every
formula that names S! reads the twin instead, a formula on S that reads a blank reads the twin's
cell, and a defined name over a blank points into the twin: so the cells after a blank read its
true value, computed live, and the check compares the answer with that.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from cnnsheet import handout, names, printing, record, style, writer
from cnnsheet.errors import CnnsheetError
from cnnsheet.layers import Conv, MaxPool, ReLU
from cnnsheet.layout import a1, absolute, area, bounds, on, quote_sheet, split_target, unquote
from cnnsheet.model import Model
from cnnsheet.plan import SheetPlan, WholeNumbers, WorkbookPlan
from cnnsheet.record import Exercise
from cnnsheet.sheets.common import OVERVIEW
from cnnsheet.sheets.overview import TABLE
from cnnsheet.texts import Texts
from cnnsheet.workbook import Walkthrough, build_walkthrough, cell_of

# The kinds of step, in the order of the pass (the keys of the texts' [exercise] section); a
# default worksheet asks one of each, --forward-only the forward ones.
FORWARD_KINDS = ("input", "conv", "relu", "pool", "size", "flatten", "dense", "softmax", "loss", "field")
BACKWARD_KINDS = ("dlogit", "gradient")
KINDS = FORWARD_KINDS + BACKWARD_KINDS
PRODUCT = re.compile(r"=\$?[A-Z]+\$?\d+\*\$?[A-Z]+\$?\d+")  # a weight's gradient: dz x input
SMALLEST = 0.001  # a true value other than 0 is at least this large, so the 1% rule reads cleanly
MOST_DECIMALS = 6
SHEET = "Exercises"
TWIN = "{}_true"  # the hidden twin of a sheet holding a blank
SCORE, COUNT = "exercise_score", "exercise_count"
ANSWER_LOOK = "answer"
ANY_NUMBER = 10**15 - 1  # the bounds of an answer's validation: any number Excel keeps exactly
DEFAULT_WIDTH = 8.43  # characters: a column of no set width
CHECK_WIDTH = 3.0  # characters: a tick or a cross in a narrow column takes a merge of a few
WHAT_WIDTH = 44  # characters: the Exercises sheet's column of what to compute

# A reference in a formula: a text literal (kept as it is), or a cell or area, perhaps on another
# sheet; not a part of a name (conv1_f1_grey), a function (LOG10() or a number (1E-06).
TOKEN = re.compile(r"""("(?:[^"]|"")*")"""
                   r"""|(?<![\w.$!])((?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?"""
                   r"""(\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?)(?![\w(!])""")


def answer_name(number: int) -> str:
    return f"exercise_{number}"


def check_name(number: int) -> str:
    return f"exercise_{number}_check"


# ---- which cells ----------------------------------------------------------------------------
def candidates(plan: WorkbookPlan, kind: str) -> list[tuple[str, int, int]]:
    """The cells that can be asked for an exercise of `kind`: formula cells with a number that the
    printed page of their sheet shows, whose true value is 0 or not tiny."""
    titles = set(plan.sheetnames)
    cells = []
    if kind in ("dense", "softmax", "loss", "dlogit"):
        name = {"dense": names.logits(), "softmax": names.probabilities(), "loss": names.LOSS,
                "dlogit": names.DLOGITS}[kind]
        if name in plan.names:
            sheet, ref = split_target(plan.names[name])
            top, left, bottom, right = bounds(ref)
            cells = [(sheet, row, col) for row in range(top, bottom + 1) for col in range(left, right + 1)]
    elif kind in ("size", "field"):
        column = (TABLE["table_size"] if kind == "size" else TABLE["table_field"])[0]
        top = table_top(plan[OVERVIEW])  # above it, the heat maps' cells share the narrow columns
        cells = [(OVERVIEW, row, col) for (row, col) in plan[OVERVIEW].cells if col == column and row > top]
    else:
        title = {"input": "Input", "conv": "Conv1", "relu": "ReLU1", "pool": "Pool1", "flatten": "Flatten",
                 "gradient": last_dense_gradients(titles)}[kind]
        if title in titles:
            top, left, bottom, right = bounds(handout.printed_area(plan, title))
            cells = [(title, row, col) for (row, col), (formula, _, _) in plan[title].cells.items()
                     if top <= row <= bottom and left <= col <= right
                     and (kind != "gradient" or PRODUCT.fullmatch(formula or ""))]
    return sorted(cell for cell in cells if askable(plan[cell[0]].cells.get(cell[1:])))


def last_dense_gradients(titles) -> str | None:
    """The sheet of the gradients of the last dense layer (dDense1 without a hidden layer): each
    weight's gradient is dz of its output times its input, both on the same page."""
    found = sorted((int(title[6:]), title) for title in titles if re.fullmatch(r"dDense\d+", title))
    return found[-1][1] if found else None


def askable(cell) -> bool:
    if cell is None or cell[0] is None or isinstance(cell[1], str):
        return False
    return cell[1] == 0 or abs(cell[1]) >= SMALLEST


def decimals(value: float) -> int:
    """Decimals enough for an answer rounded to them to be within 1% (record.RELATIVE): none for a
    whole number."""
    if value == round(value):
        return 0
    wanted = math.ceil(math.log10(0.5 / (record.RELATIVE * abs(value))))
    return max(1, min(MOST_DECIMALS, wanted))


def pick(plan: WorkbookPlan, count: int, seed: int, forward_only: bool,
         shown: frozenset = frozenset()) -> tuple[Exercise, ...]:
    """`count` cells to blank, drawn with `seed`: one of each kind of step first (in the order of the
    pass), then more of them in turn; with fewer than the kinds, a draw of the kinds. No cell of
    `shown` (those a panel of the walkthrough takes apart: see given_away) is asked."""
    rng = np.random.default_rng(seed)
    pools = {kind: [cell for cell in candidates(plan, kind) if cell not in shown]
             for kind in (FORWARD_KINDS if forward_only else KINDS)}
    kinds = [kind for kind in pools if pools[kind]]
    if count < len(kinds):
        kinds = [kinds[i] for i in sorted(rng.choice(len(kinds), count, replace=False))]
    for kind in kinds:
        rng.shuffle(pools[kind])
    chosen = []
    while len(chosen) < count and any(pools[kind] for kind in kinds):
        for kind in kinds:
            if pools[kind] and len(chosen) < count:
                chosen.append((kind, pools[kind].pop()))
    exercises = []
    for number, (kind, (sheet, row, col)) in enumerate(chosen, 1):
        value = plan[sheet].cells[row, col][1]
        exercises.append(Exercise(number, sheet, row, col, kind, decimals(value)))
    return tuple(exercises)


def most_exercises(plan: WorkbookPlan, forward_only: bool, shown: frozenset = frozenset()) -> int:
    kinds = FORWARD_KINDS if forward_only else KINDS
    return sum(len([cell for cell in candidates(plan, kind) if cell not in shown]) for kind in kinds)


def given_away(plan: WorkbookPlan, model: Model) -> frozenset:
    """The cells whose values a panel of the walkthrough shows worked out: the Zoom sheet's conv cell
    (Conv1), and the Pool sheet's chosen cell (Pool1) with its window on the ReLU sheet before it.
    Asked, their answers would stand beside them."""
    layers = model.layers
    shown = set()

    def chosen(prefix):  # the choice's (filter, row, col), 0-based
        found = []
        for key in names.CHOICE_KEYS:
            sheet, row, col = cell_of(plan.names[names.choice(prefix, key)])
            found.append(int(plan[sheet].cells[row, col][1]) - 1)
        return found

    def cell(sheet, layer, f, i, j):  # a cell of block f of the map a layer made, inside its border
        after = layers.index(layer) + 1
        border = layers[after].padding if after < len(layers) and isinstance(layers[after], Conv) else 0
        top, left = plan[sheet].keep[f][:2]
        return sheet, top + 1 + border + i, left + border + j

    convs = [layer for layer in layers if isinstance(layer, Conv)]
    if convs and names.choice(names.zoom(1), "filter") in plan.names and "Conv1" in plan.sheetnames:
        shown.add(cell("Conv1", convs[0], *chosen(names.zoom(1))))
    pools = [layer for layer in layers if isinstance(layer, MaxPool)]
    if pools and names.choice(names.pool_choice(1), "filter") in plan.names and "ReLU1" in plan.sheetnames:
        f, i, j = chosen(names.pool_choice(1))
        pool = pools[0]
        shown.add(cell("Pool1", pool, f, i, j))
        before = layers[layers.index(pool) - 1]
        if isinstance(before, ReLU) and before is next(layer for layer in layers if isinstance(layer, ReLU)):
            shown.update(cell("ReLU1", before, f, i * pool.stride + a, j * pool.stride + b)
                         for a in range(pool.size) for b in range(pool.size))
    return frozenset(shown)


# ---- the worksheet --------------------------------------------------------------------------
def worksheet(plan: WorkbookPlan, exercises, texts: Texts) -> WorkbookPlan:
    """The walkthrough `plan` with the cells of `exercises` blanked, each checked live, every
    sheet protected, and an Exercises sheet; `plan` itself is left as it was."""
    sheets = [dataclasses.replace(sheet, cells=dict(sheet.cells), links=list(sheet.links),
                                  merges=list(sheet.merges), printing=dataclasses.replace(sheet.printing))
              for sheet in plan.sheets]
    book = WorkbookPlan(sheets, dict(plan.names), plan.lang)
    book._folded.update(plan._folded)
    for sheet in book.sheets:
        unlock_weights(book, sheet)
    blanks = {}  # sheet -> {(row, col)}
    for exercise in exercises:
        blanks.setdefault(exercise.sheet, set()).add((exercise.row, exercise.col))
    twins = {title: TWIN.format(title) for title in blanks}
    for title, twin in twins.items():
        book.sheets.append(twin_of(book[title], twin))
    for name, target in list(book.names.items()):
        sheet, ref = split_target(target)
        if sheet in blanks and covers(ref, blanks[sheet]):
            book.names[name] = on(twins[sheet], absolute(ref))
    for sheet in book.sheets:
        home_blanks = blanks.get(sheet.title, set())
        twin = twins.get(sheet.title)
        for where, (formula, value, look) in sheet.cells.items():
            if formula is not None and (twin is not None or "!" in formula):  # else nothing to rewrite
                rewritten = rewrite(formula, twins, twin, home_blanks)
                if rewritten != formula:
                    sheet.cells[where] = (rewritten, value, look)
    for title, twin in twins.items():
        mirror_inputs(book[title], book[twin])
    exercise_sheet = exercises_sheet(book, exercises, texts)
    for exercise in exercises:
        blank(book, exercise, twins[exercise.sheet], texts)
    score(book, exercises, texts)
    prune_twins(book, set(twins.values()))
    book.sheets.insert(1, book.sheets.pop(book.sheetnames.index(exercise_sheet.title)))
    for sheet in book.sheets:
        sheet.protected = True
    book.paper = {**plan.paper, **texts.paper}  # the walkthrough's printed texts, and the exercises'
    return book


def unlock_weights(book: WorkbookPlan, sheet: SheetPlan) -> None:
    """The weights and biases of the first pass take typing on a protected sheet, as the text of
    the Overview says they may be changed."""
    for name, target in book.names.items():
        if not re.fullmatch(r"conv\d+_f\d+_\w+|dense\d+_[wb]\d+", name):
            continue
        title, ref = split_target(target)
        if title != sheet.title:
            continue
        top, left, bottom, right = bounds(ref)
        for row in range(top, bottom + 1):
            for col in range(left, right + 1):
                cell = sheet.cells.get((row, col))
                if cell and cell[0] is None and not isinstance(cell[1], str):
                    sheet.cells[row, col] = (None, cell[1], ("weight", cell[2][1]))


def twin_of(sheet: SheetPlan, title: str) -> SheetPlan:
    """A hidden copy of a sheet's cells in the same places."""
    return SheetPlan(title, cells=dict(sheet.cells), hidden=True, protected=True)


def mirror_inputs(sheet: SheetPlan, twin: SheetPlan) -> None:
    """The cells of the twin where a student may type on the original become references to it, so
    that the twin follows the edit (after the rewriting, which would send them to the twin)."""
    for (row, col), (formula, value, look) in sheet.cells.items():
        if formula is None and style.KINDS[look[0]].get("unlocked"):
            twin.cells[row, col] = (f"={on(sheet.title, a1(row, col))}", value, ("mirror", look[1]))


def prune_twins(book: WorkbookPlan, twins: set) -> None:
    """Keep on each twin only the cells that something reads, directly or through other cells of
    the twins (a twin of the Overview needs its table, not the copies of its heat maps)."""
    needed = {title: set() for title in twins}
    waiting, sheets = [], {sheet.title: sheet for sheet in book.sheets}
    ends = (TWIN.format("") + "!", TWIN.format("") + "'!")  # how a reference to a twin ends

    seen = set()

    def mark(title, ref):
        if (title, ref) in seen:
            return
        seen.add((title, ref))
        cells, top, left, bottom, right = sheets[title].cells, *bounds(ref.replace("$", ""))
        for row in range(top, bottom + 1):
            for col in range(left, right + 1):
                if (row, col) in cells and (row, col) not in needed[title]:
                    needed[title].add((row, col))
                    waiting.append((title, row, col))

    for target in book.names.values():
        title, ref = split_target(target)
        if title in twins:
            mark(title, ref)
    for sheet in book.sheets:
        if sheet.title in twins:
            continue
        for formula, _, _ in sheet.cells.values():
            if formula is not None and (ends[0] in formula or ends[1] in formula):
                for title, ref in references(formula):
                    if title in twins:
                        mark(title, ref)
    while waiting:
        title, row, col = waiting.pop()
        formula = sheets[title].cells[row, col][0]
        for other, ref in references(formula) if formula else ():
            if other is None or other in twins:
                mark(other or title, ref)
    for title in twins:
        sheet = sheets[title]
        sheet.cells = {where: cell for where, cell in sheet.cells.items() if where in needed[title]}


def references(formula: str):
    """(sheet or None, reference) of every cell or area a formula names, text literals skipped."""
    for match in TOKEN.finditer(formula):
        if match[1] is None:
            yield (unquote(match[2][:-1]) if match[2] else None), match[3]


def covers(ref: str, cells) -> bool:
    top, left, bottom, right = bounds(ref.replace("$", ""))
    return any(top <= row <= bottom and left <= col <= right for row, col in cells)


def rewrite(formula: str, twins: dict, twin: str | None, blanks) -> str:
    """A formula with every reference to a sheet that has a twin reading the twin, and (on such a
    sheet, `twin` its twin) every unqualified reference over one of its `blanks` reading the twin's
    cells. Text literals are left alone."""
    def replace(match):
        literal, prefix, ref = match.groups()
        if literal is not None:
            return literal
        if prefix:
            sheet = unquote(prefix[:-1])
            return f"{quote_sheet(twins[sheet])}!{ref}" if sheet in twins else match[0]
        if twin is not None and covers(ref, blanks):
            return f"{quote_sheet(twin)}!{ref}"
        return ref

    return TOKEN.sub(replace, formula)


def check_formula(answer: str, truth: str) -> str:
    """record.right as a formula: "" while the answer is blank, 1 right, 0 wrong. A text is wrong,
    and so is a formula, as `check` counts it: it could copy the answer from a twin. (ISFORMULA
    came with Excel 2013, so the file spells it _xlfn.ISFORMULA; LibreOffice and Gnumeric read it.)"""
    return (f'=IF(ISBLANK({answer}),"",IF(_xlfn.ISFORMULA({answer}),0,IF(ISNUMBER({answer}),'
            f'IF(ABS({answer}-{truth})<=MAX({record.RELATIVE!r}*ABS({truth}),{record.ZERO:.0E}),1,0),0)))')


def check_format(number: int) -> str:
    """A tick when right, a cross when wrong, the exercise's number while it is blank."""
    return f'[Green]"\u2713";[Red]"\u2717";[Red]"\u2717";"Q{number}"'


def free_beside(sheet: SheetPlan, row: int, col: int) -> int:
    """The first column right of (row, col) whose cell is empty and not merged."""
    merged = [bounds(ref) for ref in sheet.merges]
    col += 1
    while (row, col) in sheet.cells or any(top <= row <= bottom and left <= col <= right
                                            for top, left, bottom, right in merged):
        col += 1
    return col


def check_place(sheet: SheetPlan, row: int, col: int) -> tuple[int, int]:
    """The first and last column of the check of the blank at (row, col): the first free cell to
    its right, merged with the free cells after it until it is wide enough for a tick; where the
    columns are narrow and taken (the Overview's table), the right end of the blank's own merge."""
    def width(column):
        return sheet.widths.get(column, DEFAULT_WIDTH)

    first = free_beside(sheet, row, col)
    total, last = width(first), first
    while total < CHECK_WIDTH and (row, last + 1) not in sheet.cells:
        last += 1
        total += width(last)
    own = next((bounds(ref) for ref in sheet.merges if bounds(ref)[:2] == (row, col)), None)
    if total >= CHECK_WIDTH or own is None:
        return first, last
    sheet.merges.remove(area(*own))
    last = first = own[3]
    total = width(first)
    while total < CHECK_WIDTH and first - 1 > col + 1:
        first -= 1
        total += width(first)
    sheet.merges.append(area(row, col, row, first - 1))
    return first, last


def answer_format(exercise: Exercise) -> str:
    return "0" if exercise.decimals == 0 else "0." + "0" * exercise.decimals


def blank(book: WorkbookPlan, exercise: Exercise, twin: str, texts: Texts) -> None:
    """Empty the exercise's cell for an answer, and put its live check beside it."""
    sheet = book[exercise.sheet]
    row, col, k = exercise.row, exercise.col, exercise.number
    sheet.cells[row, col] = (None, None, (ANSWER_LOOK, answer_format(exercise)))
    book.name(answer_name(k), sheet.title, a1(row, col))
    check_col, last = check_place(sheet, row, col)
    if last > check_col:
        sheet.merges.append(area(row, check_col, row, last))
    cell = a1(row, col)
    # what to compute, shown when the cell is selected; a text is refused (it could only be wrong)
    sheet.whole_numbers.append(WholeNumbers((cell,), -ANY_NUMBER, ANY_NUMBER, f"Q{k}",
                                            texts("exercise", "not_a_number"), exercise_text(texts, exercise),
                                            kind="decimal"))
    sheet.formula(row, check_col, check_formula(cell, on(twin, cell)), "", ("check", check_format(k)))
    book.name(check_name(k), sheet.title, a1(row, check_col))


def exercise_text(texts: Texts, exercise: Exercise) -> str:
    places = texts("exercise", "decimals_none") if exercise.decimals == 0 else texts(
        "exercise", "decimals", n=exercise.decimals)
    return f"{texts('exercise', exercise.kind)} ({places})"


def exercises_sheet(book: WorkbookPlan, exercises, texts: Texts) -> SheetPlan:
    """The list of every exercise: where it is (a link), what to compute, and its check."""
    ws = book.sheet(SHEET)
    ws.text(1, 1, texts("exercise", "title"), style.key("title"))
    ws.link(2, 1, texts("labels", "back"), OVERVIEW)
    row = 3
    for line in texts.lines("exercise", "body", percent=f"{record.RELATIVE:.0%}"):
        ws.text(row, 1, line, style.key("plain"))  # printing.lay_out wraps it
        row += 1
    row += 1
    for col, key in enumerate(("number", "where", "what", "answer", "check"), 1):
        ws.label(row, col, texts("exercise", f"column_{key}"))
    for exercise in exercises:
        row += 1
        k = exercise.number
        ws.number(row, 1, k, style.key("plain"))
        ws.link(row, 2, f"{exercise.sheet} {a1(exercise.row, exercise.col)}", exercise.sheet)
        what = exercise_text(texts, exercise)
        ws.text(row, 3, what, style.key("prose"))
        lines = math.ceil(printing.text_points(what, 11) / printing.column_points(WHAT_WIDTH))
        ws.heights[row] = printing.DEFAULT_ROW * max(1, lines)
        ws.formula(row, 4, f'=IF(ISBLANK({answer_name(k)}),"",{answer_name(k)})', "", style.key("value"))
        ws.formula(row, 5, f"={check_name(k)}", "", ("check", check_format(k)))
    ws.width("ABCDE", (3, 13, WHAT_WIDTH, 11, 6))
    printing.lay_out(ws, header=texts("exercise", "title"),
                     footer=texts("labels", "footer", page=printing.THIS_PAGE, pages=printing.PAGE_COUNT))
    return ws


def list_row(plan: WorkbookPlan, number: int) -> int:
    """The row of exercise `number` on the Exercises sheet."""
    return next(row for (row, col), cell in plan[SHEET].cells.items()
                if col == 1 and cell[1] == number and cell[2][0] == "plain")


def score(book: WorkbookPlan, exercises, texts: Texts) -> None:
    """exercise_score (how many are right) and exercise_count on the Overview, in the first empty
    row below its summary."""
    ws = book[OVERVIEW]
    used = {row for row, _ in ws.cells}
    row = 9
    while row in used:
        row += 1
    ws.text(row, 1, texts("exercise", "score"), style.key("heading"))
    checks = ",".join(check_name(exercise.number) for exercise in exercises)
    ws.formula(row, 30, f"=SUM({checks})", 0, style.key("heading"))
    ws.merges.append(area(row, 30, row, 44))
    ws.number(row, 46, len(exercises), ("plain", texts("exercise", "count_format")))
    book.name(SCORE, OVERVIEW, a1(row, 30))
    book.name(COUNT, OVERVIEW, a1(row, 46))


# ---- the whole of it ------------------------------------------------------------------------
@dataclasses.dataclass
class Worksheet:
    """A worksheet's plan, the walkthrough it blanks (its key), and its exercises."""

    plan: WorkbookPlan
    key: Walkthrough
    exercises: tuple

    @property
    def formula_count(self) -> int:
        return Walkthrough(self.plan).formula_count

    def save(self, path) -> None:
        writer.save(self.plan, path)




def build_worksheet(model: Model, pixels: np.ndarray, texts: Texts, count: int, seed: int, options: dict,
                    **walkthrough) -> Worksheet:
    """The worksheet of `count` exercises drawn with `seed` from the walkthrough that
    build_walkthrough(model, pixels, texts, **walkthrough) plans, with the record that `cnnsheet
    check` reads: the model's config and `options` (how to build that walkthrough again), to
    which the seed and the count are added."""
    key = build_walkthrough(model, pixels, texts, **walkthrough)
    forward_only = not walkthrough.get("with_backward", False)
    shown = given_away(key.plan, model)
    most = most_exercises(key.plan, forward_only, shown)
    if count > most:
        raise CnnsheetError(f"--count {count}: this walkthrough has only {most} cells to ask for")
    exercises = pick(key.plan, count, seed, forward_only, shown)
    plan = worksheet(key.plan, exercises, texts)
    # what rebuilding the walkthrough needs beyond the cells (the pixels, weights and choices)
    build = {key: value for key, value in walkthrough.items() if key in record.BUILD_ARGUMENTS}
    kept = dict(options, seed=seed, count=count, forward_only=forward_only, lang=texts.lang, build=build)
    record.add(plan, record.Record(model.config, kept, exercises))
    return Worksheet(plan, key, exercises)


# ---- on paper -------------------------------------------------------------------------------
# The sheets a student needs before an exercise of each kind, beside its own: the window and the
# kernel for a conv cell, the map before for a ReLU or a pool, the pooled maps for a flatten.
SMALL_SHEET = 400  # cells: a sheet of a tiny network, which prints whole on one page
NEEDS = {"input": ("Image",), "conv": ("Input", "Filters1"), "relu": ("Conv1",), "pool": ("ReLU1",),
         "flatten": ("Pool1",)}


def print_areas(book: Worksheet) -> dict:
    """Sheet -> what the worksheet prints of it on paper (see handout.handout_plan): the list of
    exercises, then in the workbook's order each sheet that holds a blank or a number one needs,
    each on a page: the handout's page of it, reaching through every blank and check it holds, or
    a small sheet whole (a tiny network's, whose second filter a conv cell may need)."""
    plan, exercises = book.plan, book.exercises
    wanted = {exercise.sheet for exercise in exercises}
    for exercise in exercises:
        wanted.update(title for title in NEEDS.get(exercise.kind, ()) if title in plan.sheetnames)
    reach = {}
    for exercise in exercises:  # a blank and its check (its number, on paper) print on its page
        title, ref = split_target(plan.names[check_name(exercise.number)])
        row, col = reach.get(title, (0, 0))
        reach[title] = (max(row, exercise.row, bounds(ref)[0]), max(col, exercise.col, bounds(ref)[1]))
    areas = {SHEET: plan[SHEET].printing.area}
    for sheet in plan.sheets:
        if sheet.title == OVERVIEW and sheet.title in wanted:
            top, left, bottom, right = bounds(overview_table(sheet))
            row, col = reach.get(OVERVIEW, (0, 0))
            areas[sheet.title] = area(top, left, max(bottom, row), max(right, col))
        elif sheet.title in wanted:
            small = len(sheet.cells) <= SMALL_SHEET
            areas[sheet.title] = printing.last_cell(sheet) if small else reach.get(sheet.title)
    return areas


def table_top(overview: SheetPlan) -> int:
    """The first row of the Overview's table of steps (its heading)."""
    return min(unit[0] for unit in overview.keep if unit[3] == TABLE["table_note"])


def overview_table(sheet: SheetPlan) -> str:
    """The Overview's table of steps (its sizes and receptive fields), from its heading down."""
    top = table_top(sheet)
    bottom = max(row for (row, col), (formula, _, _) in sheet.cells.items()
                 if formula is not None and col >= TABLE["table_size"][0])  # its total
    return area(top, 1, bottom, TABLE["table_note"])


def on_paper(book: Worksheet, key: bool) -> WorkbookPlan:
    """The worksheet's plan as it prints: each check shows the exercise's number (a printout keeps
    values, and an empty text shows nothing); with `key`, every answer filled in with the key's
    value, and its check a tick."""
    plan = WorkbookPlan([dataclasses.replace(sheet, cells=dict(sheet.cells)) for sheet in book.plan.sheets],
                        dict(book.plan.names), book.plan.lang, dict(book.plan.paper))
    expected = book.key.expected
    for exercise in book.exercises:
        truth = expected[exercise.sheet, exercise.row, exercise.col]
        row = list_row(plan, exercise.number)
        checks = [split_target(plan.names[check_name(exercise.number)]), (SHEET, a1(row, 5))]
        for sheet, ref in checks:
            top, left = bounds(ref)[:2]
            formula, _, look = plan[sheet].cells[top, left]
            plan[sheet].cells[top, left] = (formula, 1, look) if key else (None, f"Q{exercise.number}", look)
        if key:
            cells = plan[exercise.sheet].cells
            cells[exercise.row, exercise.col] = (None, truth, cells[exercise.row, exercise.col][2])
            plan[SHEET].cells[row, 4] = (None, truth, ("value", answer_format(exercise)))
    return plan


def save_pdf(book: Worksheet, path, soffice: str, key: bool = False) -> None:
    """Print the worksheet (the answers as empty boxes) or, with `key`, its key to a PDF."""
    handout.save_pdf(on_paper(book, key), path, soffice, areas=print_areas(book))
