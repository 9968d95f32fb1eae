"""Every formula the README quotes is one the CLI writes into the default workbook."""

import re
from pathlib import Path

from helpers import default_case

from cnnsheet.workbook import build_walkthrough

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_formula_quoted_in_the_readme_is_in_the_default_workbook():
    quoted = {q for q in re.findall(r"`(=[^`]+)`", README.read_text(encoding="utf-8")) if "..." not in q}
    assert len(quoted) >= 6
    model, photo = default_case()
    plan = build_walkthrough(model, photo, with_backward=True, bundled=True).plan
    written = {formula for sheet in plan.sheets for formula, _, _ in sheet.cells.values() if formula}
    assert not quoted - written, sorted(quoted - written)


def test_the_readme_states_the_workbook_limit_the_budget_applies():
    from cnnsheet import budget

    [millions] = re.findall(r"\| the workbook \| (\d+) million cells", README.read_text(encoding="utf-8"))
    assert int(millions) * 1_000_000 == budget.MAX_CELLS
