"""The model file: one `.npz` that numpy alone can read, written atomically and read with care.

It holds a 0-d array `config` with the JSON of cnnsheet/config.py, and `<layer>.weight` /
`<layer>.bias` arrays in PyTorch's layouts. A model file may come from anyone, so the reader
checks the zip's table of contents and every member's header against the config before a byte
of data is decompressed.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from cnnsheet import budget
from cnnsheet.config import check_array_names, short
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import write_atomically
from cnnsheet.model import REAL_KINDS, Model


def save(model: Model, path) -> None:
    """Write the model atomically: a temporary file in the same folder, then a rename."""
    arrays = {"config": np.array(json.dumps(model.config))}
    arrays.update(model.params())

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    write_atomically(path, write)


def load_model(path) -> Model:
    """Read and check a model file; every problem is a CnnsheetError naming the file.

    The zip's table of contents is read first and every member is checked against the config
    (name, dtype, shape and declared size) before a byte of it is decompressed."""
    path = Path(path)
    if not path.is_file():
        raise CnnsheetError(f"{path}: no such model file" if not path.exists() else f"{path}: not a file")
    try:
        with open(path, "rb") as handle:
            _check_zip_directory(handle)
            with zipfile.ZipFile(handle) as archive:
                model = _read_model(archive)
    except CnnsheetError as error:
        raise CnnsheetError(f"{path}: {error}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise CnnsheetError(f"{path}: not a cnnsheet model file (.npz): {error}") from None
    except OSError as error:
        raise CnnsheetError(f"{path}: cannot be read ({error.strerror or error})") from None
    model.source = path
    return model


END_OF_DIRECTORY = b"PK\x05\x06"  # the zip record that says where the table of contents is
# When the counts do not fit (or a writer always uses them), a ZIP64 end record holds them, and a
# 20-byte locator sits right before the end record; zipfile reads the record just before it.
ZIP64_END, ZIP64_LOCATOR, ZIP64_END_SIZE = b"PK\x06\x06", b"PK\x06\x07", 56


def _check_zip_directory(handle) -> None:
    """Refuse a zip whose table of contents is too large before zipfile reads it into memory."""
    handle.seek(0, 2)
    size = handle.tell()
    if size > budget.MAX_MODEL_BYTES:
        raise CnnsheetError(f"the file is {size:,} bytes; a model file is at most {budget.MAX_MODEL_BYTES:,}")
    tail_size = min(size, 22 + 65535)  # the record and a comment of up to 64 KB
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(END_OF_DIRECTORY)
    if at < 0 or len(tail) - at < 22:
        raise CnnsheetError("not a cnnsheet model file (.npz): not a zip archive")
    entries, directory_size = struct.unpack("<HI", tail[at + 10:at + 16])
    locator = at - 20
    if locator >= 0 and tail[locator:locator + 4] == ZIP64_LOCATOR:
        record = tail[max(locator - ZIP64_END_SIZE, 0):locator]
        if len(record) < ZIP64_END_SIZE or not record.startswith(ZIP64_END):
            raise CnnsheetError("not a cnnsheet model file (.npz): its ZIP64 end record is missing")
        entries, directory_size = struct.unpack("<QQ", record[32:48])
    if entries > budget.MAX_MEMBERS or directory_size > budget.MAX_ZIP_DIRECTORY_BYTES:
        raise CnnsheetError(f"the archive lists {entries:,} members in {directory_size:,} bytes; a model "
                            f"file has at most {budget.MAX_MEMBERS}")
    handle.seek(0)


def _read_model(archive: zipfile.ZipFile) -> Model:
    members = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy") or info.filename[:-4] in members:
            raise CnnsheetError(f"unexpected member {short(info.filename)} (a model file holds "
                                f"config.npy and one .npy per weight and bias)")
        if info.flag_bits & 0x1:  # zipfile would ask for a password
            raise CnnsheetError(f"{short(info.filename)} is encrypted (a model file holds plain arrays)")
        members[info.filename[:-4]] = info
    if "config" not in members:
        raise CnnsheetError("not a cnnsheet model file (no 'config' array)")
    total = sum(info.file_size for info in members.values())
    if total > budget.MAX_MODEL_BYTES:
        raise CnnsheetError(f"the arrays would take {total:,} bytes uncompressed; a model file holds "
                            f"at most {budget.MAX_MODEL_BYTES:,}")
    if members["config"].file_size > budget.MAX_CONFIG_BYTES:
        raise CnnsheetError(f"config takes {members['config'].file_size:,} bytes; the limit is "
                            f"{budget.MAX_CONFIG_BYTES:,}")
    text = _read_member(archive, members.pop("config"), "config", (), "U")
    try:
        config = json.loads(str(text[()]))
    except json.JSONDecodeError as error:
        raise CnnsheetError(f"config is not valid JSON ({error})") from None
    except ValueError:  # Python refuses to read an integer of more than 4,300 digits
        raise CnnsheetError("config holds a number too long to be any setting of a model") from None
    except RecursionError:
        raise CnnsheetError("config is nested too deeply to be a model's JSON") from None
    model = Model(config)
    expected = model.params()
    check_array_names(expected, members)  # before a member is read
    model.set_params({key: _read_member(archive, info, key, expected[key].shape, REAL_KINDS)
                      for key, info in members.items()})
    return model


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, shape: tuple, kinds: str):
    """One .npy member: its header checked against the expected shape and dtype kinds, and its
    declared size against what that header implies, before the data is decompressed."""
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                found, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                found, fortran, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as error:
            raise CnnsheetError(f"{key} is not a plain numpy array ({error})") from None
        if dtype.hasobject or dtype.kind not in kinds:
            raise CnnsheetError(f"{key} holds {dtype.name} values, not "
                                f"{'text' if kinds == 'U' else 'real numbers'}")
        if tuple(found) != tuple(shape):
            raise CnnsheetError(f"{key} has shape {tuple(found)}, the layers need {tuple(shape)}")
        data_bytes = math.prod(found) * dtype.itemsize
        if info.file_size != member.tell() + data_bytes:
            raise CnnsheetError(f"{key} declares {info.file_size:,} bytes but a {dtype} array of shape "
                                f"{tuple(found)} takes {data_bytes:,}")
        data = member.read(data_bytes)
    if len(data) != data_bytes:
        raise CnnsheetError(f"{key} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(found, order="F" if fortran else "C")
