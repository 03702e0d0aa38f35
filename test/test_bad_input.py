"""Bad input ends with one clear line naming the file or key, never a traceback."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from qattn_ros.data.cache import build_cache
from qattn_ros.data.simlog import SimLogSource, write_simlog
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.errors import DataError
from qattn_ros.preprocess import Preprocessing


def _train(*overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "training" / "train.py"), str(ROOT / "config" / "train" / "synthetic.yaml")]
    for assignment in ("progress=false", *overrides):
        command += ["--set", assignment]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture
def tiny_log(tmp_path):
    write_simlog(tmp_path / "log", RoadGenerator(64, 128, seed=3), 6)
    return tmp_path / "log"


def _assert_one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, last


def test_missing_dataset_folder(tmp_path) -> None:
    result = _train(f"data.train=[{{kind: simlog, path: '{tmp_path / 'nowhere'}'}}]")
    _assert_one_clear_line(result, "simulator log not found", str(tmp_path / "nowhere"))


def test_csv_without_the_needed_columns(tiny_log) -> None:
    csv = tiny_log / "driving_log.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0].replace("steering", "angle")] + lines[1:]))
    result = _train(f"data.train=[{{kind: simlog, path: '{tiny_log}'}}]")
    _assert_one_clear_line(result, str(csv), "missing column(s) steering")


def test_image_paths_that_do_not_exist(tiny_log) -> None:
    shutil.rmtree(tiny_log / "IMG")
    with pytest.raises(DataError, match=r"6 image\(s\) do not exist, first: \S*/IMG/center_"):
        SimLogSource(tiny_log)


def test_unknown_variant_and_bit_width() -> None:
    _assert_one_clear_line(_train("model.variant=resnet"), "model.variant", "resnet")
    _assert_one_clear_line(_train("model.bits=12"), "model.bits", "12")
    _assert_one_clear_line(_train("optim.learning_rate=1"), "optim", "learning_rate")


def test_unreadable_images_are_skipped_and_counted(tiny_log, tmp_path) -> None:
    images = sorted((tiny_log / "IMG").glob("center_*.jpg"))
    images[2].write_bytes(b"\xff\xd8 not really a jpeg")
    images[4].write_bytes(b"")
    frames = build_cache(SimLogSource(tiny_log), Preprocessing(), tmp_path / "cache", progress=False)
    assert len(frames) == 4
    assert frames.meta["skipped"] == {"corrupt_image": 2}
    for image in images:
        image.write_bytes(b"")
    with pytest.raises(DataError, match="no readable frames"):
        build_cache(SimLogSource(tiny_log), Preprocessing(), tmp_path / "cache2", progress=False)
    assert not list((tmp_path / "cache2").glob("*.building")), "a failed build leaves nothing half-written"
