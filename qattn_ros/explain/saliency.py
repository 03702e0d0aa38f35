"""Saliency maps over the model input, (B, H, W), non-negative: what the metrics rank pixels by.

- `attention`: the model's own attention alpha, upsampled bilinearly to the input.
- `visual_backprop`: VisualBackProp (Bojarski et al. 2018), written here: channel-averaged
  activations of each layer, scaled up by deconvolution with the layer's kernel shape
  and multiplied layer by layer (captum has no VisualBackProp).
- `gradcam`: Grad-CAM on the last encoder layer (captum's LayerGradCam), absolute value
  since for a regression output both signs move the steering.
- `integrated_gradients`: captum's IntegratedGradients from the mean image (0 after
  normalization), |attribution| summed over channels.
  captum is imported by these two methods only: the others run where it is not installed.
- `random`: uniform noise seeded per frame, the floor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model.network import SteeringNet

METHODS = ("attention", "visual_backprop", "gradcam", "integrated_gradients", "random")


class SaliencyError(ValueError):
    """A saliency method or map is unusable; the message names the method and the problem."""


def _steering(model: SteeringNet) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(x).steering


def attention_map(model: SteeringNet, x: torch.Tensor) -> torch.Tensor:
    if model.attention is None:
        raise SaliencyError(f"attention: the {model.config.variant} model has no attention")
    with torch.no_grad():
        alpha = model(x).attention
    return upsample_attention(alpha, tuple(x.shape[-2:]))


def upsample_attention(alpha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) attention over encoder positions -> (B, H, W) over the input pixels, bilinearly."""
    return F.interpolate(alpha.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def visual_backprop(model: SteeringNet, x: torch.Tensor) -> torch.Tensor:
    convs = [m for m in model.encoder.layers if isinstance(m, nn.Conv2d)]
    taps = [m for m in model.encoder.layers if isinstance(m, nn.ReLU)] + [model.encoder.layers[-1]]
    maps: list[torch.Tensor] = []
    hooks = [
        tap.register_forward_hook(lambda _m, _i, out: maps.append(out.abs().mean(dim=1, keepdim=True))) for tap in taps
    ]
    try:
        with torch.no_grad():
            model.encoder(x)
    finally:
        for hook in hooks:
            hook.remove()
    mask = maps[-1]
    for index in range(len(maps) - 1, 0, -1):  # deepest to shallowest: scale up, multiply
        mask = _deconv_ones(mask, convs[index], maps[index - 1].shape[-2:]) * maps[index - 1]
    mask = _deconv_ones(mask, convs[0], x.shape[-2:])
    return mask.squeeze(1)


def _deconv_ones(mask: torch.Tensor, conv: nn.Conv2d, size: torch.Size) -> torch.Tensor:
    """Scale a one-channel map up the way `conv` scaled down, with an all-ones kernel."""
    kernel = torch.ones(1, 1, *conv.kernel_size, device=mask.device)
    up = F.conv_transpose2d(mask, kernel, stride=conv.stride, padding=conv.padding)
    pad_h, pad_w = size[0] - up.shape[-2], size[1] - up.shape[-1]
    return F.pad(up, (0, max(pad_w, 0), 0, max(pad_h, 0)))[..., : size[0], : size[1]]


def gradcam(model: SteeringNet, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(_steering(model), model.encoder.layers[-1])
    attribution = cam.attribute(x.clone().requires_grad_(True), relu_attributions=False)
    up = LayerAttribution.interpolate(attribution.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return up.abs().squeeze(1)


def integrated_gradients_attribution(model: SteeringNet, x: torch.Tensor, steps: int = 32) -> torch.Tensor:
    """Signed (B, 3, H, W) attributions from the mean image; they add up to f(x) - f(mean) (completeness)."""
    from captum.attr import IntegratedGradients

    attribution = IntegratedGradients(_steering(model)).attribute(x, baselines=torch.zeros_like(x), n_steps=steps)
    return attribution.detach()


def integrated_gradients(model: SteeringNet, x: torch.Tensor, steps: int = 32) -> torch.Tensor:
    return integrated_gradients_attribution(model, x, steps).abs().sum(dim=1)


def random_map(x: torch.Tensor, frame_ids: np.ndarray, seed: int) -> torch.Tensor:
    maps = [
        torch.from_numpy(np.random.default_rng([seed, int(i), 7]).random(x.shape[-2:], dtype=np.float32))
        for i in frame_ids
    ]
    return torch.stack(maps).to(x.device)


def saliency(method: str, model: SteeringNet, x: torch.Tensor, frame_ids: np.ndarray, seed: int = 0) -> torch.Tensor:
    """(B, H, W) non-negative saliency of `method` for normalized inputs x (B, 3, H, W)."""
    if method not in METHODS:
        raise SaliencyError(f"unknown saliency method {method!r}; expected one of {', '.join(METHODS)}")
    model.eval()
    if method == "attention":
        maps = attention_map(model, x)
    elif method == "visual_backprop":
        maps = visual_backprop(model, x)
    elif method == "gradcam":
        maps = gradcam(model, x)
    elif method == "integrated_gradients":
        maps = integrated_gradients(model, x)
    else:
        maps = random_map(x, frame_ids, seed)
    return check_maps(maps, x, method)


def check_maps(maps: torch.Tensor, x: torch.Tensor, method: str) -> torch.Tensor:
    """Refuse maps of the wrong shape or with NaN/inf, naming the method and the frame."""
    expected = (x.shape[0], *x.shape[-2:])
    if tuple(maps.shape) != expected:
        raise SaliencyError(f"{method}: saliency map has shape {tuple(maps.shape)}, expected {expected}")
    bad = ~torch.isfinite(maps).flatten(1).all(dim=1)
    if bad.any():
        raise SaliencyError(f"{method}: saliency map of batch item {int(bad.nonzero()[0])} contains NaN or inf")
    return maps
