"""The independent oracle: the same network in PyTorch (float64), every tensor and gradient kept."""

import torch
import torch.nn.functional as F


def torch_forward(model, inputs, params):
    """The layers of a cnnsheet model in torch; returns every tensor by the engine's names."""
    tensors = {"input": inputs}
    h = inputs
    for layer in model.layers:
        w, b = params.get(f"{layer.name}.weight"), params.get(f"{layer.name}.bias")
        if layer.kind == "conv":
            h = F.conv2d(h, w, b, layer.stride, layer.padding, layer.dilation)
        elif layer.kind == "relu":
            h = F.relu(h)
        elif layer.kind == "maxpool":
            h = F.max_pool2d(h, layer.size, layer.stride)
        elif layer.kind == "flatten":
            h = torch.flatten(h, 1)
        elif layer.kind == "dense":
            h = F.linear(h, w, b)
        if h.requires_grad:
            h.retain_grad()
        tensors[layer.name] = h
    tensors["probabilities"] = torch.softmax(h, dim=1)
    return tensors


def torch_params(model, requires_grad=True):
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=requires_grad)
            for k, v in model.params().items()}


def torch_pass(model, x, labels):
    """Forward and backward of the mean cross-entropy in torch: (tensors, tensor grads, param grads)."""
    inputs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    params = torch_params(model)
    tensors = torch_forward(model, inputs, params)
    F.cross_entropy(tensors[model.layers[-1].name], torch.tensor(labels)).backward()
    as_numpy = lambda t: t.detach().numpy()
    return ({k: as_numpy(t) for k, t in tensors.items()},
            {k: as_numpy(t.grad) for k, t in tensors.items() if k != "probabilities"},
            {k: as_numpy(t.grad) for k, t in params.items()})
