"""Camera geometry: a checkpoint records the frames it was trained on; frames of another aspect are mapped onto them."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qattn_ros.core.errors import CheckpointError, ConfigError
from qattn_ros.core.preprocess import MIN_KEPT, CameraGeometry, Preprocessing, fit_frame
from qattn_ros.inference.predictor import CameraMismatch, SteeringPredictor
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, checkpoint_paths, load_checkpoint, read_info, save_checkpoint

SIDES = st.integers(min_value=2, max_value=4096)


@given(height=SIDES, width=SIDES, trained_h=SIDES, trained_w=SIDES, anchor=st.floats(0.0, 1.0))
def test_a_crop_is_the_largest_box_of_the_trained_aspect_at_its_anchor(height, width, trained_h, trained_w, anchor):
    """Exact pixels: the side that is cut keeps the whole number of pixels nearest the trained aspect; a taller
    frame's rows start at the whole pixel nearest anchor x (the rows left over); a wider frame's columns are
    centred, an odd pixel left over going right."""
    trained = CameraGeometry(trained_w, trained_h)
    fit = fit_frame(height, width, trained, "crop", anchor)
    top, bottom, left, right = fit.box
    assert 0 <= top < bottom <= height and 0 <= left < right <= width
    if abs(width / height / trained.aspect - 1) <= 0.01:
        assert fit.box == (0, height, 0, width) and fit.mismatch == ""
        return
    rows, columns = bottom - top, right - left
    if width / height < trained.aspect:  # taller
        assert (left, right) == (0, width)
        assert abs(rows - width / trained.aspect) <= 0.5 or rows == 1 > width / trained.aspect
        assert abs(top - anchor * (height - rows)) <= 0.5, (top, anchor * (height - rows))
    else:  # wider
        assert (top, bottom) == (0, height)
        assert abs(columns - height * trained.aspect) <= 0.5 or columns == 1 > height * trained.aspect
        assert (width - right) - left in (0, 1), (left, width - right)
    assert (fit.mismatch != "") is (rows * columns / (height * width) < MIN_KEPT)


@pytest.mark.parametrize(
    "height, width, anchor, box",
    [
        (480, 640, 0.7, (112, 432, 0, 640)),  # 320 rows of 480: 0.7 x 160 left over
        (483, 640, 0.25, (41, 361, 0, 640)),  # 0.25 x 163 = 40.75
        (483, 640, 0.9, (147, 467, 0, 640)),  # 146.7
        (483, 640, 1.0, (163, 483, 0, 640)),
        (160, 641, 0.5, (0, 160, 160, 480)),  # 321 columns left over: 160 left, 161 right
        (160, 643, 0.0, (0, 160, 161, 481)),  # 323: 161 left, 162 right (the anchor is for rows only)
    ],
)
def test_where_the_crop_of_a_2_to_1_camera_sits(height, width, anchor, box) -> None:
    """Hand-computed boxes for a checkpoint trained on 320x160 frames."""
    assert fit_frame(height, width, CameraGeometry(320, 160), "crop", anchor).box == box


@given(height=SIDES, width=SIDES, trained_h=SIDES, trained_w=SIDES)
def test_a_squash_keeps_the_whole_frame_and_is_a_mismatch_whenever_the_aspect_differs(
    height, width, trained_h, trained_w
):
    trained = CameraGeometry(trained_w, trained_h)
    fit = fit_frame(height, width, trained, "squash")
    assert fit.box == (0, height, 0, width)
    assert (fit.mismatch != "") is (abs(width / height / trained.aspect - 1) > 0.01)


def test_the_cameras_of_the_issue() -> None:
    trained = CameraGeometry(320, 160)
    assert fit_frame(480, 640, trained).box == (80, 400, 0, 640), "4:3 centred: 640x320"
    assert fit_frame(480, 640, trained, anchor=0.0).box == (0, 320, 0, 640)
    assert fit_frame(720, 1280, trained).box == (40, 680, 0, 1280), "16:9: 1280x640"
    assert fit_frame(240, 480, trained).box == (0, 240, 0, 480), "2:1 at another size: whole"
    assert fit_frame(160, 640, trained).box == (0, 160, 160, 480), "4:1: the centre 320 columns"
    portrait = fit_frame(640, 480, trained)
    assert "keeps only 38% of it" in portrait.mismatch and "480x640 (0.75:1)" in portrait.mismatch
    assert "squashed into the trained 320x160 (2.00:1)" in fit_frame(480, 640, trained, "squash").mismatch
    with pytest.raises(ConfigError, match="camera fit 'stretch'"):
        fit_frame(480, 640, trained, "stretch")


def test_training_frames_of_one_aspect_give_their_geometry_and_mixed_ones_none() -> None:
    frames = [np.zeros((160, 320, 3), np.uint8), np.zeros((80, 160, 3), np.uint8)]
    assert CameraGeometry.of_images(frames) == CameraGeometry(320, 160)
    assert CameraGeometry.of_images([*frames, np.zeros((480, 640, 3), np.uint8)]) is None
    assert CameraGeometry.of_images([]) is None


def _saved(folder, camera: CameraGeometry | None, preprocessing: Preprocessing | None = None) -> str:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    model.target_std.fill_(0.1)
    info = CheckpointInfo(model=model.config, preprocessing=preprocessing or Preprocessing(),
                          steering_unit="wheel_rad", positive_is_left=True, camera=camera)  # fmt: skip
    return str(save_checkpoint(folder / "ckpt", model, info))


def test_the_checkpoint_records_the_geometry_and_its_crop_box(tmp_path) -> None:
    path = _saved(tmp_path, CameraGeometry(640, 480), Preprocessing(crop_top=0.25, crop_bottom=0.1))
    meta = json.loads(checkpoint_paths(path)[1].read_text())
    assert meta["camera"] == {"width": 640, "height": 480, "crop_box": [120, 432, 0, 640]}
    info = read_info(path)
    assert info.camera == CameraGeometry(640, 480) and info.notes == []


@pytest.mark.parametrize(
    "camera, message",
    [
        ({"width": 640, "height": 480, "crop_box": [0, 480, 0, 640]}, "camera.crop_box .* disagrees"),
        ({"width": 0, "height": 480}, "camera: width and height must be positive integers"),
        ({"width": 640, "height": 480.5}, "camera: width and height must be positive integers"),
        ({"width": 640, "height": 480, "fov": 70}, "camera: expected a mapping of width, height and crop_box"),
    ],
)
def test_a_bad_camera_record_is_refused_naming_it(tmp_path, camera, message) -> None:
    path = _saved(tmp_path, CameraGeometry(640, 480))
    sidecar = checkpoint_paths(path)[1]
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "camera": camera}))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_checkpoint_without_a_camera_record_assumes_the_model_input_aspect_and_says_so(tmp_path) -> None:
    path = _saved(tmp_path, None)
    assert "camera" not in json.loads(checkpoint_paths(path)[1].read_text())
    predictor = SteeringPredictor(path, "cpu")
    assert predictor.info.camera is None and predictor.camera == CameraGeometry(160, 80)
    assert (
        len(predictor.info.notes) == 1
        and "no camera geometry: frames of the model input's aspect 2.00:1 assumed" in (predictor.info.notes[0])
    )
    assert predictor.fit(480, 640).box == (80, 400, 0, 640)


def test_the_predictor_crops_before_resizing_and_refuses_what_it_cannot_map(tmp_path) -> None:
    predictor = SteeringPredictor(_saved(tmp_path, CameraGeometry(320, 160)), "cpu")
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    cropped = np.ascontiguousarray(frame[80:400])
    assert np.array_equal(predictor.to_model_uint8(frame), predictor.preprocessing.to_model_uint8(cropped))
    assert predictor.predict(frame).steering == predictor.predict(cropped).steering
    assert predictor.model_box(480, 640) == (80 + 96, 400, 0, 640), "the row crop (0.3) inside the aspect crop"
    portrait = np.zeros((640, 480, 3), np.uint8)
    with pytest.raises(CameraMismatch, match=r"480x640 \(0.75:1\) camera frame cropped .* keeps only 38%"):
        predictor.predict(portrait)
    predictor.fit_camera("crop", 0.5, accept_mismatch=True)
    assert predictor.predict(portrait).attention is not None, "accepted: it runs (the caller says so)"
    predictor.fit_camera("squash")
    with pytest.raises(CameraMismatch, match="squashed"):
        predictor.predict(frame)
    assert predictor.predict(np.zeros((80, 160, 3), np.uint8)) is not None, "the trained aspect: no mismatch"


@pytest.fixture(scope="module")
def trained(synthetic_logs, tmp_path_factory) -> str:
    """A real model, briefly trained on 320x160 synthetic roads (the trainer records that geometry)."""
    pytest.importorskip("rclpy", reason="drives the node: needs rclpy (absent from the distro-Python runs)")
    from conftest import small_train_overrides

    from qattn_ros.fit.config import load_train_config
    from qattn_ros.fit.trainer import Trainer

    out = tmp_path_factory.mktemp("geometry")
    overrides = small_train_overrides(synthetic_logs, out / "run", out / "cache")
    overrides += ["optim.epochs=2", "optim.batch_size=32", "optim.lr=0.002", "augment.shift_px=0",
                  "model.variant=kim_canny"]  # fmt: skip
    return str(Trainer(load_train_config(None, overrides)).fit())


@pytest.mark.slow
def test_4_3_and_16_9_cameras_through_the_node_steer_within_1_5x_of_the_trained_geometry(trained, tmp_path) -> None:
    """The same roads rendered at 2:1 (trained), 4:3 and 16:9, through the node (crop anchored at the synthetic
    camera's horizon, 0.36 of the height). Squashed, as before checkpoints recorded their geometry, 4:3 is far off."""
    import rclpy
    from ros_harness import Harness, raw_message, start_process, stop_process

    from qattn_ros.data.synthetic import RoadGenerator
    from qattn_ros.ros.dds_domain import claim_domain_id
    from qattn_ros.ros.messages import steering_value

    assert read_info(trained).camera == CameraGeometry(320, 160), "the trainer recorded its frames' geometry"
    cameras = {"2:1": (160, 320), "4:3": (240, 320), "16:9": (180, 320)}
    roads = 60
    frames = {name: [RoadGenerator(h, w, seed=77).frame(i) for i in range(roads)] for name, (h, w) in cameras.items()}
    domain = claim_domain_id()
    rclpy.init(domain_id=domain)
    harness = Harness("geometry", reliable=True)
    process = start_process("qattn_ros.ros.steering_node", {"checkpoint": trained, "reliability": "reliable",
                            "device": "cpu", "crop_anchor": 0.36}, domain)  # fmt: skip
    rmse = {}
    try:
        for name, rendered in frames.items():
            errors = []
            for frame in rendered:
                outputs = harness.send(raw_message(frame.image, "rgb8"), wait_for=("steering_angle",))
                assert outputs is not None, f"no answer to a {name} frame"
                errors.append(steering_value(outputs["steering_angle"][0]) - frame.steering)
            rmse[name] = float(np.sqrt(np.mean(np.square(errors))))
    finally:
        log = stop_process(process)
        harness.node.destroy_node()
        rclpy.shutdown()
    assert "camera geometry mismatch" not in log and "camera refused" not in log
    assert rmse["4:3"] <= 1.5 * rmse["2:1"] and rmse["16:9"] <= 1.5 * rmse["2:1"], rmse
    squashed = SteeringPredictor(trained, "cpu")
    squashed.fit_camera("squash", accept_mismatch=True)
    errors = [squashed.predict(f.image).wheel_angle - f.steering for f in frames["4:3"]]
    assert float(np.sqrt(np.mean(np.square(errors)))) > 1.5 * rmse["2:1"], "the test can tell a squashed camera"


def test_offline_frames_of_another_aspect_are_what_the_node_sees(tmp_path) -> None:
    """Offline evaluation crops a 4:3 source onto a 2:1 checkpoint as the node does; a 2:1 source is read as is."""
    from qattn_ros.core.errors import DataError
    from qattn_ros.core.preprocess import Preprocessing as Pre
    from qattn_ros.data.cache import build_cache, cache_key
    from qattn_ros.data.simlog import SimLogSource, write_simlog
    from qattn_ros.data.synthetic import RoadGenerator

    predictor = SteeringPredictor(_saved(tmp_path, CameraGeometry(320, 160)), "cpu")
    source = SimLogSource(write_simlog(tmp_path / "4x3", RoadGenerator(240, 320, seed=4), 3).parent)
    frames = predictor.frames(source, tmp_path / "cache")
    records = list(source)
    assert np.array_equal(frames.images, np.stack([predictor.to_model_uint8(r.image) for r in records]))
    predictor.fit_camera("crop", 0.36)  # the node's crop_anchor: another crop, another cache
    anchored = predictor.frames(source, tmp_path / "cache").images
    assert np.array_equal(anchored, np.stack([predictor.to_model_uint8(r.image) for r in records]))
    assert not np.array_equal(anchored, frames.images)
    predictor.fit_camera("squash")
    with pytest.raises(DataError, match="squashed into the trained 320x160"):
        predictor.frames(source, tmp_path / "cache")
    predictor.fit_camera()
    squashed = build_cache(source, Pre(), tmp_path / "cache", progress=False)
    assert not np.array_equal(frames.images, squashed.images), "not the squashed frames"
    top, bottom, left, right = predictor.fit(240, 320).box
    cropped_masks = build_cache(SimLogSource(source.root), Pre(), tmp_path / "c2", False, camera=predictor.camera).masks
    assert frames.masks is not None and np.array_equal(frames.masks, cropped_masks) and (top, bottom) == (40, 200)
    with pytest.raises(DataError, match=r"not fitted onto the checkpoint camera 320x160 \(2.00:1\): rebuild it"):
        predictor.frames(source, tmp_path / "cache", cache=tmp_path / "cache" / cache_key(source, Pre()))
    wide = SimLogSource(write_simlog(tmp_path / "2x1", RoadGenerator(160, 320, seed=4), 2).parent)
    before = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(predictor.frames(wide, tmp_path / "cache")) == 2
    assert len(sorted(p.name for p in (tmp_path / "cache").iterdir())) == len(before) + 1, "one cache: no refit"
    portrait = SimLogSource(write_simlog(tmp_path / "3x4", RoadGenerator(320, 240, seed=4), 1).parent)
    with pytest.raises(DataError, match=r"frame 0: a 240x320 \(0.75:1\) camera frame cropped .* keeps only"):
        predictor.frames(portrait, tmp_path / "cache")
