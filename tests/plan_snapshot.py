"""Dump the full plan of four walkthroughs, to hold a refactoring of the sheets code to them.

    python tests/plan_snapshot.py save DIR     # the plans (and .xlsx files) of the code as it is
    python tests/plan_snapshot.py compare DIR  # today's against them: every difference, and the
                                               # largest difference of a cached number; the
                                               # .xlsx files part for part (but the time)

Each walkthrough is made as `cnnsheet explain` makes it (the command is run in-process and its
plan caught where it is saved): the default, a two-block untrained network, the Chinese texts,
and forward only. A dump holds every cell (formula, value, style), name, validation, highlight,
colour scale, link, chart, picture (as a hash), merge, size and print setting, in sheet order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sys
import tempfile
import zipfile
from pathlib import Path

from click.testing import CliRunner

from cnnsheet import workbook
from cnnsheet.cli import main

CASES = {"default": [], "two_blocks": ["--untrained", "--blocks", "2"], "zh": ["--lang", "zh"],
         "forward_only": ["--forward-only"]}


def plain(value):
    """A plan's parts as JSON can hold them (bytes as their hash, floats exact)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, dict):
        return [[plain(k), plain(v)] for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return {"float": value.hex()}
    return value


def dump(plan) -> dict:
    return {"names": plain(plan.names), "lang": plan.lang, "order": plan.sheetnames,
            "sheets": {sheet.title: plain(sheet) for sheet in plan.sheets}}


def make(case: str, folder: Path) -> tuple[dict, bytes]:
    """The plan and the .xlsx bytes of one walkthrough."""
    caught = []
    save = workbook.Walkthrough.save

    def catching(self, path, cached_values=True):
        caught.append(self.plan)
        save(self, path, cached_values)

    workbook.Walkthrough.save = catching
    try:
        out = folder / f"{case}.xlsx"
        result = CliRunner().invoke(main, ["explain", "-o", str(out), *CASES[case]])
        if result.exit_code != 0:
            raise SystemExit(f"{case}: {result.output}{result.exception!r}")
    finally:
        workbook.Walkthrough.save = save
    return dump(caught[0]), out.read_bytes()


def parts(xlsx: bytes) -> dict:
    """The file's parts by name; docProps/core.xml holds the time of writing, so it is left out."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name != "docProps/core.xml"}


def differences(old, new, where="", found=None, worst=None):
    """Every place two dumps differ; a float that differs only by rounding is counted in `worst`."""
    found = [] if found is None else found
    worst = [0.0] if worst is None else worst
    if isinstance(old, dict) and set(old) == {"float"} and isinstance(new, dict) and set(new) == {"float"}:
        a, b = float.fromhex(old["float"]), float.fromhex(new["float"])
        if a != b:
            gap = abs(a - b) / max(1.0, abs(a))
            worst[0] = max(worst[0], gap)
            if gap > 1e-12:  # more than rounding
                found.append(f"{where}: {a!r} -> {b!r}")
    elif isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        for key in old:
            differences(old[key], new[key], f"{where}/{key}", found, worst)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new)):
            differences(a, b, f"{where}[{index}]", found, worst)
    elif old != new:
        found.append(f"{where}: {str(old)[:200]} -> {str(new)[:200]}")
    return found, worst


def run(mode: str, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        for case in CASES:
            plan, xlsx = make(case, Path(scratch))
            if mode == "save":
                (folder / f"{case}.json").write_text(json.dumps(plan))
                (folder / f"{case}.xlsx").write_bytes(xlsx)
                print(f"{case}: saved {len(plan['order'])} sheets, {len(xlsx):,} bytes")
                continue
            old = json.loads((folder / f"{case}.json").read_text())
            found, worst = differences(old, json.loads(json.dumps(plan)))
            old_parts, new_parts = parts((folder / f"{case}.xlsx").read_bytes()), parts(xlsx)
            changed = sorted(name for name in old_parts.keys() | new_parts.keys()
                             if old_parts.get(name) != new_parts.get(name))
            print(f"{case}: {len(found)} differences, largest relative rounding {worst[0]:.3g}, "
                  f"xlsx parts {'identical' if not changed else 'differ: ' + ', '.join(changed[:5])}")
            for line in found[:20]:
                print("   ", line)
            failed += bool(found) or bool(changed)
    return failed


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], Path(sys.argv[2])))
