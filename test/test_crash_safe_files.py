"""Nothing lost: a process killed at any point of a write leaves the old file or the new one, and a file torn
by a crash is refused by name and computed again."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qattn_ros.core.errors import CheckpointError
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import checkpoint_paths, load_checkpoint, read_info

# Saves the checkpoint of seed 1, then the one of seed 2 over it with every os.replace / os.rename / os.fsync
# and the safetensors write counted; call number KILL_AT is not made: the process SIGKILLs itself instead (a
# safetensors write is first left half-written). Prints the number of calls when it is not killed.
CHILD = r"""
import os, signal, sys
from pathlib import Path
import torch
import qattn_ros.model.checkpoint as checkpoint
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.core.preprocess import Preprocessing

path, kill_at = sys.argv[1], int(sys.argv[2])

def model(seed):
    torch.manual_seed(seed)
    return SteeringNet(ModelConfig(variant="kim_canny")).eval()

info = checkpoint.CheckpointInfo(ModelConfig(variant="kim_canny"), Preprocessing(), "steering_wheel_rad", True)
checkpoint.save_checkpoint(path, model(1), info)
calls = 0

def counted(real, tear=False):
    def call(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            if tear:
                real(*args, **kwargs)
                written = Path(args[1])
                written.write_bytes(written.read_bytes()[: written.stat().st_size // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call

for name in ("replace", "rename", "fsync"):
    setattr(os, name, counted(getattr(os, name)))
checkpoint.save_file = counted(checkpoint.save_file, tear=True)
checkpoint.save_checkpoint(path, model(2), info)
print(calls)
"""


def _child(path: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(path), str(kill_at)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _weights(seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return _flat(SteeringNet(ModelConfig(variant="kim_canny")))


def test_a_save_killed_at_any_point_leaves_the_old_or_the_new_checkpoint_loadable(tmp_path) -> None:
    whole = _child(tmp_path / "whole" / "model", 0)
    assert whole.returncode == 0, whole.stderr
    points = int(whole.stdout.split()[-1])
    assert points >= 2  # at least a write and a rename to be killed at
    old, new = _weights(1), _weights(2)
    assert not torch.equal(old, new)
    found = []
    for kill_at in range(1, points + 1):
        path = tmp_path / f"kill_{kill_at}" / "model"
        killed = _child(path, kill_at)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        model, _ = load_checkpoint(path)  # never "SHA-256 does not match"
        loaded = _flat(model)
        assert torch.equal(loaded, old) or torch.equal(loaded, new), f"killed at call {kill_at}: neither checkpoint"
        found.append("new" if torch.equal(loaded, new) else "old")
    # before the commit the old checkpoint, after it the new one; nothing in between
    assert found == sorted(found, key=["old", "new"].index) and found[0] == "old" and found[-1] == "new", found
    for kill_at in range(1, points + 1):  # the sidecar alone names the weights that load
        path = tmp_path / f"kill_{kill_at}" / "model"
        assert read_info(path).sha256 == load_checkpoint(path)[1].sha256
    # killed while writing the weights: the half-written temporary file is never taken for a checkpoint
    (leftover,) = [p for p in (tmp_path / "kill_1").iterdir() if p.name.startswith(".")]
    with pytest.raises(CheckpointError, match="did not finish"):
        load_checkpoint(leftover)


def test_the_next_save_after_a_killed_one_commits_normally(tmp_path) -> None:
    killed = _child(tmp_path / "model", 2)
    assert killed.returncode == -signal.SIGKILL
    from qattn_ros.core.preprocess import Preprocessing
    from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint

    torch.manual_seed(3)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    info = CheckpointInfo(model.config, Preprocessing(), "steering_wheel_rad", True)
    save_checkpoint(tmp_path / "model", model, info)
    loaded, _ = load_checkpoint(tmp_path / "model")
    assert torch.equal(_flat(loaded), _weights(3))
    weights, sidecar = checkpoint_paths(tmp_path / "model")
    assert not sidecar.with_name(sidecar.name + ".pending").exists()


def test_a_torn_json_result_is_refused_by_name(tmp_path) -> None:
    from qattn_ros.core.atomic import TornFileWarning, read_json, write_json

    path = write_json(tmp_path / "result.json", {"a": [1, 2, 3]})
    assert read_json(path) == {"a": [1, 2, 3]}
    path.write_bytes(path.read_bytes()[:7])
    with pytest.warns(TornFileWarning, match="result.json"):
        assert read_json(path) is None


def _tear(path: Path) -> None:
    """What a writer killed halfway leaves: the first half of the file."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("torn", ["meta.json", "images.npy", "steering.npy"])
def test_a_torn_cache_entry_is_refused_by_name_and_built_again(tmp_path, torn) -> None:
    from qattn_ros.core.atomic import TornFileWarning
    from qattn_ros.core.preprocess import Preprocessing
    from qattn_ros.data.cache import build_cache, cache_key
    from qattn_ros.data.simlog import SimLogSource, write_simlog
    from qattn_ros.data.synthetic import RoadGenerator

    write_simlog(tmp_path / "log", RoadGenerator(160, 320, seed=5), 12)
    source, preprocessing = SimLogSource(tmp_path / "log"), Preprocessing()
    built = build_cache(source, preprocessing, tmp_path / "cache", progress=False)
    images, steering = np.array(built.images), np.array(built.steering)
    del built
    _tear(tmp_path / "cache" / cache_key(source, preprocessing) / torn)
    with pytest.warns(TornFileWarning, match=torn):
        again = build_cache(source, preprocessing, tmp_path / "cache", progress=False)
    assert np.array_equal(again.images, images) and np.array_equal(again.steering, steering)


def test_a_torn_drive_of_the_sweep_is_refused_by_name_and_driven_again(tmp_path) -> None:
    from qattn_ros.core.atomic import TornFileWarning
    from qattn_ros.sim.sweep import run_sweep

    result = run_sweep({}, ["steering_delay"], tracks=1, length_m=60.0, cache=tmp_path / "drives")
    stored = sorted((tmp_path / "drives").iterdir())
    _tear(stored[0])
    with pytest.warns(TornFileWarning, match=stored[0].name):
        again = run_sweep({}, ["steering_delay"], tracks=1, length_m=60.0, cache=tmp_path / "drives")
    assert again.sweep == result.sweep and again.cached == len(stored) - 1


def test_a_torn_sanity_result_is_refused_by_name_and_computed_again(tmp_path) -> None:
    from qattn_ros.core.atomic import TornFileWarning
    from qattn_ros.core.preprocess import Preprocessing
    from qattn_ros.explain.engine import EvalSettings, sanity_method
    from qattn_ros.inference.predictor import Frames, SteeringPredictor
    from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint

    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    save_checkpoint(tmp_path / "m", model, CheckpointInfo(model.config, Preprocessing(), "steering_wheel_rad", True))
    predictor = SteeringPredictor(tmp_path / "m", "cpu")
    rng = np.random.default_rng(0)
    frames = Frames(rng.integers(0, 255, (3, 80, 160, 3), dtype=np.uint8), np.zeros(3, np.float32), None)
    out = tmp_path / "attention.sanity.json"
    settings = EvalSettings(sanity_frames=2)
    sanity_method(predictor, "attention", frames, out, settings)
    whole = out.read_text()
    _tear(out)
    with pytest.warns(TornFileWarning, match=out.name):
        sanity_method(predictor, "attention", frames, out, settings)
    assert out.read_text() == whole


@pytest.fixture
def disk_calls(monkeypatch) -> list[tuple]:
    """Every os.fsync (by the path its descriptor names) and os.replace of this process, in order."""
    import os

    calls: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(src, dst) -> None:
        calls.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_a_file_is_fsynced_renamed_and_then_its_folder_fsynced(tmp_path, disk_calls) -> None:
    """The order a power cut needs (the module's promise): the data on the disk, the rename, the rename on the disk."""
    from qattn_ros.core.atomic import write_json

    folder = tmp_path.resolve() / "out"
    write_json(folder / "result.json", {"a": 1})
    tmp = disk_calls[1][1]
    assert Path(tmp).parent == folder and tmp != str(folder / "result.json")
    assert disk_calls == [("fsync", tmp), ("replace", tmp, str(folder / "result.json")), ("fsync", str(folder))]


def test_a_folder_is_put_in_place_and_then_its_parent_fsynced(tmp_path, disk_calls) -> None:
    from qattn_ros.core.atomic import atomic_folder

    parent = tmp_path.resolve()
    with atomic_folder(parent / "entry") as building:
        building.mkdir()
        (building / "a.npy").write_bytes(b"a")
    replaced = [i for i, call in enumerate(disk_calls) if call[0] == "replace"]
    assert len(replaced) == 1 and disk_calls[replaced[0]][2] == str(parent / "entry")
    assert ("fsync", disk_calls[replaced[0]][1] + "/a.npy") in disk_calls[: replaced[0]], "its files first"
    assert disk_calls[replaced[0] + 1 :] == [("fsync", str(parent))]


class _DiskFull(Exception):
    pass


def _rows_then_a_failure():
    yield [1, 2]
    raise _DiskFull


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    from qattn_ros.core.atomic import atomic_path, write_csv

    write_csv(tmp_path / "table.csv", ["a", "b"], [[0, 0]])
    old = (tmp_path / "table.csv").read_text()
    with pytest.raises(_DiskFull):
        write_csv(tmp_path / "table.csv", ["a", "b"], _rows_then_a_failure())
    with pytest.raises(_DiskFull), atomic_path(tmp_path / "blob.bin") as tmp:
        tmp.write_bytes(b"half a blob")
        raise _DiskFull
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"], "no temporary left, no blob"
    assert (tmp_path / "table.csv").read_text() == old
