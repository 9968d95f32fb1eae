"""The commands as a person runs them: in a terminal (a pseudo-terminal, so that progress bars
draw), and ended by a signal in the middle of a save.

CliRunner's stdout is not a terminal, so the other tests never draw a progress bar.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from hostile_inputs import NOISE, child_env, random_rgb

from cnnsheet.modelfile import load_model
from cnnsheet.resources import default_photo_path


def run_in_terminal(args, cwd: Path, timeout: float = 180.0) -> tuple[int, str]:
    """`python -m cnnsheet ARGS` with stdin, stdout and stderr on a fresh 24 x 100 terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = child_env(single_thread=False)
    env.update(TERM="xterm-256color", COLUMNS="100", LINES="24")
    process = subprocess.Popen([sys.executable, "-m", "cnnsheet", *map(str, args)], cwd=cwd, stdin=slave,
                               stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"still running after {timeout} s:\n{output.decode(errors='replace')}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has closed it
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        return process.wait(timeout=30), output.decode("utf-8", errors="replace")
    finally:
        os.close(master)


def check_clean(code: int, output: str) -> None:
    assert code == 0, output
    for noise in NOISE:
        assert noise not in output, f"{noise!r} reached the terminal:\n{output}"


@pytest.mark.slow
def test_train_draws_its_progress_bar_and_writes_the_model(tmp_path):
    code, output = run_in_terminal(["train", "--samples", "60", "--epochs", "2", "-o", "m.npz"], tmp_path)
    check_clean(code, output)
    assert "epoch 2/2" in output and "\r" in output, output  # the bar was drawn and redrawn
    model = load_model(tmp_path / "m.npz")
    assert model.classes == ["circle", "square", "triangle"]
    assert all(np.isfinite(value).all() for value in model.params().values())


def test_train_on_a_folder_in_a_terminal_names_the_photos_it_skips(tmp_path):
    for index, name in enumerate(("cats", "dogs")):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for number in range(4):
            random_rgb(20, 20, seed=10 * index + number).save(tmp_path / "photos" / name / f"{number}.png")
    (tmp_path / "photos" / "dogs" / "notes.jpg").write_text("not a photo")
    code, output = run_in_terminal(["train", "photos", "--size", "12", "--kernel", "3", "--pool", "2",
                                    "--epochs", "2", "--batch-size", "2", "-o", "pets.npz"], tmp_path)
    check_clean(code, output)
    assert "notes.jpg" in output
    assert load_model(tmp_path / "pets.npz").classes == ["cats", "dogs"]


def test_explain_in_a_terminal(tmp_path):
    code, output = run_in_terminal(["explain"], tmp_path)
    check_clean(code, output)
    assert "walkthrough.xlsx" in output
    assert "Overview" in openpyxl.load_workbook(tmp_path / "walkthrough.xlsx", read_only=True).sheetnames


def test_explain_on_a_folder_in_a_terminal_draws_one_bar(tmp_path):
    for number in range(3):
        random_rgb(40, 30, seed=number).save(tmp_path / f"{number}.png")
    code, output = run_in_terminal(["explain", ".", "--forward-only", "-o", "out"], tmp_path)
    check_clean(code, output)
    assert output.count("explaining") > 1 and "100%" in output, output  # drawn and redrawn
    for number in range(3):
        assert f"wrote out/{number}.xlsx: {number}.png -> " in output
        book = openpyxl.load_workbook(tmp_path / "out" / f"{number}.xlsx", read_only=True)
        assert "Overview" in book.sheetnames


def test_predict_in_a_terminal(tmp_path):
    code, output = run_in_terminal(["predict", default_photo_path()], tmp_path)
    check_clean(code, output)
    assert "triangle" in output


# ---- signals during a save ----------------------------------------------------------------------------
# Big enough that writing the workbook takes a few seconds.
LONG_SAVE = ["explain", "--untrained", "--size", "64", "--filters", "8", "--forward-only", "-o", "big.xlsx"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, delay", [("SIGTERM", 0.3), ("SIGHUP", 0.3), ("SIGINT", 0.3),
                                                ("SIGTERM", 0.0)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGTERM-as-the-temporary-file-appears"])
def test_a_signal_during_a_save_leaves_no_file_behind(tmp_path, signal_name, delay):
    """The signal comes 0.3 s into the save, or the moment its temporary file exists (a signal
    between creating that file and guarding it would leave it behind)."""
    process = subprocess.Popen([sys.executable, "-m", "cnnsheet", *LONG_SAVE], cwd=tmp_path,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=child_env(single_thread=False), text=True)
    deadline = time.monotonic() + 180
    try:
        while not any(tmp_path.iterdir()):  # the save has begun when its temporary file appears
            assert process.poll() is None, f"ended before a save began: {process.communicate()}"
            assert time.monotonic() < deadline, "no save began within 180 s"
            time.sleep(0.005)
        started = sorted(p.name for p in tmp_path.iterdir())
        time.sleep(delay)
        process.send_signal(getattr(signal, signal_name))
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert process.returncode != 0, f"the save finished before the signal ({started}): {stdout}"
    assert left == [], f"{signal_name} during the save of {started} left {left} (exit {process.returncode})"
    assert "Traceback" not in stderr, stderr
