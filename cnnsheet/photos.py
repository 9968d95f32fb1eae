"""A class's photos: the pictures among the files and folders a user names, and a file name for
each one's workbook (or handout) that no other photo of the run takes.

Nothing here reads a picture's pixels: a folder's files are told apart by their first bytes, so
that a folder of thirty photos is sorted out before the first workbook is made.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_input
from cnnsheet.images import FORMATS, SHOWN_FORMATS

PREFIX = 16  # bytes Pillow reads to recognise a format (Image.open does the same)


def is_picture(path) -> bool:
    """Whether a file starts as a picture of a format cnnsheet reads (its signature, whatever its
    extension). A damaged picture with the right start counts: reading it says what is wrong."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(PREFIX)
    except OSError:
        return True  # not this function's to judge: reading the photo names the reason
    Image.init()  # Pillow's registry of formats, filled once
    return any(Image.OPEN[name][1](prefix) for name in FORMATS if name in Image.OPEN)


def gather(paths) -> tuple[list[Path], list[tuple[Path, str]], list[str]]:
    """The photos among `paths`, in the order given, each once: a file as it is (reading it later
    says if it is no photo), a folder's pictures sorted by name (not its sub-folders, nor hidden
    files). Returns the photos; the paths that cannot be used, each with its one-line reason (a
    missing file, a folder without pictures); and a note for each file of a folder skipped as not
    a picture."""
    photos, failed, skipped, seen = [], [], [], set()

    def add(photo: Path) -> None:
        key = os.path.realpath(photo)  # a file named twice, or through a folder and by itself
        if key not in seen:
            seen.add(key)
            photos.append(photo)

    for path in map(Path, paths):
        if not os.path.isdir(path):  # False also for a name the system refuses: reading says why
            add(path)
            continue
        try:
            check_input(path, "folder")
            entries = sorted(path.iterdir())
        except CnnsheetError as error:
            failed.append((path, str(error)))
            continue
        except OSError as error:
            failed.append((path, f"{path}: the folder cannot be read ({error.strerror})"))
            continue
        files = [entry for entry in entries if not entry.name.startswith(".") and entry.is_file()]
        pictures = [entry for entry in files if is_picture(entry)]
        skipped += [f"{entry}: not a picture ({SHOWN_FORMATS}), skipped" for entry in files
                    if entry not in pictures]
        if not pictures:
            failed.append((path, f"{path}: no pictures in this folder ({SHOWN_FORMATS}; sub-folders "
                                 f"are not searched)"))
        for picture in pictures:
            add(picture)
    return photos, failed, skipped


def output_names(photos) -> list[str]:
    """A file name (no extension) for each photo: its own name without the extension, followed by
    -2, -3, ... where an earlier photo of the run took that name (two cat.jpg in two folders,
    cat.jpg beside cat.png), letter case aside, as a Windows or macOS folder ignores it."""
    names, taken = [], set()
    for photo in photos:
        stem = Path(photo).stem
        name, number = stem, 2
        while name.casefold() in taken:
            name, number = f"{stem}-{number}", number + 1
        taken.add(name.casefold())
        names.append(name)
    return names


def output_folder(folder, option: str = "-o") -> Path:
    """The folder the run writes into, made (with its parents) when missing; a file in its place
    or a folder that cannot be written is a CnnsheetError naming the option."""
    folder = Path(folder)
    where = f"{option} {folder}"
    if folder.exists() and not folder.is_dir():
        raise CnnsheetError(f"{where}: is a file; several photos need a folder for their files")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CnnsheetError(f"{where}: the folder cannot be made ({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CnnsheetError(f"{where}: the folder is not writable")
    return folder
