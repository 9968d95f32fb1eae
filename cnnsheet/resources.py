"""Files installed with the package: the default model, the sample photos, the explanation texts,
the workbook's theme."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL = "shapes.npz"
DEFAULT_PHOTO = "drawn-triangle.jpg"
THEME = "theme1.xml"


def samples_dir() -> Path:
    return Path(str(files("cnnsheet.samples")))


def templates_dir() -> Path:
    return Path(str(files("cnnsheet.templates")))


def default_model_path() -> Path:
    return samples_dir() / DEFAULT_MODEL


def default_photo_path() -> Path:
    return samples_dir() / DEFAULT_PHOTO


def theme_path() -> Path:
    """The default Office theme (of Office 2007), as openpyxl writes it into every workbook."""
    return Path(str(files("cnnsheet"))) / THEME
