"""The files a user names: inputs checked before any work; outputs checked before any work, then
written whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
from pathlib import Path

from cnnsheet.errors import CnnsheetError

# What each command writes, and the one extension that file may have.
EXTENSIONS = {"workbook": ".xlsx", "model": ".npz", "pdf": ".pdf"}
TEMPORARY_SUFFIX = ".tmp"
RANDOM_PART = 8  # random characters in a temporary name
NAME_MAX = 255  # where the file system does not say (os.pathconf)


def check_output(path, kind: str, inputs=(), option: str = "-o") -> Path:
    """Refuse, before any work, an output that cannot or must not be written.

    An output must have the extension of its kind, must not be one of `inputs` (also through a
    symbolic or hard link), and, when it exists, must be an ordinary writable file (it is then
    replaced, the common case of running a command again). Its folder must exist and be writable.
    """
    path = Path(path)
    where = f"{option} {path}"
    extension = EXTENSIONS[kind]
    if path.suffix.lower() != extension:
        raise CnnsheetError(f"{where}: a {kind} file must end in {extension} "
                            f"(for example {path.stem or 'output'}{extension})")
    if len(os.fsencode(path.name)) > name_max(path.parent):
        raise CnnsheetError(f"{where}: the file name is longer than the file system allows "
                            f"({name_max(path.parent)} bytes)")
    try:
        status = os.stat(path)
    except FileNotFoundError:
        status = None
    except OSError as error:
        raise CnnsheetError(f"{where}: cannot be checked ({error.strerror})") from None
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            raise CnnsheetError(f"{where}: is a folder")
        if not stat.S_ISREG(status.st_mode):
            raise CnnsheetError(f"{where}: is not a regular file (a device, pipe or socket)")
        for source in inputs:
            if source is not None and _same_file(path, source):
                raise CnnsheetError(f"{where}: is the input {source}; choose another name")
        if not status.st_mode & 0o222 or not os.access(path, os.W_OK):
            raise CnnsheetError(f"{where}: is read-only")
    parent = path.parent
    if not parent.is_dir():
        raise CnnsheetError(f"{where}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CnnsheetError(f"{where}: the folder {parent} is not writable")
    return path


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)  # same device and inode: symbolic and hard links too
    except OSError:
        return False


# What each kind of input is called in a message when it is missing, and what it must be.
INPUT_NOUNS = {"photo": "file", "model": "model file", "template": "file", "folder": "folder",
               "worksheet": "file"}


def check_input(path, kind: str, option: str | None = None) -> Path:
    """Refuse, before any work, an input that cannot be read, in one line naming it: a name longer
    than the file system allows, a missing file, a folder on the way that cannot be entered, a
    folder where a file belongs or the reverse, a device or pipe (which could block or never end),
    a file or folder the user may not read. `kind` is a key of INPUT_NOUNS."""
    path = Path(path)
    where = f"{option} {path}" if option else str(path)
    noun = INPUT_NOUNS[kind]
    try:
        status = os.stat(path)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise CnnsheetError(f"{where}: no such {noun}") from None
        if error.errno == errno.ENAMETOOLONG:
            raise CnnsheetError(f"{where}: the name is longer than the file system allows") from None
        if error.errno == errno.ELOOP:
            raise CnnsheetError(f"{where}: a loop of symbolic links, not a {noun}") from None
        raise CnnsheetError(f"{where}: cannot be reached ({error.strerror})") from None
    if kind == "folder":
        if not stat.S_ISDIR(status.st_mode):
            raise CnnsheetError(f"{where}: not a folder")
        if not os.access(path, os.R_OK | os.X_OK):
            raise CnnsheetError(f"{where}: the folder cannot be read (permission denied)")
        return path
    if stat.S_ISDIR(status.st_mode):
        raise CnnsheetError(f"{where}: is a folder, not a {kind}")
    if not stat.S_ISREG(status.st_mode):
        raise CnnsheetError(f"{where}: not a regular file (a device, pipe or socket), not a {kind}")
    if not os.access(path, os.R_OK):
        raise CnnsheetError(f"{where}: cannot be read (permission denied)")
    return path


def inside(path, folder) -> bool:
    """Whether `path` would land in `folder` or below it, links followed."""
    where, folder = Path(path).resolve(), Path(folder).resolve()
    return where == folder or folder in where.parents


def name_max(folder) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def temporary_prefix(path: Path) -> str:
    """'.name.' for the temporary file next to `path`, shortened so that the whole temporary
    name (prefix, random part, suffix) still fits the file system's limit."""
    room = name_max(path.parent) - RANDOM_PART - len(TEMPORARY_SUFFIX) - 2
    name = os.fsencode(path.name)[:max(room, 1)]
    return "." + os.fsdecode(name) + "."  # a cut character stays as its bytes (surrogateescape)


def _create_temporary(path: Path) -> str:
    """Create an empty file with an unused name next to `path`; returns its name.

    It is created with mode 0666, so the system applies the umask (and a folder's default ACL)
    as to any new file, and the finished file gets the usual permissions. (tempfile.mkstemp makes
    it private, and the umask can be read only by setting it, for every thread at once.)"""
    prefix = temporary_prefix(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _attempt in range(100):
        name = os.path.join(path.parent, prefix + os.urandom(RANDOM_PART // 2).hex() + TEMPORARY_SUFFIX)
        try:
            os.close(os.open(name, flags, 0o666))
        except FileExistsError:
            continue
        return name
    raise FileExistsError(errno.EEXIST, "no unused temporary name")


STOP_SIGNALS = {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)}


def _hold_stop_signals():
    """Block Ctrl-C and the termination signals (where the system can); returns the old mask."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _release(held) -> None:
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextlib.contextmanager
def stops_held():
    """Hold Ctrl-C and the termination signals for a cleanup that must not be cut short; one
    that came meanwhile is handled when the block ends."""
    held = _hold_stop_signals()
    try:
        yield
    finally:
        _release(held)


def write_atomically(path, write) -> None:
    """Call write(temporary_path) in the target's folder, then rename it onto `path`.

    An error, Ctrl-C or a termination signal (see cli.py) leaves no file and no temporary
    behind. A full disk or another error of the file system is a CnnsheetError naming the file.
    The file gets the usual permissions (0666 less the umask), not the private ones of a
    temporary file.
    """
    path = Path(path)
    held = _hold_stop_signals()  # until the cleanup below is in place, or a stop could strand tmp
    try:
        tmp = _create_temporary(path)
    except OSError as error:
        _release(held)
        raise CnnsheetError(f"{path}: cannot be written ({error.strerror})") from None
    try:
        _release(held)  # a stop that came meanwhile is handled now, inside the cleanup
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.errno is None:
            raise
        raise CnnsheetError(f"{path}: cannot be written ({error.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
