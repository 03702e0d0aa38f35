"""The difficulty sweep: levels, pooled figures with spread, breaking points, a model beside pursuit, reports."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.sim.faithfulness import correlate
from qattn_ros.sim.sweep import (
    AXES,
    AXIS_NAMES,
    NOMINAL,
    PURSUIT,
    Level,
    SweepResult,
    breaking_point,
    drive_level,
    figures,
    run_sweep,
    tracks_for,
)
from qattn_ros.sim.sweep_report import plot_sweep, sweep_table
from qattn_ros.sim.track import HELD_OUT_SEEDS, MAX_CURVATURE

ROOT = Path(__file__).resolve().parents[1]


def test_every_axis_starts_at_the_nominal_world_and_grows_harder() -> None:
    assert len(AXES) >= 4 and len(set(AXIS_NAMES)) == len(AXES)
    for axis in AXES:
        assert axis.levels[0].key == NOMINAL.key, axis.name
        assert len(axis.levels) >= 4 and len({level.key for level in axis.levels}) == len(axis.levels), axis.name
        values = [level.value for level in axis.levels]
        assert values == sorted(values), axis.name
        for level in axis.levels:
            level.sim_config()  # every level is a valid simulator configuration


def test_every_level_drives_the_same_held_out_roads_cut_to_length() -> None:
    plain, sharp = tracks_for(NOMINAL, 5, 250.0), tracks_for(Level(0.05, max_curvature=0.05), 5, 250.0)
    assert [t.seed for t in plain] == [t.seed for t in sharp] == list(HELD_OUT_SEEDS[:5])
    for a, b in zip(plain, sharp, strict=True):
        assert a.length == pytest.approx(250.0) and np.allclose(a.curvatures * 0.05 / MAX_CURVATURE, b.curvatures)


def test_breaking_point_is_the_first_level_below_99_percent() -> None:
    axis = next(a for a in AXES if a.name == "steering_delay")
    autonomy = dict(zip([lv.value for lv in axis.levels], [1.0, 0.995, 0.98, 1.0, 0.5], strict=True))
    assert breaking_point(axis, {v: {"autonomy": a} for v, a in autonomy.items()}) == axis.levels[2].value
    assert breaking_point(axis, {v: {"autonomy": 1.0} for v in autonomy}) is None


def test_figures_pool_over_tracks_with_their_spread() -> None:
    tracks = [{"interventions": i, "km": 0.25, "elapsed_s": 60.0, "steps": 1200, "mean_abs_offset_m": m,
               "steering_jerk_rms": 1.0, "p95_abs_offset_m": 0.3, "interventions_per_km": i / 0.25,
               "autonomy": 1 - i * 6 / 60} for i, m in ((0, 0.1), (1, 0.3), (2, 0.2))]  # fmt: skip
    result = figures(tracks, np.linspace(0, 1, 101))
    assert result["autonomy"] == pytest.approx(1 - 3 * 6 / 180) and result["interventions_per_km"] == pytest.approx(4)
    assert result["mean_abs_offset_m"] == pytest.approx(0.2) and result["mean_abs_offset_m_sd"] == pytest.approx(0.1)
    assert result["p95_abs_offset_m"] == pytest.approx(0.95) and result["autonomy_min"] == pytest.approx(0.8)
    assert result["autonomy_sd"] == pytest.approx(0.1) and result["tracks"] == 3


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> str:
    """A kim_canny network that was never trained: it drives, badly."""
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    folder = tmp_path_factory.mktemp("untrained")
    save_checkpoint(folder / "model", model, CheckpointInfo(model.config, Preprocessing(), "wheel_rad", True))
    return str(folder / "model")


def test_pursuit_breaks_on_delay_and_gusts_and_never_looks_at_the_camera(tmp_path) -> None:
    result = run_sweep({}, ["steering_delay", "gust", "camera"], tracks=3, length_m=250.0, cache=tmp_path / "drives")
    again = run_sweep({}, ["steering_delay", "gust", "camera"], tracks=3, length_m=250.0, cache=tmp_path / "drives")
    assert again.sweep == result.sweep and (result.cached, again.cached) == (0, 14), "finished drives are kept"
    assert set(result.sweep) == {"steering_delay", "gust", "camera"} and result.tracks_per_level == 3
    nominal = [next(iter(levels.values())) for levels in result.sweep.values()]
    assert nominal[0] == nominal[1] == nominal[2], "the nominal level is driven once and shared"
    assert nominal[0][PURSUIT]["autonomy"] == 1.0 and nominal[0][PURSUIT]["km"] >= 0.75
    assert result.breaking_point["steering_delay"][PURSUIT] is not None, "the delay axis reaches past pursuit"
    assert result.breaking_point["gust"][PURSUIT] is not None, "so does the gust axis"
    assert result.breaking_point["camera"][PURSUIT] is None, "pursuit drives on the ground truth, not the camera"
    delay = result.sweep["steering_delay"]
    assert delay["0.5"][PURSUIT]["p95_abs_offset_m"] > delay["0.1"][PURSUIT]["p95_abs_offset_m"]
    table = sweep_table(result)
    assert "| steering_delay | 0.5 |" in table and "breaking point" in table
    plot_sweep(result, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    json.dumps(result.sweep)  # the benchmark records it as it is


def test_a_checkpoint_drives_beside_pursuit_the_same_way_every_time(untrained) -> None:
    level = next(a for a in AXES if a.name == "camera").levels[2]
    first, second = (drive_level(level, "untrained", untrained, tracks=2, length_m=80.0) for _ in range(2))
    assert first == second and first["tracks"] == 2 and first["km"] >= 0.16
    result = run_sweep({"untrained": untrained}, ["speed"], tracks=1, length_m=70.0)
    for by_driver in result.sweep["speed"].values():
        assert set(by_driver) == {PURSUIT, "untrained"}


def test_faithfulness_is_correlated_with_robustness_over_checkpoints() -> None:
    levels = {"0": {PURSUIT: {"autonomy": 1.0}, **{f"m{i}": {"autonomy": 1.0} for i in range(4)}},
              "1": {PURSUIT: {"autonomy": 1.0}, **{f"m{i}": {"autonomy": 0.2 * i} for i in range(4)}}}  # fmt: skip
    result = SweepResult({"camera": levels}, {"camera": {f"m{i}": 1.0 for i in range(4)}}, 5, 250.0, {})
    out = correlate(result, {"m0": 1.1, "m1": 1.3, "m2": 1.2, "m3": 1.9})
    assert out["spearman_rho"] == pytest.approx(0.8) and 0 < out["p_value"] <= 1
    assert out["per_model"]["m3"]["robustness"] == pytest.approx(0.8)
    assert correlate(result, {"m0": 1.1, "m1": 1.3})["spearman_rho"] is None, "two points are no correlation"


def test_the_training_script_writes_the_sweep_report(tmp_path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("closed_loop_script", ROOT / "evaluation" / "closed_loop.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "sweep"
    assert script.main(["--sweep", "steering_delay", "--tracks", "2", "--track-m", "100", "--out", str(out)]) == 0
    recorded = json.loads((out / "sweep.json").read_text())
    assert set(recorded["sweep"]) == {"steering_delay"} and recorded["tracks_per_level"] == 2
    assert "| steering_delay | 0.5 |" in (out / "sweep.md").read_text() and (out / "sweep.png").is_file()


def test_the_faithfulness_study_leaves_the_benchmark_sweep_alone(monkeypatch, tmp_path) -> None:
    """The headline checkpoints join the study's sweep only: the benchmark's table, plot and summary stay its own."""
    import argparse

    import benchmarks.closed_loop as bench

    def levels(names):
        return {"0": {n: {"autonomy": 1.0} for n in names}, "1": {n: {"autonomy": 0.5} for n in names}}

    main = SweepResult(
        {"camera": levels([PURSUIT, "a"])}, {"camera": {PURSUIT: None, "a": "1"}}, 5, 250.0, {"camera": {}}
    )
    extra = {f"h{i}": str(tmp_path / f"h{i}" / "best") for i in range(3)}
    for path in extra.values():
        Path(path).parent.mkdir()
        Path(path + ".safetensors").write_bytes(b"")
    more = SweepResult({"camera": levels([PURSUIT, *extra])}, {"camera": {n: "1" for n in extra}}, 5, 250.0, {})
    monkeypatch.setattr(bench, "run_sweep", lambda *args, **kwargs: more)
    monkeypatch.setattr(bench, "deletion_aucs", lambda models, count, work: {n: 1.0 + len(n) for n in models})
    args = argparse.Namespace(faithfulness=str(tmp_path / "h*" / "best"), faithfulness_axes=["camera"],
                              tracks=5, track_m=250.0, jobs=1, faithfulness_frames=10,
                              faithfulness_work=str(tmp_path))  # fmt: skip
    study = bench.faithfulness_study(args, main, {"a": "runs/a/best"})
    assert study["models"] == 4 and set(study["per_model"]) == {"a", *extra}
    assert set(main.sweep["camera"]["0"]) == {PURSUIT, "a"} and set(main.breaking_point["camera"]) == {PURSUIT, "a"}


def test_a_retrained_checkpoint_under_the_same_name_is_scored_again_not_resumed(tmp_path) -> None:
    """The faithfulness study's deletion AUCs are keyed by the checkpoint's SHA-256, not the driver's name."""
    import benchmarks.closed_loop as bench
    from qattn_ros.core.atomic import TornFileWarning

    path = tmp_path / "models" / "m" / "best"

    def save(seed: int) -> None:
        torch.manual_seed(seed)
        model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
        save_checkpoint(path, model, CheckpointInfo(model.config, Preprocessing(), "wheel_rad", True))

    save(0)
    first = bench.deletion_aucs({"m": str(path)}, 4, tmp_path / "work")["m"]
    save(1)  # retrained under the same name
    with pytest.warns(TornFileWarning, match="attention.jsonl: results of another checkpoint_sha256"):
        second = bench.deletion_aucs({"m": str(path)}, 4, tmp_path / "work")["m"]
    fresh = bench.deletion_aucs({"m": str(path)}, 4, tmp_path / "fresh")["m"]
    assert second == fresh and second != first
