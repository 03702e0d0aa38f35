"""The replay evaluator's work on paired frames, without ROS: select, evaluate, save, count, report.

A pair is a camera frame with the steering and attention map the node published for it and
the ground truth (`qattn_ros.rules.pairing`). Frames are evaluated through the same engine as
`evaluation/evaluate.py`, with the *published* map as the saliency, in pieces of about
PIECE_IMAGES perturbed images, each appended to `<folder>/<method>.jsonl` as it ends. A stop
ends the piece under way at its next forward pass (it is not saved: a rerun evaluates it, and
skips every frame already there). Each file's first line is its key (the checkpoint's SHA-256, the
method, the settings): results of a retrained checkpoint or other settings under the same name are
computed again, with a warning that names the file, never resumed.

A recurrent checkpoint is evaluated as the node ran it: the evaluator carries the state through
every frame in order (those not selected and those already done too), resetting it where the
node does (a new stamp sequence, a non-finite prediction), and scores each frame, perturbed
copies included, with the state the node had before that frame held fixed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..core.atomic import write_json, write_text
from ..core.units import VehicleGeometry, from_wheel_angle, to_wheel_angle
from ..explain.engine import (
    EvalSettings,
    append_rows,
    curve_settings,
    done_frames,
    evaluate_group,
    results_key,
    start_results,
)
from ..explain.report import plot_overlays, write_report
from ..explain.saliency import saliency, upsample_attention
from ..inference.predictor import SteeringPredictor, exact_float32
from ..model.checkpoint import CheckpointInfo
from ..model.network import RecurrentState
from .command_gate import StampSequence
from .pairing import Pending
from .steering_params import PARAMS

PIECE_IMAGES = 256  # perturbed images per piece of work saved together (~1 s on 2 cores)


@dataclass(frozen=True)
class Recorded:
    """How the player made the ground-truth wheel angle from the recorded steering (it says so in its status)."""

    steering_unit: str
    positive_is_left: bool
    vehicle: VehicleGeometry

    @classmethod
    def from_status(cls, status: dict) -> Recorded | None:
        if not {"steering_unit", "positive_is_left", "vehicle"} <= status.keys():
            return None  # not our player (ros2 bag play): the truth is taken in the checkpoint's geometry
        return cls(status["steering_unit"], bool(status["positive_is_left"]), VehicleGeometry(**status["vehicle"]))


def target(truth: float, recorded: Recorded | None, info: CheckpointInfo) -> float:
    """The ground truth in the checkpoint's unit, exactly as offline evaluation labels the same frame: back to the
    recorded value with the player's geometry, then (only where the units differ) into the checkpoint's unit
    with the checkpoint's geometry."""
    unit, left, vehicle = info.steering_unit, info.positive_is_left, info.vehicle
    if recorded is None:
        return from_wheel_angle(truth, unit, left, vehicle)
    value = from_wheel_angle(truth, recorded.steering_unit, recorded.positive_is_left, recorded.vehicle)
    if (recorded.steering_unit, recorded.positive_is_left) == (unit, left):
        return value
    return from_wheel_angle(to_wheel_angle(value, recorded.steering_unit, recorded.positive_is_left, vehicle),
                            unit, left, vehicle)  # fmt: skip


class Stopped(Exception):
    """The evaluation was asked to stop in the middle of a piece."""


class StopAt:
    """The predictor as evaluate_group uses it, raising Stopped before a forward pass once `stopped()`; every image
    goes through with the recurrent `state` of one frame (None: fresh, or not recurrent)."""

    def __init__(self, predictor: SteeringPredictor, stopped: Callable[[], bool],
                 state: RecurrentState | None = None) -> None:  # fmt: skip
        self.predictor, self.stopped, self.state = predictor, stopped, state

    @property
    def model(self) -> torch.nn.Module:
        """The network itself, for the single forwards evaluate_group makes beside the curves."""
        return self.predictor.model

    def steering(self, x: torch.Tensor) -> torch.Tensor:
        if self.stopped():
            raise Stopped
        state = None if self.state is None else tuple(part.expand(len(x), -1) for part in self.state)
        return self.predictor.forward(x, state).steering


class Chosen(NamedTuple):
    """A frame to evaluate: its source index, pair, model-size image and the node's recurrent state before it."""

    index: int
    entry: Pending
    image: np.ndarray
    state: RecurrentState | None


@dataclass
class Counts:
    received: int = 0
    matched: int = 0
    evaluated: int = 0
    resumed: int = 0  # already in the results from an earlier run
    not_selected: int = 0  # `every`
    unmatched: int = 0
    ambiguous: int = 0  # joined by order among frames of one stamp while one of them lacked the part: refused
    missing: dict = field(default_factory=dict)  # part -> frames that lacked it
    bad: int = 0
    steering_mismatch: int = 0  # published steering not finite, or off the own prediction by > tolerance
    max_steering_diff: float = 0.0
    skipped_busy: int = 0  # real time: the evaluation queue was full


class OnlineEvaluation:
    """Evaluates pairs into `folder`; `lock` guards the counts and the results files (callers on two threads)."""

    def __init__(self, checkpoint: str, predictor: SteeringPredictor, settings: EvalSettings, folder: Path,
                 methods: list[str], every: int = 1, tolerance: float = 1e-5,
                 max_frame_gap: float = PARAMS["max_frame_gap"].default) -> None:  # fmt: skip
        """`max_frame_gap`: the node's, where it resets a recurrent model (its default unless told)."""
        self.checkpoint, self.predictor, self.settings, self.folder = checkpoint, predictor, settings, folder
        self.methods = methods
        self.every, self.tolerance = every, tolerance
        self.files = {m: folder / f"{m}.jsonl" for m in methods}
        self.done: dict[str, set[int]] = {}  # frames already in each results file, once `start` has keyed them
        self.counts = Counts()
        self.lock = threading.Condition()
        self.sealed = False  # the report is being written: nothing more is saved
        self.last_evaluated: dict = {}
        self.showcase: list[tuple[float, int, np.ndarray, np.ndarray, float, float]] = []
        self.recurrent = predictor.info.model.recurrent
        self.sequence = StampSequence(max_frame_gap)  # the node's reset rule, replayed on the same stamps
        self.state: RecurrentState | None = None  # the node's state after the last frame seen

    def start(self, source: dict | None) -> None:
        """Key the results files by the checkpoint, the settings and the recording replayed (the player's source and
        its fingerprint; None when no player says it), once: a file of another recording is set aside by name."""
        if self.done:
            return
        for method, path in self.files.items():
            start_results(path, results_key(self.predictor, method, None, curve_settings(self.settings), source))
        self.done = {m: done_frames(path) for m, path in self.files.items()}

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self.counts, name, getattr(self.counts, name) + n)

    def chosen(self, entries: list[Pending], decode: Callable[[object], np.ndarray], warn: Callable[[str], None]
               ) -> list[Chosen]:  # fmt: skip
        """The frames to evaluate: selected, not done, decodable. The index is the player's (`index` part) or,
        without it, the frame's arrival order. A recurrent model steps through every decodable frame, in order."""
        self.start(None)  # no player named the recording: keyed without it
        chosen = []
        for entry in entries:
            msg, arrival = entry.parts["image"]
            index = entry.parts.get("index", arrival)
            skip = "not_selected" if index % self.every else ""
            if not skip and all(index in done for done in self.done.values()):
                skip = "resumed"
            if skip and not self.recurrent:
                self.count(skip)
                continue
            try:
                rgb = decode(msg)
            except ValueError as error:  # the node could not read it either: no step of its state
                self.count("bad")
                warn(f"frame {index}: {error}")
                continue
            image = self.predictor.to_model_uint8(rgb)
            state = self._step(entry.stamp, image) if self.recurrent else None
            if skip:
                self.count(skip)
            else:
                chosen.append(Chosen(index, entry, image, state))
        return chosen

    def _step(self, stamp: int, image: np.ndarray) -> RecurrentState | None:
        """The node's state before this frame, moving it past the frame by the node's rules: reset on a new stamp
        sequence and after a non-finite prediction."""
        if self.sequence.starts_anew(stamp):
            self.state = None
        before = self.state
        out = self.predictor.forward(self.predictor.normalize(image[None]), before)
        value = float(out.steering[0])
        finite = math.isfinite(value) and math.isfinite(self.predictor.to_wheel_angle(value))
        self.state = out.state if finite else None
        return before

    def evaluate(self, chosen: list[Chosen], recorded: Recorded | None,
                 stopped: Callable[[], bool]) -> None:  # fmt: skip
        """In pieces, each saved as it ends, until `stopped()` (checked before each forward pass). `recorded`: how
        the player converted the ground truth (None: not our player)."""
        size = max(1, PIECE_IMAGES // (self.settings.steps + 1))
        try:
            for start in range(0, len(chosen), size):
                self._piece(chosen[start : start + size], recorded, stopped)
        except Stopped:
            return

    def _piece(self, chosen: list[Chosen], recorded: Recorded | None, stopped: Callable[[], bool]) -> None:
        predictor = self.predictor
        ids = np.asarray([c.index for c in chosen], np.int64)
        images = [c.image for c in chosen]
        truth = np.asarray([target(c.entry.parts["truth"], recorded, predictor.info) for c in chosen])
        published = [c.entry.parts["steering"] for c in chosen]
        with exact_float32():
            x = predictor.normalize(np.stack(images))
            maps = {}
            if "attention" in self.methods:
                alpha = torch.from_numpy(np.stack([c.entry.parts["map"] for c in chosen])).to(x.device)
                maps["attention"] = upsample_attention(alpha, tuple(x.shape[-2:]))
            if "random" in self.methods:
                maps["random"] = saliency("random", predictor.model, x, ids, self.settings.seed)
            # a recurrent model's frames one by one, each with its own state; the others all together
            parts = [slice(k, k + 1) for k in range(len(chosen))] if self.recurrent else [slice(0, len(chosen))]
            rows: dict[str, list[dict]] = {m: [] for m in maps}
            for part in parts:
                work = StopAt(predictor, stopped, chosen[part.start].state)
                for method, heat in maps.items():
                    rows[method] += evaluate_group(work, x[part], heat[part], ids[part], truth[part], None,
                                                   self.settings)  # fmt: skip
        with self.lock:
            if self.sealed:
                return  # the report is written without this piece: a rerun evaluates it
            self._save(rows, published, chosen[-1].entry.stamp)
        self._keep_showcase(rows, images, maps)

    def steering_difference(self, prediction: float, published: float) -> float:
        """|published - own prediction| as a wheel angle; inf when either is not finite (max(0.0, nan) is 0.0:
        a NaN would pass unseen)."""
        difference = abs(self.predictor.to_wheel_angle(prediction) - published)
        return difference if math.isfinite(difference) else math.inf

    def _save(self, rows: dict[str, list[dict]], published: list[float], stamp: int) -> None:
        """Append a piece's rows and count it; caller holds the lock."""
        for row, value in zip(rows[self.methods[0]], published, strict=True):
            difference = self.steering_difference(row["prediction"], value)
            self.counts.max_steering_diff = max(self.counts.max_steering_diff, difference)
            self.counts.steering_mismatch += int(difference > self.tolerance)
        for method, method_rows in rows.items():
            for row, value in zip(method_rows, published, strict=True):
                row["published_wheel_angle"] = value
            fresh = [r for r in method_rows if r["frame"] not in self.done[method]]
            with self.files[method].open("a") as handle:
                append_rows(handle, fresh)
            self.done[method].update(r["frame"] for r in fresh)
        self.counts.evaluated += len(rows[self.methods[0]])
        self.last_evaluated = {"frame": rows[self.methods[0]][-1]["frame"], "stamp": list(divmod(stamp, 10**9))}

    def _keep_showcase(self, rows: dict, images: list[np.ndarray], maps: dict) -> None:
        """The 4 frames where the published attention and the random order differ most, for overlays.png."""
        if "attention" not in rows or "random" not in rows:
            return
        for k, (att, rnd) in enumerate(zip(rows["attention"], rows["random"], strict=True)):
            a, r = att["deletion_auc"], rnd["deletion_auc"]
            spread = abs(a - r) / max(a + r, 1e-12)
            self.showcase.append((spread, att["frame"], images[k], maps["attention"][k].cpu().numpy(),
                                  att["deletion_auc"], rnd["deletion_auc"]))  # fmt: skip
        self.showcase = sorted(self.showcase, key=lambda s: -s[0])[:4]

    def write_report(self, out: Path, complete: bool, stopped: str, summary: dict) -> dict:
        """evaluation/evaluate.py's report of what is saved, overlays.png, replay.json (`summary` + the counts),
        and the replay's lines in table.md."""
        with self.lock:
            self.sealed = True
        info = self.predictor.info
        write_json(self.folder / "model.json",
                   {"checkpoint": self.checkpoint, "variant": info.model.variant,
                    "bits": info.model.bits, "steering_unit": info.steering_unit, "frames": self.counts.received,
                    "saliency": "the attention/map published by qattn_steering"})  # fmt: skip
        results = write_report(out)
        if self.showcase:
            rows = [(f"frame {frame}", self.predictor.preprocessing.to_rgb(image),
                     [(f"published attention\ndel AUC {att:.4f} (random {rnd:.4f})", heat)])
                    for _, frame, image, heat, att, rnd in sorted(self.showcase, key=lambda s: s[1])]  # fmt: skip
            plot_overlays(rows, out / "overlays.png")
        counts = self.counts
        summary = {"complete": complete, "stopped": stopped, "last_evaluated": self.last_evaluated, **summary,
                   "counts": counts.__dict__}  # fmt: skip
        write_json(out / "replay.json", summary)
        lines = [f"\n## Replay ({'complete' if complete else 'incomplete: ' + stopped})\n",
                 f"- frames received {counts.received}, matched {counts.matched}, evaluated {counts.evaluated} "
                 f"(+{counts.resumed} from earlier runs), unmatched {counts.unmatched} {counts.missing or ''}"
                 f", refused as ambiguous {counts.ambiguous} (frames of one stamp, a part lost)",
                 f"- published steering vs own prediction: max |diff| {counts.max_steering_diff:.2e} rad, "
                 f"{counts.steering_mismatch} over {self.tolerance:g} or not finite"]  # fmt: skip
        if self.last_evaluated:
            sec, nanosec = self.last_evaluated["stamp"]
            lines.append(f"- last evaluated frame {self.last_evaluated['frame']} (stamp {sec}.{nanosec:09d})")
        table = out / "table.md"
        write_text(table, (table.read_text() if table.is_file() else "") + "\n".join(lines) + "\n")
        return results
