"""Model-randomization sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

Cascading randomization: re-initialize the network's learned layers one at a time from the top
(the head's last linear layer first, then the rest of the head, the recurrent cell, the
attention, the quantizer's step, the encoder's convolutions from the deepest; each convolution
with its BatchNorm), recomputing the saliency map after each: at the last stage no learned
parameter is left as trained. A map that stays rank-correlated with the trained model's map once the weights
are random explains the image, not the model. Reported: the Spearman rank correlation between
the trained and the randomized maps per frame, at every stage of the cascade, and which
randomized maps came out uniform (one value everywhere: no ranking, so rho is taken as 0 —
the map lost all structure, which passes the check for a reason worth knowing).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from ..model.network import SteeringNet
from .saliency import saliency


def cascade(model: SteeringNet) -> list[tuple[str, list[nn.Module]]]:
    """The learned layers from the output down, as (name, modules re-initialized together)."""
    stages: list[tuple[str, list[nn.Module]]] = []
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    stages += [(f"head.{i}", [m]) for i, m in reversed(list(enumerate(linears)))]
    if model.config.recurrent:
        stages.append(("recurrent", [model.cell, model.state_input]))
    if model.attention is not None:
        stages.append(("attention", [model.attention]))
    if model.quantizer is not None:
        stages.append(("quantizer", [model.quantizer]))
    layers = list(model.encoder.layers)
    convs = [(i, m) for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    for number, (index, conv) in reversed(list(enumerate(convs))):
        stages.append((f"conv{number + 1}", [conv, layers[index + 1]]))  # the convolution and its BatchNorm
    return stages


def reinitialize(modules: list[nn.Module], seed: int) -> None:
    """Fresh default initialization (BatchNorm: identity, statistics included; the quantizer: recalibrated on the
    next batch), seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in modules:
            for sub in module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()


def spearman(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per frame Spearman rank correlation of two (B, H, W) maps (ties get their average rank)."""
    ra = rankdata(a.flatten(1).double().cpu().numpy(), axis=1)
    rb = rankdata(b.flatten(1).double().cpu().numpy(), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / denominator, 0.0)


@dataclass
class Cascade:
    rho: dict[str, np.ndarray]  # {stage: (B,) Spearman rho, trained map vs randomized down to that stage}
    uniform: dict[str, np.ndarray]  # {stage: (B,) bool, the randomized map has one value everywhere}


def cascading_randomization(
    model: SteeringNet, method: str, x: torch.Tensor, frame_ids: np.ndarray, seed: int = 0
) -> Cascade:
    """Randomize from the output down, comparing each stage's maps with the trained ones.

    The model itself is left as it was (the cascade runs on a copy).
    """
    trained = saliency(method, model, x, frame_ids, seed)
    randomized = copy.deepcopy(model).eval()
    result = Cascade({}, {})
    for number, (name, modules) in enumerate(cascade(randomized)):
        reinitialize(modules, seed * 1000 + number)
        maps = saliency(method, randomized, x, frame_ids, seed)
        result.rho[name] = spearman(trained, maps)
        flat = maps.flatten(1)
        result.uniform[name] = (flat.amax(1) == flat.amin(1)).cpu().numpy()
    return result
