"""Kim & Canny soft attention: e_i = w^T ReLU(W_x x_i + W_h h + c), alpha = softmax(e)."""

from __future__ import annotations

import torch
from torch import nn


class SoftAttention(nn.Module):
    def __init__(self, feature_dim: int, attention_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.feature_proj = nn.Linear(feature_dim, attention_dim)  # W_x and c
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim, bias=False) if hidden_dim else None  # W_h
        self.score = nn.Linear(attention_dim, 1, bias=False)  # w

    def forward(self, features: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) features and optional (B, H) state -> (B, L) attention weights summing to 1."""
        pre = self.feature_proj(features)
        if self.hidden_proj is not None and hidden is not None:
            pre = pre + self.hidden_proj(hidden).unsqueeze(1)
        return torch.softmax(self.score(torch.relu(pre)).squeeze(-1), dim=1)


def entropy_penalty(alpha: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the attention maps: small when attention is peaked."""
    return -(alpha * alpha.clamp_min(1e-12).log()).sum(dim=-1).mean()


def doubly_stochastic_penalty(alphas: torch.Tensor) -> torch.Tensor:
    """Kim & Canny's sum_i (T/L - sum_t alpha_t,i)^2 over a (B, T, L) sequence of maps."""
    steps, positions = alphas.shape[1], alphas.shape[2]
    return ((steps / positions - alphas.sum(dim=1)) ** 2).sum(dim=-1).mean()
