"""Does the attention matter? (Wiegreffe & Pinter 2019): replace alpha by uniform at inference.

With alpha_i = 1/L, L * alpha is the identity: kim_canny and quant_all then steer from the
ungated features, and for quant_sign only the gated sign term changes (the rest bypasses the
attention). How far the steering moves measures how much the output depends on where the
attention looks; an attention the output ignores explains nothing about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..model.network import SteeringNet


@contextmanager
def uniform_attention(model: SteeringNet) -> Iterator[None]:
    """Inside: the model's attention returns 1/L at every position."""
    if model.attention is None:
        raise ValueError(f"uniform attention: the {model.config.variant} model has no attention")
    hook = model.attention.register_forward_hook(lambda _m, _i, alpha: torch.full_like(alpha, 1.0 / alpha.shape[-1]))
    try:
        yield
    finally:
        hook.remove()


@torch.no_grad()
def uniform_shift(model: SteeringNet, x: torch.Tensor) -> torch.Tensor:
    """(B,) |steering with uniform attention - steering with the model's own| for normalized frames x."""
    model.eval()
    own = model(x).steering
    with uniform_attention(model):
        uniform = model(x).steering
    return (uniform - own).abs()
