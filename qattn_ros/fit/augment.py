"""Batch augmentation on [0, 1] images in the model's colour space: flip, brightness, shift."""

from __future__ import annotations

import torch

from ..preprocess import BRIGHTNESS_CHANNELS
from .config import AugmentConfig


def augment(
    images: torch.Tensor, targets: torch.Tensor, config: AugmentConfig, color: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) floats in [0, 1] and (B,) targets -> augmented copies."""
    batch = images.shape[0]
    draw = lambda: torch.rand(batch, generator=generator).to(images.device)  # noqa: E731
    images, targets = images.clone(), targets.clone()
    if config.flip > 0:
        flip = draw() < config.flip
        images[flip] = images[flip].flip(-1)
        targets[flip] = -targets[flip]
    if config.brightness > 0:
        factor = 1 + config.brightness * (2 * draw() - 1)
        channels = list(BRIGHTNESS_CHANNELS[color])
        images[:, channels] = (images[:, channels] * factor.view(-1, 1, 1, 1)).clamp(0, 1)
    if config.shift_px > 0:
        shifts = torch.randint(-config.shift_px, config.shift_px + 1, (batch,), generator=generator)
        width = images.shape[-1]
        columns = torch.arange(width)
        for shift in shifts.unique().tolist():
            rows = (shifts == shift).nonzero().squeeze(1).to(images.device)
            source = (columns - shift).clamp(0, width - 1).to(images.device)  # replicate the edge
            images[rows] = images[rows][..., source]
            targets[rows] = targets[rows] + shift * config.shift_label_per_px
    return images, targets
