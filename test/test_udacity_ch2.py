"""The Challenge 2 assembly command on a tiny set laid out as the two public clones hold it, with its own manifest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qattn_ros.data.sources import open_source
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.udacity_ch2 import LABELS, write_manifest
from qattn_ros.data.writers import write_ch2_test

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 6


@pytest.fixture
def clones(tmp_path: Path) -> dict[str, Path]:
    """{'frames': a deepxplore-like clone, 'labels': a self-driving-car-like clone, 'manifest': theirs}."""
    made = write_ch2_test(tmp_path / "made", RoadGenerator(120, 160, seed=3), FRAMES).parent
    manifest = write_manifest(made, tmp_path / "ch2.sha256")
    frames = tmp_path / "deepxplore" / "Driving" / "testing"
    frames.mkdir(parents=True)
    shutil.copytree(made / "center", frames / "center")
    # Udacity's example submission sits beside the frames: same frame ids, random values, no 'public' column
    ids = [p.stem for p in sorted((made / "center").glob("*.jpg"))]
    (frames / "final_example.csv").write_text("frame_id,steering_angle\n" + "".join(f"{i},0.25\n" for i in ids))
    labels = tmp_path / "self-driving-car" / "steering-models" / "community-models" / "rambo" / "data"
    labels.mkdir(parents=True)
    shutil.copyfile(made / LABELS, labels / LABELS)
    return {"frames": tmp_path / "deepxplore", "labels": tmp_path / "self-driving-car", "manifest": manifest,
            "made": made}  # fmt: skip


def assemble(clones: dict[str, Path], out: Path, labels: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "training" / "assemble_udacity.py"), "--frames", str(clones["frames"]),
               "--labels", str(labels or clones["labels"]), "--out", str(out),
               "--manifest", str(clones["manifest"])]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_two_clones_become_the_layout_the_ch2_reader_opens(clones: dict[str, Path], tmp_path: Path) -> None:
    done = assemble(clones, tmp_path / "udacity")
    assert done.returncode == 0, done.stderr
    source = open_source(tmp_path / "udacity")  # told by its layout: ch2_test
    records = list(source)
    assert len(records) == FRAMES
    expected = {int(line.split(",")[0]): float(line.split(",")[1])
                for line in (clones["made"] / LABELS).read_text().splitlines()[1:]}  # fmt: skip
    assert {r.stamp_ns: r.steering for r in records} == pytest.approx(expected)
    assert (tmp_path / "udacity" / "SHA256SUMS").read_text() == clones["manifest"].read_text()


def test_a_missing_frame_is_named_and_nothing_is_written(clones: dict[str, Path], tmp_path: Path) -> None:
    gone = sorted((clones["frames"] / "Driving" / "testing" / "center").glob("*.jpg"))[2]
    gone.unlink()
    done = assemble(clones, tmp_path / "udacity")
    assert done.returncode == 1
    assert gone.name in done.stderr and "missing" in done.stderr and "deepxplore" in done.stderr
    assert not (tmp_path / "udacity").exists()


def test_a_changed_frame_is_named(clones: dict[str, Path], tmp_path: Path) -> None:
    changed = sorted((clones["frames"] / "Driving" / "testing" / "center").glob("*.jpg"))[4]
    data = bytearray(changed.read_bytes())
    data[-3] ^= 0xFF
    changed.write_bytes(bytes(data))
    done = assemble(clones, tmp_path / "udacity")
    assert done.returncode == 1
    assert changed.name in done.stderr and "differ" in done.stderr
    assert not (tmp_path / "udacity").exists()


def test_the_example_submission_in_place_of_the_ground_truth_is_refused(
    clones: dict[str, Path], tmp_path: Path
) -> None:
    example = clones["frames"] / "Driving" / "testing" / "final_example.csv"
    done = assemble(clones, tmp_path / "udacity", labels=example)
    assert done.returncode == 1
    assert "example submission" in done.stderr and "self-driving-car" in done.stderr
    assert not (tmp_path / "udacity").exists()


def test_a_folder_without_frames_says_what_to_download(clones: dict[str, Path], tmp_path: Path) -> None:
    done = assemble({**clones, "frames": tmp_path / "empty"}, tmp_path / "udacity")
    assert done.returncode == 1
    assert "no Challenge 2 frames" in done.stderr and "peikexin9/deepxplore" in done.stderr


def test_the_committed_manifest_names_the_whole_drive() -> None:
    lines = (ROOT / "config" / "udacity_ch2.sha256").read_text().splitlines()
    names = [line.split("  ", 1)[1] for line in lines]
    assert names[0] == LABELS and len(names) == 1 + 5614  # HMB_3: 5,614 centre frames
    assert all(len(line.split("  ")[0]) == 64 for line in lines)
