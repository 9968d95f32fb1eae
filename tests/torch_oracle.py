"""The independent oracle: the same network in PyTorch (float64), every tensor and gradient kept."""

import torch
import torch.nn.functional as F


def torch_forward(model, inputs, params, relu=F.relu):
    """The layers of a cnnsheet model in torch; returns every tensor by the engine's names."""
    tensors = {"input": inputs}
    h = inputs
    for layer in model.layers:
        w, b = params.get(f"{layer.name}.weight"), params.get(f"{layer.name}.bias")
        if layer.kind == "conv":
            h = F.conv2d(h, w, b, layer.stride, layer.padding, layer.dilation)
        elif layer.kind == "relu":
            h = relu(h)
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


class _RuledReLU(torch.autograd.Function):
    """ReLU whose backward follows a saliency rule: "guided" (Springenberg et al.: the true
    gradient, then negatives stopped) or "deconvnet" (Zeiler and Fergus: only negatives stopped)."""

    @staticmethod
    def forward(ctx, x, rule):
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.rule == "guided":
            return g * (x > 0) * (g > 0), None
        return g.clamp(min=0), None


def torch_saliency(model, pixels, class_index, rule="gradient"):
    """d logit / d pixel (N, 3, H, W) in torch, through ReLUs following `rule`, from the 0-255
    pixels (the preprocessing done in torch too)."""
    pixels = torch.tensor(pixels, dtype=torch.float64, requires_grad=True)
    x = pixels.permute(0, 3, 1, 2) / 255.0
    if model.channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)[:, None, None]).sum(1, keepdim=True)
    mean = torch.tensor(model.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(model.std, dtype=torch.float64)[:, None, None]
    relu = F.relu if rule == "gradient" else (lambda h: _RuledReLU.apply(h, rule))
    tensors = torch_forward(model, (x - mean) / std, torch_params(model, False), relu)
    tensors[model.layers[-1].name][:, class_index].sum().backward()
    return pixels.grad.permute(0, 3, 1, 2).numpy()
