"""Bad input ends with one clear line naming the file or key, never a traceback."""

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from qattn_ros.core.errors import DataError
from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.data.cache import build_cache
from qattn_ros.data.simlog import SimLogSource, write_simlog
from qattn_ros.data.synthetic import RoadGenerator


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
    assert not list((tmp_path / "cache2").iterdir()), "a failed build leaves nothing half-written"


def test_a_cache_build_killed_midway_is_rebuilt_whole(tmp_path) -> None:
    """SIGKILL while the cache is written: the half-built entry is never used, the next build completes it."""
    write_simlog(tmp_path / "log", RoadGenerator(160, 320, seed=4), 400)
    cache = tmp_path / "cache"
    script = (
        "from qattn_ros.data.cache import build_cache; from qattn_ros.data.simlog import SimLogSource;"
        "from qattn_ros.core.preprocess import Preprocessing;"
        f"build_cache(SimLogSource({str(tmp_path / 'log')!r}), Preprocessing(), {str(cache)!r}, progress=False)"
    )
    builder = subprocess.Popen([sys.executable, "-c", script])

    def first_frame_written() -> bool:  # the memmap is shared: its first frame is non-zero once written
        images = list(cache.glob(".*.tmp/*/images.npy"))  # built in a hidden folder, renamed when whole
        try:
            return bool(images) and bool(np.load(images[0], mmap_mode="r")[0].any())
        except (ValueError, OSError):  # the header is not complete yet
            return False

    end = time.monotonic() + 600  # a cap, not a guess: a loaded machine takes minutes to import torch
    while builder.poll() is None and time.monotonic() < end and not first_frame_written():
        time.sleep(0.005)  # polling only: the condition decides
    assert first_frame_written(), "no frame written within 600 s" if builder.poll() is None else "the build ended"
    assert builder.poll() is None, "the build was still running when killed"
    builder.send_signal(signal.SIGKILL)
    builder.wait(timeout=30)
    assert list(cache.glob(".*.tmp")) and not [p for p in cache.iterdir() if not p.name.startswith(".")]
    frames = build_cache(SimLogSource(tmp_path / "log"), Preprocessing(), cache, progress=False)
    assert len(frames) == 400 and [p for p in cache.iterdir() if not p.name.startswith(".")]
    fresh = build_cache(SimLogSource(tmp_path / "log"), Preprocessing(), tmp_path / "fresh", progress=False)
    assert np.array_equal(frames.images, fresh.images) and np.array_equal(frames.steering, fresh.steering)
