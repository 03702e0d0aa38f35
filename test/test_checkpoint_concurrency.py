"""A checkpoint loaded while another process saves it; a run stopped between the two renames of its first save;
the temporaries of killed writers removed, a live writer's kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import small_train_overrides
from safetensors.torch import load_file

from qattn_ros.core.errors import CheckpointError
from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, checkpoint_paths, load_checkpoint, save_checkpoint

# Saves `path` over and over, the weights of save k all equal to k and k recorded in the sidecar's metrics, k
# cycling 1..5, until the file `stop` exists. Prints "saved" after the first save. Without fsync (what is tested
# is the reader, not a power cut), so that the saves come often and the loads meet them.
SAVER = r"""
import os, sys
from pathlib import Path
os.fsync = lambda descriptor: None
import torch
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.core.preprocess import Preprocessing

path, stop = sys.argv[1], Path(sys.argv[2])
model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
saves = 0
while not stop.exists():
    k = saves % 5 + 1
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.fill_(k)
    info = CheckpointInfo(model.config, Preprocessing(), "steering_wheel_rad", True, metrics={"k": k})
    save_checkpoint(path, model, info)
    saves += 1
    if saves == 1:
        print("saved", flush=True)
print(saves, flush=True)
"""


def test_loads_while_another_process_saves_always_get_one_whole_save(tmp_path) -> None:
    path, stop = tmp_path / "ckpt", tmp_path / "stop"
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        assert saver.stdout.readline().strip() == "saved", "the saver did not save"
        failures, seen = [], []
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            try:
                model, info = load_checkpoint(path)
            except CheckpointError as error:
                failures.append(str(error))
                continue
            values = torch.cat([t.flatten().double() for t in model.state_dict().values()])
            k = info.metrics["k"]
            assert k in (1, 2, 3, 4, 5) and torch.all(values == k), (k, values.unique()[:10])
            seen.append(k)
    finally:
        stop.touch()
        out, _ = saver.communicate(timeout=60)
    assert saver.returncode == 0
    saves = int(out.split()[-1])
    assert failures == [], f"{len(failures)} of {len(failures) + len(seen)} loads failed: {failures[:3]}"
    assert len(seen) >= 5 and len(set(seen)) >= 2 and saves >= 10, (seen, saves)  # the loads did meet saves


def _saved(path: Path, value: float, k: int = 0) -> None:
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.fill_(value)
    save_checkpoint(path, model, CheckpointInfo(model.config, Preprocessing(), "steering_wheel_rad", True,
                                                metrics={"k": k}))  # fmt: skip


def test_a_save_landing_between_the_reads_of_the_weights_and_the_sidecar_is_read_again(tmp_path, monkeypatch):
    """The interleaving the loop above meets by chance, made to happen: the whole next save lands right after the
    load read the weights of the previous one."""
    _saved(tmp_path / "ckpt", 1.0, k=1)
    weights, _ = checkpoint_paths(tmp_path / "ckpt")
    real_read_bytes, landed = Path.read_bytes, []

    def read_bytes(self):
        data = real_read_bytes(self)
        if self == weights and not landed:
            landed.append(True)
            _saved(tmp_path / "ckpt", 2.0, k=2)
        return data

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    model, info = load_checkpoint(tmp_path / "ckpt")
    assert landed, "the load read the weights otherwise: the save did not land in between"
    values = torch.cat([t.flatten().double() for t in model.state_dict().values()])
    assert info.metrics == {"k": 2} and torch.all(values == 2.0)


def test_a_flipped_byte_in_the_weights_is_still_refused_by_name_at_once(tmp_path) -> None:
    _saved(tmp_path / "ckpt", 1.0)
    weights, _ = checkpoint_paths(tmp_path / "ckpt")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"ckpt\.safetensors: SHA-256 does not match ckpt\.json"):
        load_checkpoint(tmp_path / "ckpt")
    assert time.monotonic() - start < 1.0, "nothing changed the files: refused at the first read, not retried"


class _Stopped(BaseException):
    """The process stops here (nothing of it runs after this)."""


def test_a_run_stopped_between_the_renames_of_its_first_last_save_resumes_after_epoch_1(tmp_path, monkeypatch):
    from qattn_ros.data.simlog import write_simlog
    from qattn_ros.data.synthetic import RoadGenerator
    from qattn_ros.fit.config import load_train_config
    from qattn_ros.fit.trainer import Trainer

    logs = {"train": tmp_path / "train", "val": tmp_path / "val"}
    write_simlog(logs["train"], RoadGenerator(160, 320, seed=21), 160)
    write_simlog(logs["val"], RoadGenerator(160, 320, seed=22), 40)
    out = tmp_path / "run"
    overrides = small_train_overrides(logs, out, tmp_path / "cache")
    overrides += ["model.variant=kim_canny", "optim.batch_size=16", "optim.max_steps_per_epoch=2"]
    real_replace = os.replace

    def replace(src, dst):  # the second rename of the `last` save: the pending sidecar over last.json
        if Path(dst) == out / "last.json":
            raise _Stopped
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Stopped):
        Trainer(load_train_config(None, overrides + ["optim.epochs=1"])).fit()
    monkeypatch.setattr(os, "replace", real_replace)
    # what the crash leaves: the weights of epoch 1 committed, their sidecar still pending, no last.json
    assert (out / "last.safetensors").is_file() and (out / "last.json.pending").is_file()
    assert not (out / "last.json").exists()
    assert json.loads((out / "last.json.pending").read_text())["training"]["epoch"] == 1
    saved = load_file(str(out / "last.safetensors"))
    left = _leftovers_of_a_killed_writer(out)
    resumed = Trainer(load_train_config(None, overrides + ["optim.epochs=2"]))
    assert (resumed.epoch, resumed.step) == (1, 2), "epoch 1 is not trained again"
    kept = resumed.kept.state_dict()
    assert set(kept) == set(saved) and all(torch.equal(kept[k].cpu(), saved[k]) for k in saved)
    assert not left & set(os.listdir(out)), "the trainer removes what killed writers left in its output folder"


# Makes a temporary file (temp_beside) and a temporary folder (atomic_folder) in `folder`, as a save or a cache
# build does, and is SIGKILLed inside both: what a killed writer leaves.
KILLED_WRITER = r"""
import os, signal, sys
from pathlib import Path
from qattn_ros.core.atomic import atomic_folder, temp_beside

folder = Path(sys.argv[1])
with temp_beside(folder / "ckpt.safetensors") as tmp, atomic_folder(folder / "entry") as entry:
    tmp.write_bytes(b"half a checkpoint")
    entry.mkdir()
    (entry / "images.npy").write_bytes(b"half an entry")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _leftovers_of_a_killed_writer(folder: Path) -> set[str]:
    before = set(os.listdir(folder))
    writer = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(folder)], capture_output=True, timeout=60)
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    left = set(os.listdir(folder)) - before
    assert len(left) == 2 and all(name.startswith(".") for name in left), left  # a file and a folder
    return left


def test_the_janitor_removes_dead_writers_temporaries_only(tmp_path) -> None:
    from qattn_ros.core.atomic import HOST, remove_leftovers, temp_beside

    folder = tmp_path / "out"
    folder.mkdir()
    dead = _leftovers_of_a_killed_writer(folder)
    others = {"ckpt.safetensors", "ckpt.json", "ckpt.json.pending", "notes.tmp", ".hidden", ".x.1234abcd.tmp.json"}
    for name in others:  # not a temporary of a known writer (the last: one that names no writer)
        (folder / name).write_text("keep")
    elsewhere = next(iter(dead)).replace(f"-{HOST}.", "-000000." if HOST != "000000" else "-111111.")
    (folder / elsewhere).write_text("a writer on another machine sharing the folder: its pid cannot be asked here")
    others.add(elsewhere)
    with temp_beside(folder / "best.safetensors") as live:  # this process writes it now
        live.write_bytes(b"being written")
        removed = remove_leftovers(folder)
        assert live.is_file(), "a live writer's temporary was removed"
    assert {p.name for p in removed} == dead
    assert set(os.listdir(folder)) == others


def test_a_save_removes_what_killed_writers_left_in_its_folder(tmp_path) -> None:
    _leftovers_of_a_killed_writer(tmp_path)
    _saved(tmp_path / "ckpt", 2.0)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.json", "ckpt.safetensors"]
