"""Shared fixtures: a small synthetic dataset in the simulator layout, written once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qattn_ros.data.simlog import write_simlog
from qattn_ros.data.synthetic import RoadGenerator

ROOT = Path(__file__).resolve().parents[1]
# The graphs the tests start (in this process and in every node it starts) talk only on this host: another
# machine's ROS 2 graph on the same domain id must not answer them.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def synthetic_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'train': folder, 'val': folder} of a small synthetic simulator-log dataset."""
    root = tmp_path_factory.mktemp("synthetic")
    write_simlog(root / "train", RoadGenerator(160, 320, seed=11), 1200)
    write_simlog(root / "val", RoadGenerator(160, 320, seed=12), 200)
    return {"train": root / "train", "val": root / "val"}


def small_train_overrides(logs: dict[str, Path], out: Path, cache: Path) -> list[str]:
    """Config overrides for a fast training run on the small dataset."""
    return [
        f"data.train=[{{kind: simlog, path: '{logs['train']}'}}]",
        f"data.val=[{{kind: simlog, path: '{logs['val']}'}}]",
        f"data.cache_dir='{cache}'",
        f"out='{out}'",
        "progress=false",
        "device=cpu",
    ]


@pytest.fixture(scope="module")
def ros():
    """(harness, domain): a reliable harness node on a domain of its own, for the tests of one module."""
    import rclpy
    from ros_harness import Harness

    from qattn_ros.ros.dds_domain import claim_domain_id

    domain = claim_domain_id()
    rclpy.init(domain_id=domain)
    harness = Harness("safety", reliable=True)
    yield harness, domain
    harness.node.destroy_node()
    rclpy.shutdown()


@pytest.fixture(scope="module")
def frame():
    """A 120x160 synthetic road frame."""
    return RoadGenerator(120, 160, seed=11).frame(0).image
