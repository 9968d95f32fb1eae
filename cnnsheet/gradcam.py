"""Grad-CAM (Selvaraju et al.): which region of the photo the last conv block's maps point at for one
class, and that map brought back up to the photo's size.

A is the output of the last conv or ReLU before flatten (only max-pools may lie between them),
(C, H, W); the score is one class's logit. Each map A_k weighs a_k = the mean of d score / d A_k,
always the plain gradient (the saliency rules do not apply here); the map is
max(0, sum_k a_k A_k), (H, W). It is brought up to the photo's size as a transposed convolution
whose kernel is all ones, one receptive field wide, with the fields' jump as its stride, divided
by how many fields cover each pixel: each pixel takes the mean of the cells that can see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnsheet.fields import covering
from cnnsheet.layers import Flatten, MaxPool


@dataclass(frozen=True)
class GradCam:
    """One picture's Grad-CAM: A's tensor name, d score / d A (C, H, W), the weights a_k (C,), the
    map (H, W), the map at the photo's size (size, size), and d score / d every tensor from the
    logits down to A (name -> (1, ...)), which the sheet shows on the way."""

    layer: str
    gradient: np.ndarray
    weights: np.ndarray
    cam: np.ndarray
    image: np.ndarray
    gradients: dict


def activation_index(model) -> int:
    """The index in model.layers of A's layer: the last before flatten that is not a max-pool; -1
    (the input itself) when there is none."""
    flat = next(i for i, layer in enumerate(model.layers) if isinstance(layer, Flatten))
    below = [i for i in range(flat) if not isinstance(model.layers[i], MaxPool)]
    return below[-1] if below else -1


def activation_name(model) -> str:
    index = activation_index(model)
    return model.layers[index].name if index >= 0 else "input"


def gradcam(model, trace, class_index: int) -> GradCam:
    """Grad-CAM of one picture's trace (N = 1) for the class `class_index`."""
    seed = np.zeros_like(trace.logits)  # (1, K)
    seed[0, class_index] = 1.0
    name = activation_name(model)
    grads = model.backward(trace, seed, need_input_grad=name == "input")  # the plain gradient
    gradient = grads.tensors[name][0]  # (C, H, W)
    activations = trace.tensors[name][0]  # (C, H, W)
    weights = gradient.mean(axis=(1, 2))  # (C,)
    cam = np.maximum(np.tensordot(weights, activations, axes=1), 0.0)  # (H, W)
    return GradCam(name, gradient, weights, cam, upsample(model, cam), grads.tensors)


def upsample_layers(model) -> list:
    """The layers from the input to A: they set the fields that line A's cells up with pixels."""
    return model.layers[:activation_index(model) + 1]


def upsample(model, cam: np.ndarray) -> np.ndarray:
    """The map (H, W) at the photo's size: each pixel the mean of the cells whose receptive field
    holds it, 0 where none does."""
    layers, size = upsample_layers(model), model.input_size
    H, W = cam.shape
    rows = [covering(layers, y, H) for y in range(size)]
    cols = [covering(layers, x, W) for x in range(size)]
    image = np.zeros((size, size))
    for y, r in enumerate(rows):
        for x, c in enumerate(cols):
            if r and c:
                image[y, x] = cam[r.start:r.stop, c.start:c.stop].mean()
    return image
