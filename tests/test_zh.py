"""The Chinese workbook as LibreOffice prints it: wrapped lines that never start with closing
punctuation (nor end with opening), and bold cells that print bold, checked on the PDF."""

import shutil
import subprocess

import numpy as np
import pytest
from libreoffice import convert

from cnnsheet import style, writer
from cnnsheet.plan import WorkbookPlan
from cnnsheet.printing import CLOSING, GLUE, OPENING, glue_punctuation

GLUED = [
    ("", ""),
    ("no Chinese at all, (none).", "no Chinese at all, (none)."),
    ("学不会。学习率", f"学不会{GLUE}。学习率"),
    ("（见 Softmax 表）：数值", f"（{GLUE}见 Softmax 表{GLUE}）{GLUE}：数值"),
    ("。在开头", "。在开头"),  # nothing before it to hold on to
    ("“意外”。", f"“{GLUE}意外{GLUE}”{GLUE}。"),
    ("结尾（", "结尾（"),  # nothing after it
]


@pytest.mark.parametrize("text, glued", GLUED)
def test_punctuation_is_glued_to_its_neighbour(text, glued):
    assert glue_punctuation(text) == glued
    assert glue_punctuation(glued) == glued  # once is enough: a handout re-wraps a wrapped plan
    assert glued.replace(GLUE, "") == text  # the reader's text, and nothing else


def test_only_wrapped_texts_are_glued():
    """Glue goes where lines break, and nowhere a formula or a reader could meet it: a label or a
    name stays as typed."""
    plan = WorkbookPlan(lang="zh")
    sheet = plan.sheet("S")
    sheet.text(1, 1, "学不会。学习率", style.key("prose"))
    sheet.text(2, 1, "学不会。学习率", style.key("heading"))
    _, style_ids, _ = writer._styles(plan)
    data = b"".join(writer._sheet_data(sheet, style_ids)).decode()
    assert data.count(GLUE) == 1 and data.index(GLUE) < data.index('r="A2"')


def lines_of(pdf) -> list[str]:
    if not shutil.which("pdftotext"):
        pytest.fail("pdftotext (poppler-utils) is not installed", pytrace=False)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [line.strip() for line in text.splitlines() if line.strip()]


def broken_at_punctuation(lines: list[str]) -> list[str]:
    """Lines that start with closing or end with opening punctuation."""
    return [line for line in lines if line[0] in CLOSING or line[-1] in OPENING]


def narrow_column(path):
    """One narrow wrapped column whose rows move a '。' and a '（' across every place on a line, so
    that in some row a line would break just before the one and just after the other."""
    plan = WorkbookPlan(lang="zh")
    sheet = plan.sheet("Wrapped")
    sheet.width("A", (30,))
    words = "网络什么也学不会学习率太小则学得很慢常用的学习率大约在之间"
    for row in range(1, len(words) + 1):
        sheet.text(row, 1, words[:row] + "。后面的文字继续写下去直到结束" + words[:row] + "（括号里）",
                   style.key("prose"))
        sheet.heights[row] = 48.0
    writer.save(plan, path)


def test_no_wrapped_line_starts_with_closing_punctuation(tmp_path, calc_profile, monkeypatch):
    narrow_column(tmp_path / "glued.xlsx")
    monkeypatch.setattr(writer, "glue_punctuation", lambda text: text)
    narrow_column(tmp_path / "bare.xlsx")
    glued, bare = convert([tmp_path / "glued.xlsx", tmp_path / "bare.xlsx"], tmp_path / "pdf", calc_profile,
                          to="pdf")
    glued_lines, bare_lines = lines_of(glued), lines_of(bare)
    # without the glue LibreOffice breaks before '。' and after '（': the rows do reach both breaks
    assert any(line.startswith("。") for line in bare_lines), bare_lines
    assert any(line.endswith("（") for line in bare_lines), bare_lines
    assert broken_at_punctuation(glued_lines) == []
    assert len(glued_lines) >= len(bare_lines)  # every line printed, the glue shown as nothing
    assert GLUE not in "".join(glued_lines)


def ink_per_line(pdf, tmp_path) -> list[float]:
    """The darkness of each printed line of the PDF's first page, top to bottom: the sum of
    (255 - grey) over a band of rows that hold ink."""
    subprocess.run(["pdftoppm", "-gray", "-r", "150", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    [picture] = tmp_path.glob("page*.pgm")
    raw = picture.read_bytes()
    header = raw.split(b"\n", 3)  # P5, width height, maxval, then the pixels
    width, height = map(int, header[1].split())
    ink = 255 - np.frombuffer(header[3], dtype=np.uint8)[:width * height].reshape(height, width).astype(float)
    inked = ink.sum(axis=1) > 0
    bands, start = [], None
    for row, has_ink in enumerate(inked):
        if has_ink and start is None:
            start = row
        elif not has_ink and start is not None:
            bands.append(ink[start:row].sum())
            start = None
    return bands


def test_chinese_bold_prints_bold(tmp_path, calc_profile):
    """A heading's Chinese prints darker than the same text plain: LibreOffice finds no bold face
    of the Chinese font here and draws one (a glyph outline stroked as well as filled); this
    holds whichever way it is done."""
    plan = WorkbookPlan(lang="zh")
    sheet = plan.sheet("Bold")
    text = "梯度下降的一步学习率损失"
    sheet.text(1, 1, text, style.key("heading"))
    sheet.text(3, 1, text, style.key("plain"))
    sheet.width("A", (60,))
    writer.save(plan, tmp_path / "bold.xlsx")
    [pdf] = convert([tmp_path / "bold.xlsx"], tmp_path / "pdf", calc_profile, to="pdf")
    *_, heading, plain = ink_per_line(pdf, tmp_path)  # below Calc's own page header, the sheet's name
    print(f"ink, bold / plain: {heading / plain:.2f}")
    assert heading > 1.2 * plain

