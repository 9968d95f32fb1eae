"""Training the default model end to end: this engine against the same loop in torch on the CPU.

Same data (the synthetic shapes, drawn once), batches (turned and mirrored by the same
cnnsheet.train.batch_input), architecture, epochs, batch size, optimiser (SGD with momentum and
weight decay, cosine learning rate), arithmetic (the engine's training dtype, float32), running
loss and accuracy, memory setting and thread count in both: freed memory kept and the BLAS
threads `cnnsheet train` chooses (cnnsheet.memory, cnnsheet.threads), and as many torch threads. Prints the threads, seconds for drawing the shapes, for each training loop
(and pictures a second), the end-to-end time of `cnnsheet train`, the accuracy on 1,000 freshly
drawn shapes (as samples/README.md counts it), and the ratio engine / torch last. Each time is given
as wall seconds and as this process's processor seconds: on a machine that others share, the wall
time of a loop grows with whatever else runs meanwhile, its processor time much less, so the ratio
of processor times is the one to compare runs by.

    python benchmarks/train.py
"""

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from cnnsheet import memory, shapes, threads
from cnnsheet.train import (
    DEFAULT_SAMPLES,
    Architecture,
    Dataset,
    Hyperparameters,
    batch_input,
    evaluate,
    fit,
    new_model,
    pixel_table,
    split,
)


def torch_training(model, train, hp: Hyperparameters) -> float:
    """The loop of cnnsheet.train.fit, written in torch, on a copy of the initial weights; returns
    the last epoch's training accuracy, counted batch by batch as fit counts it for its progress
    line (fit also checks every batch for divergence, which this loop does not)."""
    rng = np.random.default_rng(np.random.SeedSequence([hp.seed, 2]))
    dtype = getattr(torch, hp.dtype)
    params = {k: torch.tensor(v.copy(), dtype=dtype, requires_grad=True) for k, v in model.params().items()}
    decay = [p for k, p in params.items() if k.endswith(".weight")]
    rest = [p for k, p in params.items() if not k.endswith(".weight")]
    optimiser = torch.optim.SGD([{"params": decay, "weight_decay": hp.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}],
                                lr=hp.learning_rate, momentum=hp.momentum)
    pixels, labels = train
    table = pixel_table(model, hp.dtype)  # the pictures reach both networks the same way
    conv, pool = model.layers[0], model.layers[2]
    for epoch in range(1, hp.epochs + 1):
        for group in optimiser.param_groups:
            group["lr"] = hp.learning_rate * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / hp.epochs))
        order = rng.permutation(len(labels))
        total, seen, correct = 0.0, 0, 0
        for start in range(0, len(labels), hp.batch_size):
            chosen = order[start:start + hp.batch_size]
            x = torch.from_numpy(batch_input(model, table, pixels[chosen], hp, rng))  # as fit's
            h = F.relu(F.conv2d(x, params["conv1.weight"], params["conv1.bias"], conv.stride))
            h = torch.flatten(F.max_pool2d(h, pool.size, pool.stride), 1)
            h = F.relu(F.linear(h, params["hidden.weight"], params["hidden.bias"]))
            logits = F.linear(h, params["dense.weight"], params["dense.bias"])
            truth = torch.from_numpy(labels[chosen])
            loss = F.cross_entropy(logits, truth)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(chosen)
            seen += len(chosen)
            correct += int((logits.argmax(axis=1) == truth).sum())
    return correct / seen


UNUSED_SEED = 2026  # as tests/test_train.py: the training shapes were drawn with seed 0


def main():
    chooser = threads.choose_blas_threads()  # as `cnnsheet train` does
    memory.keep_freed_memory()  # as `cnnsheet train` does; for torch's loop too, in this process
    count = threads.blas_threads() or 1
    torch.set_num_threads(count)
    architecture, hp = Architecture(), Hyperparameters(flips=True)
    with Timer() as drawing:
        pixels, labels = shapes.generate(DEFAULT_SAMPLES, architecture.size, hp.seed)
    train, validation = split(Dataset(pixels, labels, shapes.CLASSES, []), hp.validation_split, hp.seed)

    model = new_model(architecture, shapes.CLASSES, train[0], hp.seed)
    reference_model = new_model(architecture, shapes.CLASSES, train[0], hp.seed)
    no_validation = (validation[0][:0], validation[1][:0])  # the torch loop validates nothing either
    with Timer() as engine:
        last = list(fit(model, train, no_validation, hp))[-1]  # the last epoch's end
    with Timer() as reference:
        reference_accuracy = torch_training(reference_model, train, hp)

    fresh = shapes.generate(1000, architecture.size, UNUSED_SEED)
    pictures = len(train[1]) * hp.epochs
    print(f"numpy {np.__version__} with OpenBLAS on {count} thread(s) ({chooser}); torch "
          f"{torch.__version__} on {torch.get_num_threads()}; {DEFAULT_SAMPLES} shapes, {hp.epochs} epochs, "
          f"batch {hp.batch_size}, {hp.dtype}")
    print("                               wall s  processor s")
    print(f"drawing the shapes:            {drawing}")
    print(f"engine training:               {engine}, {pictures / engine.wall:,.0f} pictures/s, "
          f"last epoch's training accuracy {last.train_accuracy:.1%}, validation "
          f"{evaluate(model, *validation)[1]:.1%}, on 1,000 fresh shapes {evaluate(model, *fresh)[1]:.1%}")
    print(f"torch training:                {reference}, {pictures / reference.wall:,.0f} pictures/s, "
          f"last epoch's training accuracy {reference_accuracy:.1%}")
    print(f"cnnsheet train end to end:     {drawing.wall + engine.wall:6.1f}  "
          f"{drawing.processor + engine.processor:11.1f} (goal: under 60 s)")
    print(f"ratio engine/torch: {engine.processor / reference.processor:.2f} in processor time, "
          f"{engine.wall / reference.wall:.2f} in wall time")


class Timer:
    """Wall and processor seconds of a with-block."""

    def __enter__(self):
        self.wall, self.processor = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_):
        self.wall, self.processor = time.perf_counter() - self.wall, time.process_time() - self.processor

    def __str__(self):
        return f"{self.wall:6.1f}  {self.processor:11.1f}"


if __name__ == "__main__":
    main()
