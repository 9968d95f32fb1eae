"""Fixtures shared by every test file, the markers that let `pytest -m "not slow"` run the quick
tests in about a minute, and the hypothesis profiles (fixed cases in CI, new ones to explore)."""

import inspect
import os
import types

import gnumeric
import hostile_inputs
import libreoffice
import pytest
from hypothesis import settings

# CI draws the same cases on every run, so that a red build is the code's doing; elsewhere each
# run draws new ones, as `--hypothesis-profile=explore` does in CI too.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)

# What a test starts, by the helpers it calls (itself or through its fixtures): the marker it gets.
# A fresh `python -m cnnsheet` (hostile_inputs.run_cli) takes half a second to import numpy and
# the rest; the hostile table's two hundred cases of it are most of the suite's quick part.
STARTS = {libreoffice.convert: "libreoffice", libreoffice.soffice: "libreoffice",
          gnumeric.recalculate: "gnumeric", gnumeric.ssconvert: "gnumeric", hostile_inputs.run_cli: "slow"}
SLOW_PROGRAMS = {"libreoffice", "gnumeric"}  # seconds to start, every time


def pytest_configure(config):
    if os.environ.get("CI") and not config.getoption("hypothesis_profile", None):
        settings.load_profile("ci")


@pytest.fixture(scope="session")
def calc_profile(tmp_path_factory):
    """One LibreOffice user profile for the whole run: Calc starts faster the second time."""
    return libreoffice.make_profile(tmp_path_factory.mktemp("calc-profile"))


def _called(function, seen: set) -> set:
    """The markers of the programs and the oracle that a function reaches through the globals it
    names, inside its lambdas and comprehensions too, and through the functions of its own
    module that it calls."""
    function = getattr(getattr(function, "hypothesis", None), "inner_test", function)
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None or code in seen:
        return set()
    seen.add(code)
    where, marks, codes = function.__globals__, set(), [code]
    while codes:
        code = codes.pop()
        codes += [constant for constant in code.co_consts if isinstance(constant, types.CodeType)]
        for name in code.co_names:
            found = where.get(name)
            if name == "torch" or getattr(found, "__module__", None) == "torch_oracle":  # `import torch` too
                marks.add("torch")
            elif callable(found) and found in STARTS:
                marks.add(STARTS[found])
            elif isinstance(found, types.FunctionType) and found.__module__ == where["__name__"]:
                marks |= _called(found, seen)
    return marks


def pytest_collection_modifyitems(items):
    """Mark each test by what it uses: `libreoffice` or `gnumeric` if it or one of its fixtures
    starts that program (a `calc_profile` is for LibreOffice), `torch` if it asks the torch
    oracle, and `slow` for both programs and for a fresh cnnsheet process (run_cli). Tests that
    are slow for other reasons carry an explicit @pytest.mark.slow."""
    for item in items:
        function = getattr(item, "function", None)
        if function is None:
            continue
        functions = [function] + [definition.func for definitions in
                                  item._fixtureinfo.name2fixturedefs.values() for definition in definitions]
        marks, seen = set(), set()
        for each in functions:
            marks |= _called(each, seen)
        if "calc_profile" in item.fixturenames:
            marks.add("libreoffice")
        if marks & SLOW_PROGRAMS:
            marks.add("slow")
        for mark in sorted(marks):
            item.add_marker(mark)
