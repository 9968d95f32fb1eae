"""Files installed with the package: the default model, the sample photos, the explanation texts."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL = "shapes.npz"
DEFAULT_PHOTO = "drawn-triangle.jpg"


def samples_dir() -> Path:
    return Path(str(files("cnnsheet.samples")))


def templates_dir() -> Path:
    return Path(str(files("cnnsheet.templates")))


def default_model_path() -> Path:
    return samples_dir() / DEFAULT_MODEL


def default_photo_path() -> Path:
    return samples_dir() / DEFAULT_PHOTO
