"""The explanation texts of the workbook: templates/<lang>.toml, optionally overridden by a teacher."""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path

from cnnsheet import budget
from cnnsheet.config import differ_only_by_case
from cnnsheet.errors import CnnsheetError
from cnnsheet.files import check_input
from cnnsheet.resources import templates_dir

LANGUAGES = ("en", "zh")
# Characters an .xlsx (XML 1.0) cannot hold: control characters other than tab and line ends.
ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read(budget.MAX_TEMPLATE_BYTES + 1)
    except OSError as error:
        raise CnnsheetError(f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > budget.MAX_TEMPLATE_BYTES:
        raise CnnsheetError(f"{path}: larger than {budget.MAX_TEMPLATE_BYTES:,} bytes; a template "
                            f"file holds a page of text")
    try:
        return tomllib.loads(data.decode("utf-8-sig"))  # a byte-order mark from Notepad is fine
    except UnicodeDecodeError as error:
        raise CnnsheetError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise CnnsheetError(f"{path}: not valid TOML ({error})") from None
    except RecursionError:
        raise CnnsheetError(f"{path}: nested too deeply to be a template") from None


def check_text(text: str, where: str) -> None:
    """A template text: characters a workbook can hold, and only plain {name} placeholders (a
    format such as {x.attr}, {x[0]} or {x:>999999} could read objects or eat memory)."""
    illegal = ILLEGAL.search(text)
    if illegal:
        raise CnnsheetError(f"{where} holds the control character {illegal.group()!r}")
    longest = max(map(len, text.splitlines()), default=0)
    if longest > budget.MAX_TEMPLATE_LINE:
        raise CnnsheetError(f"{where} has a line of {longest:,} characters; a line is one cell and "
                            f"holds at most {budget.MAX_TEMPLATE_LINE:,}")
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as error:
        raise CnnsheetError(f"{where}: {error} (write {{{{ and }}}} for a brace)") from None
    for _literal, name, spec, conversion in fields:
        if name is not None and (not name.isidentifier() or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise CnnsheetError(f"{where} has the placeholder {shown!r}: only plain {{name}} "
                                f"placeholders are filled")


class Texts:
    """Texts of one language; a teacher's file replaces any key it defines."""

    def __init__(self, lang: str = "en", folder=None):
        if lang not in LANGUAGES:
            raise CnnsheetError(f"--lang {lang!r}: choose one of {', '.join(LANGUAGES)}")
        self.lang = lang
        self.sources = {}  # (section, key) -> file, to name it in errors
        self.paper = {}  # a line written for a screen -> the line the printed handout shows instead
        builtin = templates_dir() / f"{lang}.toml"
        self.table = self._merge({}, _read(builtin), builtin)
        if folder is not None:
            folder = check_input(folder, "folder", "--templates")
            own = folder / f"{lang}.toml"
            if not own.exists() and not own.is_symlink():
                raise CnnsheetError(f"--templates {folder}: there is no {lang}.toml in it")
            check_input(own, "template", "--templates")  # a folder, a device, a link to one
            self.table = self._merge(self.table, _read(own), own)

    def _merge(self, table: dict, new: dict, path: Path) -> dict:
        for section, entries in new.items():
            if not isinstance(entries, dict):
                raise CnnsheetError(f"{path}: [{section}] must be a table of texts")
            for key, text in entries.items():
                if not isinstance(text, str):
                    raise CnnsheetError(f"{path}: [{section}] {key} must be text")
                check_text(text, f"{path}: [{section}] {key}")
                table.setdefault(section, {})[key] = text
                self.sources[section, key] = path
        return table

    def __call__(self, section: str, key: str, **values) -> str:
        """One text with its {placeholders} filled."""
        text = self.table.get(section, {}).get(key)
        if text is None:
            raise CnnsheetError(f"no text [{section}] {key} in the {self.lang} templates")
        filled = self._fill(text, section, key, values)
        # the printed variant of a text, [paper] section-key; a teacher's own text is not replaced
        # by a variant written for the built-in one
        variant = self.table.get("paper", {}).get(f"{section}-{key}")
        if variant is not None and self.sources["paper", f"{section}-{key}"] == self.sources[section, key]:
            screen = [line.strip() for line in filled.splitlines() if line.strip()]
            paper = [line.strip() for line in self._fill(variant, "paper", f"{section}-{key}", values)
                     .splitlines() if line.strip()]
            for number, line in enumerate(screen):  # line for line; lines beyond the variant's go
                kept = paper[number] if number < len(paper) else "-"
                self.paper[line] = "" if kept == "-" else kept
        return filled

    def _fill(self, text: str, section: str, key: str, values: dict) -> str:
        try:
            return text.strip().format(**values)
        except (KeyError, IndexError, ValueError) as error:
            path = self.sources.get((section, key), "templates")
            raise CnnsheetError(f"{path}: [{section}] {key} has an unknown placeholder {error}") from None

    def lines(self, section: str, key: str, **values) -> list[str]:
        return [line for line in self(section, key, **values).splitlines() if line.strip()]

    def count(self, key: str, n: int) -> str:
        """A counted noun from [labels]: "one pixel|{n} pixels" (or "no row|one row|{n} rows")
        gives the form for n; a text without "|" (Chinese) serves every n."""
        forms = self("labels", key, n=f"{n:,}").split("|")
        if len(forms) == 3:
            return forms[0] if n == 0 else forms[1] if n == 1 else forms[2]
        if len(forms) == 2:
            return forms[0] if n == 1 else forms[1]
        return forms[0]

    def class_names(self, names: list[str]) -> list[str]:
        """Class names as the workbook shows them: [classes] may translate a name for display
        (the model file and the command line keep the original). Falls back to the originals
        when a translation would make two names equal, or equal but for capitals."""
        table = self.table.get("classes", {})
        shown = [table.get(name, name).strip() or name for name in names]
        return list(names) if differ_only_by_case(shown) else shown
