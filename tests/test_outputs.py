"""Output files: one check before any work (files.check_output), then written whole or not at all,
also when the disk is full or the process is told to stop."""

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnsheet import files
from cnnsheet.cli import main, shown
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_output, write_atomically
from cnnsheet.resources import default_photo_path


def make(tmp_path, setup: str) -> Path:
    """A situation for an output named out.<ext> (or as set up) in tmp_path; returns the path."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(default_photo_path().read_bytes())
    out = tmp_path / "out.xlsx"
    if setup == "folder":
        out.mkdir()
    elif setup == "symlink to the photo":
        out.symlink_to(photo)
    elif setup == "hard link to the photo":
        os.link(photo, out)
    elif setup == "symlink to a pipe":  # not /dev/null: a root test elsewhere may have replaced it
        os.mkfifo(tmp_path / "pipe")
        out.symlink_to(tmp_path / "pipe")
    elif setup == "fifo":
        os.mkfifo(out)
    elif setup == "read-only":
        out.write_bytes(b"old")
        out.chmod(0o444)
    elif setup == "missing folder":
        out = tmp_path / "nowhere" / "out.xlsx"
    elif setup == "name too long":
        out = tmp_path / ("a" * 300 + ".xlsx")
    elif setup == "wrong extension":
        out = tmp_path / "out.csv"
    elif setup == "no extension":
        out = tmp_path / "out"
    elif setup == "the photo itself":
        out = photo
    return out


@pytest.mark.parametrize("setup, message", [
    ("folder", "is a folder"),
    ("symlink to the photo", "is the input .*photo.jpg"),
    ("hard link to the photo", "is the input .*photo.jpg"),
    ("symlink to a pipe", "is not a regular file"),
    ("fifo", "is not a regular file"),
    ("read-only", "is read-only"),
    ("missing folder", "the folder .*nowhere does not exist"),
    ("name too long", r"the file name is longer than the file system allows \(\d+ bytes\)"),
    ("wrong extension", r"a workbook file must end in .xlsx \(for example out.xlsx\)"),
    ("no extension", "a workbook file must end in .xlsx"),
    ("the photo itself", "a workbook file must end in .xlsx"),
])
def test_outputs_that_must_not_be_written_are_refused(tmp_path, setup, message):
    out = make(tmp_path, setup)
    with pytest.raises(CnnsheetError, match=f"^-o .*: {message}"):
        check_output(out, "workbook", inputs=[tmp_path / "photo.jpg", None])


@pytest.mark.parametrize("kind, name", [("workbook", "a.xlsx"), ("workbook", "A.XLSX"), ("model", "m.npz"),
                                        ("pdf", "handout.pdf")])
def test_each_kind_takes_its_own_extension(tmp_path, kind, name):
    assert check_output(tmp_path / name, kind) == tmp_path / name
    other = next(k for k in files.EXTENSIONS if k != kind)
    with pytest.raises(CnnsheetError, match=f"must end in {files.EXTENSIONS[other]}"):
        check_output(tmp_path / name, other)


def test_an_earlier_output_of_the_same_name_is_replaced(tmp_path):
    out = tmp_path / "out.xlsx"
    out.write_bytes(b"old")
    check_output(out, "workbook")
    write_atomically(out, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert out.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.xlsx"]


def test_a_temporary_name_fits_the_file_system_when_the_name_nearly_fills_it(tmp_path):
    out = tmp_path / ("b" * (files.name_max(tmp_path) - 5) + ".xlsx")
    seen = []
    write_atomically(out, lambda tmp: (seen.append(Path(tmp).name), Path(tmp).write_bytes(b"x")))
    assert out.read_bytes() == b"x"
    assert len(seen[0].encode()) <= files.name_max(tmp_path)


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, number):
    def write(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError(number, os.strerror(number))

    with pytest.raises(CnnsheetError, match=f"out.xlsx: cannot be written \\({os.strerror(number)}\\)"):
        write_atomically(tmp_path / "out.xlsx", write)
    assert os.listdir(tmp_path) == []


def test_the_cli_checks_the_output_before_any_work(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the photo was read before the output was checked")

    for where in ("cnnsheet.cli.load_model", "cnnsheet.lesson.load_image", "cnnsheet.lesson.load_model",
                  "cnnsheet.train.load_model"):  # the commands, and the work they call
        monkeypatch.setattr(where, never)
    result = CliRunner().invoke(main, ["explain", "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 1
    assert result.output.strip().endswith("a workbook file must end in .xlsx (for example out.xlsx)")
    result = CliRunner().invoke(main, ["train", "-o", str(tmp_path / "model.xlsx")])
    assert result.exit_code == 1 and "a model file must end in .npz" in result.output


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("三角形", "三角形"),
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("line\nbreak\ttab", "line\\nbreak\\ttab"),
    ("bidi\u202eevil", "bidi\\u202eevil"),
    ("bad\udcffbyte", "bad\\udcffbyte"),
])
def test_terminal_text_is_escaped(text, expected):
    assert shown(text) == expected


SLOW_SAVE = """
import sys, time
from cnnsheet import writer
from cnnsheet.cli import main

def slow_write(plan, target, cached_values=True):
    with open(target, "wb") as handle:
        handle.write(b"half a workbook")
        handle.flush()
        print("saving", flush=True)
        time.sleep(30)

writer._write = slow_write
main(["explain", "-o", sys.argv[1]])
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_signal_during_a_save_leaves_no_file(tmp_path, name):
    out = tmp_path / "out.xlsx"
    child = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "saving"
        assert len(os.listdir(tmp_path)) == 1  # the temporary file, mid-save
        child.send_signal(getattr(signal, name))
        _, stderr = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode != 0
    assert "Traceback" not in stderr
    assert os.listdir(tmp_path) == []
