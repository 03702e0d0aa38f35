"""Replay: bag player -> steering node -> replay evaluator, each in its own process over real rclpy."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from checkpoints import random_checkpoint
from processes import finish, output, spawn
from ros_harness import ROOT
from rosbags.highlevel import AnyReader

from qattn_ros.core.units import VehicleGeometry
from qattn_ros.data.simlog import write_simlog
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.writers import write_udacity_bag
from qattn_ros.ros import replay
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.graph import ros_args

FRAMES = 40
RECORDED_TOPICS = {"/image", "/steering_angle", "/ground_truth/steering_angle", "/attention/map",
                   "/attention/overlay", "/cmd_vel"}  # fmt: skip


@pytest.fixture(scope="module")
def env() -> dict:
    return {**os.environ, "ROS_DOMAIN_ID": str(claim_domain_id())}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    # trained on a car with another steering ratio than the player's default 14.8: the ground truth must come back
    # in the recorded unit all the same
    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), vehicle=VehicleGeometry(16.0, 2.85))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    """A Udacity-layout ROS 1 bag and a ROS 2 mcap bag written by training/make_data.py."""
    folder = tmp_path_factory.mktemp("bags")
    ros1 = write_udacity_bag(folder / "HMB_1.bag", RoadGenerator(160, 320, seed=11), FRAMES)
    subprocess.run([sys.executable, str(ROOT / "training" / "make_data.py"), "--format", "ros2_bag", "--train", "0",
                    "--val", "0", "--test", str(FRAMES), "--out", str(folder / "made")], check=True,
                   capture_output=True)  # fmt: skip
    return {"ros1": str(ros1), "ros2_mcap": str(folder / "made" / "test")}


def _replay(source: str, checkpoint: str, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "qattn_ros.ros.replay", source, "--checkpoint", checkpoint, "--out", str(out),
               "--device", "cpu", "--steps", "10", *extra]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _rows(path: Path) -> dict[int, dict]:
    """The per-frame rows of a results file (its first line is its key, not a frame)."""
    return {row["frame"]: row for row in map(json.loads, path.read_text().splitlines()) if "key" not in row}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ros1", "ros2_mcap"])
def test_lockstep_replay_evaluates_every_frame_as_offline_evaluation(kind, sources, checkpoint, env, tmp_path) -> None:
    result = _replay(sources[kind], checkpoint, tmp_path / "replay", env)
    assert result.returncode == 0, result.stderr[-3000:]
    offline = subprocess.run(
        [sys.executable, str(ROOT / "evaluation" / "evaluate.py"), "--checkpoint", f"node={checkpoint}", "--data",
         sources[kind], "--methods", "attention,random", "--steps", "10", "--out", str(tmp_path / "offline"),
         "--device", "cpu", "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True)  # fmt: skip
    assert offline.returncode == 0, offline.stderr[-3000:]
    for method in ("attention", "random"):
        online, reference = (_rows(tmp_path / f / "node" / f"{method}.jsonl") for f in ("replay", "offline"))
        assert sorted(online) == sorted(reference) == list(range(FRAMES)), "every frame of the bag, once"
        # Equal but for float rounding: the evaluator groups 16 frames, evaluate.py 64, and a forward in another
        # batch may round a steering output (~0.1) one float32 step (~1.5e-8) apart: at most that much per AUC.
        for frame, row in reference.items():
            for key in ("deletion_auc", "insertion_auc", "prediction"):
                assert online[frame][key] == pytest.approx(row[key], rel=1e-6, abs=2e-8), (method, frame, key)
            assert online[frame]["target"] == pytest.approx(row["target"], rel=1e-6)
            assert online[frame]["published_wheel_angle"] == pytest.approx(row["prediction"] / 16.0, abs=1e-6)
    attention = np.array([r["deletion_auc"] for r in _rows(tmp_path / "replay/node/attention.jsonl").values()])
    assert attention.std() > 0, "the frames explain differently: a constant would pass by accident"
    summary = json.loads((tmp_path / "replay" / "replay.json").read_text())
    counts = summary["counts"]
    assert summary["complete"] and counts["received"] == counts["matched"] == counts["evaluated"] == FRAMES
    assert counts["unmatched"] == counts["steering_mismatch"] == 0
    results = json.loads((tmp_path / "replay" / "results.json").read_text())
    assert results["models"]["node"]["methods"]["attention"]["frames"] == FRAMES
    for name in ("table.md", "curves.png", "overlays.png"):
        assert (tmp_path / "replay" / name).stat().st_size > 0, name
    assert "## Replay (complete)" in (tmp_path / "replay" / "table.md").read_text()
    with AnyReader([Path(summary["recording"])]) as reader:
        counted = {c.topic: c.msgcount for c in reader.connections}
        assert set(counted) == RECORDED_TOPICS and set(counted.values()) == {FRAMES}, "each once: nothing re-sent"
        first = next(reader.messages(connections=[c for c in reader.connections if c.topic == "/attention/map"]))
        assert reader.deserialize(first[2], first[0].msgtype).encoding == "32FC1"


STARTUP_S = 300.0  # the players' and evaluators' startup_timeout here: generous, a loaded machine is slow to start


def _graph(
    sources,
    checkpoint,
    out: Path,
    env: dict,
    player: dict | None = None,
    evaluator: dict | None = None,
    source: str | None = None,
) -> list[subprocess.Popen]:
    """The three nodes as the launch file starts them (each its own process, qattn_replay's parameters)."""
    args = replay.parse_args([source or sources["ros1"], "--checkpoint", checkpoint, "--out", str(out), "--device",
                              "cpu"])  # fmt: skip
    nodes = replay.graph(args)
    # a loaded machine may take minutes to import torch in three processes: the graph's deadlines say when to give up
    nodes[0][1].update(progress=False, startup_timeout=STARTUP_S, **(player or {}))
    nodes[2][1].update(startup_timeout=STARTUP_S, **(evaluator or {}))
    return [spawn([sys.executable, "-m", module, *ros_args(params)], env=env) for (_, module, _), params in nodes]


def test_ctrl_c_under_launch_keeps_every_finished_frame_within_5_s_and_a_rerun_resumes(sources, checkpoint, env,
                                                                                        tmp_path) -> None:  # fmt: skip
    """ros2 launch on Ctrl-C: SIGINT to every node, SIGTERM 5 s later to those still running, SIGKILL 5 s after.
    The evaluator (default group of 32 frames, ~8 s of work) must write its whole report before the SIGTERM."""
    out = tmp_path / "replay"
    env = {**env, "ROS_DOMAIN_ID": str(claim_domain_id())}  # a node killed here must not haunt the next tests
    processes = _graph(sources, checkpoint, out, env)
    results = out / "node" / "attention.jsonl"
    end = time.monotonic() + 180
    while not (results.is_file() and results.read_text().count("\n") >= 5) and time.monotonic() < end:
        time.sleep(0.1)
    for process in processes:
        process.send_signal(signal.SIGINT)
    escalation = time.monotonic() + 5.0
    while processes[2].poll() is None and time.monotonic() < escalation:
        time.sleep(0.05)
    evaluator_done = processes[2].poll() is not None
    for signum, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 30.0)):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)
        deadline = time.monotonic() + wait
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.05)
    log = output(processes[2])
    assert evaluator_done and processes[2].returncode == 0, "stopped on purpose, not failed: " + log[-3000:]
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]
    assert "interrupted; the report holds what was evaluated" in log and "rerun to resume" in log
    summary = json.loads((out / "replay.json").read_text())
    kept = _rows(results)
    assert not summary["complete"] and summary["stopped"] == "interrupted"
    assert len(kept) >= 5 and summary["last_evaluated"]["frame"] == max(kept) == len(kept) - 1
    assert summary["counts"]["evaluated"] == len(kept), "every frame saved is counted, none saved is not"
    assert "## Replay (incomplete: interrupted)" in (out / "table.md").read_text()
    assert (out / "results.json").is_file() and (Path(summary["recording"]) / "metadata.yaml").is_file()

    rerun = _replay(sources["ros1"], checkpoint, out, env, "--steps", "50")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    lines = results.read_text().splitlines()
    assert len(lines) == 1 + FRAMES and sorted(_rows(results)) == list(range(FRAMES)), "the key, each frame once"
    assert all(_rows(results)[frame] == row for frame, row in kept.items()), "the first run's rows stay"
    summary = json.loads((out / "replay.json").read_text())
    assert summary["complete"] and summary["counts"]["resumed"] == len(kept)
    assert summary["counts"]["evaluated"] == FRAMES - len(kept)
    assert len(list((out / "recording").glob("run_*"))) == 2, "each run records beside the earlier one"
    recording = Path(summary["recording"])
    assert (recording / f"{recording.name}.mcap").is_file(), "under its final name"
    assert not [p.name for p in (out / "recording").rglob(".*")], "nothing hidden left by an orderly close"


def test_a_recording_killed_before_it_closed_is_removed_by_the_next_run_by_name(tmp_path) -> None:
    from qattn_ros.ros.recording import Recording

    killed = Recording(tmp_path, lambda topic: f"/{topic}")
    killed.write("steering_angle", b"\x00\x01\x00\x00" + bytes(60), 1)  # as it was when SIGKILL came: open
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".run_1.partial"], left
    recording = Recording(tmp_path, lambda topic: f"/{topic}")
    assert [p.name for p in recording.removed] == [".run_1.partial"]
    recording.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_1"], "the next run takes the free name"
    assert sorted(p.name for p in (tmp_path / "run_1").iterdir()) == ["metadata.yaml", "run_1.mcap"]


def _end_of(main: subprocess.Popen, processes: list[subprocess.Popen], timeout: float) -> int | str:
    """`main`'s exit status, or a line saying it still ran after `timeout` s (every process then writes its threads'
    stacks into its log: where it was stuck); every process is stopped after."""
    try:
        return main.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for process in processes:
            process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        return f"still running after {timeout} s"
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


@pytest.mark.slow
def test_held_frames_wait_past_the_answer_timeout(sources, checkpoint, env, tmp_path) -> None:
    """Back-pressure: a queue of 4 fills while a group of 4 frames x 100 steps takes longer than the player's 2 s
    answer timeout. Held frames are in: they wait for the evaluation, however slow, and nothing is re-sent."""
    processes = _graph(sources, checkpoint, tmp_path / "out", env, player={"answer_timeout": 2.0},
                       evaluator={"queue": 4, "group": 4, "steps": 100, "record": False})  # fmt: skip
    try:
        returncode = processes[2].wait(timeout=600)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    assert returncode == 0, "\n".join(output(p)[-2000:] for p in processes)
    summary = json.loads((tmp_path / "out" / "replay.json").read_text())
    assert summary["player"]["played"] == summary["counts"]["evaluated"] == FRAMES
    assert summary["player"]["held"] > 0, "the back-pressure path was taken"


def test_frames_sharing_a_stamp_and_a_frame_at_stamp_0_are_each_evaluated(checkpoint, env, tmp_path) -> None:
    """A simulator log without stamps in its file names (stamps from 0) played with two cameras: each stamp twice."""
    rows = 6
    csv = write_simlog(tmp_path / "log", RoadGenerator(160, 320, seed=4), rows, side_cameras=True)
    text = csv.read_text()
    for k, name in enumerate(sorted({n for n in text.replace("\n", ",").split(",") if n.startswith("IMG/")})):
        (csv.parent / name).rename(csv.parent / "IMG" / f"frame{k}.jpg")
        text = text.replace(name, f"IMG/frame{k}.jpg")
    csv.write_text(text)
    spec = json.dumps({"kind": "simlog", "path": str(csv), "cameras": ["center", "left"]})
    result = _replay(spec, checkpoint, tmp_path / "replay", env, "--no-record")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "replay" / "replay.json").read_text())
    assert summary["complete"] and summary["counts"]["evaluated"] == summary["counts"]["received"] == 2 * rows
    online = _rows(tmp_path / "replay" / "node" / "attention.jsonl")
    assert sorted(online) == list(range(2 * rows)), "each of the two frames of a stamp, stamp 0 included"
    offline = subprocess.run(
        [sys.executable, str(ROOT / "evaluation" / "evaluate.py"), "--checkpoint", f"node={checkpoint}", "--data", spec,
         "--methods", "attention", "--steps", "10", "--out", str(tmp_path / "offline"), "--device", "cpu",
         "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True)  # fmt: skip
    assert offline.returncode == 0, offline.stderr[-3000:]
    for frame, row in _rows(tmp_path / "offline" / "node" / "attention.jsonl").items():
        assert online[frame]["deletion_auc"] == pytest.approx(row["deletion_auc"], rel=1e-6, abs=2e-8), frame


def test_realtime_replay_of_a_stretch_accounts_for_every_frame(sources, checkpoint, env, tmp_path) -> None:
    """Real time, 0.5 s into the 20 Hz recording for 1 s: frames 10..30, every 4th evaluated, none lost silently."""
    result = _replay(sources["ros2_mcap"], checkpoint, tmp_path / "rt", env, "--mode", "realtime", "--every", "4",
                     "--start", "0.5", "--duration", "1.0")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "rt" / "replay.json").read_text())
    counts, player = summary["counts"], summary["player"]
    assert player["first_index"] == 10 and player["played"] == 21
    assert counts["received"] <= 21 and counts["matched"] + counts["unmatched"] == 21, "each frame once"
    assert counts["evaluated"] + counts["not_selected"] + counts["skipped_busy"] == counts["matched"]
    evaluated = _rows(tmp_path / "rt" / "node" / "attention.jsonl")
    assert evaluated and all(frame % 4 == 0 and 10 <= frame <= 30 for frame in evaluated)
    assert len(evaluated) == counts["evaluated"]


def test_a_node_that_is_not_running_times_out_and_says_so(sources, checkpoint, env, tmp_path) -> None:
    evaluator = spawn([sys.executable, "-m", "qattn_ros.ros.replay_evaluator",
                       *ros_args({"checkpoint": checkpoint, "out": str(tmp_path / "out"), "device": "cpu"})],
                      env=env)  # fmt: skip
    end = time.monotonic() + 300  # a loaded machine takes its time to import torch: wait for the event, not a guess
    while "evaluating" not in output(evaluator) and evaluator.poll() is None and time.monotonic() < end:
        time.sleep(0.1)
    assert evaluator.poll() is None, output(evaluator)
    player_params = {"source": sources["ros1"], "subscribers": 1, "startup_timeout": 5.0, "progress": False}
    player = spawn([sys.executable, "-m", "qattn_ros.ros.bag_player", *ros_args(player_params)], env=env)
    player_err = finish(player, 300)
    evaluator_err = finish(evaluator, 60)  # it sees the player's status go: 2 s, plus its loop
    assert player.returncode == 1 and evaluator.returncode == 1
    assert "Traceback" not in player_err + evaluator_err
    last = player_err.strip().splitlines()[-1]
    assert "the graph is not up after 5.0 s" in last and "no publisher on steering_angle" in last, last
    assert "is qattn_steering running" in last and "replay evaluator" not in last, "the evaluator was there"
    summary = json.loads((tmp_path / "out" / "replay.json").read_text())
    assert not summary["complete"] and summary["stopped"].startswith("player failed: the graph is not up")
    assert summary["counts"]["received"] == 0


def test_an_evaluator_that_never_meets_a_player_ends_with_its_report(checkpoint, env, tmp_path) -> None:
    """Nothing plays (a player that failed before this evaluator was up): ended after startup_timeout, one line."""
    params = {"checkpoint": checkpoint, "out": str(tmp_path / "out"), "device": "cpu", "startup_timeout": 3.0}
    evaluator = spawn([sys.executable, "-m", "qattn_ros.ros.replay_evaluator", *ros_args(params)], env=env)
    log = finish(evaluator, 300)
    assert evaluator.returncode == 1 and "Traceback" not in log, log
    assert "no bag player and no camera frame within startup_timeout=3.0 s" in log.strip().splitlines()[-1], log
    assert json.loads((tmp_path / "out" / "replay.json").read_text())["counts"]["received"] == 0


def test_bad_bags_are_refused_naming_the_problem(sources, tmp_path, env) -> None:
    cut = tmp_path / "cut.bag"
    data = Path(sources["ros1"]).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    cases = [
        ({"source": str(cut)}, ["cut.bag: cannot read bag", "reindex"]),
        ({"source": sources["ros2_mcap"], "bag_camera_topic": "/front/image"},
         ["no topic /front/image", "the bag has: /camera/image_raw/compressed, /steering"]),
        ({"source": str(tmp_path / "nowhere.bag")}, ["bag not found", "nowhere.bag"]),
        ({"source": sources["ros1"], "mode": "fast"}, ["mode='fast'", "lockstep, realtime"]),
        ({"source": sources["ros1"], "answer_timeout": 0.0}, ["answer_timeout", "must be > 0"]),
    ]  # fmt: skip
    for params, needles in cases:
        command = [sys.executable, "-m", "qattn_ros.ros.bag_player", "--ros-args"]
        for key, value in params.items():
            command += ["-p", f"{key}:={value}"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("qattn_bag_player: ") and all(n in last for n in needles), last


@pytest.mark.slow
def test_frames_lost_for_good_end_the_replay_within_its_deadlines_with_the_report_and_why(sources, checkpoint, env,
                                                                                         tmp_path) -> None:  # fmt: skip
    """The steering node SIGKILLed mid-replay: the frame in flight is never answered. The player gives up within
    answer_timeout (or on seeing the node gone), the evaluator ends on the player's end, and the report keeps
    every frame evaluated before, each process saying why in its last line."""
    answer_timeout = 4.0
    slow_evaluator = {"queue": 2, "group": 1, "steps": 40, "record": False}
    processes = _graph(
        sources, checkpoint, tmp_path / "out", env, player={"answer_timeout": answer_timeout}, evaluator=slow_evaluator
    )
    player, node, evaluator = processes
    rows = tmp_path / "out" / "node" / "attention.jsonl"
    end = time.monotonic() + 2 * STARTUP_S
    while (not rows.is_file() or len(_rows(rows)) < 2) and evaluator.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    node.kill()
    killed_at = time.monotonic()
    returncode = _end_of(evaluator, processes, 120)  # the deadlines: answer_timeout + the player's end + the queue
    logs = "\n".join(f"--- {name}\n{output(p)[-2000:]}" for name, p in zip(("player", "node", "evaluator"), processes))
    assert returncode == 1, logs
    assert player.returncode == 1, logs
    player_said = output(player).strip().splitlines()[-1]
    assert "was not answered" in player_said or "qattn_steering has left the graph" in player_said, logs
    evaluator_said = output(evaluator).strip().splitlines()[-1]
    assert "player failed" in evaluator_said and "the report holds what was evaluated" in evaluator_said, logs
    summary = json.loads((tmp_path / "out" / "replay.json").read_text())
    assert not summary["complete"] and summary["stopped"].startswith("player failed")
    assert 2 <= summary["counts"]["evaluated"] < FRAMES, summary["counts"]
    assert len(_rows(rows)) == summary["counts"]["evaluated"], "every frame evaluated before the loss is kept"
    print(f"ended {time.monotonic() - killed_at:.1f} s after the kill")


def test_a_node_running_another_checkpoint_is_caught(sources, checkpoint, env, tmp_path) -> None:
    """The evaluator checks each published steering against its own model's prediction for that frame."""
    other_path = random_checkpoint(tmp_path, seed=1, vehicle=VehicleGeometry(16.0, 2.85))
    graph = [("bag_player", {"source": sources["ros1"], "progress": False, "startup_timeout": STARTUP_S}),
             ("steering_node", {"checkpoint": other_path, "device": "cpu", "reliability": "reliable"}),
             ("replay_evaluator", {"checkpoint": checkpoint, "out": str(tmp_path / "out"), "device": "cpu", "steps": 2,
                                   "floor": False, "record": False, "startup_timeout": STARTUP_S})]  # fmt: skip
    processes = [spawn([sys.executable, "-m", f"qattn_ros.ros.{module}", *ros_args(params)], env=env)
                 for module, params in graph]  # fmt: skip
    # the graph's own deadlines end it (startup, answers, a player gone): this only catches a graph that hangs
    returncode = _end_of(processes[2], processes, 2 * STARTUP_S)
    assert returncode == 0, "\n".join(f"--- {m}\n{output(p)[-2000:]}" for (m, _), p in zip(graph, processes))
    counts = json.loads((tmp_path / "out" / "replay.json").read_text())["counts"]
    assert counts["evaluated"] == counts["steering_mismatch"] == FRAMES and counts["max_steering_diff"] > 1e-3
    assert "40 over 1e-05" in (tmp_path / "out" / "table.md").read_text()


def test_no_node_outlives_a_killed_launcher(sources, checkpoint, env, tmp_path) -> None:
    """qattn_replay SIGKILLed (no chance to clean up): its nodes get SIGTERM from the kernel and exit."""
    process = subprocess.Popen([sys.executable, "-m", "qattn_ros.ros.replay", sources["ros1"], "--checkpoint",
                                checkpoint, "--out", str(tmp_path / "out"), "--device", "cpu", "--steps", "50"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    end, children = time.monotonic() + 120, []
    while len(children) < 3 and process.poll() is None and time.monotonic() < end:
        time.sleep(0.1)
        children = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                                       text=True).stdout.split()]  # fmt: skip
    assert len(children) == 3, children
    process.kill()
    process.wait()
    end = time.monotonic() + 30
    alive = children
    while alive and time.monotonic() < end:
        time.sleep(0.2)
        alive = [pid for pid in children if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert not alive, f"still running: {alive}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"
