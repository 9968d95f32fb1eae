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


def torch_gradcam(model, pixels, class_index, layer, field, jump, origin):
    """Grad-CAM in torch for one picture (H, W, 3) uint8: a_k = the mean of d logit / d A_k over
    the map A (the tensor named `layer`), max(0, sum a_k A_k); then brought up to the photo with
    conv_transpose2d by a kernel of ones `field` wide and stride `jump`, divided by the same
    transposed convolution of ones (how many fields cover each pixel), the fields' frame starting
    at pixel `origin`. Returns (weights (C,), map (H, W), image (size, size))."""
    x = torch.tensor(model.preprocess(pixels), dtype=torch.float64, requires_grad=True)
    tensors = torch_forward(model, x, torch_params(model, False))
    tensors[model.layers[-1].name][0, class_index].backward()
    A = tensors[layer]
    weights = A.grad[0].mean(dim=(1, 2))  # (C,)
    cam = torch.relu((weights[:, None, None] * A[0]).sum(0)).detach()  # (H, W)
    ones = torch.ones(1, 1, field, field, dtype=torch.float64)
    summed = F.conv_transpose2d(cam[None, None], ones, stride=jump)[0, 0]
    counts = F.conv_transpose2d(torch.ones_like(cam)[None, None], ones, stride=jump)[0, 0]
    size = model.input_size
    image = torch.zeros(size, size, dtype=torch.float64)
    for y in range(size):  # the frame's row y - origin, where the frame reaches
        for x_ in range(size):
            fy, fx = y - origin, x_ - origin
            if 0 <= fy < summed.shape[0] and 0 <= fx < summed.shape[1]:
                image[y, x_] = summed[fy, fx] / counts[fy, fx]
    return weights.detach().numpy(), cam.numpy(), image.numpy()
