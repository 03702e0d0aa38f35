"""Batch augmentation on [0, 1] images in the model's colour space: flip, shift, brightness.

Flip and shift are one gather over the columns, so the cost does not grow with the number
of distinct shifts in a batch.
"""

from __future__ import annotations

import torch

from ..core.preprocess import BRIGHTNESS_CHANNELS
from .config import AugmentConfig


def augment(
    images: torch.Tensor, targets: torch.Tensor, config: AugmentConfig, color: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) floats in [0, 1] and (B,) targets -> augmented copies."""
    batch, _, height, width = images.shape
    flip = torch.rand(batch, generator=generator) < config.flip
    shift = torch.randint(-config.shift_px, config.shift_px + 1, (batch,), generator=generator)
    factor = 1 + config.brightness * (2 * torch.rand(batch, generator=generator) - 1)
    targets = torch.where(flip.to(targets.device), -targets, targets)
    targets = targets + (shift * config.shift_label_per_px).to(targets.device, targets.dtype)
    if config.flip > 0 or config.shift_px > 0:
        # output column c shows input column c - shift (edge replicated), mirrored when flipped
        source = (torch.arange(width).view(1, -1) - shift.view(-1, 1)).clamp(0, width - 1)
        source = torch.where(flip.view(-1, 1), width - 1 - source, source).to(images.device)
        images = images.gather(3, source.view(batch, 1, 1, width).expand(-1, 3, height, -1))
    if config.brightness > 0:
        scale = torch.ones(batch, 3)
        scale[:, list(BRIGHTNESS_CHANNELS[color])] = factor.view(-1, 1)
        images = (images * scale.view(batch, 3, 1, 1).to(images.device)).clamp_(0, 1)
    return images, targets
