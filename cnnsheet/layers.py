"""One unit per step of the maths: each layer's NumPy forward and backward side by side.

Shape legend (used in the trailing comments throughout):
    N  batch size               C  input channels        F  filters (output channels)
    H, W    input height, width                 Ho, Wo  output height, width
    k  kernel size   s  stride   p  zero padding   d  dilation   q  pool size   t  pool stride

Everything is batched, and float64 unless input and weights are float32 (training does that:
see cnnsheet.train); an array a layer makes takes the dtype of what it is given. `forward(x)`
returns the output and a cache; `backward(dy, cache)` returns the gradient with respect to the
input (None when `need_input_grad` is False, which saves the first layer's work in training)
and a dict of parameter gradients. The conventions are PyTorch's, so that torch can check every
number: conv weights (F, C, k, k), dense weights (out, in), flatten in (C, H, W) order, max-pool
ties to the first maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnsheet.errors import CnnsheetError


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((n + 2p - d(k-1) - 1) / s) + 1, or an error when the kernel does not fit."""
    span = dilation * (kernel - 1) + 1
    if span > n + 2 * padding:
        spread = f" (dilation {dilation} spreads it over {span} pixels)" if dilation > 1 else ""
        raise CnnsheetError(
            f"kernel {kernel}{spread} is larger than the padded input {n + 2 * padding}"
        )
    return (n + 2 * padding - span) // stride + 1


def sliding_windows(x: np.ndarray, kernel: int, stride: int, dilation: int, out_h: int, out_w: int):
    """A read-only view (N, C, Ho, Wo, k, k) of every window of x (N, C, H, W); no copy."""
    sn, sc, sh, sw = x.strides
    return as_strided(
        x,
        shape=(*x.shape[:2], out_h, out_w, kernel, kernel),
        strides=(sn, sc, sh * stride, sw * stride, sh * dilation, sw * dilation),
        writeable=False,
    )


def window_slice(offset: int, stride: int, count: int) -> slice:
    """The input rows (or columns) that kernel offset `offset` touches across `count` outputs."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


@dataclass(frozen=True)
class Neuron:
    """One output of a conv, term by term: the window it reads (C, span, span), the kernel spread
    over it (C, span, span), their products at the taps (C, k, k), their sum, the bias, the total."""

    window: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    sum: float
    bias: float
    total: float


class Conv:
    """2-D convolution (cross-correlation, as every framework computes it) with a bias per filter."""

    kind = "conv"

    def __init__(self, name, in_channels, filters, kernel, stride=1, padding=0, dilation=1):
        self.name = name
        self.in_channels, self.filters, self.kernel = in_channels, filters, kernel
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = np.zeros((filters, in_channels, kernel, kernel))  # (F, C, k, k)
        self.bias = np.zeros(filters)  # (F,)

    def params(self) -> dict:
        return {"weight": self.weight, "bias": self.bias}

    def output_shape(self, shape: tuple) -> tuple:
        C, H, W = shape
        if C != self.in_channels:
            raise CnnsheetError(f"expects {self.in_channels} channels, got {C}")
        size = [conv_output_size(n, self.kernel, self.stride, self.padding, self.dilation)
                for n in (H, W)]
        return (self.filters, *size)

    def forward(self, x):
        N, C, H, W = x.shape
        _, Ho, Wo = self.output_shape((C, H, W))
        p = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x  # (N, C, H+2p, W+2p)
        windows = sliding_windows(xp, self.kernel, self.stride, self.dilation, Ho, Wo)
        # im2col, one row per weight: (C*k*k, N*Ho*Wo), kept for the weight gradient
        cols = np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3)).reshape(C * self.kernel ** 2, -1)
        y = (self.weight.reshape(self.filters, -1) @ cols).reshape(self.filters, N, Ho, Wo)
        out = np.empty((N, self.filters, Ho, Wo), dtype=y.dtype)
        np.add(y.transpose(1, 0, 2, 3), self.bias[:, None, None], out=out)  # the bias on the way out
        return out, (cols, xp.shape)  # (N, F, Ho, Wo)

    def backward(self, dy, cache, need_input_grad=True):
        cols, padded_shape = cache
        k, s, d, p = self.kernel, self.stride, self.dilation, self.padding
        F, Ho, Wo = dy.shape[1:]
        dy_rows = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(F, -1)  # (F, N*Ho*Wo)
        # (C*k*k, N*Ho*Wo) @ (N*Ho*Wo, F), then turned: the same sums as dy_rows @ cols.T, in a
        # shape OpenBLAS runs faster (measured: 0.59 ms against 0.69 for the default batch)
        grads = {"weight": (cols @ dy_rows.T).T.reshape(self.weight.shape),  # (F, C, k, k)
                 "bias": dy_rows.sum(axis=1)}  # (F,)
        if not need_input_grad:
            return None, grads
        dwindows = np.einsum("nfhw,fcij->ncijhw", dy, self.weight, optimize=True)
        dxp = np.zeros(padded_shape, dtype=dy.dtype)  # (N, C, H+2p, W+2p)
        # Each input pixel collects from every window it fell in: k*k vectorised adds.
        for i in range(k):
            for j in range(k):
                dxp[:, :, window_slice(i * d, s, Ho), window_slice(j * d, s, Wo)] += dwindows[:, :, i, j]
        Hp, Wp = padded_shape[2:]
        return dxp[:, :, p:Hp - p, p:Wp - p], grads

    @staticmethod
    def formula(windows: list[str], kernels: list[str], bias: str) -> str:
        """One output cell: SUMPRODUCT(window, kernel) for every input channel, plus the bias."""
        return "=" + "+".join(f"SUMPRODUCT({w},{k})" for w, k in zip(windows, kernels)) + f"+{bias}"

    def window_origin(self, out_row: int, out_col: int) -> tuple[int, int]:
        """Top-left input element (in unpadded coordinates, so maybe negative) read by an output."""
        return out_row * self.stride - self.padding, out_col * self.stride - self.padding

    def one_output(self, x: np.ndarray, f: int, i: int, j: int) -> Neuron:
        """Output (f, i, j) of one picture's conv, term by term, from its input x (C, H, W)."""
        p, s, d, span = self.padding, self.stride, self.dilation, self.span
        padded = np.pad(x, ((0, 0), (p, p), (p, p)))  # (C, H+2p, W+2p)
        window = padded[:, i * s:i * s + span, j * s:j * s + span]  # (C, span, span)
        kernel = np.zeros_like(window)
        kernel[:, ::d, ::d] = self.weight[f]  # (C, span, span), zero in a dilated kernel's holes
        products = window[:, ::d, ::d] * self.weight[f]  # (C, k, k)
        return Neuron(window, kernel, products, products.sum(), self.bias[f], products.sum() + self.bias[f])

    def spread(self, dz: np.ndarray) -> np.ndarray:
        """One picture's output gradient (F, Ho, Wo) with stride - 1 zeros between its cells: the
        map a strided conv's input gradient slides over (the transposed convolution)."""
        F, Ho, Wo = dz.shape
        s = self.stride
        spread = np.zeros((F, (Ho - 1) * s + 1, (Wo - 1) * s + 1))
        spread[:, ::s, ::s] = dz
        return spread

    def turned_kernels(self) -> np.ndarray:
        """Every kernel (F * C of them, filter by filter) spread with its dilation's zeros and turned
        by 180 degrees: what the input gradient convolves the spread gradient with."""
        F, C, k, _ = self.weight.shape
        spread = np.zeros((F * C, self.span, self.span))
        spread[:, ::self.dilation, ::self.dilation] = self.weight.reshape(F * C, k, k)
        return spread[:, ::-1, ::-1]

    @property
    def span(self) -> int:
        """Pixels covered by the kernel along one side: a dilated kernel has holes between taps."""
        return self.dilation * (self.kernel - 1) + 1

    def reads(self, out_index: int) -> list[int]:
        """The input rows (or columns) the taps of output row `out_index` land on, in unpadded
        coordinates: below 0 or past the end is zero padding."""
        first = out_index * self.stride - self.padding
        return [first + tap * self.dilation for tap in range(self.kernel)]


RELU_RULES = ("gradient", "guided", "deconvnet")  # how a saliency pass goes back through a ReLU


class ReLU:
    """max(0, x); the gradient at exactly 0 is 0, as in PyTorch."""

    kind = "relu"

    def __init__(self, name):
        self.name = name

    def params(self) -> dict:
        return {}

    def output_shape(self, shape: tuple) -> tuple:
        return shape

    def forward(self, x):
        return np.maximum(x, 0.0), x > 0

    def backward(self, dy, positive, need_input_grad=True, rule: str = "gradient"):
        """The gradient through the ReLU by one of RELU_RULES: the true gradient g*[x>0];
        "guided" also stops negative gradients, g*[x>0]*[g>0]; "deconvnet" forgets x, max(g, 0)."""
        if rule == "guided":
            return np.where(positive & (dy > 0), dy, 0.0), {}
        if rule == "deconvnet":
            return np.maximum(dy, 0.0), {}
        return dy * positive, {}

    @staticmethod
    def formula(ref: str) -> str:
        return f"=MAX(0,{ref})"

    @staticmethod
    def backward_formula(x: str, g: str, rule: str | None = None) -> str:
        """The gradient g through the ReLU of input x; `rule` names the cell holding the number
        (1-based in RELU_RULES) of the rule to follow, None for the true gradient."""
        if rule is None:
            return f"=IF({x}>0,{g},0)"
        return f"=CHOOSE({rule},IF({x}>0,{g},0),IF({x}>0,MAX({g},0),0),MAX({g},0))"


class MaxPool:
    """Maximum over q x q windows every t pixels; a remainder that does not fill a window is dropped."""

    kind = "maxpool"

    def __init__(self, name, size, stride=None):
        self.name = name
        self.size = size
        self.stride = stride or size

    def params(self) -> dict:
        return {}

    def output_shape(self, shape: tuple) -> tuple:
        C, H, W = shape
        if self.size > min(H, W):
            raise CnnsheetError(f"pool size {self.size} is larger than its {H}x{W} input")
        return (C, (H - self.size) // self.stride + 1, (W - self.size) // self.stride + 1)

    def dropped(self, shape: tuple) -> tuple[int, int]:
        """How many trailing rows and columns of the input no window covers (PyTorch floors)."""
        _, H, W = shape
        _, Ho, Wo = self.output_shape(shape)
        covered = lambda n_out: self.stride * (n_out - 1) + self.size
        return H - covered(Ho), W - covered(Wo)

    @property
    def span(self) -> int:
        return self.size

    def reads(self, out_index: int) -> list[int]:
        """The input rows (or columns) of the window of output row `out_index`."""
        return [out_index * self.stride + offset for offset in range(self.size)]

    def offsets(self, Ho: int, Wo: int):
        """(row slice, column slice) of every window position, in row-major order."""
        q, t = self.size, self.stride
        return [(window_slice(i, t, Ho), window_slice(j, t, Wo)) for i in range(q) for j in range(q)]

    def tiles(self, x: np.ndarray, Ho: int, Wo: int) -> np.ndarray:
        """A view (N, C, Ho, q, Wo, q) of the disjoint windows (stride >= size) of x (N, C, H, W)."""
        q, t = self.size, self.stride
        sn, sc, sh, sw = x.strides
        return as_strided(x, (*x.shape[:2], Ho, q, Wo, q), (sn, sc, sh * t, sh, sw * t, sw))

    def forward(self, x):
        N, C, H, W = x.shape
        _, Ho, Wo = self.output_shape((C, H, W))
        if self.stride >= self.size:
            return self.forward_disjoint(x, Ho, Wo)
        views = [x[:, :, rows, cols] for rows, cols in self.offsets(Ho, Wo)]  # q*q of (N, C, Ho, Wo)
        y = views[0].copy()
        for view in views[1:]:
            np.maximum(y, view, out=y)
        # The first maximum in row-major order wins a tie, as in PyTorch: one mask per offset.
        taken = np.zeros(y.shape, dtype=bool)
        winners = []
        for view in views:
            winner = (view == y) & ~taken
            taken |= winner
            winners.append(winner)
        return y, (winners, x.shape)

    def window_rows(self, a: np.ndarray, Ho: int, Wo: int) -> np.ndarray | None:
        """A view (q, N, C, Ho, Wo) of a (N, C, H, W) whose items are the windows' rows, q numbers
        of bytes each, by their row in the window; None unless the windows tile the rows of a
        with nothing between them nor dropped at the right (stride = size) and a is C-contiguous."""
        q = self.size
        N, C, H, W = a.shape
        if self.stride != q or W != Wo * q or not a.flags.c_contiguous:
            return None
        rows = a.view(np.dtype((np.void, q * a.itemsize)))[:, :, :Ho * q]  # (N, C, Ho*q, Wo)
        return rows.reshape(N, C, Ho, q, Wo).transpose(3, 0, 1, 2, 4)

    def by_offset(self, x: np.ndarray, Ho: int, Wo: int) -> np.ndarray:
        """x's disjoint windows (stride >= size) copied out as q*q maps (q*q, N, C, Ho, Wo), one per
        offset in the window, in row-major order."""
        q = self.size
        rows = self.window_rows(x, Ho, Wo)
        if rows is None:
            maps = np.ascontiguousarray(self.tiles(x, Ho, Wo).transpose(3, 5, 0, 1, 2, 4))
        else:  # each window row moved as one item, then its q numbers apart: a third faster (measured)
            rows = np.ascontiguousarray(rows).view(x.dtype).reshape(q, -1, q)  # (q, N*C*Ho*Wo, q)
            maps = np.ascontiguousarray(rows.transpose(0, 2, 1))
        return maps.reshape(q * q, *x.shape[:2], Ho, Wo)

    def forward_disjoint(self, x, Ho, Wo):
        """The forward pass of windows that do not overlap, the same numbers and winners as the
        general one in half its time (measured, default network): the window offsets are first
        copied out as q*q whole maps, so every step after runs over long rows, where each of q*q
        strided views ran over rows of Wo numbers."""
        q = self.size
        views = self.by_offset(x, Ho, Wo)
        y = views.max(axis=0)
        # The first maximum in row-major order wins a tie: each maximum scores its offset's rank
        # counted from the last, and the best score of a window is its first maximum.
        found = views == y
        score = found * np.arange(q * q, 0, -1, dtype=np.min_scalar_type(q * q))[:, None, None, None, None]
        winners = (score == score.max(axis=0)) & found  # & found: a window of nan has no winner
        return y, (winners, x.shape)

    def backward(self, dy, cache, need_input_grad=True):
        winners, input_shape = cache
        dx = np.zeros(input_shape, dtype=dy.dtype)
        q, t = self.size, self.stride
        Ho, Wo = dy.shape[2:]
        rows = self.window_rows(dx, Ho, Wo) if t >= q else None
        if rows is not None:  # by_offset backwards: each offset's share into window rows, those into dx
            shares = np.empty((q, dy.size, q), dtype=dy.dtype)  # (q, N*C*Ho*Wo, q)
            every_dy = dy.reshape(-1)
            for offset, winner in enumerate(winners):
                np.multiply(winner.reshape(-1), every_dy, out=shares[offset // q, :, offset % q])
            rows[...] = shares.view(rows.dtype).reshape(rows.shape)
        elif t >= q:  # disjoint windows: write each offset's share straight into a view of dx
            tiles = self.tiles(dx, Ho, Wo)
            for offset, winner in enumerate(winners):
                np.multiply(winner, dy, out=tiles[:, :, :, offset // q, :, offset % q])
        else:
            for (row_slice, col_slice), winner in zip(self.offsets(Ho, Wo), winners):
                dx[:, :, row_slice, col_slice] += np.where(winner, dy, 0.0)
        return dx, {}

    def one_output(self, x: np.ndarray, f: int, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Output (f, i, j) of one picture's pool: the window (q, q) of x (C, H, W) it reads, and
        1 on the window's first maximum (the one the gradient goes to), 0 elsewhere."""
        q, t = self.size, self.stride
        window = x[f, i * t:i * t + q, j * t:j * t + q]  # (q, q)
        winner = np.zeros((q, q))
        winner[np.unravel_index(int(np.argmax(window)), window.shape)] = 1
        return window, winner

    def windows_won(self, cache) -> np.ndarray:
        """How many windows each input cell is the first maximum of (N, C, H, W): the backward
        pass of an all-ones gradient."""
        winners, _ = cache
        return self.backward(np.ones(winners[0].shape), cache)[0]

    @staticmethod
    def formula(window: str) -> str:
        return f"=MAX({window})"


class Flatten:
    """(N, C, H, W) -> (N, C*H*W) in row-major (C, H, W) order, as torch.flatten."""

    kind = "flatten"

    def __init__(self, name):
        self.name = name

    def params(self) -> dict:
        return {}

    def output_shape(self, shape: tuple) -> tuple:
        return (int(np.prod(shape)),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dy, input_shape, need_input_grad=True):
        return dy.reshape(input_shape), {}

    @staticmethod
    def formula(ref: str) -> str:
        return f"={ref}"


class Dense:
    """y = x W^T + b with W (units, inputs), as torch.nn.Linear."""

    kind = "dense"

    def __init__(self, name, inputs, units):
        self.name = name
        self.inputs, self.units = inputs, units
        self.weight = np.zeros((units, inputs))  # (out, in)
        self.bias = np.zeros(units)  # (out,)

    def params(self) -> dict:
        return {"weight": self.weight, "bias": self.bias}

    def output_shape(self, shape: tuple) -> tuple:
        if shape != (self.inputs,):
            raise CnnsheetError(f"expects {self.inputs} inputs, got shape {shape}")
        return (self.units,)

    def forward(self, x):
        return x @ self.weight.T + self.bias, x  # (N, out)

    def backward(self, dy, x, need_input_grad=True):
        grads = {"weight": dy.T @ x, "bias": dy.sum(axis=0)}
        return (dy @ self.weight if need_input_grad else None), grads  # (N, in)

    @staticmethod
    def formula(inputs: str, weights: str, bias: str) -> str:
        """One output: the inputs times this output's weights, summed, plus its bias."""
        return f"=SUMPRODUCT({inputs},{weights})+{bias}"


def softmax_parts(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """exp(z - max z) and the probabilities, that divided by its sum: subtracting the maximum
    changes nothing but keeps exp from overflowing."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted, shifted / shifted.sum(axis=-1, keepdims=True)


def exp_formula(logit: str, logits: str) -> str:
    return f"=EXP({logit}-MAX({logits}))"


def normalise_formula(exp: str, exps: str) -> str:
    return f"={exp}/SUM({exps})"


def onehot_formula(class_name: str, chosen: str) -> str:
    """1 for the chosen class, compared without regard to case: "Square" typed picks "square" (no
    two classes differ only by case: config.check_class_names). Both sides are lower-cased text
    compared exactly, so the result does not hang on an engine's case setting, and a number typed
    for a class named "7" still picks it (LOWER turns it into text)."""
    return f"=IF(EXACT(LOWER({class_name}),LOWER({chosen})),1,0)"


def true_probability_formula(onehot: str, probabilities: str) -> str:
    """p of the true class, picked out by the one-hot column."""
    return f"=SUMPRODUCT({onehot},{probabilities})"


def cross_entropy_formula(onehot: str, logits: str, exps: str) -> str:
    """-ln p of the true class, written as Model.loss computes it: ln(sum of exp(z - max z)) + max z
    - z of the true class. The same number, but finite where p rounds to 0 (a confident model)."""
    return f"=LN(SUM({exps}))+MAX({logits})-SUMPRODUCT({onehot},{logits})"


def softmax_cross_entropy_backward(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Gradient of the mean loss with respect to the logits: (p - onehot) / N."""
    onehot = np.eye(probabilities.shape[1], dtype=probabilities.dtype)[labels]
    return (probabilities - onehot) / len(labels)
