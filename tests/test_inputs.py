"""Inputs and the environment (issue 16): the check of every path the user names, a stdout that
cannot take the text, a progress bar on a dumb terminal, LibreOffice stopped or given an unusable
TMPDIR, and the notes that say what the command chose for the user.

The table of one-line refusals is in test_hostile.py (its INPUTS group); these are the cases that
need a mocked system call, a redirected stdout, a terminal or a signal.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import small_model
from hostile_inputs import NOISE, animated_gif, child_env, random_rgb, run_cli, snapshot

from cnnsheet import cli, files, modelfile
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_input, inside
from cnnsheet.train import list_folder

SHAPE = ["--size", "8", "--filters", "2", "--kernel", "3", "--pool", "2", "--hidden", "0", "--epochs", "1"]


def one_error_line(result) -> str:
    out = (result.stdout or "") + result.stderr
    for noise in NOISE:
        assert noise not in out, f"{noise!r} reached the user:\n{out}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out
    return lines[0]


# ---- check_input --------------------------------------------------------------------------------------
def test_every_kind_of_unusable_input_is_named_with_its_reason(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"x")
    (tmp_path / "album").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    os.symlink("loop", tmp_path / "loop")
    cases = [
        ("absent.png", "photo", "absent.png: no such file"),
        ("photo.png/inside.png", "photo", "photo.png/inside.png: no such file"),
        ("album", "photo", "album: is a folder, not a photo"),
        ("pipe.png", "photo", "pipe.png: not a regular file (a device, pipe or socket), not a photo"),
        ("loop", "model", "loop: a loop of symbolic links, not a model file"),
        ("n" * 300 + ".png", "photo", "the name is longer than the file system allows"),
        ("d/" * 2100 + "p.png", "photo", "the name is longer than the file system allows"),
        ("photo.png", "folder", "photo.png: not a folder"),
        ("nowhere", "folder", "nowhere: no such folder"),
    ]
    for name, kind, message in cases:
        with pytest.raises(CnnsheetError) as error:
            check_input(tmp_path / name, kind)
        assert message in str(error.value), (name, str(error.value))
    assert check_input(tmp_path / "photo.png", "photo") == tmp_path / "photo.png"
    assert check_input(tmp_path / "album", "folder", "--templates") == tmp_path / "album"


def test_an_option_is_named_before_the_path(tmp_path):
    with pytest.raises(CnnsheetError, match=r"^--model .*absent\.npz: no such model file$"):
        check_input(tmp_path / "absent.npz", "model", "--model")


# These tests run as root, for whom chmod takes nothing away: os.stat and os.access are mocked to
# answer as they do for a user who may not enter the folder or read the file.
def refusing_stat(blocked: Path):
    real_stat = os.stat

    def fake(path, *args, **kwargs):
        if Path(path) == blocked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_stat(path, *args, **kwargs)
    return fake


def test_a_photo_in_a_folder_that_cannot_be_entered_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "locked").mkdir()
    photo = tmp_path / "locked" / "cat.png"
    random_rgb(20, 20).save(photo)
    monkeypatch.setattr(files.os, "stat", refusing_stat(photo))
    result = CliRunner().invoke(cli.main, ["predict", str(photo)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"Error: {photo}: cannot be reached (Permission denied)"]


@pytest.mark.parametrize("kind, message", [("photo", "cannot be read (permission denied)"),
                                           ("folder", "the folder cannot be read (permission denied)")])
def test_an_input_the_user_may_not_read_is_refused(tmp_path, monkeypatch, kind, message):
    path = tmp_path / "thing"
    path.mkdir() if kind == "folder" else path.write_bytes(b"x")
    monkeypatch.setattr(files.os, "access", lambda *args, **kwargs: False)
    with pytest.raises(CnnsheetError, match=re.escape(message)):
        check_input(path, kind)


def test_inside_follows_links(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "b")
    assert inside(tmp_path / "data" / "a" / "x.npz", tmp_path / "data" / "a")
    assert inside(tmp_path / "elsewhere" / "x.npz", tmp_path / "data" / "b")
    assert not inside(tmp_path / "data" / "x.npz", tmp_path / "data" / "a")
    assert not inside(tmp_path / "data" / "ab", tmp_path / "data" / "a")  # a name that only starts alike


def test_a_model_written_next_to_the_class_folders_is_allowed(tmp_path):
    """Files at the top of the data folder are not read as photos, so a model there is harmless."""
    for index, name in enumerate("ab"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for number in range(3):
            random_rgb(10, 10, seed=10 * index + number).save(tmp_path / "data" / name / f"{number}.png")
    result = run_cli(["train", "data", *SHAPE, "-o", "data/model.npz"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "model.npz").is_file()


def linked_classes(root: Path, target: str) -> Path:
    """data/a and data/b with a photo each, elsewhere/x with one, and data/c a link to `target`."""
    for name in ("data/a/sub", "data/b", "elsewhere/x"):
        (root / name).mkdir(parents=True)
        random_rgb(10, 10).save(root / name / "0.png")
    os.symlink(target, root / "data" / "c")
    return root / "data"


@pytest.mark.parametrize("target, message", [
    ("..", "data/c: a link to a folder that holds .*data;"),
    (".", "data/c: a link to a folder that holds .*data;"),
    ("a", "data/c: a link into .*data/a;"),
    ("a/sub", "data/c: a link into .*data/a;"),
    ("../..", "data/c: a link to a folder that holds .*data;"),
])
def test_a_class_folder_linked_back_into_the_data_is_refused(tmp_path, target, message):
    with pytest.raises(CnnsheetError, match=message):
        list_folder(linked_classes(tmp_path, target))


def test_a_class_folder_linked_elsewhere_is_a_class(tmp_path):
    classes, files_of = list_folder(linked_classes(tmp_path, "../elsewhere/x"))
    assert classes == ["a", "b", "c"]
    assert [len(found) for found in files_of] == [1, 1, 1]


# ---- photos that are not photos, in a training folder ----------------------------------------------------
def test_postscript_in_a_training_folder_is_skipped_and_named(tmp_path):
    for index, name in enumerate("ab"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for number in range(3):
            random_rgb(10, 10, seed=10 * index + number).save(tmp_path / "data" / name / f"{number}.png")
    (tmp_path / "data" / "b" / "loop.jpg").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n"
                                                      "{ } loop\n")
    (tmp_path / "data" / "a" / "moving.gif").write_bytes(animated_gif())
    result = run_cli(["train", "data", *SHAPE, "-o", "out.npz"], tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("warning: skipped data/b/loop.jpg: not a photo in a format"), lines
    assert lines[1].startswith("note: 1 animated or multi-page picture(s)"), lines
    assert "moving.gif" in lines[1], lines
    assert "7 pictures" in result.stdout  # six drawings and the animation's first frame


def test_an_animated_photo_is_noted_on_stderr(tmp_path):
    (tmp_path / "moving.gif").write_bytes(animated_gif())
    result = run_cli(["predict", "moving.gif", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "note: moving.gif: 3 frames or pages; only the first is used\n"
    assert result.stdout.startswith("{")


# ---- notes and refusals for options that would be ignored ----------------------------------------------
def test_explain_with_a_model_but_no_photo_says_which_photo_it_explains(tmp_path):
    modelfile.save(small_model(), tmp_path / "m.npz")
    result = run_cli(["explain", "--model", "m.npz", "-o", "out.xlsx", "--forward-only"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("note: no PHOTO was given, so the workbook explains the bundled drawing "
                             "drawn-triangle.jpg\n")
    random_rgb(20, 20).save(tmp_path / "cat.png")
    result = run_cli(["explain", "cat.png", "--model", "m.npz", "-o", "out.xlsx", "--forward-only"], tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_seed_with_untrained_is_used(tmp_path):
    result = run_cli(["explain", "--untrained", "--seed", "7", "--forward-only", "-o", "out.xlsx"], tmp_path)
    assert result.returncode == 0, result.stderr


# ---- stdout that cannot take the text ---------------------------------------------------------------------
CHINESE = ("猫", "狗", "鸟")


def run_with(args, cwd, stdout=subprocess.PIPE, **env):
    return subprocess.run([sys.executable, "-m", "cnnsheet", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=stdout, stderr=subprocess.PIPE, env={**child_env(), **env},
                          encoding="utf-8", errors="backslashreplace", timeout=120)


def test_chinese_class_names_on_a_cp1252_stdout_are_escaped_not_a_crash(tmp_path):
    modelfile.save(small_model(classes=CHINESE), tmp_path / "zh.npz")
    random_rgb(20, 20).save(tmp_path / "cat.png")
    predicted = run_with(["predict", "cat.png", "--model", "zh.npz"], tmp_path, PYTHONIOENCODING="cp1252")
    assert predicted.returncode == 0, predicted.stderr
    assert "\\u732b" in predicted.stdout and "Traceback" not in predicted.stderr
    explained = run_with(["explain", "cat.png", "--model", "zh.npz", "-o", "out.xlsx", "--forward-only"],
                         tmp_path, PYTHONIOENCODING="cp1252")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith("wrote out.xlsx: cat.png -> \\u")


def test_a_chinese_training_folder_on_an_ascii_stdout(tmp_path):
    for index, name in enumerate(CHINESE[:2]):
        (tmp_path / "data" / name).mkdir(parents=True)
        for number in range(3):
            random_rgb(10, 10, seed=10 * index + number).save(tmp_path / "data" / name / f"{number}.png")
    result = run_with(["train", "data", *SHAPE, "-o", "out.npz"], tmp_path, PYTHONIOENCODING="ascii")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "out.npz").is_file()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_a_full_stdout_is_one_line_and_says_what_was_written(tmp_path):
    random_rgb(20, 20).save(tmp_path / "cat.png")
    with open("/dev/full", "w") as full:
        predicted = run_with(["predict", "cat.png"], tmp_path, stdout=full)
        message = one_error_line(predicted)
        assert message == "Error: standard output cannot be written (No space left on device)"
        assert predicted.returncode == 1
        trained = run_with(["train", "--samples", "30", *SHAPE, "-o", "out.npz"], tmp_path, stdout=full)
        assert trained.returncode == 1 and "standard output cannot be written" in one_error_line(trained)
        assert not (tmp_path / "out.npz").exists()  # its first line comes before the training
        explained = run_with(["explain", "cat.png", "-o", "out.xlsx", "--forward-only"], tmp_path,
                             stdout=full)
    assert explained.returncode == 1
    assert one_error_line(explained) == ("Error: out.xlsx was written, but standard output cannot be "
                                         "written (No space left on device)")
    assert (tmp_path / "out.xlsx").read_bytes().startswith(b"PK")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["train", "--help"]])
def test_help_and_version_on_a_full_stdout_are_one_line(tmp_path, args):
    with open("/dev/full", "w") as full:
        result = run_with(args, tmp_path, stdout=full)
    assert result.returncode == 1
    assert one_error_line(result) == "Error: standard output cannot be written (No space left on device)"


# ---- the progress bar on a dumb terminal ---------------------------------------------------------------
def in_terminal(args, cwd: Path, term: str) -> str:
    """ARGS run by `script` on a pseudo-terminal with TERM set; what the terminal received."""
    command = shlex.join([sys.executable, "-m", "cnnsheet", *args])
    done = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, env={**child_env(), "TERM": term}, timeout=120)
    assert done.returncode == 0, done
    return done.stdout.decode("utf-8", errors="replace")


def test_a_dumb_terminal_gets_no_cursor_escapes(tmp_path):
    args = ["train", "--samples", "60", *SHAPE, "--batch-size", "8", "-o", "out.npz"]
    smart = in_terminal(args, tmp_path, "xterm")
    assert "\x1b[?25l" in smart  # the control: on a real terminal the bar hides the cursor
    dumb = in_terminal(args, tmp_path, "dumb")
    assert "\x1b" not in dumb and "epoch 1/1: train loss" in dumb, repr(dumb)


# ---- LibreOffice: stopped while it prints, or given an unusable TMPDIR ------------------------------------
def processes(field: int, value: int) -> list[int]:
    """The live processes whose /proc stat field `field` (after the name: 1 the parent, 3 the
    session) is `value` (zombies are gone in all but name)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[field]) == value and fields[0] != "Z":
                found.append(int(entry.name))
    return found


PARENT, SESSION = 1, 3


def test_a_stop_while_libreoffice_prints_leaves_no_profile_and_no_process(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {**child_env(), "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "cnnsheet", "explain", "--forward-only", "-o", "out.xlsx", "--pdf",
               "out.pdf"]
    process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # wait until LibreOffice has made its profile in cnnsheet's temporary folder, then stop cnnsheet
    profiles = []
    for _ in range(1200):
        profiles = list(scratch.glob("cnnsheet-*/profile/user"))
        if profiles or process.poll() is not None:
            break
        time.sleep(0.1)
    assert profiles, "LibreOffice never started"
    # LibreOffice runs in a session of its own, a child of cnnsheet
    soffice_sessions = {os.getsid(pid) for pid in processes(PARENT, process.pid)}
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert stderr.strip() == "cnnsheet: stopped by SIGTERM", stderr
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == ["out.xlsx"]  # no PDF, whole or half
    for session in soffice_sessions - {os.getsid(0)}:
        assert processes(SESSION, session) == [], "LibreOffice is still running"


@pytest.mark.parametrize("tmpdir", ["a-file", "relative", "/proc"])
def test_an_unusable_tmpdir_still_prints_and_leaves_nothing_behind(tmp_path, tmpdir):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_bytes(b"not a folder")
    (work / "relative").mkdir()
    before = snapshot(work)
    result = run_with(["explain", "--forward-only", "-o", str(tmp_path / "out.xlsx"), "--pdf",
                       str(tmp_path / "out.pdf")], work, TMPDIR=tmpdir)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.pdf").read_bytes().startswith(b"%PDF")
    assert snapshot(work) == before  # no pkcs11.txt, no LibreOffice folder


def test_libreoffice_that_writes_no_pdf_is_one_line_without_its_chatter(tmp_path):
    fake = tmp_path / "soffice"
    fake.write_text("#!/bin/sh\n"
                    "echo 'Warning: failed to launch javaldx - java may not function correctly' >&2\n"
                    "echo 'Error: Please verify input parameters... (store failed: Code:16)' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = run_with(["explain", "--forward-only", "-o", "out.xlsx", "--pdf", "out.pdf"], tmp_path,
                      PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 1
    assert one_error_line(result) == ("Error: --pdf out.pdf: LibreOffice wrote no PDF (Error: Please verify "
                                      "input parameters... (store failed: Code:16))")
    assert not (tmp_path / "out.pdf").exists()



def test_a_full_temporary_folder_while_the_handout_is_made_is_one_error(tmp_path, monkeypatch):
    from cnnsheet import handout

    def full(plan, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(handout.writer, "save", full)
    monkeypatch.setattr(handout.tempfile, "tempdir", str(tmp_path))
    with pytest.raises(CnnsheetError, match=r"^--pdf .*out\.pdf: the temporary folder .* cannot be written "
                                            r"\(No space left on device\)$"):
        handout.save_pdf(handout.WorkbookPlan([], {}, "en"), tmp_path / "out.pdf", "soffice")
    assert list(tmp_path.iterdir()) == []


def test_no_usable_temporary_folder_is_one_error(tmp_path, monkeypatch):
    from cnnsheet import handout

    def none_usable(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")

    monkeypatch.setattr(handout.tempfile, "TemporaryDirectory", none_usable)
    with pytest.raises(CnnsheetError, match="no usable temporary folder .*set TMPDIR"):
        handout.save_pdf(handout.WorkbookPlan([], {}, "en"), tmp_path / "out.pdf", "soffice")
