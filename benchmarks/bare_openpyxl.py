"""The yardstick of benchmarks/export.py: bare openpyxl writing the cells of a walkthrough.

Reads {sheet title: [(row, col, value)]} from a marshal file (a formula is its "=..." text, as
openpyxl takes it), writes every cell one at a time with `ws.cell(row, col, value)`, with no
styles, names, colour scales or chart, and saves. Run as its own process, start-up included:

    python benchmarks/bare_openpyxl.py CELLS.marshal OUT.xlsx
"""

import marshal
import sys

from openpyxl import Workbook


def write(cells_by_sheet: dict, path: str) -> None:
    book = Workbook()
    book.remove(book.active)
    for title, cells in cells_by_sheet.items():
        ws = book.create_sheet(title)
        for row, col, value in cells:
            ws.cell(row, col, value)
    book.save(path)


def main():
    cells_path, output = sys.argv[1:]
    with open(cells_path, "rb") as file:
        write(marshal.load(file), output)


if __name__ == "__main__":
    main()
