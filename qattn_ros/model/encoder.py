"""PilotNet's five convolutions without pooling, 'same' padding, BatchNorm.

The last layer ends at its BatchNorm: its output is signed, so a sign bit carries
information when the features are quantized.
"""

from __future__ import annotations

import torch
from torch import nn

# (out_channels, kernel, stride) of PilotNet's convolutions
LAYERS = ((24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1))
FEATURE_DIM = LAYERS[-1][0]
DOWNSAMPLE = 8


class PilotNetEncoder(nn.Module):
    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = in_channels
        for index, (out, kernel, stride) in enumerate(LAYERS):
            blocks.append(nn.Conv2d(channels, out, kernel, stride, padding=kernel // 2, bias=False))
            blocks.append(nn.BatchNorm2d(out))
            if index < len(LAYERS) - 1:
                blocks.append(nn.ReLU(inplace=True))
            channels = out
        self.layers = nn.Sequential(*blocks)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalized image -> (B, 64, H/8, W/8) signed features."""
        return self.layers(image)
