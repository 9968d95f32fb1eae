"""One training step (forward + backward) of the NumPy engine against torch on the CPU.

Network: 28x28x3 input, conv 8 filters 3x3, ReLU, max-pool 2, dense 3; batch 64; float64 in
both, on the BLAS threads `cnnsheet` chooses (cnnsheet.threads) and as many torch threads. Each
figure is the median of many runs in this process; the ratio engine / torch is the last line
(below 1.0: the engine is faster). The engine is timed twice: with the default allocator, and
after `keep_freed_memory()`, as `cnnsheet train` runs it.

    python benchmarks/engine.py
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from torch_oracle import torch_params

from cnnsheet import threads
from cnnsheet.memory import keep_freed_memory
from cnnsheet.model import Model

CONFIG = {"format": "cnnsheet.model", "version": 1, "input": {"size": 28, "channels": 3},
          "layers": [{"type": "conv", "name": "conv1", "filters": 8, "kernel": 3},
                     {"type": "relu"}, {"type": "maxpool", "size": 2}, {"type": "flatten"},
                     {"type": "dense", "name": "dense1", "units": 3}],
          "classes": ["circle", "square", "triangle"]}


def median_seconds(step, repeats=300, warmup=20):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    chooser = threads.choose_blas_threads()  # as the command line does
    count = threads.blas_threads() or 1
    torch.set_num_threads(count)
    model = Model(CONFIG).init(0)
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(64, 3, 28, 28)), rng.integers(0, 3, size=64)

    def engine_step():
        model.gradients(x, labels, need_input_grad=False)

    params = torch_params(model)
    tx, tlabels = torch.tensor(x), torch.tensor(labels)

    def torch_step():
        for p in params.values():
            p.grad = None
        h = F.relu(F.conv2d(tx, params["conv1.weight"], params["conv1.bias"]))
        h = torch.flatten(F.max_pool2d(h, 2), 1)
        loss = F.cross_entropy(F.linear(h, params["dense1.weight"], params["dense1.bias"]), tlabels)
        loss.backward()

    default_engine = median_seconds(engine_step)
    keep_freed_memory()  # what `cnnsheet train` does before its first step
    engine = median_seconds(engine_step)
    reference = median_seconds(torch_step)
    print(f"numpy {np.__version__} with OpenBLAS on {count} thread(s) ({chooser}); "
          f"torch {torch.__version__} on {torch.get_num_threads()}")
    print(f"engine step, default allocator:      {default_engine * 1e3:.3f} ms")
    print(f"engine step, as in `cnnsheet train`: {engine * 1e3:.3f} ms")
    print(f"torch step:                          {reference * 1e3:.3f} ms")
    print(f"ratio engine/torch: {engine / reference:.2f}")


if __name__ == "__main__":
    main()
