"""Failure warning: does a signal rise before the car needs an intervention, 0.5-2 s ahead?

Per frame while a checkpoint drives: signals from its attention (entropy; the share of attention
off the relevance mask — the lane markings and edges the label depends on; the frame-to-frame
change of the map) and signals that need no explanation (steering rate; the output's change under
small pixel noise; the spread of MC-dropout samples of the head). A frame is positive when an
intervention follows within `HORIZON`, calm when none follows within 2 s; AUROC (Mann-Whitney) of
the positive against the calm frames per signal, with a bootstrap over drives; lead time: per
intervention, how long before it the signal first crossed the threshold that 5 % of the calm frames
cross, median over interventions (0 when it never did).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import rankdata

from ..data.cache import mask_to_model
from ..inference.predictor import SteeringPredictor
from .track import Track
from .world import RoadSim, SimConfig

HORIZON = (0.5, 2.0)  # s before an intervention in which a frame counts as a warning
SIGNALS = ("attention_entropy", "attention_off_mask", "attention_change", "steering_rate", "perturbation",
           "mc_dropout")  # fmt: skip
ATTENTION_SIGNALS = SIGNALS[:3]
NOISE_SD = 8.0 / 255  # the perturbation: pixel noise in [0, 1] units before standardizing
MC_SAMPLES = 8


@dataclass
class SignalLog:
    """One drive: per frame its time and each signal; the times of the interventions."""

    times: list[float] = field(default_factory=list)
    signals: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in SIGNALS})
    interventions: list[float] = field(default_factory=list)


def _head_dropout(model: torch.nn.Module, on: bool) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.train(on)


def frame_signals(predictor: SteeringPredictor, image: np.ndarray, mask: np.ndarray, previous: dict) -> dict:
    """Every signal of one camera frame; `previous` keeps the last map and steering (updated here)."""
    pixels = predictor.to_model_uint8(image)[None]
    x = predictor.normalize(pixels)
    out = predictor.forward(x)
    steering = float(out.steering[0])
    step = previous.get("step", 0)
    generator = torch.Generator().manual_seed(step)
    noise = torch.randn(x.shape, generator=generator).to(x.device) * (NOISE_SD / torch.tensor(
        predictor.preprocessing.std, device=x.device).view(1, 3, 1, 1))  # fmt: skip
    perturbed = float(predictor.forward(x + noise).steering[0])
    _head_dropout(predictor.model, True)
    try:
        samples = predictor.forward(x.expand(MC_SAMPLES, -1, -1, -1)).steering.cpu().numpy()
    finally:
        _head_dropout(predictor.model, False)
    values = {"steering_rate": abs(steering - previous.get("steering", steering)),
              "perturbation": abs(perturbed - steering), "mc_dropout": float(np.std(samples))}  # fmt: skip
    if out.attention is not None:
        alpha = out.attention[0].cpu().numpy().astype(np.float64)
        alpha = alpha / alpha.sum()
        relevant = mask_to_model(mask, predictor.preprocessing).astype(np.float64) / 255.0
        h, w = alpha.shape
        on_mask = relevant.reshape(h, relevant.shape[0] // h, w, relevant.shape[1] // w).mean(axis=(1, 3))
        values["attention_entropy"] = float(-(alpha * np.log(alpha + 1e-12)).sum())
        values["attention_off_mask"] = float(1.0 - (alpha * (on_mask > 0)).sum())
        last = previous.get("alpha", alpha)
        values["attention_change"] = float(np.abs(alpha - last).sum())
        previous["alpha"] = alpha
    previous["steering"], previous["step"] = steering, step + 1
    return values


def drive_with_signals(predictor: SteeringPredictor, track: Track, config: SimConfig, speed: float) -> SignalLog:
    """The checkpoint drives `track`; every frame's signals are logged (the command is the plain prediction)."""
    sim, log, previous = RoadSim(track, config), SignalLog(), {}
    predictor.reset()
    while not sim.done:
        frame = sim.frame()
        values = frame_signals(predictor, frame.image, frame.mask, previous)
        log.times.append(sim.time)
        for name in SIGNALS:
            log.signals[name].append(values.get(name, float("nan")))
        before = len(sim.log.interventions)
        sim.step(speed, predictor.to_wheel_angle(previous["steering"]))
        if len(sim.log.interventions) > before:
            log.interventions.append(sim.log.interventions[-1][0])
            previous.pop("alpha", None)  # the car was put back: a new view, not a change of the map
            previous.pop("steering", None)
    return log


def warning_labels(times: np.ndarray, interventions: list[float], horizon: tuple[float, float] = HORIZON
                   ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(positive: an intervention follows within `horizon`, calm: none within its far end)."""
    ahead = np.array(interventions)[None, :] - times[:, None] if interventions else np.zeros((len(times), 0))
    positive = ((ahead > horizon[0]) & (ahead <= horizon[1])).any(axis=1)
    calm = ~((ahead > 0) & (ahead <= horizon[1])).any(axis=1)
    return positive, calm


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties halved); NaN without both classes."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def lead_times(log: SignalLog, name: str, threshold: float, horizon: float = HORIZON[1]) -> list[float]:
    """Per intervention: seconds between the first crossing of `threshold` in the `horizon` before it and it."""
    times, values = np.asarray(log.times), np.asarray(log.signals[name])
    leads = []
    for at in log.interventions:
        window = (times >= at - horizon) & (times < at) & (values >= threshold)
        leads.append(float(at - times[window].min()) if window.any() else 0.0)
    return leads


def evaluate_signals(logs: list[SignalLog], draws: int = 1000, seed: int = 0) -> dict:
    """Per signal: AUROC over all frames of `logs`, its bootstrap interval over drives, the median lead time."""
    rng = np.random.default_rng(seed)
    labelled = [(log, *warning_labels(np.asarray(log.times), log.interventions)) for log in logs]
    result = {"frames": int(sum(len(log.times) for log in logs)),
              "positives": int(sum(p.sum() for _, p, _ in labelled)),
              "interventions": int(sum(len(log.interventions) for log in logs)), "signals": {}}  # fmt: skip
    for name in SIGNALS:
        values = [np.asarray(log.signals[name]) for log in logs]
        if all(np.isnan(v).all() for v in values):
            continue
        # scored: the warning frames against the calm ones (the last 0.5 s before an intervention is too late)
        scored = [p | c for _, p, c in labelled]
        pooled = np.concatenate([v[k] for v, k in zip(values, scored, strict=True)])
        positive = np.concatenate([p[k] for (_, p, _), k in zip(labelled, scored, strict=True)])
        boot = []
        for _ in range(draws):
            picks = rng.integers(0, len(logs), len(logs))
            boot.append(auroc(np.concatenate([values[i][scored[i]] for i in picks]),
                              np.concatenate([labelled[i][1][scored[i]] for i in picks])))  # fmt: skip
        calm = np.concatenate([v[c] for v, (_, _, c) in zip(values, labelled, strict=True)])
        threshold = float(np.percentile(calm, 95)) if calm.size else float("inf")
        leads = [lead for log in logs for lead in lead_times(log, name, threshold)]
        result["signals"][name] = {"auroc": auroc(pooled, positive), "auroc_ci": [
            float(np.nanpercentile(boot, 2.5)), float(np.nanpercentile(boot, 97.5))] if np.isfinite(boot).any()
            else [float("nan")] * 2, "median_lead_s": float(np.median(leads)) if leads else float("nan"),
            "threshold": threshold, "attention": name in ATTENTION_SIGNALS}  # fmt: skip
    return result
