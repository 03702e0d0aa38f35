"""A recorded drive as a ROS 2 bag: the same frames, labels and stamps as the folder it came from, and a model
trained from the bag identical to one trained from the folder (same seed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from qattn_ros.data.drive_bag import source_spec, write_drive_bag
from qattn_ros.data.sources import open_source
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.writers import write_ch2_test
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def test_the_bag_holds_the_folders_frames_and_a_model_trained_from_it_is_the_same(tmp_path: Path) -> None:
    folder = write_ch2_test(tmp_path / "drive", RoadGenerator(120, 160, seed=5), 120).parent
    source = open_source(folder)
    bag = write_drive_bag(source, [item[2] for item in source.items], tmp_path / "bag")
    from_bag = open_source(source_spec(bag, source))
    pairs = list(zip(source, from_bag, strict=True))
    assert len(pairs) == 120
    for a, b in pairs:
        assert a.stamp_ns == b.stamp_ns and a.steering == b.steering and np.array_equal(a.image, b.image)
    weights = {}
    for name, spec in (("folder", str(folder)), ("bag", source_spec(bag, source))):
        config = load_train_config(overrides=[
            f"data.train=[{spec if isinstance(spec, str) else dict(spec)}]", f"data.cache_dir='{tmp_path / 'cache'}'",
            "data.blocks={gap_s: 0.2}", f"out='{tmp_path / name}'", "optim.epochs=1", "optim.batch_size=8",
            "optim.max_steps_per_epoch=4", "progress=false", "device=cpu", "seed=3", "model.variant=binary_sign",
        ])  # fmt: skip
        Trainer(config).fit()
        weights[name] = load_file(tmp_path / name / "best.safetensors")
    assert weights["folder"].keys() == weights["bag"].keys()
    assert all(np.array_equal(weights["folder"][k], weights["bag"][k]) for k in weights["folder"])


def test_export_bag_writes_one_time_block_and_says_how_to_read_it(tmp_path: Path) -> None:
    folder = write_ch2_test(tmp_path / "drive", RoadGenerator(120, 160, seed=5), 200).parent
    command = [sys.executable, str(ROOT / "training" / "export_bag.py"), "--data", str(folder), "--block", "test",
               "--out", str(tmp_path / "bag")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stamps = [r.stamp_ns for r in open_source(source_spec(tmp_path / "bag", open_source(folder)))]
    everything = sorted(item[2] for item in open_source(folder).items)
    assert stamps == everything[: len(stamps)], "--order test,val,train: the test block is the drive's start"
    assert len(stamps) == 40 - 20, "20 % of 200 frames at 20 Hz, less the 1 s before the 2 s gap's middle"
    assert "ros2_bag" in done.stdout
