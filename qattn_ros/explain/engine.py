"""Evaluate one model x saliency method over a frame set, streaming per-frame results to disk.

Each finished group of frames is appended to `<out>/<model>/<method>.jsonl` (one JSON
object per frame) and flushed, so an interrupted run keeps what it finished; a rerun
skips the frames already there. Every per-frame quantity is seeded by the frame index,
so a resumed evaluation equals an uninterrupted one. Per frame: the deletion curve onto
the chosen substrate, ROAD's most- and least-relevant-first curves (noisy linear
imputation), the insertion curve, the mask scores, and for a model with attention how far
uniform attention moves the steering. The sanity check (cascading randomization) runs on
the first `sanity_frames` frames and goes to `<method>.sanity.json`.

Both files are keyed by what they were computed from (`results_key`: the checkpoint's SHA-256,
the frames' SHA-256, the method and the settings), the results file in its first line: a
retrained checkpoint under the same name, other frames or other settings are computed again,
never resumed from another model's numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core.atomic import append_lines, drop_torn_tail, read_json, refuse, write_json, write_text
from ..inference.predictor import Frames, SteeringPredictor, exact_float32
from .intervention import uniform_shift
from .perturbation import auc, curves
from .saliency import saliency
from .sanity import cascading_randomization


@dataclass
class EvalSettings:
    steps: int = 50
    substrate: str = "mean"  # deletion substrate: mean | blur
    batch_size: int | None = None  # images per forward pass (bounds memory); None: 64 on CPU, 1024 on GPU
    frames_per_group: int = 64  # frames whose saliency is computed together
    seed: int = 0
    insertion: bool = True
    # off unless asked for (evaluation/evaluate.py and benchmarks/headline.py ask), so online replay stays lean
    road_steps: int = 0  # ROAD removal fractions k / road_steps, MoRF and LeRF (10 in the reports); 0: none
    uniform: bool = False  # the uniform-attention intervention, for models with attention
    sanity_frames: int = 0  # frames of the cascading-randomization check (16 in the reports); 0: none


def relevance_scores(maps: torch.Tensor, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: saliency mass on the mask, that mass / mask area, and whether the peak is on it.

    The peak counts as on the mask within one pixel (3x3 neighbourhood).
    """
    on = torch.from_numpy(masks > 0).to(maps.device)
    flat = maps.flatten(1)
    mass = (flat * on.flatten(1)).sum(1) / flat.sum(1).clamp_min(1e-12)
    area = on.flatten(1).float().mean(1)
    near = torch.nn.functional.max_pool2d(on.float().unsqueeze(1), 3, stride=1, padding=1).squeeze(1).flatten(1) > 0
    peak = near.gather(1, flat.argmax(1, keepdim=True)).squeeze(1)
    ratio = torch.where(area > 0, mass / area.clamp_min(1e-12), torch.full_like(mass, float("nan")))
    return mass.cpu().numpy(), ratio.cpu().numpy(), peak.cpu().numpy()


def done_frames(path: Path) -> set[int]:
    """Frame indices already in a results file (a torn last line from a crash is ignored)."""
    return {row["frame"] for row in read_results(path)}


def sidecar_sha256(info) -> str:
    """SHA-256 of what the checkpoint's sidecar says that shapes its outputs (model, preprocessing, unit, sign,
    vehicle, camera): the same weights with another preprocessing are another model."""
    shaping = {name: getattr(info, name) for name in ("model", "preprocessing", "steering_unit", "positive_is_left",
                                                      "vehicle", "camera")}  # fmt: skip
    text = json.dumps(shaping, sort_keys=True, default=lambda v: asdict(v) if is_dataclass(v) else str(v))
    return hashlib.sha256(text.encode()).hexdigest()


def results_key(
    predictor: SteeringPredictor, method: str, frames: Frames | None, settings: dict, source: dict | None = None
) -> dict:
    """What a result is computed from: the checkpoint's weights and sidecar, the frames' SHA-256, the method,
    `settings`. Frames that arrive one at a time (a replay, `frames` None) are named by their index in the
    recording `source` (the player's spec and fingerprint)."""
    key = {"checkpoint_sha256": predictor.info.sha256, "sidecar_sha256": sidecar_sha256(predictor.info)}
    if frames is None:
        key["source"] = source
    if frames is not None:
        digest = hashlib.sha256()
        for array in (frames.images, frames.targets, frames.masks):
            if array is not None:
                digest.update(np.ascontiguousarray(array).data)
        key["frames_sha256"] = digest.hexdigest()
    return key | {"method": method, "settings": settings}


def curve_settings(settings: EvalSettings) -> dict:
    """The settings the per-frame rows depend on (not how the work is batched, not the sanity check)."""
    return {k: v for k, v in asdict(settings).items() if k not in ("batch_size", "frames_per_group", "sanity_frames")}


def start_results(path: Path, key: dict) -> None:
    """Continue `path` if its first line records `key`; otherwise (another checkpoint, frames or settings, or
    no key) set what it holds aside, by name, and start it afresh."""
    drop_torn_tail(path)
    header = json.dumps({"key": key})
    if path.is_file() and path.stat().st_size:
        with path.open() as handle:
            first = handle.readline().rstrip("\n")
        if first == header:
            return
        try:
            old = json.loads(first).get("key") or {}
        except (json.JSONDecodeError, AttributeError):
            old = {}
        differs = [name for name in key if old.get(name) != key[name]]
        refuse(path, f"results of another {', '.join(differs)} than this run's")
    write_text(path, header + "\n")


def read_results(path: Path) -> list[dict]:
    rows = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
            rows[int(row["frame"])] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return [rows[k] for k in sorted(rows)]


def evaluate_group(
    predictor: SteeringPredictor,
    x: torch.Tensor,
    maps: torch.Tensor,
    ids: np.ndarray,
    targets: np.ndarray,
    masks: np.ndarray | None,
    settings: EvalSettings,
) -> list[dict]:
    """Per-frame results for normalized frames `x` explained by `maps` (B, H, W); ids seed the tie-breaks.

    Offline evaluation passes the maps a saliency method computes; the replay evaluator the maps
    the steering node published. Call inside `exact_float32()`.
    """
    predict = predictor.steering
    prediction = predict(x).cpu().numpy()
    deletion = curves(predict, x, maps, ids, "deletion", settings.steps, settings.substrate,
                      settings.batch_size, settings.seed).cpu().numpy()  # fmt: skip
    insertion = (
        curves(predict, x, maps, ids, "insertion", settings.steps, "blur", settings.batch_size,
               settings.seed).cpu().numpy()
        if settings.insertion else None
    )  # fmt: skip
    road = {
        order: curves(predict, x, maps, ids, "deletion", settings.road_steps, "road", settings.batch_size,
                      settings.seed, order).cpu().numpy()
        for order in (("most", "least") if settings.road_steps else ())
    }  # fmt: skip
    model = predictor.model
    shift = uniform_shift(model, x).cpu().numpy() if settings.uniform and model.attention is not None else None
    scores = relevance_scores(maps, np.asarray(masks)) if masks is not None else None
    rows = []
    for row, frame in enumerate(ids):
        record = {
            "frame": int(frame),
            "prediction": float(prediction[row]),
            "target": float(targets[row]),
            "deletion": deletion[row].round(7).tolist(),
            "deletion_auc": float(auc(deletion[row])),
        }
        if insertion is not None:
            record["insertion"] = insertion[row].round(7).tolist()
            record["insertion_auc"] = float(auc(insertion[row]))
        for order, name in (("most", "road_morf"), ("least", "road_lerf")):
            if order in road:
                record[name] = road[order][row].round(7).tolist()
                record[f"{name}_auc"] = float(auc(road[order][row]))
        if shift is not None:
            record["uniform_shift"] = float(shift[row])
        if scores is not None:
            record["mask_mass"], record["mask_mass_ratio"] = float(scores[0][row]), float(scores[1][row])
            record["pointing_hit"] = bool(scores[2][row])
        rows.append(record)
    return rows


def append_rows(handle, rows: list[dict]) -> None:
    """One JSON object per line, on the disk: what is written survives a crash after it."""
    append_lines(handle, [json.dumps(row) for row in rows])


def evaluate_method(
    predictor: SteeringPredictor,
    method: str,
    frames: Frames,
    out_file: Path,
    settings: EvalSettings,
    progress: bool = True,
    max_groups: int | None = None,
) -> Path:
    """Append the results of the frames not yet in `out_file`, in exact float32 on the predictor's device."""
    start_results(out_file, results_key(predictor, method, frames, curve_settings(settings)))
    todo = np.array(sorted(set(range(len(frames))) - done_frames(out_file)), dtype=np.int64)
    model = predictor.model.eval().to(memory_format=torch.channels_last)  # faster convolutions for the batches
    groups = [todo[i : i + settings.frames_per_group] for i in range(0, len(todo), settings.frames_per_group)]
    if max_groups is not None:
        groups = groups[:max_groups]
    bar = tqdm(groups, desc=f"{out_file.parent.name}/{method}", unit="group", disable=not progress)
    with out_file.open("a") as handle, exact_float32():
        for ids in bar:
            x = predictor.normalize(frames.images[ids])
            maps = saliency(method, model, x, ids, settings.seed)
            masks = frames.masks[ids] if frames.masks is not None else None
            append_rows(handle, evaluate_group(predictor, x, maps, ids, frames.targets[ids], masks, settings))
    return out_file


def sanity_method(
    predictor: SteeringPredictor, method: str, frames: Frames, out_file: Path, settings: EvalSettings
) -> Path | None:
    """Cascading randomization on the first `settings.sanity_frames` frames -> {stage: [rho per frame]} and
    {stage: frames whose randomized map came out uniform} (rho 0 for those).

    Kept if `out_file` holds the result for the same checkpoint, frames and seed (rerun to resume); skipped
    for the random order.
    """
    count = min(settings.sanity_frames, len(frames))
    if method == "random" or count == 0:
        return None
    key = results_key(predictor, method, frames, {"seed": settings.seed, "frames": count})
    kept = read_json(out_file)
    if isinstance(kept, dict) and kept.get("key") == key:
        return out_file
    if kept is not None:
        refuse(out_file, "a sanity check of another checkpoint, frames, frame count or seed")
    ids = np.arange(count)
    with exact_float32():
        x = predictor.normalize(frames.images[ids])
        result = cascading_randomization(predictor.model, method, x, ids, settings.seed)
    stages = {name: values.round(5).tolist() for name, values in result.rho.items()}
    uniform = {name: int(flags.sum()) for name, flags in result.uniform.items()}  # frames whose map went flat
    write_json(out_file, {"key": key, "frames": count, "stages": stages, "uniform_maps": uniform}, indent=None)
    return out_file
