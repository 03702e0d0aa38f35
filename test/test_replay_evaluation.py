"""The replay evaluator's work on paired frames, without ROS: indexes, geometry, steering check, counts, stop,
and a recurrent model's state carried as the node carried it."""

import json
import math
import sys
import threading

import numpy as np
import pytest
import torch
from checkpoints import overflowing_recurrent_checkpoint, random_checkpoint
from conftest import small_train_overrides

from qattn_ros.core.units import VehicleGeometry, to_wheel_angle
from qattn_ros.data.simlog import write_simlog
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.explain.engine import EvalSettings
from qattn_ros.explain.perturbation import curves_loop
from qattn_ros.explain.saliency import upsample_attention
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.rules.pairing import Pending
from qattn_ros.rules.replay_evaluation import PIECE_IMAGES, OnlineEvaluation, Recorded, target

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
    """The per-frame rows (the first line is the file's key, not a frame)."""
    return {row["frame"]: row for row in map(json.loads, path.read_text().splitlines()) if "key" not in row}


def test_frames_are_named_by_the_players_index_and_truth_converted_with_its_geometry(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path, every=4)
    chosen = work.chosen(_pairs(predictor, 6), lambda rgb: rgb, print)
    assert [c.index for c in chosen] == [100, 104, 108], "every 4th by source index, not by arrival"
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


def test_a_rerun_resumes_its_own_rows_and_recomputes_another_checkpoints(predictor, tmp_path) -> None:
    """Same name, same checkpoint: the frames done are skipped. A retrained checkpoint under the same name: its
    frames are evaluated afresh (with a warning naming the file), not resumed from the old model's rows."""
    pairs = _pairs(predictor, 2)
    first = _work(predictor, tmp_path)
    first.evaluate(first.chosen(pairs, lambda rgb: rgb, print), None, lambda: False)
    again = _work(predictor, tmp_path)
    assert again.chosen(pairs, lambda rgb: rgb, print) == [] and again.counts.resumed == 2
    retrained = SteeringPredictor(random_checkpoint(tmp_path / "retrained", seed=1, vehicle=CHECKPOINT_VEHICLE), "cpu")
    assert retrained.info.sha256 != predictor.info.sha256
    other = _work(retrained, tmp_path)
    with pytest.warns(UserWarning, match="attention.jsonl.*checkpoint_sha256"):
        chosen = other.chosen(_pairs(retrained, 2), lambda rgb: rgb, print)
    assert _rows(tmp_path / "attention.jsonl") == {}, "the old model's rows are gone"
    other.evaluate(chosen, None, lambda: False)
    assert sorted(_rows(tmp_path / "attention.jsonl")) == [100, 102] and other.counts.resumed == 0


def test_another_recording_replayed_into_the_same_folder_is_evaluated_afresh(predictor, tmp_path) -> None:
    """Bag A, then bag B into the same --out: B's frames are B's, never A's rows resumed under B's indexes."""
    pairs = _pairs(predictor, 2)
    first = _work(predictor, tmp_path)
    first.start({"source": "A.bag", "fingerprint": {"sizes": [1000]}})
    first.evaluate(first.chosen(pairs, lambda rgb: rgb, print), None, lambda: False)
    again = _work(predictor, tmp_path)
    again.start({"source": "A.bag", "fingerprint": {"sizes": [1000]}})
    assert again.chosen(pairs, lambda rgb: rgb, print) == [] and again.counts.resumed == 2, "A again: resumed"
    other = _work(predictor, tmp_path)
    with pytest.warns(UserWarning, match="attention.jsonl.*source"):
        other.start({"source": "B.bag", "fingerprint": {"sizes": [2000]}})
    assert len(other.chosen(pairs, lambda rgb: rgb, print)) == 2 and other.counts.resumed == 0


def test_without_a_player_index_frames_count_in_arrival_order(predictor, tmp_path) -> None:
    work = _work(predictor, tmp_path)
    assert [c.index for c in work.chosen(_pairs(predictor, 3, False), lambda rgb: rgb, print)] == [0, 1, 2]


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


@pytest.fixture(scope="module")
def recurrent(tmp_path_factory) -> str:
    """A recurrent kim_canny trained by the project's trainer on consecutive frames of a small synthetic set (at
    40x80 and a few steps: seconds on a CPU)."""
    root = tmp_path_factory.mktemp("recurrent")
    logs = {"train": root / "train", "val": root / "val"}
    write_simlog(logs["train"], RoadGenerator(160, 320, seed=11), 48)
    write_simlog(logs["val"], RoadGenerator(160, 320, seed=12), 8)
    overrides = small_train_overrides(logs, root / "run", root / "cache") + [
        "model.variant=kim_canny", "model.recurrent=true", "optim.seq_len=4", "optim.epochs=1",
        "optim.max_steps_per_epoch=6", "optim.batch_size=4", "optim.lr=0.003", "optim.warmup_steps=0",
        "optim.ema_decay=0", "preprocessing.height=40", "preprocessing.width=80", "model.input_height=40",
        "model.input_width=80",
    ]  # fmt: skip
    return str(Trainer(load_train_config(None, overrides)).fit())


def _node_pairs(node: SteeringPredictor, frames: list[np.ndarray], stamps: list[int], resets: set[int]
                ) -> list[Pending]:  # fmt: skip
    """What the node publishes frame by frame from its stateful predict(), its state forgotten before `resets`."""
    pairs = []
    for k, (rgb, stamp) in enumerate(zip(frames, stamps, strict=True)):
        if k in resets:
            node.reset()
        prediction = node.predict(rgb)
        parts = {"image": (rgb, k), "steering": prediction.wheel_angle, "map": prediction.attention, "truth": 0.0,
                 "index": k}  # fmt: skip
        pairs.append(Pending(stamp=stamp, since=0.0, parts=parts))
    return pairs


def test_a_trained_recurrent_checkpoint_replays_with_the_state_the_node_had(recurrent, tmp_path) -> None:
    """Every 2nd frame evaluated, in two runs (the rerun resumes), across a stamp gap above max_frame_gap where the
    node starts afresh: the evaluator's own prediction is the published one for every frame, and the perturbed
    copies of a frame go through with the state the node had before it (the per-step reference, state fixed)."""
    generator = RoadGenerator(160, 320, seed=5)
    frames = [generator.frame(k).image for k in range(10)]
    stamps = [k * 50_000_000 for k in range(5)] + [3 * 10**9 + k * 50_000_000 for k in range(5)]  # 2.8 s gap at 5
    pairs = _node_pairs(SteeringPredictor(recurrent, "cpu"), frames, stamps, resets={5})
    stateless = SteeringPredictor(recurrent, "cpu")
    alone = [stateless.to_wheel_angle(stateless.predict_batch(stateless.to_model_uint8(rgb)[None])[0][0])
             for rgb in frames]  # fmt: skip
    published = [p.parts["steering"] for p in pairs]
    assert max(abs(a - b) for a, b in zip(alone, published, strict=True)) > 1e-5, "the state matters"

    def run(entries: list[Pending]) -> OnlineEvaluation:
        settings = EvalSettings(steps=STEPS, insertion=False)
        work = OnlineEvaluation("rnn", SteeringPredictor(recurrent, "cpu"), settings, tmp_path, ["attention"], 2)
        work.evaluate(work.chosen(entries, lambda rgb: rgb, print), None, lambda: False)
        return work

    first, rerun = run(pairs[:4]), run(pairs)
    assert (first.counts.evaluated, rerun.counts.evaluated, rerun.counts.resumed) == (2, 3, 2)
    for work in (first, rerun):
        assert work.counts.steering_mismatch == 0 and work.counts.max_steering_diff <= 1e-6, work.counts
    node = SteeringPredictor(recurrent, "cpu")
    for rgb in frames[5:8]:  # the node's state before frame 8: afresh at the gap, then frames 5, 6, 7
        node.predict(rgb)
    x = node.normalize(node.to_model_uint8(frames[8])[None])
    heat = upsample_attention(torch.from_numpy(pairs[8].parts["map"])[None], tuple(x.shape[-2:]))
    with torch.no_grad():
        reference = curves_loop(lambda t: node.model(t, node.state).steering, x, heat, np.array([8]), "deletion",
                                STEPS)  # fmt: skip
    assert _rows(tmp_path / "attention.jsonl")[8]["deletion"] == pytest.approx(reference[0].tolist(), abs=1e-6)


def test_the_evaluator_forgets_the_state_after_a_non_finite_prediction_as_the_node_does(tmp_path) -> None:
    """A frame whose prediction overflows: the node stops and starts its model afresh on the next frame, and so
    must the evaluator, or every frame after it is a mismatch."""
    frame = RoadGenerator(120, 160, seed=11).frame(0).image  # one the probe model's state moves by > 0.5 %
    trigger = np.zeros_like(frame)
    checkpoint = overflowing_recurrent_checkpoint(tmp_path, frame, trigger)
    frames = [frame, frame, trigger, frame, frame]
    pairs = _node_pairs(SteeringPredictor(checkpoint, "cpu"), frames, [k * 50_000_000 for k in range(5)], {3})
    assert math.isinf(pairs[2].parts["steering"])
    settings = EvalSettings(steps=STEPS, insertion=False)
    work = OnlineEvaluation("overflow", SteeringPredictor(checkpoint, "cpu"), settings, tmp_path, ["random"])
    chosen = work.chosen(pairs, lambda rgb: rgb, print)
    del chosen[2]  # not a frame to explain: its steering is not finite
    work.evaluate(chosen, None, lambda: False)
    assert work.counts.evaluated == 4 and work.counts.steering_mismatch == 0, work.counts
