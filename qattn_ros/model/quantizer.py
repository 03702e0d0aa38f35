"""Signed LSQ quantizer whose output splits exactly into a sign term and the rest.

Two's complement with b bits: code k = -beta_{b-1} 2^{b-1} + sum_{j<b-1} beta_j 2^j,
value q = s * k.  The sign term S = -s * beta_{b-1} * 2^{b-1} and the rest R = q - S >= 0.
b = 1 is binarization, q = s * sign(x) (S = q, R = 0).

Step size s is learned (Esser et al., "Learned Step Size Quantization", ICLR 2020) with
their gradient scale; rounding uses a straight-through gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

MAX_BITS = 8


@dataclass
class Quantized:
    """A quantized activation as sign term + rest; `value` is their sum."""

    sign: torch.Tensor
    rest: torch.Tensor
    step: torch.Tensor

    @property
    def value(self) -> torch.Tensor:
        return self.sign + self.rest


def code_range(bits: int) -> tuple[int, int]:
    """Smallest and largest integer code of a signed b-bit quantizer (b = 1: {-1, +1})."""
    if bits == 1:
        return -1, 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward, gradient multiplied by `scale`."""
    return (x - x * scale).detach() + x * scale


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (x.round() - x).detach() + x


class SignedLSQ(nn.Module):
    """Signed, symmetric b-bit quantizer with a learned step size."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        if not 1 <= bits <= MAX_BITS:
            raise ValueError(f"quantizer bits must be in 1..{MAX_BITS}, got {bits}")
        self.bits = bits
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Back to the untrained step: calibrated again from the next batch it sees, as a fresh model is."""
        self.step.fill_(1.0)
        self.initialized.fill_(False)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """LSQ's initial step 2 <|x|> / sqrt(Qp) from a batch of activations."""
        qp = max(code_range(self.bits)[1], 1)
        self.step.copy_(2 * x.abs().mean().clamp_min(1e-6) / math.sqrt(qp))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> Quantized:
        if not bool(self.initialized):
            self.calibrate(x)
        qn, qp = code_range(self.bits)
        step = _scale_grad(self.step.abs() + 1e-8, 1.0 / math.sqrt(x.numel() * max(qp, 1)))
        v = x / step
        if self.bits == 1:
            clipped = v.clamp(-1.0, 1.0)
            sign = torch.where(v >= 0, 1.0, -1.0)
            code = (sign - clipped).detach() + clipped
            value = code * step
            return Quantized(sign=value, rest=torch.zeros_like(value), step=step)
        clipped = v.clamp(float(qn), float(qp))
        code = _round_ste(clipped)
        # The sign bit takes half of the straight-through gradient: its weight 2^{b-1}
        # spans half of the code range 2^b.
        negative = (code.detach() < 0).to(x.dtype)
        sign_bit = negative - (clipped - clipped.detach()) / 2**self.bits
        sign = step * (qn * sign_bit)
        rest = step * code - sign
        return Quantized(sign=sign, rest=rest, step=step)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"
