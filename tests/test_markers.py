"""The suite's own sorting: tests are marked by what they start (tests/conftest.py), so that
`pytest -m "not slow"` leaves out LibreOffice and Gnumeric, and CI draws fixed hypothesis cases."""

import os
import subprocess
import sys

import pytest
from hypothesis import settings


def collected(*arguments) -> set[str]:
    """The ids of the tests pytest collects with these arguments, in a fresh process."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *arguments], capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {line for line in done.stdout.splitlines() if "::" in line}


@pytest.mark.slow
def test_tests_are_marked_by_what_they_start():
    files = ["tests/test_handout.py", "tests/test_writer.py", "tests/test_engine.py", "tests/test_hostile.py"]
    libreoffice, gnumeric, torch, quick = (collected(*files, "-m", marker) for marker in
                                           ("libreoffice", "gnumeric", "torch", "not slow"))
    assert not any(test.startswith("tests/test_hostile.py::test_hostile_input_is_refused_in_one_line")
                   for test in quick)  # a fresh cnnsheet process each
    # through a fixture (handouts calls soffice) and through a calc_profile
    assert {"tests/test_handout.py::test_the_zoom_page_holds_one_conv_cell_to_recompute_by_hand",
            "tests/test_handout.py::test_the_workbook_prints_numbers_of_6_pt_at_least_with_headers_and_footers",
            } <= libreoffice
    # directly, and inside a hypothesis test
    assert {"tests/test_writer.py::test_gnumeric_agrees_with_the_engine_on_the_default_walkthrough",
            "tests/test_writer.py::test_gnumeric_agrees_on_a_random_two_block_network_also_after_an_edit",
            } <= gnumeric
    assert "tests/test_engine.py::test_every_tensor_and_gradient_matches_torch" in torch
    assert not (libreoffice | gnumeric) & quick  # both programs are slow
    # a test that only pretends LibreOffice is missing starts nothing
    assert "tests/test_handout.py::test_without_libreoffice_explain_pdf_fails_first_in_one_line" in quick
    assert "tests/test_writer.py::test_a_number_is_kept_as_a_python_number[value1-0.5]" in quick


def test_ci_draws_the_same_cases_every_run(request):
    chosen = request.config.getoption("hypothesis_profile", None)
    if chosen is None:
        assert settings.default.derandomize == bool(os.environ.get("CI"))
    else:
        assert settings.default.derandomize == settings.get_profile(chosen).derandomize


def test_in_ci_hypothesis_is_derandomised():
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{__file__}::test_ci_draws_the_same_cases_every_run"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "CI": "true"},
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-2000:]
