"""The steering network: encoder -> feature cube -> (quantizer) -> attention -> head.

Variants, with z_i the features that pass the attention:
  pilotnet     no attention; the head sees the flattened features
  kim_canny    y = L * alpha_i * x_i                (full precision)
  quant_all    y = L * alpha_i * Q_b(x_i)           (attention on all bits)
  quant_sign   y = L * alpha_i * S_i + R_i          (attention on the sign term only)
  binary_sign  y = L * alpha_i * s * sign(x_i)      (b = 1)
L * alpha makes uniform attention the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import SoftAttention
from .config import ModelConfig
from .encoder import DOWNSAMPLE, FEATURE_DIM, PilotNetEncoder
from .quantizer import SignedLSQ

RecurrentState = tuple[torch.Tensor, torch.Tensor]


@dataclass
class SteeringOutput:
    steering: torch.Tensor  # (B,) in the checkpoint's steering unit
    attention: torch.Tensor | None  # (B, H/8, W/8), sums to 1 per frame
    state: RecurrentState | None


class SteeringNet(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.grid = (config.input_height // DOWNSAMPLE, config.input_width // DOWNSAMPLE)
        self.positions = self.grid[0] * self.grid[1]
        self.encoder = PilotNetEncoder()
        self.quantizer = SignedLSQ(config.bits) if config.quantized else None
        hidden = config.hidden_dim if config.recurrent else None
        self.attention = SoftAttention(FEATURE_DIM, config.attention_dim, hidden) if config.has_attention else None
        context_dim = self.positions * FEATURE_DIM
        if config.recurrent:
            self.state_input = nn.Linear(context_dim, config.hidden_dim)
            self.cell = nn.LSTMCell(config.hidden_dim, config.hidden_dim)
        head_in = context_dim + (config.hidden_dim if config.recurrent else 0)
        p = config.head_dropout
        self.head = nn.Sequential(
            nn.Dropout(p), nn.Linear(head_in, 100), nn.ReLU(inplace=True),
            nn.Dropout(p), nn.Linear(100, 50), nn.ReLU(inplace=True),
            nn.Linear(50, 10), nn.ReLU(inplace=True),
            nn.Linear(10, 1),
        )  # fmt: skip
        # The head predicts a standardized target; these map it back to the dataset unit.
        self.register_buffer("target_mean", torch.tensor(0.0))
        self.register_buffer("target_std", torch.tensor(1.0))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, L, 64) feature vectors x_i, row-major over the grid."""
        return self.encoder(image).flatten(2).transpose(1, 2)

    def forward(self, image: torch.Tensor, state: RecurrentState | None = None) -> SteeringOutput:
        x = self.features(image)
        batch = x.shape[0]
        hidden = state[0] if state is not None else None
        if self.attention is None:
            alpha = None
            context = x
        else:
            gated, ungated = self._split(x)
            alpha = self.attention(gated + ungated, hidden)
            context = self.positions * alpha.unsqueeze(-1) * gated + ungated
        context = context.flatten(1)
        head_in = context
        if self.config.recurrent:
            if state is None:
                zeros = context.new_zeros(batch, self.config.hidden_dim)
                state = (zeros, zeros)
            state = self.cell(torch.relu(self.state_input(context)), state)
            head_in = torch.cat([context, state[0]], dim=1)
        steering = self.head(head_in).squeeze(-1) * self.target_std + self.target_mean
        attention = alpha.view(batch, *self.grid) if alpha is not None else None
        return SteeringOutput(steering=steering, attention=attention, state=state if self.config.recurrent else None)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The part of z the attention gates and the part that bypasses it."""
        variant = self.config.variant
        if variant == "kim_canny":
            return x, torch.zeros_like(x)
        q = self.quantizer(x)
        if variant in ("quant_all", "binary_sign"):
            return q.value, torch.zeros_like(x)
        rest = q.rest
        if self.training and self.config.rest_dropout > 0:
            keep = torch.rand(x.shape[0], x.shape[1], 1, device=x.device) >= self.config.rest_dropout
            rest = rest * keep / (1.0 - self.config.rest_dropout)
        return q.sign, rest

    @torch.no_grad()
    def calibrate(self, image: torch.Tensor) -> None:
        """Initialize the quantizer step from one batch (the same batch on every DDP rank)."""
        if self.quantizer is not None:
            self.quantizer.calibrate(self.features(image))
