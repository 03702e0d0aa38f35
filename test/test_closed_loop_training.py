"""Closed-loop training: DAgger rounds on a tiny world, recovery labels, and the separation from the sweep."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import yaml
from conftest import ROOT

from qattn_ros.core.errors import ConfigError
from qattn_ros.core.units import to_wheel_angle
from qattn_ros.data.images import read_rgb
from qattn_ros.data.simlog import SimLogSource
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.dagger import ClosedLoopTraining, DaggerConfig
from qattn_ros.fit.rollout import RecoveryConfig, collect, write_visits
from qattn_ros.model.checkpoint import read_info
from qattn_ros.sim.sweep import AXES, NOMINAL, tracks_for
from qattn_ros.sim.track import HELD_OUT_SEEDS, TRAINING_SEEDS
from qattn_ros.sim.training_world import Randomization, World, held_out_violations, training_worlds
from qattn_ros.sim.world import RoadSim, SimConfig

# the script as `python training/train_closed_loop.py` runs it (training/ is scripts, not a package)
_spec = importlib.util.spec_from_file_location("train_closed_loop", ROOT / "training" / "train_closed_loop.py")
train_closed_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_closed_loop)

FRAME = (64, 128)  # a tiny camera; the model sees 32 x 64
TINY = {"model": {"variant": "kim_canny", "input_height": 32, "input_width": 64},
        "preprocessing": {"height": 32, "width": 64, "crop_top": 0.3},
        "optim": {"epochs": 2, "batch_size": 32, "lr": 0.002, "warmup_steps": 5},
        "augment": {"flip": 0.0, "shift_px": 0}, "progress": False, "device": "cpu"}  # fmt: skip


def labels_of(folder) -> np.ndarray:
    """The log's labels as the trainer reads them, turned into front-wheel angles (rad, positive left)."""
    source = SimLogSource(folder)
    return np.array([to_wheel_angle(s, source.steering_unit, source.positive_is_left) for _, s, _, _ in source.items])


def blocks(image: np.ndarray, size: int = 8) -> np.ndarray:
    h, w = image.shape[0] // size, image.shape[1] // size
    return image[: h * size, : w * size].reshape(h, size, w, size, 3).mean(axis=(1, 3))


def expert_at(sim: RoadSim, row: dict) -> tuple[float, np.ndarray]:
    """Pure pursuit's command and the camera frame at a recorded state, computed afresh."""
    sim.s, sim.n, sim.theta, sim.speed = row["s"], row["n"], row["theta"], row["speed"]
    sim.steps, sim.time = int(row["step"]), row["step"] * sim.dt
    return sim.pursuit_steering(), sim.frame().image


def test_two_dagger_rounds_aggregate_expert_labels_of_on_policy_frames(tmp_path, capsys) -> None:
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({**TINY, "data": {"cache_dir": str(tmp_path / "cache")}}))
    loop = {"rounds": 2, "worlds_per_round": 2, "track_m": 120.0, "keep_base": False, "finetune_epochs": 1,
            "beta": 0.5, "beta_decay": 0.5, "frame_size": list(FRAME), "recovery": {"every": 3}}  # fmt: skip
    config = tmp_path / "closed_loop.yaml"
    config.write_text(yaml.safe_dump({"train": "train.yaml", "out": str(tmp_path / "run"), "closed_loop": loop}))
    assert train_closed_loop.main([str(config)]) == 0  # ~8 s on 2 idle cores (no timed assertion: DESIGN 6)
    run = tmp_path / "run"

    sizes = [read_info(run / f"round_{r}" / "model" / "best").data["train_frames"] for r in range(3)]
    assert sizes[0] < sizes[1] < sizes[2], f"the aggregated set grows every round: {sizes}"
    final = read_info(run / "best").training["closed_loop"]
    assert final["round"] == 2 and final["data_mix"]["base_frames"] == 0
    assert sum(final["data_mix"]["round_frames"]) == read_info(run / "best").data["train_frames"]
    assert [r["beta"] for r in final["data_mix"]["rounds"]] == [1.0, 0.5, 0.25]
    assert final["seeds"] == {"train": 2, "world": 0}

    spec = Randomization()
    for r in range(3):
        folder = run / f"round_{r}" / "data"
        table = dict(np.load(folder / "visits.npz"))
        labels = labels_of(folder)
        assert len(labels) == len(table["s"])
        worlds = training_worlds(2, spec, FRAME, 0, r)
        recorded = json.loads((folder / "worlds.json").read_text())["worlds"]
        assert [w.track_seed for w in worlds] == [w["track_seed"] for w in recorded]
        sims = [RoadSim(w.track(120.0), w.config) for w in worlds]
        for i in range(len(labels)):
            row = {k: float(v[i]) for k, v in table.items()}
            expert, image = expert_at(sims[int(row["world"])], row)
            assert labels[i] == pytest.approx(expert, abs=1e-6), f"round {r} frame {i}: the expert's label"
            if i % 25 == 0:  # the frame is the view from that state (JPEG and pixel noise averaged out in blocks)
                logged = read_rgb(SimLogSource(folder).items[i][0])
                assert np.abs(blocks(logged) - blocks(image)).mean() < 2.0
        driven_by_policy = table["from_policy"] == 1
        if r == 0:
            assert not driven_by_policy.any(), "round 0: the expert drives"
            continue
        assert driven_by_policy.sum() > 0.2 * (table["recovery"] == 0).sum(), "the model drove"
        assert np.allclose(table["driven"][driven_by_policy], table["policy"][driven_by_policy])
        # on those frames the label is the expert's, not the command the model drove
        assert np.abs(labels[driven_by_policy] - table["driven"][driven_by_policy]).max() > 1e-3

    stamps = {r: (run / f"round_{r}" / "model" / "best.safetensors").stat().st_mtime_ns for r in range(3)}
    data_stamp = (run / "round_2" / "data" / "visits.npz").stat().st_mtime_ns
    for path in (run / "round_2" / "model").iterdir():
        path.unlink()
    assert train_closed_loop.main([str(config)]) == 0, "a rerun continues"
    assert all((run / f"round_{r}" / "model" / "best.safetensors").stat().st_mtime_ns == stamps[r] for r in (0, 1))
    assert (run / "round_2" / "data" / "visits.npz").stat().st_mtime_ns == data_stamp, "the round's data is kept"
    assert read_info(run / "round_2" / "model" / "best").training["closed_loop"]["round"] == 2

    # rounds made by one config are not another's: a rerun with other worlds refuses, naming what changed
    kept = {path: path.stat().st_mtime_ns for path in run.rglob("*") if path.is_file()}
    other = ["--set", "closed_loop.world_seed=5", "--set", "closed_loop.track_m=60"]
    assert train_closed_loop.main([str(config), *other]) == 1
    said = capsys.readouterr().err
    assert "closed_loop.world_seed 0 -> 5" in said and "closed_loop.track_m 120.0 -> 60" in said, said
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*") if path.is_file()} == kept, "nothing touched"
    (run / "config.json").unlink()  # rounds nobody can vouch for are not continued either
    assert train_closed_loop.main([str(config)]) == 1
    assert "no config.json" in capsys.readouterr().err


@pytest.mark.parametrize("curvature", [0.0, 1 / 40])
def test_recovery_label_steers_back_toward_the_lane(curvature, tmp_path) -> None:
    """Shifted left (or turned left) of the car's own state, the label turns right of the car's own, and back."""
    world = World(track_seed=5, max_curvature=curvature, speed=15.0, config=SimConfig(height=FRAME[0], width=FRAME[1]))
    visits = collect([world], None, 1.0, seed=3, recovery=RecoveryConfig(every=1, lateral=0.7, yaw=0.08),
                     length_m=150.0, progress=False)  # fmt: skip
    folder = write_visits(tmp_path / "data", visits, [world], {})
    table, labels = dict(np.load(folder / "visits.npz")), labels_of(folder)
    views = np.flatnonzero(table["recovery"] == 1)
    own = views - 1  # each view follows the frame of the car's own state at that step
    assert (table["recovery"][own] == 0).all() and (table["step"][own] == table["step"][views]).all()
    dn, dtheta = table["n"][views] - table["n"][own], table["theta"][views] - table["theta"][own]
    turn = labels[views] - labels[own]  # rad, positive left
    # left of the lane (n > 0) and facing further left (theta > 0): the lane centre ahead is to the right at every
    # distance, so the correction is a turn to the right; and mirrored. Mixed shifts point both ways: not judged.
    agree = (np.sign(dn) == np.sign(dtheta)) & (np.abs(dn) > 0.05)
    assert agree.sum() >= 10
    assert (np.sign(turn[agree]) == -np.sign(dn[agree])).all()
    if curvature == 0.0:  # on a straight road the label itself points back to the centre line
        assert (np.sign(labels[views][agree]) == -np.sign(table["n"][views][agree])).all()
    # one offset alone (the other too small to matter 12 m ahead): a sideways shift, or a turn, is corrected
    lateral, yaw = (np.abs(dn) > 0.2) & (np.abs(dtheta) < 0.01), (np.abs(dtheta) > 0.04) & (np.abs(dn) < 0.05)
    assert lateral.sum() + yaw.sum() >= 5
    assert (np.sign(turn[lateral]) == -np.sign(dn[lateral])).all()
    assert (np.sign(turn[yaw]) == -np.sign(dtheta[yaw])).all()


def test_training_worlds_stay_apart_from_the_sweep() -> None:
    spec = Randomization()
    assert held_out_violations(spec) == []
    worlds = training_worlds(400, spec, FRAME, 0, 0) + training_worlds(400, spec, FRAME, 7, 3)
    seeds = {w.track_seed for w in worlds}
    assert seeds <= set(TRAINING_SEEDS) and not seeds & set(HELD_OUT_SEEDS)
    assert not seeds & {t.seed for t in tracks_for(NOMINAL, 20, 100.0)}, "never a road the sweep drives"
    by_axis = {axis.name: axis.levels for axis in AXES}
    kept_out_curvature = min(level.max_curvature for level in by_axis["curvature"][-2:])
    assert max(w.max_curvature for w in worlds) < kept_out_curvature
    assert max(w.max_curvature for w in worlds) > 1 / 45, "bends beyond today's training frames"
    assert max(w.speed for w in worlds) < min(level.speed for level in by_axis["speed"][-3:])
    assert max(w.config.steering_delay for w in worlds) < dict(by_axis["steering_delay"][-3].config)["steering_delay"]
    assert max(w.config.gust for w in worlds) < dict(by_axis["gust"][-3].config)["gust"]
    camera4 = dict(by_axis["camera"][-2].config)
    assert max(w.config.noise for w in worlds) < camera4["noise"]
    assert min(min(w.config.brightness, w.config.contrast) for w in worlds) > camera4["brightness"]
    appearance = [dict(level.config) for level in by_axis["appearance"][1:]]
    colours = np.array([a["marking_colour"] for a in appearance if "marking_colour" in a])
    drawn = np.array([w.config.marking_colour for w in worlds if w.config.marking_colour is not None])
    assert len(drawn) > 10 and np.linalg.norm(drawn[:, None] - colours[None], axis=2).min() >= 0.3
    assert max(w.config.line_width for w in worlds) < min(a.get("line_width", 9) for a in appearance)
    assert max(w.config.missing_markings for w in worlds) < min(a.get("missing_markings", 9) for a in appearance)
    assert sum(w.config.noise > 0 for w in worlds) > 200, "the camera is randomized"

    train = load_train_config(None, ["device=cpu"])
    for reaching in (Randomization(max_curvature=(0.02, 1 / 12)), Randomization(colour_margin=0.0),
                     Randomization(noise=(0.0, 30.0), gain=(0.5, 1.2), cast=0.25)):  # fmt: skip
        with pytest.raises(ConfigError, match="overlaps the sweep"):
            ClosedLoopTraining(train, DaggerConfig(randomization=reaching), "unused")


def test_closed_loop_config_reads() -> None:
    """The shipped config builds a run (binary_sign on the synthetic frames) without touching any data."""
    run, out = train_closed_loop.load(ROOT / "config" / "train" / "closed_loop.yaml",
                                      ["closed_loop.rounds=1", "optim.epochs=3"], None, None, 4)  # fmt: skip
    assert run.config.rounds == 1 and run.config.world_seed == 4 and run.train.seed == 4
    assert run.train.model.variant == "binary_sign" and run.train.optim.epochs == 3
    assert str(out) == "runs/closed_loop/binary_sign"
    assert held_out_violations(run.config.randomization) == []


def test_breaking_points_over_seeds_rank_never_beyond_the_last_level() -> None:
    from benchmarks.closed_loop_training import at_least, median_breaking

    assert median_breaking([3, None, 4], "camera") == 4
    assert median_breaking([None, None, 2], "camera") is None
    assert median_breaking([0.04, 1 / 18], "curvature") == 0.04, "two seeds: the pessimistic middle"
    assert at_least(None, 5, "camera") and at_least(5, 5, "camera") and not at_least(4, 5, "camera")
    assert not at_least(0.04, None, "curvature")


class _ConstantPolicy:
    """A driver that always commands the same front-wheel angle (rad), told apart from pure pursuit's by value."""

    ANGLE = 0.0123

    def reset(self) -> None:
        pass

    def predict(self, image: np.ndarray):
        from types import SimpleNamespace

        return SimpleNamespace(wheel_angle=self.ANGLE)


@pytest.mark.parametrize(("beta", "policy_share"), [(1.0, (0.0, 0.0)), (0.0, (1.0, 1.0)), (0.25, (0.63, 0.87))])
def test_with_probability_beta_the_expert_drives(beta, policy_share) -> None:
    """DAgger's mixture (Ross et al. 2011): beta 1 is the expert alone, beta 0 the model alone, in between the
    model drives a share 1 - beta of the steps (0.75 for beta 0.25; +- 0.12: 4 binomial sd of 200 steps)."""
    world = World(track_seed=5, max_curvature=1 / 40, speed=15.0, config=SimConfig(height=FRAME[0], width=FRAME[1]))
    visits = collect([world], _ConstantPolicy(), beta, seed=1, recovery=RecoveryConfig(every=0), length_m=150.0,
                     progress=False)  # fmt: skip
    table = visits.table()
    assert len(visits) > 150
    by_policy = table["from_policy"] == 1
    assert policy_share[0] <= by_policy.mean() <= policy_share[1]
    assert (table["driven"][by_policy] == _ConstantPolicy.ANGLE).all()
    assert (table["driven"][~by_policy] == table["expert"][~by_policy]).all()
    assert (table["expert"][~by_policy] != _ConstantPolicy.ANGLE).all(), "the two drivers told apart"


@pytest.mark.parametrize(("reaching", "named"), [
    (Randomization(speed=(10.0, 40.0)), "speed=40"),  # the sweep's speeds 15 30 | 40 50 60 kept out
    (Randomization(max_curvature=(1 / 50, 1 / 18)), "curvature=0.05556"),  # 1/50 1/35 1/25 | 1/18 1/12
    (Randomization(steering_delay=(0.05, 0.3)), "steering_delay=0.3"),  # 0.1 0.2 | 0.3 0.4 0.5
    (Randomization(gust=(0.0, 0.5), start_offset=(0.0, 0.5)), "gust=0.5"),  # (0.5 m/s, 0.5 m) | 0.75, 1.0
    (Randomization(noise=(0.0, 16.0), gain=(0.7, 1.25), cast=0.1), "camera=4"),  # noise 16, gains 0.7, cast 10 %
])  # fmt: skip
def test_a_training_range_ending_exactly_on_a_kept_out_level_reaches_it(reaching, named) -> None:
    """A range's end is a value training can draw: the first kept-out level of each axis (by the sweep's table in
    qattn_ros/sim/sweep.py), reached exactly by a range's end, counts as inside."""
    assert held_out_violations(reaching) == [f"sweep level {named} lies inside the training ranges"]
