"""A real `colcon build` of this package into a fresh workspace, and an installed executable started from it.

The executable runs under the first python3 on PATH (here the venv's, which has torch), as it does from a
sourced workspace with a venv activated.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import ROOT

from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.ros.dds_domain import claim_domain_id

PACKAGE_FILES = ("package.xml", "setup.py", "setup.cfg", "resource", "qattn_ros", "launch", "config")


def test_colcon_build_installs_the_ros_layout_and_the_node_runs(tmp_path) -> None:
    source = tmp_path / "ws" / "src" / "qattn_ros"
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    build = subprocess.run(["colcon", "build", "--base-paths", "src"], cwd=tmp_path / "ws", env=env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = tmp_path / "ws" / "install" / "qattn_ros"
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "qattn_ros").is_file()
    share = install / "share" / "qattn_ros"
    assert (share / "package.xml").is_file()
    for launch_file in (ROOT / "launch").glob("*.launch.py"):
        assert (share / "launch" / launch_file.name).is_file(), launch_file.name
    for config in ("steering_node.yaml", "attention.rviz", "models/quant_sign.yaml", "train/synthetic.yaml"):
        assert (share / "config" / config).is_file(), config
    executables = {
        "qattn_steering",
        "qattn_camera",
        "qattn_bag_player",
        "qattn_replay_evaluator",
        "qattn_simulator",
        "qattn_replay",
        "qattn_sim",
        "qattn_export",
    }
    executables |= {"steering_node", "camera_publisher", "bag_player", "replay_evaluator", "simulator"}  # aliases
    assert executables <= {p.name for p in (install / "lib" / "qattn_ros").iterdir()}
    for name in executables:  # not the interpreter that ran colcon: whichever python3 (a venv's, with torch) is on PATH
        first_line = (install / "lib" / "qattn_ros" / name).read_text().splitlines()[0]
        assert first_line == "#!/usr/bin/env python3", (name, first_line)

    site = next((install / "lib").glob("python3*/site-packages"))
    run_env = {**env, "PYTHONPATH": str(site), "ROS_DOMAIN_ID": str(claim_domain_id()), "PYTHONUNBUFFERED": "1"}
    where = subprocess.run([sys.executable, "-c", "import qattn_ros; print(qattn_ros.__file__)"], env=run_env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert where.stdout.strip().startswith(str(site)), "the installed copy is the one that runs"

    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    checkpoint = save_checkpoint(
        tmp_path / "model", model, CheckpointInfo(model.config, Preprocessing(), "wheel_rad", True)
    )
    node = subprocess.Popen([str(install / "lib" / "qattn_ros" / "qattn_steering"), "--ros-args", "-p",
                             f"checkpoint:={checkpoint}", "-p", "device:=cpu"], env=run_env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    output = []
    end = time.monotonic() + 60
    while time.monotonic() < end and node.poll() is None:
        line = node.stdout.readline()
        output.append(line)
        if "active: commanding" in line:
            break
    node.send_signal(2)  # SIGINT
    rest, _ = node.communicate(timeout=30)
    log = "".join(output) + rest
    assert "active: commanding from /image" in log and node.returncode == 0, log
