"""The sheets of the walkthrough, one module per step of the maths (forward and backward side by
side), all planned through the shared helpers of `common`.

How the sheets fit together. `workbook.build_walkthrough` is the pipeline: it calls the sheet
functions in the order the workbook shows them, and each returns what it made, as a small typed
value from `common`, for the functions after it to take as arguments:

    image_sheet -> Maps, flags, row               the photo's blocks, the grey square's row/col flags
    input_sheet -> Maps, row                      a tensor's blocks and its sheet
    passes.forward           -> PassSheets        every map of a pass, its filters, its parameters, rows
    output.softmax_sheet     -> Vector, row       the probabilities
    output.loss_sheet        -> row
    zoom.zoom_sheets         -> list[Outline], rows   highlights asked of other sheets
    passes.backward          -> Descent, rows     the engine's gradient step
    overview.overview_sheet                       reads all of the above, and lists the rows

A row is an `OverviewRow`: the line of the Overview's table that describes one sheet (its layer,
shape, size arithmetic, parameters). Each function returns the rows of the sheets it made.

To add a sheet: write a module here with a function `my_sheet(book, <what it reads>)` that
  1. makes its sheet with `book.sheet(kind, section, ...)` (title, link back, the texts of
     [section] in templates/en.toml and zh.toml, colour legend; `after=` to place it just after
     another sheet, else it goes at the end),
  2. places values and formulas on it: every number a cell caches comes from the engine (a
     Trace, Gradients or Descent, or a method of the layer in layers.py), never computed here,
  3. spells each defined name through `cnnsheet.names`,
  4. returns its row of the Overview's table, an `OverviewRow(ws.title, layer, shape)` (a
     forward sheet: `book.forward_row(fp, ...)`), which the pipeline adds to `rows`,
  5. asks for highlights on other sheets by returning `Outline`s, never by editing their plans,
  6. returns what later sheets need (Maps, a Vector, or a small dataclass of its own);
then call it from one line in `build_walkthrough`, where what it needs already exists, and count
its cells, from the shapes, with one `add(title, cells)` in `budget.workbook_sheets` at the same
place of the pipeline: `book.sheet` refuses a sheet the budget does not count, and
tests/test_writer.py holds every sheet to its count.
"""
