"""The replay evaluator's work on paired frames, without ROS: indexes, geometry, steering check, counts, stop."""

import json
import math
import sys
import threading

import numpy as np
import pytest
from checkpoints import random_checkpoint

from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.explain.engine import EvalSettings
from qattn_ros.pairing import Pending
from qattn_ros.predictor import SteeringPredictor
from qattn_ros.replay_evaluation import PIECE_IMAGES, OnlineEvaluation, Recorded, target
from qattn_ros.units import VehicleGeometry, to_wheel_angle

STEPS = 4
CHECKPOINT_VEHICLE = VehicleGeometry(16.0, 2.85)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> SteeringPredictor:
    return SteeringPredictor(random_checkpoint(tmp_path_factory.mktemp("ckpt"), vehicle=CHECKPOINT_VEHICLE), "cpu")


def _work(predictor, folder, every: int = 1) -> OnlineEvaluation:
    settings = EvalSettings(steps=STEPS, insertion=False)
    return OnlineEvaluation("model.safetensors", predictor, settings, folder, ["attention", "random"], every)


def _pairs(predictor, frames: int, player_index: bool = True) -> list[Pending]:
    """Pairs as the evaluator builds them: (image, arrival), the node's steering and map, truth, the index."""
    generator = RoadGenerator(160, 320, seed=5)
    pairs = []
    for k in range(frames):
        rgb = generator.frame(k).image
        prediction = predictor.predict(rgb)
        parts = {"image": (rgb, k), "steering": prediction.wheel_angle, "map": prediction.attention,
                 "truth": 0.01 * (k + 1)}  # fmt: skip
        if player_index:
            parts["index"] = 100 + 2 * k  # the source index, not the arrival order
        pairs.append(Pending(stamp=k, since=0.0, parts=parts))
    return pairs


def _rows(path) -> dict[int, dict]:
    return {row["frame"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_frames_are_named_by_the_players_index_and_truth_converted_with_its_geometry(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path, every=4)
    chosen = work.chosen(_pairs(predictor, 6), lambda rgb: rgb, print)
    assert [index for index, _, _ in chosen] == [100, 104, 108], "every 4th by source index, not by arrival"
    assert work.counts.not_selected == 3
    player = VehicleGeometry(14.8, 2.85)  # the player converted the recorded steering with this
    work.evaluate(chosen, Recorded("steering_wheel_rad", True, player), lambda: False)
    rows = _rows(tmp_path / "attention.jsonl")
    assert sorted(rows) == [100, 104, 108]
    for k, index in enumerate([100, 104, 108]):
        recorded = 0.01 * (2 * k + 1) * player.steering_ratio  # wheel angle x the player's ratio
        assert rows[index]["target"] == pytest.approx(recorded, rel=1e-9), "not the checkpoint's 16"
    assert work.counts.evaluated == 3 and work.counts.steering_mismatch == 0


def test_the_target_is_offline_evaluations_label_whatever_unit_the_recording_has(predictor) -> None:
    """Recorded steering -> the player's wheel angle -> the checkpoint's unit equals offline's direct conversion:
    the player's geometry undoes its own step, the checkpoint's converts between units (FrameSet's rule)."""
    info, player = predictor.info, VehicleGeometry(14.8, 2.0)
    cases = [("steering_wheel_rad", True, 1.6, 1.6), ("steering_wheel_rad", False, 1.6, -1.6),
             ("wheel_rad", True, 0.1, 0.1 * CHECKPOINT_VEHICLE.steering_ratio),
             ("sim_normalized", False, 0.5, -math.radians(12.5) * CHECKPOINT_VEHICLE.steering_ratio)]  # fmt: skip
    for unit, left, recorded, expected in cases:
        wheel = to_wheel_angle(recorded, unit, left, player)  # what the player publishes
        assert target(wheel, Recorded(unit, left, player), info) == pytest.approx(expected, rel=1e-12), unit
    assert target(0.1, None, info) == pytest.approx(1.6), "no player's word: the checkpoint's geometry"
    status = {"steering_unit": "wheel_rad", "positive_is_left": True, "vehicle": {"steering_ratio": 14.8,
              "wheelbase": 2.0}}  # fmt: skip
    assert Recorded.from_status(status) == Recorded("wheel_rad", True, player) and Recorded.from_status({}) is None


def test_without_a_player_index_frames_count_in_arrival_order(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path)
    assert [index for index, _, _ in work.chosen(_pairs(predictor, 3, False), lambda rgb: rgb, print)] == [0, 1, 2]


def test_a_non_finite_published_steering_is_a_mismatch(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path)
    assert work.steering_difference(0.1, math.nan) == math.inf
    assert work.steering_difference(math.inf, 0.1) == math.inf
    assert work.steering_difference(0.148, to_wheel_angle(0.148, "steering_wheel_rad", True, CHECKPOINT_VEHICLE)) \
        == pytest.approx(0.0, abs=1e-12)  # fmt: skip
    pairs = _pairs(predictor, 2)
    pairs[1].parts["steering"] = math.nan
    work.evaluate(work.chosen(pairs, lambda rgb: rgb, print), None, lambda: False)
    assert work.counts.steering_mismatch == 1 and work.counts.max_steering_diff == math.inf


def test_a_stop_ends_the_piece_under_way_keeps_the_rest_and_a_sealed_report_takes_no_more(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path)
    size = PIECE_IMAGES // (STEPS + 1)
    chosen = work.chosen(_pairs(predictor, size + 2), lambda rgb: rgb, print)
    work.evaluate(chosen, None, lambda: work.counts.evaluated > 0)  # asked to stop once a piece is saved
    assert len(_rows(tmp_path / "attention.jsonl")) == size == work.counts.evaluated
    work.write_report(tmp_path, complete=False, stopped="interrupted", summary={})
    work.evaluate(chosen[size:], None, lambda: False)
    assert len(_rows(tmp_path / "attention.jsonl")) == size, "written after the report: nothing"
    assert json.loads((tmp_path / "replay.json").read_text())["counts"]["evaluated"] == size


def test_counts_from_two_threads_lose_nothing(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: an unguarded += loses updates
    try:
        threads = [threading.Thread(target=lambda: [work.count("bad") for _ in range(50_000)]) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert work.counts.bad == 100_000


def test_an_undecodable_frame_is_counted_and_named(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path)
    warnings = []

    def decode(rgb: np.ndarray) -> np.ndarray:
        raise ValueError("unsupported encoding 'yuv422'")

    assert work.chosen(_pairs(predictor, 1), decode, warnings.append) == []
    assert work.counts.bad == 1 and warnings == ["frame 100: unsupported encoding 'yuv422'"]
