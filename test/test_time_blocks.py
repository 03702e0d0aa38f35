"""Time-block splits: no frame of one block within the gap of another, the shares and order as asked, and the
trainer validating on its own val block when no val source is given."""

from __future__ import annotations

import numpy as np
import pytest
from checkpoints import random_checkpoint

from qattn_ros.core.errors import ConfigError
from qattn_ros.data.sources import open_source
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.time_blocks import TimeBlocks, describe_blocks, split_rows
from qattn_ros.data.writers import write_ch2_test
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Distributed, load_frames
from qattn_ros.inference.predictor import SteeringPredictor


def closest_between(stamps: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The plain way: every pair of frames, one from each block (seconds)."""
    return min(abs(int(stamps[i]) - int(stamps[j])) / 1e9 for i in a for j in b)


@pytest.mark.parametrize("order", [("train", "val", "test"), ("test", "val", "train")])
def test_no_frame_is_within_the_gap_of_another_block(order: tuple[str, ...]) -> None:
    rng = np.random.default_rng(0)
    stamps = np.cumsum(rng.integers(30_000_000, 70_000_000, 600))  # 20 Hz with jitter, 30 s
    stamps[300:] += 5_000_000_000  # and a pause
    blocks = TimeBlocks(0.7, 0.1, 0.2, gap_s=2.0, order=order)
    rows = split_rows(stamps, blocks)
    names = list(rows)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert closest_between(stamps, rows[a], rows[b]) >= 2.0
    firsts = [stamps[rows[name]].min() for name in order]
    assert firsts == sorted(firsts)  # in time as asked
    total = sum(len(r) for r in rows.values())
    assert 600 - 3 * 2 * 20 <= total <= 600  # at most ~2 s of frames lost per boundary
    assert abs(len(rows["train"]) - 420) <= 40 and abs(len(rows["test"]) - 120) <= 40


def test_no_gap_keeps_every_frame_once() -> None:
    stamps = np.arange(100) * 50_000_000
    rows = split_rows(stamps, TimeBlocks(0.5, 0.25, 0.25, gap_s=0.0))
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(100))
    assert [len(rows[n]) for n in ("train", "val", "test")] == [50, 25, 25]


def test_stamps_out_of_order_are_split_in_time() -> None:
    stamps = np.arange(100)[::-1] * 50_000_000  # newest first
    rows = split_rows(stamps, TimeBlocks(0.5, 0.25, 0.25, gap_s=0.0))
    assert stamps[rows["train"]].max() < stamps[rows["val"]].min() < stamps[rows["test"]].min()


def test_constant_predictions_are_described_per_block() -> None:
    stamps = np.arange(10) * 50_000_000
    steering = np.array([1.0, 3.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 4.0, 4.0])
    rows = {"train": np.arange(4), "val": np.arange(4, 8), "test": np.arange(8, 10)}
    described = describe_blocks(stamps, steering, rows)
    assert described["train"]["own_mean_rmse"] == pytest.approx(1.0)  # mean 2, every error 1
    assert described["test"]["train_mean_rmse"] == pytest.approx(2.0)  # 4 - 2
    assert described["val"]["steering_variance"] == 0.0 and described["test"]["frames"] == 2


@pytest.mark.parametrize(
    "blocks",
    [{"train": 0.7, "val": 0.1, "test": 0.3}, {"train": 0.0, "val": 0.5, "test": 0.5}, {"gap_s": -1},
     {"order": "train,test"}, {"order": "train,val,test,val"}, {"shuffle": True}],
)  # fmt: skip
def test_bad_blocks_are_refused_by_name(blocks: dict) -> None:
    with pytest.raises(ConfigError, match="blocks"):
        TimeBlocks.from_dict(blocks)


def test_the_trainer_validates_on_its_val_block_apart_from_training(synthetic_logs, tmp_path) -> None:
    config = load_train_config(overrides=[
        f"data.train=[{{kind: simlog, path: '{synthetic_logs['train']}'}}]", f"data.cache_dir='{tmp_path}'",
        "data.blocks={train: 0.8, val: 0.2, test: 0.0, gap_s: 1.0}", "progress=false",
    ])  # fmt: skip
    train, val = load_frames(config, Distributed(__import__("torch").device("cpu")))
    stamps = train.parts[0].stamps
    assert len(train) + len(val) < 1200 and len(val) > 200 * 0.8
    assert closest_between(stamps, train.local[0], val.local[0]) >= 1.0


def test_evaluation_reads_the_test_block_of_a_recording(tmp_path) -> None:
    """100 frames at 20 Hz, blocks 0.6 / 0.2 / 0.2 with a 0.2 s gap: the test block is frames 82..99 (the two
    frames within 0.1 s after the boundary at frame 80 belong to no block)."""
    folder = write_ch2_test(tmp_path / "drive", RoadGenerator(120, 160, seed=2), 100).parent
    labels = [float(line.split(",")[1]) for line in (folder / "CH2_final_evaluation.csv").read_text().splitlines()[1:]]
    predictor = SteeringPredictor(random_checkpoint(tmp_path), "cpu")
    frames = predictor.frames(open_source(folder), tmp_path / "cache", block="test",
                              blocks=TimeBlocks(0.6, 0.2, 0.2, gap_s=0.2))  # fmt: skip
    assert frames.targets == pytest.approx(labels[82:100], abs=1e-6)
