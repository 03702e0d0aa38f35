"""Deletion and insertion curves for a regression output (Petsiuk et al., RISE, BMVC 2018).

Pixels are ranked by saliency resolved to 2^-20 (~1e-6) of the frame's saliency range, so
that values equal but for float rounding (a few float32 ulps, ~6e-8 of the peak, as a GPU's
batch-size-dependent kernels leave them) are ties; ties are broken by a random order seeded
per frame, never by pixel index. Step k of K perturbs the top fraction k/K:
  deletion:  those pixels take the substrate: the dataset mean (0 after normalization), a blur,
             or ROAD's noisy linear imputation from the pixels kept (road.py), which does not
             leak the removed region's shape; `order` "least" removes the least salient first
             (ROAD's LeRF; "most" is MoRF);
  insertion: start from the blurred image and put those pixels back.
The curve is d_k = |y(x_k) - y(x_0)| with x_0 the unperturbed image; AUC is the trapezoid
over the fraction in [0, 1]. Deletion: higher is better. Insertion: lower is better.

`curves` sends the K + 1 copies of many frames through the network in batches
(channels-last, which oneDNN convolves faster on CPU);
`curves_loop` is the plain per-frame, per-step reference it is tested against.
Both build every tensor on the input's device and return the curves there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .road import DEFAULT_NOISE, noisy_linear_fill

Predict = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) -> (N,)
RANK_LEVELS = 2**20  # saliency resolution for ranking, per frame
SUBSTRATES = ("mean", "blur", "road")
ORDERS = ("most", "least")


def auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid rule over [0, 1] on the last axis (RISE's auc())."""
    curve = np.asarray(curve, np.float64)
    return (curve.sum(axis=-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / (curve.shape[-1] - 1)


def blur(x: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding) of (N, C, H, W)."""
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def rank_levels(saliency: torch.Tensor) -> torch.Tensor:
    """(B, H*W) saliency snapped to RANK_LEVELS steps of each frame's range; equal levels are ties."""
    flat = saliency.flatten(1).double()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    return torch.round((flat - low) / (high - low).clamp_min(1e-300) * RANK_LEVELS)


def pixel_ranks(saliency: torch.Tensor, frame_ids: np.ndarray, seed: int) -> torch.Tensor:
    """(B, H*W) rank of each pixel (0 = most salient); ties in a seeded random order per frame."""
    flat = rank_levels(saliency)
    ranks = torch.empty_like(flat, dtype=torch.long)
    positions = torch.arange(flat.shape[1], device=flat.device)
    for row, frame in enumerate(frame_ids):
        shuffle = torch.from_numpy(np.random.default_rng([seed, int(frame), 11]).permutation(flat.shape[1])).to(
            flat.device
        )
        order = shuffle[torch.argsort(-flat[row, shuffle], stable=True)]
        ranks[row, order] = positions
    return ranks


def chosen_pixels(ranks: torch.Tensor, steps: torch.Tensor, total_steps: int, size: torch.Size) -> torch.Tensor:
    """(B, 1, H, W) True where the pixel is among the top steps/total_steps of its frame's ranking."""
    count = torch.round(steps.double() / total_steps * ranks.shape[1]).long()
    return (ranks < count.unsqueeze(1)).view(ranks.shape[0], 1, *size)


def perturbed(
    x: torch.Tensor, ranks: torch.Tensor, steps: torch.Tensor, total_steps: int, mode: str, substrate: torch.Tensor
) -> torch.Tensor:
    """x_k for each (frame, step) pair: x (B, C, H, W), ranks (B, H*W), steps (B,) -> (B, C, H, W)."""
    chosen = chosen_pixels(ranks, steps, total_steps, x.shape[-2:])
    if mode == "deletion":
        return torch.where(chosen, substrate, x)
    return torch.where(chosen, x, substrate)  # insertion: start from the substrate (blurred image)


def road_imputed(
    x: torch.Tensor, ranks: torch.Tensor, steps: torch.Tensor, total_steps: int, frame_ids: np.ndarray, seed: int
) -> torch.Tensor:
    """x_k with the chosen pixels imputed (ROAD); the noise is seeded by (seed, frame, step)."""
    chosen = chosen_pixels(ranks, steps, total_steps, x.shape[-2:])[:, 0].cpu().numpy()
    images = x.detach().cpu().double().numpy()
    filled = [
        noisy_linear_fill(image, removed, np.random.default_rng([seed, int(frame), 13, int(step)]), DEFAULT_NOISE)
        for image, removed, frame, step in zip(images, chosen, frame_ids, steps.tolist())
    ]
    return torch.from_numpy(np.stack(filled)).to(x.device, x.dtype)


def default_batch_size(device: torch.device | str) -> int:
    """Images per forward pass: large on a GPU; on CPU a cache-sized 64.

    On CPU, batches beyond ~64 only add page faults for their activations (2 cores, quant_sign:
    25.5 frames/s at 64, 17.6 at 256, 14.8 at 1024).
    """
    return 1024 if torch.device(device).type == "cuda" else 64


def substrate_for(x: torch.Tensor, mode: str, kind: str) -> torch.Tensor | None:
    """Deletion: dataset mean (0) or blur, None for ROAD (imputed per step); insertion starts from the blur."""
    if kind not in SUBSTRATES:
        raise ValueError(f"substrate: unknown {kind!r}; expected one of {', '.join(SUBSTRATES)}")
    if kind == "road" and mode != "deletion":
        raise ValueError("substrate road: ROAD removes pixels (deletion); insertion starts from the blur")
    if mode == "insertion" or kind == "blur":
        return blur(x)
    return torch.zeros_like(x) if kind == "mean" else None


def ordered_ranks(saliency: torch.Tensor, frame_ids: np.ndarray, seed: int, order: str) -> torch.Tensor:
    """`pixel_ranks`, reversed for order "least" (least salient pixel first)."""
    if order not in ORDERS:
        raise ValueError(f"order: unknown {order!r}; expected one of {', '.join(ORDERS)}")
    ranks = pixel_ranks(saliency, frame_ids, seed)
    return ranks if order == "most" else ranks.shape[1] - 1 - ranks


@torch.no_grad()
def curves(
    predict: Predict,
    x: torch.Tensor,
    saliency: torch.Tensor,
    frame_ids: np.ndarray,
    mode: str = "deletion",
    total_steps: int = 50,
    substrate: str = "mean",
    batch_size: int | None = None,
    seed: int = 0,
    order: str = "most",
) -> torch.Tensor:
    """(B, K + 1) curves d_k, on x's device, for frames x (B, C, H, W) in batches of at most `batch_size` images.

    `batch_size` None: `default_batch_size` for x's device.
    """
    batch_size = batch_size or default_batch_size(x.device)
    ranks = ordered_ranks(saliency, frame_ids, seed, order)
    base = substrate_for(x, mode, substrate)
    reference = predict(x)
    frames = torch.arange(x.shape[0], device=x.device).repeat_interleave(total_steps + 1)
    steps = torch.arange(total_steps + 1, device=x.device).repeat(x.shape[0])
    outputs = torch.empty(len(frames), device=x.device)
    for begin in range(0, len(frames), batch_size):
        f, k = frames[begin : begin + batch_size], steps[begin : begin + batch_size]
        if base is None:
            batch = road_imputed(x[f], ranks[f], k, total_steps, frame_ids[f.cpu().numpy()], seed)
        else:
            batch = perturbed(x[f], ranks[f], k, total_steps, mode, base[f])
        outputs[begin : begin + batch_size] = predict(batch.contiguous(memory_format=torch.channels_last))
    return (outputs.view(x.shape[0], total_steps + 1) - reference.unsqueeze(1)).abs().double()


@torch.no_grad()
def curves_loop(
    predict: Predict,
    x: torch.Tensor,
    saliency: torch.Tensor,
    frame_ids: np.ndarray,
    mode: str = "deletion",
    total_steps: int = 50,
    substrate: str = "mean",
    seed: int = 0,
    order: str = "most",
) -> torch.Tensor:
    """The same curves one frame and one step at a time (the reference)."""
    result = torch.zeros(x.shape[0], total_steps + 1, dtype=torch.float64, device=x.device)
    for row in range(x.shape[0]):
        image = x[row : row + 1]
        ranking = ordered_ranks(saliency[row : row + 1], frame_ids[row : row + 1], seed, order)[0].argsort()
        base = substrate_for(image, mode, substrate)
        reference = predict(image)[0]
        pixels = ranking.numel()
        for k in range(total_steps + 1):
            chosen = torch.zeros(pixels, dtype=torch.bool, device=x.device)
            chosen[ranking[: int(round(k / total_steps * pixels))]] = True
            chosen = chosen.view(1, 1, *image.shape[-2:])
            if base is None:
                rng = np.random.default_rng([seed, int(frame_ids[row]), 13, k])
                filled = noisy_linear_fill(
                    image[0].cpu().double().numpy(), chosen[0, 0].cpu().numpy(), rng, DEFAULT_NOISE
                )
                step = torch.from_numpy(filled).to(image.device, image.dtype).unsqueeze(0)
            elif mode == "deletion":
                step = torch.where(chosen, base, image)
            else:
                step = torch.where(chosen, image, base)
            result[row, k] = (predict(step)[0] - reference).abs()
    return result
