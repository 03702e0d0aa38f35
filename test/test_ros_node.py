"""The steering node in its own process, driven over real rclpy / Fast DDS from this one."""

import math
import re
import time

import numpy as np
import pytest
import rclpy
import torch
import yaml
from processes import finish
from ros_harness import (
    BEST_EFFORT,
    ROOT,
    Harness,
    compressed_message,
    raw_message,
    start_process,
    stop_process,
)
from sensor_msgs.msg import CompressedImage, Image

from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.messages import steering_value
from qattn_ros.ros.steering_node import DEFAULTS

NODE = "qattn_ros.ros.steering_node"
OUTPUTS = ("cmd_vel", "steering_angle", "attention/overlay", "attention/map")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="quant_sign")).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    model.target_std.fill_(0.1)
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="sim_normalized",
                          positive_is_left=False)  # fmt: skip
    path = tmp_path_factory.mktemp("ckpt") / "model"
    save_checkpoint(path, model, info)
    return str(path) + ".safetensors"


@pytest.fixture(scope="module")
def ros():
    """(best-effort harness, reliable harness, domain id)."""
    domain = claim_domain_id()
    rclpy.init(domain_id=domain)
    harnesses = Harness("best_effort"), Harness("reliable", reliable=True)
    yield *harnesses, domain
    for harness in harnesses:
        harness.node.destroy_node()
    rclpy.shutdown()


@pytest.fixture(scope="module")
def frames():
    generator = RoadGenerator(120, 160, seed=5)
    return [generator.frame(i).image for i in range(4)]


def _expected(checkpoint, rgb):
    return SteeringPredictor(checkpoint, "cpu").predict(rgb)


def _check_outputs(outputs, checkpoint, rgb) -> None:
    """This frame's outputs equal the offline prediction."""
    assert outputs is not None, "no output arrived"
    cmd = outputs["cmd_vel"][0]
    assert cmd.header.frame_id == "base_link"
    expected = _expected(checkpoint, rgb)
    speed = cmd.twist.linear.x
    assert cmd.twist.angular.z == pytest.approx(speed * math.tan(expected.wheel_angle) / 2.85, abs=1e-5)
    steering = outputs["steering_angle"][0]  # stamped with this frame's header
    assert steering.header.frame_id == "camera"
    assert steering_value(steering) == pytest.approx(expected.wheel_angle, abs=1e-5)
    over = outputs["attention/overlay"][0]  # a frame re-sent before the first answer may answer twice
    assert (over.encoding, over.height, over.width) == ("bgr8", rgb.shape[0], rgb.shape[1])
    assert over.header.frame_id == "camera"
    amap = outputs["attention/map"][0]
    assert (amap.encoding, amap.height, amap.width) == ("32FC1", 10, 20)
    alpha = np.frombuffer(bytes(amap.data), np.float32).reshape(10, 20)
    assert np.allclose(alpha, expected.attention, atol=1e-6) and abs(alpha.sum() - 1) < 1e-4
    bgr = np.frombuffer(bytes(over.data), np.uint8).reshape(rgb.shape)
    # outside what the model saw (the 4:3 frame cropped to the trained 2:1, then the sky rows) no attention: the frame
    top, bottom, left, right = SteeringPredictor(checkpoint, "cpu").model_box(*rgb.shape[:2])
    assert (top, bottom, left, right) == (round(rgb.shape[0] / 2 - rgb.shape[1] / 4) + round(0.3 * rgb.shape[1] / 2),
                                          round(rgb.shape[0] / 2 + rgb.shape[1] / 4), 0, rgb.shape[1])  # fmt: skip
    outside = np.ones(rgb.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert np.array_equal(bgr[outside], rgb[..., ::-1][outside])
    assert not np.array_equal(bgr[top:bottom], rgb[top:bottom, :, ::-1])


def test_raw_node_every_encoding_runtime_parameters_and_bad_frames(checkpoint, ros, frames) -> None:
    _, harness, domain = ros  # reliable, so that each bad frame arrives exactly once
    # device=cpu: the outputs are compared with CPU predictions (a GPU would differ by float noise)
    process = start_process(NODE, {"checkpoint": checkpoint, "reliability": "reliable", "device": "cpu"}, domain)
    try:
        for index, encoding in enumerate(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]):
            rgb = frames[index % len(frames)]
            msg = raw_message(rgb, encoding)
            gray = np.frombuffer(raw_message(rgb, "mono8").data, np.uint8).reshape(rgb.shape[:2])
            seen = np.repeat(gray[..., None], 3, axis=2) if encoding == "mono8" else rgb
            outputs = harness.send(msg, wait_for=OUTPUTS)
            _check_outputs(outputs, checkpoint, seen)
            assert outputs["cmd_vel"][0].twist.linear.x == pytest.approx(2.0)
        # the camera size changes and changes back: the node's reused overlay buffer follows it
        for rgb in (np.ascontiguousarray(np.repeat(np.repeat(frames[1], 2, axis=0), 2, axis=1)), frames[2]):
            msg = raw_message(rgb, "rgb8")
            outputs = harness.send(msg, wait_for=OUTPUTS)
            _check_outputs(outputs, checkpoint, rgb)

        # runtime parameters take effect while frames stream; bad values are refused
        assert harness.set_parameter("cruise_speed", 5.0)
        assert not harness.set_parameter("overlay_alpha", 2.0)
        assert not harness.set_parameter("colormap", "foo"), "a choice is checked at runtime as at start-up"
        assert harness.set_parameter("colormap", "hot")
        assert not harness.set_parameter("checkpoint", "other.safetensors"), "read-only"
        outputs = harness.send(raw_message(frames[0], "rgb8"))
        assert outputs["cmd_vel"][0].twist.linear.x == pytest.approx(5.0)
        assert harness.set_parameter("overlay_alpha", 0.0)  # no heat at all: the overlay is the camera frame
        outputs = harness.send(raw_message(frames[3], "rgb8"), wait_for=("cmd_vel", "attention/overlay"))
        overlay = np.frombuffer(bytes(outputs["attention/overlay"][0].data), np.uint8).reshape(frames[3].shape)
        assert np.array_equal(overlay, frames[3][..., ::-1])
        assert harness.set_parameter("publish_overlay", False)
        outputs = harness.send(raw_message(frames[1], "rgb8"), wait_for=("cmd_vel", "attention/map"))
        assert outputs["attention/overlay"] == []

        # bad frames: skipped and counted, and the next good frame is processed
        good = raw_message(frames[2], "rgb8")
        truncated = raw_message(frames[2], "rgb8")
        truncated.data = bytes(truncated.data)[:1000]
        wrong_step = raw_message(frames[2], "rgb8")
        wrong_step.step = 100
        unsupported = raw_message(frames[2], "rgb8")
        unsupported.encoding, unsupported.step = "32FC1", unsupported.step // 3 * 4
        unsupported.data = bytes(unsupported.data) + bytes(len(unsupported.data) // 3)
        empty = raw_message(frames[2], "rgb8")
        empty.width = empty.height = empty.step = 0
        empty.data = b""
        huge = raw_message(np.zeros((4320, 7680, 3), np.uint8), "mono8")  # 8K
        bad = [truncated, wrong_step, empty, huge]
        for frame in bad:
            assert harness.send_bad(frame)
            assert harness.send(good) is not None, "the node keeps running past a bad frame"
        # a camera in an encoding the node cannot use: the car is held stopped, and told why
        stopped = harness.send(unsupported)
        assert stopped is not None and stopped["cmd_vel"][0].twist.linear.x == 0.0
        assert harness.send(good)["cmd_vel"][0].twist.linear.x > 0, "a usable frame drives again"
        diagnostics = harness.diagnostics()
        assert int(diagnostics["total_bad"]) == len(bad) + 1
        assert int(diagnostics["total_frames_out"]) >= 8
    finally:
        log = stop_process(process)
    assert "keep_heap" not in log, "glibc allocator setting applied"
    assert re.search(r"quant_sign checkpoint .* on cpu \(device=cpu, backend=torch\)", log), log
    assert "data has 1000 bytes, step x height = 57600" in log
    assert "unsupported encoding '32FC1'" in log and "exceeds max_pixels" in log and "zero-size image" in log


def test_compressed_node_jpeg_png_and_corrupt(checkpoint, ros, frames) -> None:
    import cv2

    harness, _, domain = ros
    process = start_process(NODE, {"checkpoint": checkpoint, "transport": "compressed", "device": "cpu"}, domain)
    try:
        for fmt in ("jpeg", "png"):
            msg = compressed_message(frames[3], fmt)
            decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            outputs = harness.send(msg, wait_for=OUTPUTS)
            _check_outputs(outputs, checkpoint, decoded)
        corrupt = compressed_message(frames[3], "jpeg")
        corrupt.data = b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10
        assert harness.send_bad(corrupt)
        assert harness.send(compressed_message(frames[0], "jpeg")) is not None
        assert int(harness.diagnostics()["total_bad"]) >= 1
    finally:
        log = stop_process(process)
    assert "corrupt jpeg image" in log


@pytest.mark.parametrize("problem", ["missing", "corrupt", "incompatible", "empty"])
def test_bad_checkpoint_ends_startup_with_a_clear_last_line(checkpoint, tmp_path, problem) -> None:
    import json
    import shutil

    target = tmp_path / "ckpt.safetensors"
    if problem != "missing":
        shutil.copy(checkpoint, target)
        shutil.copy(checkpoint.replace(".safetensors", ".json"), tmp_path / "ckpt.json")
    if problem == "corrupt":
        target.write_bytes(target.read_bytes()[:-50])
    if problem == "incompatible":
        meta = json.loads((tmp_path / "ckpt.json").read_text())
        meta["model"]["variant"] = "pilotnet"
        (tmp_path / "ckpt.json").write_text(json.dumps(meta))
    process = start_process(NODE, {"checkpoint": "" if problem == "empty" else str(target)}, claim_domain_id())
    output = finish(process, 60)
    assert process.returncode == 1
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("qattn_steering: ") and "Traceback" not in output, output
    expected = {"missing": "not found", "corrupt": "SHA-256 does not match", "incompatible": "do not match the config",
                "empty": "parameter 'checkpoint' is empty"}[problem]  # fmt: skip
    assert expected in lines[-1]


def test_config_yaml_matches_the_declared_defaults() -> None:
    params = yaml.safe_load((ROOT / "config" / "steering_node.yaml").read_text())["/**"]["ros__parameters"]
    assert params == DEFAULTS


@pytest.mark.parametrize("transport, encoding", [("raw", "bgr8"), ("compressed", "rgb8")])
def test_camera_publisher_plays_a_folder(ros, tmp_path, frames, transport, encoding) -> None:
    import cv2

    harness, _, domain = ros
    for index, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{index:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    got = []
    kind, topic = (Image, "image") if transport == "raw" else (CompressedImage, "image/compressed")
    harness.node.create_subscription(kind, topic, got.append, BEST_EFFORT)
    process = start_process("qattn_ros.ros.camera_publisher", {"source": str(tmp_path), "rate": 20.0,
                            "transport": transport, "encoding": encoding}, domain)  # fmt: skip
    try:
        end = time.monotonic() + 300  # a cap: the condition decides; a loaded machine starts processes slowly
        while len(got) < 6 and time.monotonic() < end:
            harness.spin(0.1)
    finally:
        stop_process(process)
    assert len(got) >= 6, "frames keep coming (the folder loops)"
    if transport == "raw":
        first = np.frombuffer(bytes(got[0].data), np.uint8).reshape(120, 160, 3)[..., ::-1]
        assert got[0].encoding == "bgr8" and any(np.array_equal(first, f) for f in frames)
    else:
        assert got[0].format == "jpeg" and cv2.imdecode(np.frombuffer(bytes(got[0].data), np.uint8), 1).shape == (
            120,
            160,
            3,
        )


def _checkpoint_of(folder, config: ModelConfig) -> str:
    torch.manual_seed(0)
    model = SteeringNet(config).eval()
    model.target_std.fill_(0.1)
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="sim_normalized",
                          positive_is_left=False)  # fmt: skip
    return str(save_checkpoint(folder / config.variant, model, info))


@pytest.mark.parametrize("config", [ModelConfig(variant="pilotnet"), ModelConfig(variant="kim_canny", recurrent=True)],
                         ids=["pilotnet", "recurrent"])  # fmt: skip
def test_pilotnet_and_recurrent_checkpoints_through_the_node(ros, frames, tmp_path, config) -> None:
    """pilotnet: commands, no attention outputs. Recurrent: the state goes from frame to frame, as offline."""
    _, harness, domain = ros
    checkpoint = _checkpoint_of(tmp_path, config)
    offline = SteeringPredictor(checkpoint, "cpu")
    process = start_process(NODE, {"checkpoint": checkpoint, "reliability": "reliable", "device": "cpu"}, domain)
    steering = []
    try:
        for rgb in (frames[0], frames[0], frames[1]):
            outputs = harness.send(raw_message(rgb, "rgb8"), wait_for=("cmd_vel", "steering_angle"))
            assert outputs is not None, "no output arrived"
            for _ in outputs["cmd_vel"]:  # each time the node processed this frame, its state moved on
                expected = offline.predict(rgb)
            assert steering_value(outputs["steering_angle"][-1]) == pytest.approx(expected.wheel_angle, abs=1e-5)
            steering.append(expected.wheel_angle)
            if config.variant == "pilotnet":
                assert outputs["attention/map"] == [] and outputs["attention/overlay"] == []
    finally:
        stop_process(process)
    if config.recurrent:
        assert steering[0] != pytest.approx(steering[1], abs=1e-6), "the same frame answers differently with a state"


def test_padded_rows_and_16_bit_encodings(checkpoint, ros, frames) -> None:
    """Rows padded past width x 3 bytes (ignored), and 16-bit images whose values are the 8-bit ones x 257."""
    _, harness, domain = ros
    rgb = frames[1]
    height, width = rgb.shape[:2]
    padded = raw_message(rgb, "rgb8")
    rows = np.full((height, width * 3 + 10), 0xAB, np.uint8)  # 10 bytes of junk after every row
    rows[:, : width * 3] = rgb.reshape(height, -1)
    padded.step, padded.data = width * 3 + 10, rows.tobytes()
    gray = np.frombuffer(raw_message(rgb, "mono8").data, np.uint8).reshape(height, width)
    cases = [(padded, rgb)]
    for encoding, pixels, seen in (("rgb16", rgb, rgb), ("bgr16", rgb[..., ::-1], rgb),
                                   ("mono16", gray, np.repeat(gray[..., None], 3, axis=2))):  # fmt: skip
        wide = np.ascontiguousarray(pixels).astype("<u2") * 257
        msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=wide.strides[0])
        msg.data = wide.tobytes()
        msg.header.frame_id = "camera"
        cases.append((msg, seen))
    process = start_process(NODE, {"checkpoint": checkpoint, "reliability": "reliable", "device": "cpu"}, domain)
    try:
        for msg, seen in cases:
            outputs = harness.send(msg, wait_for=OUTPUTS)
            _check_outputs(outputs, checkpoint, seen)
    finally:
        stop_process(process)


def test_camera_publisher_sources(tmp_path) -> None:
    """Synthetic roads, a video file and a Udacity bag, each read through to its end."""
    import cv2

    from qattn_ros.data.writers import jpeg_bytes, write_udacity_bag
    from qattn_ros.ros.camera_publisher import frames_from

    synthetic = frames_from("synthetic", 160, 120)
    first, second = next(synthetic), next(synthetic)
    assert first.shape == (120, 160, 3) and not np.array_equal(first, second)
    assert np.array_equal(first, next(frames_from("synthetic", 160, 120))), "the same roads every time"

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 120)]  # RGB
    writer = cv2.VideoWriter(str(tmp_path / "drive.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 20, (64, 48))
    for colour in colours:
        writer.write(np.full((48, 64, 3), colour[::-1], np.uint8))
    writer.release()
    video = list(frames_from(str(tmp_path / "drive.avi"), 0, 0))
    assert len(video) == 4 and all(f.shape == (48, 64, 3) for f in video)
    for frame, colour in zip(video, colours):
        assert np.abs(frame.reshape(-1, 3).mean(0) - colour).max() < 8, "RGB order, not BGR"

    generator = RoadGenerator(96, 128, seed=8)
    bag = write_udacity_bag(tmp_path / "HMB_1.bag", generator, 3)
    played = list(frames_from(str(bag), 0, 0))
    decoded = [cv2.cvtColor(cv2.imdecode(jpeg_bytes(generator.frame(i).image), 1), cv2.COLOR_BGR2RGB) for i in range(3)]
    assert len(played) == 3 and all(np.array_equal(a, b) for a, b in zip(played, decoded))
    with pytest.raises(ValueError, match="expected synthetic, an image folder, a video file or a .bag"):
        next(frames_from(str(tmp_path / "notes.txt"), 0, 0))


def test_camera_publisher_without_loop_ends_with_its_source(ros, tmp_path, frames) -> None:
    """`loop: false` plays the folder once, in order, and exits by itself (pixel (0, 0) numbers each image)."""
    import cv2

    harness, _, domain = ros
    count = 300
    for index in range(count):
        image = frames[index % len(frames)].copy()
        image[0, 0] = (index % 256, index // 256, 7)
        cv2.imwrite(str(tmp_path / f"{index:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    got = []
    harness.node.create_subscription(Image, "image", got.append, BEST_EFFORT)
    process = start_process("qattn_ros.ros.camera_publisher", {"source": str(tmp_path), "rate": 30.0,
                            "loop": False}, domain)  # fmt: skip
    end = time.monotonic() + 300  # a cap: the process's end decides
    while process.poll() is None and time.monotonic() < end:
        harness.spin(0.05)
    harness.spin(0.3)
    assert process.poll() == 0, stop_process(process)
    pixels = [np.frombuffer(bytes(m.data), np.uint8)[:3] for m in got if m.width == 160]
    numbers = [int(p[0]) + 256 * int(p[1]) for p in pixels if p[2] == 7]
    assert numbers, "frames arrived (those before discovery are lost: best effort)"
    assert numbers == sorted(set(numbers)) and numbers[-1] >= count - 10, "once through, in order, to the end"
