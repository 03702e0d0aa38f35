"""On-policy frames: the model drives training worlds (beta-mixed with the expert), the expert labels every frame.

Behaviour cloning sees only the states the expert visits; a learned driver drifts into states it
never saw and its errors compound. DAgger (Ross et al. 2011) drives with the current policy —
here, at each step, the expert's command with probability beta, the model's otherwise — and
labels every visited frame with what the expert (pure pursuit on the road the camera shows,
`RoadSim.pursuit_steering`) would command there. Recovery views add, every `every` frames, the
view from a state shifted sideways and turned (PilotNet's shifted cameras, ChauffeurNet's
perturbations; exact here: the scene is rendered from the shifted state), labelled with the
expert's correction at that state. The car itself is not moved.

A round's frames are written as a simulator log (driving_log.csv + IMG/, steering in simulator
units, positive right), so the trainer reads them like any other source, with `visits.npz` (the
state, the expert's and the driven command of each frame) and `worlds.json` beside it.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.streams import stream
from ..core.units import from_wheel_angle
from ..data.images import write_rgb
from ..data.simlog import COLUMNS, MPH_TO_MS
from ..inference.predictor import SteeringPredictor
from ..sim.training_world import World
from ..sim.world import RoadSim

LABEL_UNIT = ("sim_normalized", False)  # what the written log holds: simulator units, positive right


@dataclass(frozen=True)
class RecoveryConfig:
    every: int = 4  # a recovery view every `every` visited frames; 0: none
    lateral: float = 0.7  # m, shifts drawn from [-lateral, lateral] (the sim intervenes at 1 m)
    yaw: float = 0.08  # rad, turns drawn from [-yaw, yaw]


@dataclass
class Visits:
    """Frames and, per frame, where it was seen from and what the expert and the driver commanded."""

    images: list[np.ndarray] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)  # see COLUMNS_NPZ

    COLUMNS_NPZ = ("world", "step", "s", "n", "theta", "speed", "expert", "driven", "policy", "from_policy",
                   "recovery")  # fmt: skip

    def add(self, image: np.ndarray, world: int, sim: RoadSim, expert: float, driven: float, policy: float,
            from_policy: bool, recovery: bool, at: tuple[float, float] | None = None) -> None:  # fmt: skip
        """`at`: (n, theta) the frame was seen from, when not the car's own (a recovery view)."""
        n, theta = at or (sim.n, sim.theta)
        self.images.append(image)
        self.rows.append((world, sim.steps, sim.s, n, theta, sim.speed, expert, driven, policy,
                          float(from_policy), float(recovery)))  # fmt: skip

    def __len__(self) -> int:
        return len(self.images)

    def table(self) -> dict[str, np.ndarray]:
        values = np.asarray(self.rows, np.float64).reshape(-1, len(self.COLUMNS_NPZ))
        return {name: values[:, i] for i, name in enumerate(self.COLUMNS_NPZ)}


def _recovery_view(sim: RoadSim, rng: np.random.Generator, config: RecoveryConfig) -> tuple[np.ndarray, float, tuple]:
    """The frame and the expert's command from a state shifted by (dn, dtheta); the car is put back."""
    kept = sim.n, sim.theta
    limit = sim.config.intervention_offset * 0.95
    sim.n = float(np.clip(sim.n + rng.uniform(-config.lateral, config.lateral), -limit, limit))
    sim.theta = sim.theta + float(rng.uniform(-config.yaw, config.yaw))
    try:
        return sim.frame().image, sim.pursuit_steering(), (sim.n, sim.theta)
    finally:
        sim.n, sim.theta = kept


def collect(
    worlds: list[World],
    policy: SteeringPredictor | None,
    beta: float,
    seed: int,
    recovery: RecoveryConfig = RecoveryConfig(),
    length_m: float = 250.0,
    progress: bool = True,
) -> Visits:
    """Drive each world once (`length_m` of road) and keep every frame with the expert's label.

    At each step the expert's command is driven with probability `beta` (always without a policy),
    the policy's otherwise. `seed` seeds the coin and the recovery shifts.
    """
    visits = Visits()
    rng = stream("rollout", seed)
    bar = tqdm(total=len(worlds), desc=f"drive (beta {beta:.2f})", unit="road", disable=not progress, leave=False)
    for index, world in enumerate(worlds):
        sim = RoadSim(world.track(length_m), world.config)
        if policy is not None:
            policy.reset()
        while not sim.done:
            image = sim.frame().image
            expert = sim.pursuit_steering()
            predicted = policy.predict(image).wheel_angle if policy is not None else expert
            from_policy = policy is not None and rng.random() >= beta
            driven = predicted if from_policy else expert
            visits.add(image, index, sim, expert, driven, predicted, from_policy, False)
            if recovery.every and sim.steps % recovery.every == recovery.every - 1:
                view, label, at = _recovery_view(sim, rng, recovery)
                visits.add(view, index, sim, label, driven, float("nan"), False, True, at)
            sim.step(world.speed, driven)
        bar.update()
    bar.close()
    return visits


def write_visits(folder: Path, visits: Visits, worlds: list[World], meta: dict) -> Path:
    """The frames as a simulator log, with visits.npz and worlds.json; built aside and renamed when complete."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    table = visits.table()
    rows = []
    for i, image in enumerate(visits.images):
        name = f"IMG/center_{i:07d}.jpg"
        write_rgb(tmp / name, image)
        label = from_wheel_angle(float(table["expert"][i]), *LABEL_UNIT)
        rows.append([name, "", "", f"{label:.7f}", "0.5", "0", f"{table['speed'][i] / MPH_TO_MS:.4f}"])
    with (tmp / "driving_log.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    np.savez(tmp / "visits.npz", **table)
    (tmp / "worlds.json").write_text(json.dumps({**meta, "worlds": [w.describe() for w in worlds]}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    return folder


def summary(visits: Visits) -> dict:
    """Counts and how far the policy was from the expert on the frames it saw (rad, front wheel)."""
    table = visits.table()
    seen = table["recovery"] == 0
    error = (table["policy"] - table["expert"])[seen]
    return {"frames": len(visits), "visited": int(seen.sum()), "recovery": int((~seen).sum()),
            "policy_steps": int(table["from_policy"].sum()),
            "policy_rmse_rad": float(np.sqrt(np.mean(error**2))) if error.size else 0.0,
            "mean_abs_offset_m": float(np.abs(table["n"][seen]).mean()) if seen.any() else 0.0}  # fmt: skip
