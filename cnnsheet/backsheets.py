"""The sheets of learning: backpropagation, one step of gradient descent, and a saliency map.

Mixed into the workbook builder (workbook.py), whose cell, block and sheet helpers it uses. The
backward pass is written twice from the same code: once from the loss (tag "d", with the
gradients of every weight) and once from one class's score (tag "s", down to the pixels).
Sheets are named after the tensor whose gradient they hold: dConv1 is d loss / d Conv1.
"""

from __future__ import annotations

import numpy as np
from openpyxl.worksheet.datavalidation import DataValidation

from cnnsheet import style
from cnnsheet.layers import Conv, Dense, Flatten, MaxPool, ReLU, onehot_formula
from cnnsheet.layout import LEFT, Block, Vector, a1, area, on

DEFAULT_LEARNING_RATE = 0.01  # the default walkthrough: loss 0.053 -> 0.014


def earlier_in_window(top: int, left: int, size: int, row: int, col: int) -> list[tuple]:
    """The areas of a window (in row-major order) before element (row, col): rows above, then left."""
    areas = []
    if row > top:
        areas.append((top, left, row - 1, left + size - 1))
    if col > left:
        areas.append((row, left, row, col - 1))
    return areas


class BackwardSheets:
    # ---- the whole of it --------------------------------------------------------------------
    def backward_sheets(self, probabilities: Vector):
        model, trace = self.model, self.trace
        K = len(model.classes)
        dlogits = trace.probabilities[0] - np.eye(K)[self.true_index]
        grads = model.backward(trace, dlogits[None])
        self.grad_at, self.masks, self.rotated = {}, {}, {}
        seed = self.dlogits_sheet(probabilities, dlogits)
        self.chain("d", seed, grads, with_params=True, to_input=False)
        self.gradient_step(grads)
        self.saliency_sheets()

    def chain(self, tag: str, seed: Vector, grads, with_params: bool, to_input: bool):
        """Backpropagate from `seed` (gradient of the logits) through every layer."""
        layers = self.model.layers
        flat = next(i for i, layer in enumerate(layers) if isinstance(layer, Flatten))
        incoming = seed
        for index in range(len(layers) - 1, -1, -1):
            layer = layers[index]
            if isinstance(layer, Dense):
                relu_after = index + 1 < len(layers) and isinstance(layers[index + 1], ReLU)
                incoming = self.dense_backward(tag, layer, incoming, grads, relu_after, with_params)
            elif isinstance(layer, Flatten):
                incoming = self.unflatten(tag, layer, incoming, grads)
            elif isinstance(layer, MaxPool):
                incoming = self.pool_backward(tag, layer, incoming, grads)
            elif isinstance(layer, ReLU) and index < flat:
                below = layers[index - 1] if index else None
                needs_border = (isinstance(below, Conv) and below.stride == 1
                                and (index - 1 > 0 or to_input))
                border = below.span - 1 if needs_border else 0
                incoming = self.relu_backward(tag, layer, incoming, grads, border)
            elif isinstance(layer, Conv):
                incoming = self.conv_backward(tag, layer, incoming, grads, with_params,
                                              need_input=index > 0 or to_input)
        return incoming

    # ---- small helpers ----------------------------------------------------------------------
    def gradient_sheet(self, tag: str, forward_sheet: str, section: str, keys=("body",), **values):
        """A sheet for the gradient of a forward sheet's tensor: dConv1 for Conv1, or sConv1 in the
        saliency pass, whose title and first line say that it starts from a class score."""
        if tag == "s":
            keys = (("gradients", "saliency_body"), *keys)
        ws, top = self.sheet(tag + forward_sheet, section, keys, title=tag + forward_sheet,
                             sheet=forward_sheet, **values)
        if tag == "s":
            ws["A1"].value = self.texts("gradients", "saliency_title", title=ws["A1"].value)
        return ws, top

    def record(self, tag, layer, key, index, sheet, row, col):
        if tag == "d":
            self.grad_at[layer.name, key, index] = on(sheet, a1(row, col))

    # ---- layer by layer ---------------------------------------------------------------------
    def dlogits_sheet(self, probabilities: Vector, dlogits: np.ndarray) -> Vector:
        ws, top = self.sheet("dLogits", "dlogits")
        for col, key in enumerate(["class", "probability", "onehot", "gradient"], LEFT):
            self.label(ws, top, col, self.texts("labels", key))
        p = self.trace.probabilities[0]
        for k, name in enumerate(self.model.classes):
            row = top + 1 + k
            self.text(ws, row, LEFT, name)
            self.formula(ws, row, LEFT + 1, Flatten.formula(on(probabilities.sheet, probabilities.ref(k))),
                         p[k], kind="value", fmt="0.0000")
            self.formula(ws, row, LEFT + 2, f"=INDEX(onehot,{k + 1})", float(k == self.true_index),
                         kind="value", fmt="0")
            self.formula(ws, row, LEFT + 3, f"={a1(row, LEFT + 1)}-{a1(row, LEFT + 2)}", dlogits[k],
                         kind="value", fmt="0.0000")
        vector = Vector(ws.title, top + 1, LEFT + 3, len(p))
        self.name("dlogits", ws.title, vector.data)
        ws.conditional_formatting.add(vector.data, style.diverging(dlogits))
        for col, width in zip("ABCDE", (3, 18, 14, 12, 14)):
            ws.column_dimensions[col].width = width
        self.steps.append(self.backward_step(ws.title, "dlogits", (len(p),)))
        return vector

    def dense_backward(self, tag, layer: Dense, incoming: Vector, grads, relu_after, with_params):
        """dz (through the ReLU if one follows), dW = dz x input, db = dz, d input = W^T dz."""
        g = self.dense_at[layer.name]
        m, n = layer.units, layer.inputs
        keys = ("body",) + (("body_relu",) if relu_after else ()) + (("body_params",) if with_params else ())
        ws, top = self.gradient_sheet(tag, g.sheet, "ddense", keys, layer=layer.name, units=m, inputs=n)
        dz_row, db_row, data_top = top + 1, top + 2, top + 4
        in_col, first, dx_col = LEFT + 1, LEFT + 2, LEFT + 3 + m
        dz = grads.tensors[layer.name][0]
        previous = self.previous_name(layer)
        fmt = style.number_format(dz)
        self.label(ws, dz_row, LEFT, self.texts("labels", "dz"))
        for j in range(m):
            col = first + j
            self.text(ws, top, col, self.output_name(layer, j), "heading")
            upstream = on(incoming.sheet, incoming.ref(j))
            if relu_after:
                formula = f"=IF({on(g.sheet, a1(g.out_row, g.first + j))}>0,{upstream},0)"
            else:
                formula = f"={upstream}"
            self.formula(ws, dz_row, col, formula, dz[j], kind="heading", fmt=fmt)
        dz_range = area(dz_row, first, dz_row, first + m - 1)
        ws.conditional_formatting.add(dz_range, style.diverging(dz))
        if with_params:
            dw, db = grads.params[f"{layer.name}.weight"], grads.params[f"{layer.name}.bias"]
            self.label(ws, db_row, LEFT, self.texts("labels", "db"))
            self.label(ws, data_top - 1, in_col, self.texts("labels", "input"))
            inputs = self.trace.tensors[previous][0]
            fmt_w, fmt_in = style.number_format(dw), style.number_format(inputs)
            for j in range(m):
                col = first + j
                self.formula(ws, db_row, col, f"={a1(dz_row, col)}", db[j], fmt=fmt_w)
                self.record(tag, layer, "bias", (j,), ws.title, db_row, col)
            for i in range(n):
                row = data_top + i
                ws.cell(row, LEFT, i + 1)
                self.formula(ws, row, in_col, f"={on(g.sheet, a1(g.data_top + i, g.in_col))}", inputs[i],
                             fmt=fmt_in)
                for j in range(m):
                    col = first + j
                    self.formula(ws, row, col, f"={a1(dz_row, col)}*{a1(row, in_col)}", dw[j, i], fmt=fmt_w)
                    self.record(tag, layer, "weight", (j, i), ws.title, row, col)
            ws.conditional_formatting.add(area(data_top, first, data_top + n - 1, first + m - 1),
                                          style.diverging(dw))
        dx = grads.tensors[previous][0]
        fmt_dx = style.number_format(dx)
        self.label(ws, data_top - 1, dx_col, self.texts("labels", "dinput"))
        for i in range(n):
            self.formula(ws, data_top + i, dx_col,
                         f"=SUMPRODUCT({on(g.sheet, g.weight_row(i, m))},{dz_range})", dx[i], fmt=fmt_dx)
        out = Vector(ws.title, data_top, dx_col, n)
        ws.conditional_formatting.add(out.data, style.diverging(dx))
        ws.freeze_panes = a1(data_top, first)
        for col, width in zip("ABC", (3, 8, 9)):
            ws.column_dimensions[col].width = width
        self.steps.append(self.backward_step(ws.title, layer.name, (n,)))
        return out

    def unflatten(self, tag, layer: Flatten, incoming: Vector, grads):
        """The gradient column laid back into the feature maps it was read from."""
        previous = self.previous_name(layer)
        blocks_in, sheet = self.at[previous]
        values = grads.tensors[previous][0]
        C, H, W = values.shape
        ws, top = self.gradient_sheet(tag, sheet, "unflatten", count=C * H * W)
        blocks = self.blocks(ws, top, values, [b.label for b in blocks_in])
        self.tensor(ws, blocks, values,
                    lambda c, i, j: f"={on(incoming.sheet, incoming.ref((c * H + i) * W + j))}")
        self.steps.append(self.backward_step(ws.title, previous, values.shape))
        return blocks, ws.title

    def mask_sheet(self, layer: MaxPool):
        """How many pooling windows each input cell is the first maximum of (usually 0 or 1)."""
        if layer.name in self.masks:
            return self.masks[layer.name]
        previous = self.previous_name(layer)
        in_blocks, in_sheet = self.at[previous]
        out_blocks, out_sheet = self.at[layer.name]
        # the backward pass of an all-ones gradient counts, per cell, the windows it wins
        wins = layer.backward(np.ones((1, *self.trace.tensors[layer.name][0].shape)),
                              self.trace.caches[layer.name])[0][0]
        ws, top = self.sheet("Mask", "mask", size=layer.size, sheet=in_sheet)
        blocks = self.blocks(ws, top, wins, [b.label for b in in_blocks])

        def formula(c, y, x):
            pool = (in_blocks[c], in_sheet, out_blocks[c], out_sheet)
            terms = [f"IF({self.wins(layer, *pool, y, x, w)},1,0)"
                     for w in self.windows_of(layer, y, x, out_blocks[c])]
            return "=" + "+".join(terms) if terms else None

        self.tensor(ws, blocks, wins, formula, style.sequential(np.ones(1)), fmt="0")
        self.steps.append(self.backward_step(ws.title, layer.name, wins.shape))
        self.masks[layer.name] = (blocks, ws.title)
        return self.masks[layer.name]

    @staticmethod
    def windows_of(layer: MaxPool, y: int, x: int, out_block: Block) -> list[tuple[int, int]]:
        """The pooling windows (output positions) that contain input element (y, x)."""
        q, t = layer.size, layer.stride
        rows = [wy for wy in range(out_block.height) if wy * t <= y < wy * t + q]
        cols = [wx for wx in range(out_block.width) if wx * t <= x < wx * t + q]
        return [(wy, wx) for wy in rows for wx in cols]

    @staticmethod
    def wins(layer, in_block, in_sheet, out_block, out_sheet, y, x, window) -> str:
        """True when (y, x) holds its window's maximum and no cell before it in the window does."""
        wy, wx = window
        maximum = on(out_sheet, out_block.ref(wy, wx))
        here = on(in_sheet, in_block.ref(y, x))
        top, left = in_block.cell(wy * layer.stride, wx * layer.stride)
        row, col = in_block.cell(y, x)
        counts = [f"COUNTIF({on(in_sheet, area(*box))},{maximum})"
                  for box in earlier_in_window(top, left, layer.size, row, col)]
        if not counts:
            return f"{here}={maximum}"
        return f"AND({here}={maximum},{'+'.join(counts)}=0)"

    def pool_backward(self, tag, layer: MaxPool, incoming, grads):
        """Each window's gradient goes to its first maximum; every other cell gets 0."""
        mask_blocks, mask_sheet = self.mask_sheet(layer)
        grad_blocks, grad_sheet = incoming
        previous = self.previous_name(layer)
        in_blocks, in_sheet = self.at[previous]
        out_blocks, out_sheet = self.at[layer.name]
        values = grads.tensors[previous][0]
        ws, top = self.gradient_sheet(tag, in_sheet, "dpool", size=layer.size)
        blocks = self.blocks(ws, top, values, [b.label for b in in_blocks])

        def formula(c, y, x):
            windows = self.windows_of(layer, y, x, out_blocks[c])
            if not windows:  # the floored remainder: no window read this cell
                return None
            if layer.stride >= layer.size:  # disjoint windows: the mask picks the winner
                return (f"={on(mask_sheet, mask_blocks[c].ref(y, x))}"
                        f"*{on(grad_sheet, grad_blocks[c].ref(*windows[0]))}")
            pool = (in_blocks[c], in_sheet, out_blocks[c], out_sheet)
            return "=" + "+".join(f"IF({self.wins(layer, *pool, y, x, w)},"
                                  f"{on(grad_sheet, grad_blocks[c].ref(*w))},0)" for w in windows)

        self.tensor(ws, blocks, values, formula, style.diverging(values))
        self.steps.append(self.backward_step(ws.title, previous, values.shape))
        return blocks, ws.title

    def relu_backward(self, tag, layer: ReLU, incoming, grads, border: int):
        """The gradient passes where the ReLU's input was positive, and stops elsewhere."""
        grad_blocks, grad_sheet = incoming
        previous = self.previous_name(layer)
        in_blocks, in_sheet = self.at[previous]
        values = grads.tensors[previous][0]
        ws, top = self.gradient_sheet(tag, in_sheet, "drelu")
        blocks = self.blocks(ws, top, values, [b.label for b in in_blocks], border)
        self.tensor(ws, blocks, values, lambda c, i, j: (
            f"=IF({on(in_sheet, in_blocks[c].ref(i, j))}>0,{on(grad_sheet, grad_blocks[c].ref(i, j))},0)"))
        self.steps.append(self.backward_step(ws.title, previous, values.shape))
        return blocks, ws.title

    def spread(self, tag, layer: Conv, incoming, dz: np.ndarray, border: int):
        """dZ with stride - 1 zeros between its cells: the map that a strided conv's gradient slides
        over (the transposed convolution), framed by zeros for the full convolution."""
        grad_blocks, grad_sheet = incoming
        F, Ho, Wo = dz.shape
        s = layer.stride
        Hd, Wd = (Ho - 1) * s + 1, (Wo - 1) * s + 1
        number = self.at[layer.name][1][len("Conv"):]
        ws, top = self.sheet("Spread", "spread", title=f"{tag}Spread{number}", stride=s,
                             sheet=grad_sheet)
        spread = np.zeros((F, Hd, Wd))
        spread[:, ::s, ::s] = dz
        blocks = self.blocks(ws, top, spread, [b.label for b in grad_blocks], border)
        self.tensor(ws, blocks, spread, lambda f, i, j: (
            f"={on(grad_sheet, grad_blocks[f].ref(i // s, j // s))}" if i % s == 0 and j % s == 0 else None),
            style.diverging(dz), fmt=style.number_format(dz))
        self.steps.append(self.backward_step(ws.title, layer.name, (F, Hd, Wd)))
        return blocks, ws.title

    def conv_backward(self, tag, layer: Conv, incoming, grads, with_params: bool, need_input: bool):
        """db = sum of dZ; dW = input windows x dZ; d input = dZ (spread) fully convolved with
        the kernels turned by 180 degrees."""
        dz = grads.tensors[layer.name][0]
        F, Ho, Wo = dz.shape
        s, span = layer.stride, layer.span
        grad_blocks, grad_sheet = incoming
        bordered = grad_blocks[0].border >= span - 1 or not need_input
        if s > 1 or not bordered:
            spread_blocks, spread_sheet = self.spread(tag, layer, incoming, dz, span - 1 if need_input else 0)
        else:
            spread_blocks, spread_sheet = grad_blocks, grad_sheet
        if with_params:
            self.weight_gradients(tag, layer, grads, dz, incoming, (spread_blocks, spread_sheet))
        if need_input:
            return self.input_gradient(tag, layer, grads, (spread_blocks, spread_sheet))
        return None

    def weight_gradients(self, tag, layer: Conv, grads, dz, incoming, spread):
        grad_blocks, grad_sheet = incoming
        spread_blocks, spread_sheet = spread
        previous = self.previous_name(layer)
        in_blocks, in_sheet = self.at[previous]
        d, p = layer.dilation, layer.padding
        Hd, Wd = spread_blocks[0].height, spread_blocks[0].width
        dw, db = grads.params[f"{layer.name}.weight"], grads.params[f"{layer.name}.bias"]
        filters_sheet = self.kernels[layer.name][0][0].sheet
        ws, top = self.gradient_sheet(tag, filters_sheet, "dfilters", layer=layer.name, height=Hd,
                                      width=Wd)
        fmt = style.number_format(dw)

        def weight_gradient(row, col, tap):
            f, c, a, b = tap
            window = on(in_sheet, in_blocks[c].window(a * d - p, b * d - p, Hd, Wd))
            self.formula(ws, row, col, f"=SUMPRODUCT({window},{on(spread_sheet, spread_blocks[f].data)})",
                         dw[tap], fmt=fmt)
            self.record(tag, layer, "weight", tap, ws.title, row, col)

        def bias_gradient(row, col, f):
            self.formula(ws, row, col, f"=SUM({on(grad_sheet, grad_blocks[f].data)})", db[f],
                         fmt=style.number_format(db))
            self.record(tag, layer, "bias", (f,), ws.title, row, col)

        kernels, bias_cells = self.filter_bands(ws, top, layer, weight_gradient, bias_gradient)
        ranges = [b.data for row_blocks in kernels for b in row_blocks] + bias_cells
        ws.conditional_formatting.add(" ".join(ranges), style.diverging(np.concatenate([dw.ravel(), db])))
        self.steps.append(self.backward_step(ws.title, layer.name, dw.shape))

    def rotated_kernels(self, layer: Conv):
        """Each kernel turned by 180 degrees (spread when dilated), read live from its Filters sheet."""
        if layer.name in self.rotated:
            return self.rotated[layer.name]
        F, C, span = layer.filters, layer.in_channels, layer.span
        kernels = self.kernels[layer.name]
        number = self.at[layer.name][1][len("Conv"):]
        spread = np.zeros((F * C, span, span))
        d = layer.dilation
        spread[:, ::d, ::d] = layer.weight.reshape(F * C, layer.kernel, layer.kernel)
        turned = spread[:, ::-1, ::-1]
        labels = [f"{self.texts('labels', 'filter', number=f + 1)}: {kernels[f][c].label}"
                  for f in range(F) for c in range(C)]
        ws, top = self.sheet("Rotated", "rotated", title=f"Rotated{number}", layer=layer.name)
        blocks = self.blocks(ws, top, turned, labels)
        self.tensor(ws, blocks, turned, lambda n, u, v: (
            f"={on(kernels[n // C][n % C].sheet, kernels[n // C][n % C].ref(span - 1 - u, span - 1 - v))}"))
        self.steps.append(self.backward_step(ws.title, layer.name, (F, C, span, span)))
        self.rotated[layer.name] = (blocks, ws.title)
        return self.rotated[layer.name]

    def input_gradient(self, tag, layer: Conv, grads, spread):
        spread_blocks, spread_sheet = spread
        rot_blocks, rot_sheet = self.rotated_kernels(layer)
        previous = self.previous_name(layer)
        in_blocks, in_sheet = self.at[previous]
        values = grads.tensors[previous][0]
        F, C, span, p = layer.filters, layer.in_channels, layer.span, layer.padding
        Hd, Wd = spread_blocks[0].height, spread_blocks[0].width
        ws, top = self.gradient_sheet(tag, in_sheet, "dinput", layer=layer.name, span=span)
        blocks = self.blocks(ws, top, values, [b.label for b in in_blocks])

        def formula(c, y, x):
            yp, xp = y + p, x + p  # in the padded input
            if yp > Hd + span - 2 or xp > Wd + span - 2:  # no window reached this cell
                return None
            top_left = (yp - span + 1, xp - span + 1)  # the window of the zero-framed map
            return "=" + "+".join(
                f"SUMPRODUCT({on(spread_sheet, spread_blocks[f].window(*top_left, span, span))},"
                f"{on(rot_sheet, rot_blocks[f * C + c].data)})" for f in range(F))

        self.tensor(ws, blocks, values, formula, style.diverging(values))
        self.steps.append(self.backward_step(ws.title, previous, values.shape))
        return blocks, ws.title

    # ---- one step of gradient descent -------------------------------------------------------
    def gradient_step(self, grads):
        """learning_rate, the stepped weights, a forward pass through them, and the loss after."""
        from cnnsheet.workbook import Pass

        ws, top = self.sheet("Step", "step")
        rate = self.learning_rate
        self.label(ws, top, LEFT, self.texts("labels", "learning_rate"))
        self.styled(ws.cell(top, LEFT + 1, rate), "input", "0.000")
        self.name("learning_rate", ws.title, a1(top, LEFT + 1))
        stepped = {name: value - rate * grads.params[name] for name, value in self.model.params().items()}
        new_trace = self.model_with(stepped).forward(self.trace.tensors["input"])

        def new_weight(layer, key, index):
            where = (layer.name, key, index)
            return f"={self.param_at[where]}-learning_rate*{self.grad_at[where]}"

        after = Pass(new_trace, stepped, "New", "new_", new_weight)
        probabilities = self.softmax_sheet(after, self.forward(after))
        p_before, p_after = self.trace.probabilities[0], new_trace.probabilities[0]
        loss_before = -np.log(p_before[self.true_index])
        loss_after = self.loss_after = -np.log(p_after[self.true_index])
        rows = [("loss", "=loss", loss_before),
                ("loss_after_step", f"=-LN(SUMPRODUCT(onehot,{on(probabilities.sheet, probabilities.data)}))",
                 loss_after),
                ("loss_change", f"={a1(top + 3, LEFT + 1)}-{a1(top + 2, LEFT + 1)}",
                 loss_after - loss_before)]
        for offset, (key, formula, value) in enumerate(rows, 2):
            self.label(ws, top + offset, LEFT, self.texts("labels", key))
            self.formula(ws, top + offset, LEFT + 1, formula, value, kind="big", fmt="0.000000")
        self.name("loss_after_step", ws.title, a1(top + 3, LEFT + 1))
        ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = 3, 34
        ws.column_dimensions["C"].width = 16
        self.steps.append(self.backward_step(ws.title, "learning_rate", (1,)))

    def model_with(self, params: dict):
        from cnnsheet.model import Model

        model = Model(self.model.config)
        model.set_params(params)
        return model

    # ---- saliency ---------------------------------------------------------------------------
    def saliency_sheets(self):
        """Which pixels, changed a little, would change one class's score the most."""
        model, trace = self.model, self.trace
        K = len(model.classes)
        chosen = self.saliency_index
        ws, top = self.sheet("Saliency", "saliency", size=model.input_size)
        self.label(ws, top, LEFT, self.texts("labels", "saliency_class"))
        choice = self.text(ws, top, LEFT + 1, model.classes[chosen], "input")
        self.name("saliency_class", ws.title, a1(top, LEFT + 1))
        drop_down = DataValidation(type="list", formula1="class_names", allow_blank=False)
        ws.add_data_validation(drop_down)
        drop_down.add(choice)
        self.label(ws, top + 2, LEFT, self.texts("labels", "class"))
        self.label(ws, top + 2, LEFT + 1, self.texts("labels", "seed"))
        for k, name in enumerate(model.classes):
            self.text(ws, top + 3 + k, LEFT, name)
            self.formula(ws, top + 3 + k, LEFT + 1, onehot_formula(a1(top + 3 + k, LEFT), "saliency_class"),
                         float(k == chosen), kind="value", fmt="0")
        seed = Vector(ws.title, top + 3, LEFT + 1, K)
        grads = model.backward(trace, np.eye(K)[chosen][None])
        dinput_blocks, dinput_sheet = self.chain("s", seed, grads, with_params=False, to_input=True)
        dpixels, heat = model.saliency(self.pixels, chosen)
        pixel_blocks, pixel_sheet = self.pixel_gradients(dinput_blocks, dinput_sheet, dpixels[0])
        heat_top, heat_left = top + 1, LEFT + 3  # right of the class table
        self.label(ws, heat_top - 1, heat_left, self.texts("labels", "saliency"))
        size = model.input_size
        heat_block = Block(ws.title, heat_top, heat_left, size, size)
        fmt = style.number_format(heat[0])
        for i in range(size):
            for j in range(size):
                cells = ",".join(f"ABS({on(pixel_sheet, b.ref(i, j))})" for b in pixel_blocks)
                self.formula(ws, *heat_block.cell(i, j), f"=MAX({cells})", heat[0, i, j], fmt=fmt)
        self.name("saliency", ws.title, heat_block.data)
        ws.conditional_formatting.add(heat_block.data, style.sequential(heat[0]))
        self.square_cells(ws, heat_top, heat_top + size, heat_left + size)
        for col, width in zip("ABCD", (3, 30, 16, 3)):
            ws.column_dimensions[col].width = width
        self.steps.append(self.backward_step(ws.title, "saliency", (size, size)))

    def pixel_gradients(self, dinput_blocks, dinput_sheet, dpixels: np.ndarray):
        """From the scaled input back to the 0-255 pixels: divide by 255 x std (and by the luma
        weights when the network sees grey)."""
        from cnnsheet.model import LUMA
        from cnnsheet.workbook import channel_names

        names = channel_names(self.model.channels, True)
        ws, top = self.gradient_sheet("s", "Image", "simage")
        blocks = self.blocks(ws, top, dpixels, ["R", "G", "B"])

        def formula(c, i, j):
            if self.model.channels == 1:
                return f"={LUMA[c]}*{on(dinput_sheet, dinput_blocks[0].ref(i, j))}/(255*std_{names[0]})"
            return f"={on(dinput_sheet, dinput_blocks[c].ref(i, j))}/(255*std_{names[c]})"

        self.tensor(ws, blocks, dpixels, formula)
        self.steps.append(self.backward_step(ws.title, "pixels", dpixels.shape))
        return blocks, ws.title

    def backward_step(self, sheet: str, what: str, shape: tuple):
        from cnnsheet.workbook import Step

        return Step(sheet, what, shape)
