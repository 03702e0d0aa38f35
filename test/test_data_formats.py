"""Every reader on data the generator writes in the real layouts; interpolation by hand; bad input."""

import numpy as np
import pytest

from qattn_ros.core.errors import DataError
from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.core.units import to_wheel_angle
from qattn_ros.data.bags import BagSource, interpolate, ros2_bag, udacity_bag
from qattn_ros.data.cache import build_cache
from qattn_ros.data.frames import FrameSet
from qattn_ros.data.simlog import SimLogSource, write_simlog
from qattn_ros.data.sources import open_source, spec_for_path
from qattn_ros.data.splits import write_splits
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.udacity_folder import UdacityFolderSource
from qattn_ros.data.writers import (
    CAMERA_PERIOD_NS,
    START_NS,
    jpeg_bytes,
    write_ch2_test,
    write_ros2_bag,
    write_udacity_bag,
    write_udacity_folder,
)  # fmt: skip

COUNT = 10


@pytest.fixture(scope="module")
def generator():
    return RoadGenerator(96, 128, seed=21)


@pytest.fixture(scope="module")
def expected(generator):
    """What every reader must yield: the JPEG-decoded frame, its label (rad, left) and stamp."""
    import cv2

    frames = [generator.frame(i) for i in range(COUNT)]
    images = [cv2.cvtColor(cv2.imdecode(jpeg_bytes(f.image), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for f in frames]
    return images, [f.steering for f in frames], [START_NS + i * CAMERA_PERIOD_NS for i in range(COUNT)]


def _check(source, expected, images_exact=True) -> None:
    images, labels, stamps = expected
    records = list(source)
    assert len(records) == COUNT, source.skipped()
    for record, image, label, stamp in zip(records, images, labels, stamps):
        assert record.stamp_ns == stamp
        assert to_wheel_angle(record.steering, source.steering_unit, source.positive_is_left) == pytest.approx(
            label, abs=1e-6
        )
        if images_exact:
            assert np.array_equal(record.image, image)


@pytest.mark.parametrize("compression", [None, "bz2", "lz4"])
def test_udacity_ros1_bag_round_trip(tmp_path, generator, expected, compression) -> None:
    path = write_udacity_bag(tmp_path / "HMB_1.bag", generator, COUNT, compression=compression)
    source = open_source({"kind": "udacity_bag", "paths": [str(path)]})
    assert source.camera_topic == "/center_camera/image_color/compressed"
    _check(source, expected)
    speeds = [generator.frame(i).scene.speed for i in range(COUNT)]  # the scene's own speed, m/s
    assert [r.speed for r in source] == pytest.approx(speeds, abs=1e-4)


def test_udacity_bag_uncompressed_images(tmp_path, generator) -> None:
    path = write_udacity_bag(tmp_path / "raw.bag", generator, 3, compressed_images=False)
    records = list(udacity_bag(str(path)))
    assert [r.image.shape for r in records] == [(96, 128, 3)] * 3
    assert np.array_equal(records[0].image, generator.frame(0).image), "rgb8 is lossless"


def test_several_bags_read_as_one_timeline(tmp_path, generator) -> None:
    """Like HMB_1 … HMB_6: bags of one drive, one after the other; given out of order, read in time order."""
    other = RoadGenerator(96, 128, seed=22)
    second_start = START_NS + 4 * CAMERA_PERIOD_NS + 3_000_000_000  # 3 s after the first bag's last frame
    first = write_udacity_bag(tmp_path / "HMB_1.bag", generator, 4)
    second = write_udacity_bag(tmp_path / "HMB_2.bag", other, 4, start_ns=second_start)
    records = list(udacity_bag([str(second), str(first)]))
    stamps = [START_NS + i * CAMERA_PERIOD_NS for i in range(4)] + [
        second_start + i * CAMERA_PERIOD_NS for i in range(4)
    ]
    assert [r.stamp_ns for r in records] == stamps
    labels = [generator.frame(i).steering for i in range(4)] + [other.frame(i).steering for i in range(4)]
    # steering-wheel angle = 14.8 x the front-wheel angle of the generator's label, positive left
    assert [r.steering for r in records] == pytest.approx([14.8 * label for label in labels], abs=1e-5)


# dbw_mkz_msgs/SteeringReport as the Challenge 2 bags carry it, with its comments.
RECORDED_STEERING_REPORT = """Header header

# Steering Wheel
float32 steering_wheel_angle      # rad
float32 steering_wheel_angle_cmd  # rad
float32 steering_wheel_torque     # Nm

# Vehicle Speed
float32 speed                     # m/s

# Status
bool enabled  # Enabled
bool override # Driver override
bool driver   # Driver activity

# Watchdog Counter
bool fault_wdc

# Faults
bool fault_bus1
bool fault_bus2
bool fault_calibration
bool fault_connector # This fault can be ignored
"""


def test_a_bag_with_the_recorded_steering_report_definition_gives_known_angles(tmp_path) -> None:
    """Written here with rosbags directly (not with the package's writer): the steering wheel turns left at
    1 rad/s from 0.5 rad while the car drives 12.5 m/s; the camera sees three frames 50 ms apart."""
    import cv2
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg(RECORDED_STEERING_REPORT, "dbw_mkz_msgs/msg/SteeringReport"))
    time, header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    report, image = store.types["dbw_mkz_msgs/msg/SteeringReport"], store.types["sensor_msgs/msg/CompressedImage"]
    start = 1_479_424_215_000_000_000
    jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].reshape(-1)
    with Writer(tmp_path / "recorded.bag") as writer:
        camera = writer.add_connection("/center_camera/image_color/compressed", image.__msgtype__, typestore=store)
        steering = writer.add_connection("/vehicle/steering_report", report.__msgtype__, typestore=store)
        for k in range(11):  # 50 Hz over 200 ms
            t = start + k * 20_000_000
            angle = 0.5 + 1.0 * k * 0.02
            msg = report(header=header(seq=k, stamp=time(sec=t // 10**9, nanosec=t % 10**9), frame_id=""),
                         steering_wheel_angle=angle, steering_wheel_angle_cmd=0.0, steering_wheel_torque=0.0,
                         speed=12.5, enabled=False, override=False, driver=True, fault_wdc=False, fault_bus1=False,
                         fault_bus2=False, fault_calibration=False, fault_connector=False)  # fmt: skip
            writer.write(steering, t, store.serialize_ros1(msg, report.__msgtype__))
        for k in range(3):
            t = start + 10_000_000 + k * 50_000_000  # 10, 60, 110 ms: between two steering samples each
            msg = image(header=header(seq=k, stamp=time(sec=t // 10**9, nanosec=t % 10**9), frame_id="center_camera"),
                        format="jpeg", data=jpeg)  # fmt: skip
            writer.write(camera, t, store.serialize_ros1(msg, image.__msgtype__))
    source = open_source({"kind": "udacity_bag", "paths": [str(tmp_path / "recorded.bag")]})
    assert (source.steering_unit, source.positive_is_left) == ("steering_wheel_rad", True)
    records = list(source)
    assert [r.stamp_ns for r in records] == [start + 10_000_000, start + 60_000_000, start + 110_000_000]
    assert [r.steering for r in records] == pytest.approx([0.51, 0.56, 0.61], abs=1e-6)  # 0.5 + 1 rad/s x t
    assert [r.speed for r in records] == pytest.approx([12.5] * 3)
    assert records[0].image.shape == (48, 64, 3) and abs(int(records[0].image.mean()) - 90) <= 2


def test_udacity_folder_round_trip_uses_center_rows_and_exact_stamps(tmp_path, generator, expected) -> None:
    write_udacity_folder(tmp_path / "HMB_1", generator, COUNT)
    _check(UdacityFolderSource(tmp_path / "HMB_1"), expected)


def test_ch2_test_set_round_trip(tmp_path, generator, expected) -> None:
    csv = write_ch2_test(tmp_path / "ch2", generator, COUNT)
    _check(open_source({"kind": "ch2_test", "labels": str(csv), "images": str(tmp_path / "ch2" / "center")}), expected)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("steering_type, field", [("std_msgs/msg/Float32", "data"),
                                                  ("geometry_msgs/msg/TwistStamped", "twist.angular.z")])  # fmt: skip
def test_ros2_bag_round_trip(tmp_path, generator, expected, storage, steering_type, field) -> None:
    path = write_ros2_bag(tmp_path / "run", generator, COUNT, storage=storage, steering_type=steering_type)
    source = ros2_bag(str(path), "/camera/image_raw/compressed", "/steering", steering_field=field)
    _check(source, expected)


def test_simulator_log_round_trip(tmp_path, generator) -> None:
    write_simlog(tmp_path / "sim", generator, COUNT, side_cameras=True)
    centre = list(SimLogSource(tmp_path / "sim"))
    assert len(centre) == COUNT and all(r.mask is not None for r in centre)
    three = list(SimLogSource(tmp_path / "sim", cameras=("center", "left", "right"), side_correction=0.1))
    assert len(three) == 3 * COUNT
    assert three[1].steering == pytest.approx(centre[0].steering + 0.1)  # left camera: steer more to the right
    assert three[2].steering == pytest.approx(centre[0].steering - 0.1)


def test_interpolation_against_hand_computed_values() -> None:
    t = np.array([0, 10, 20, 40])
    v = np.array([0.0, 1.0, -1.0, 3.0])
    values, inside = interpolate(t, v, np.array([-5, 0, 5, 15, 30, 40, 41]))
    assert inside.tolist() == [False, True, True, True, True, True, False]
    assert values[inside].tolist() == [0.0, 0.5, 0.0, 1.0, 3.0]


def test_frames_before_the_first_steering_sample_are_dropped(tmp_path, generator) -> None:
    path = write_udacity_bag(tmp_path / "late.bag", generator, COUNT, steering_delay_ns=120_000_000)
    source = udacity_bag(str(path))
    records = list(source)
    assert [r.stamp_ns for r in records][0] == START_NS + 3 * CAMERA_PERIOD_NS
    assert source.skipped()["outside_steering_span"] == 3


def test_min_speed_filter(tmp_path, generator) -> None:
    path = write_udacity_bag(tmp_path / "s.bag", generator, COUNT)
    source = udacity_bag(str(path), min_speed=15.0)
    kept = list(source)
    assert all(r.speed >= 15.0 for r in kept) and 0 < len(kept) < COUNT
    assert source.skipped()["below_min_speed"] == COUNT - len(kept)


def test_mixed_sources_combine_in_one_unit(tmp_path, generator) -> None:
    pre = Preprocessing()
    sim = build_cache(SimLogSource(write_simlog(tmp_path / "sim", generator, 4).parent), pre, tmp_path / "c", False)
    bag = build_cache(udacity_bag(str(write_udacity_bag(tmp_path / "b.bag", generator, 4))), pre, tmp_path / "c", False)
    frames = FrameSet([(sim, np.arange(4)), (bag, np.arange(4))], "wheel_rad", True)
    truth = [generator.frame(i).steering for i in range(4)]
    assert np.allclose(frames.targets[:4], truth, atol=1e-5) and np.allclose(frames.targets[4:], truth, atol=1e-5)
    images, targets = frames.gather(np.array([5, 0]))
    assert images.shape == (2, 80, 160, 3) and np.allclose(targets, [truth[1], truth[0]], atol=1e-5)


# -- bad input --------------------------------------------------------------------------------


def test_truncated_bag_is_a_clear_error(tmp_path, generator) -> None:
    path = write_udacity_bag(tmp_path / "cut.bag", generator, COUNT, compression=None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.bag: cannot read bag .*reindex"):
        udacity_bag(str(path))


def test_bag_without_the_topics_names_what_it_has(tmp_path, generator) -> None:
    path = write_ros2_bag(tmp_path / "r2", generator, 3)
    with pytest.raises(DataError, match=r"no topic /center_camera/image_color/compressed.*/vehicle/steering_report; "
                                         r"the bag has: /camera/image_raw/compressed, /steering"):  # fmt: skip
        BagSource(str(path))


def test_corrupt_jpeg_frames_in_a_bag_are_skipped_and_counted(tmp_path, generator, monkeypatch) -> None:
    import qattn_ros.data.writers as writers

    calls = {"n": 0}
    real = writers.jpeg_bytes

    def sometimes_broken(rgb):
        calls["n"] += 1
        data = real(rgb)
        return data[:40] if calls["n"] in (2, 5) else data  # truncated JPEGs

    monkeypatch.setattr(writers, "jpeg_bytes", sometimes_broken)
    path = write_udacity_bag(tmp_path / "broken.bag", generator, COUNT)
    source = udacity_bag(str(path))
    assert len(list(source)) == COUNT - 2
    assert source.skipped()["corrupt_image"] == 2


def test_folder_csv_missing_columns_names_them(tmp_path, generator) -> None:
    csv = write_udacity_folder(tmp_path / "f", generator, 2)
    csv.write_text(csv.read_text().replace("angle", "steer").replace("filename", "file"))
    with pytest.raises(DataError, match=r"interpolated.csv: missing column\(s\) filename, angle"):
        UdacityFolderSource(tmp_path / "f")


def test_folder_images_that_do_not_exist_are_named(tmp_path, generator) -> None:
    write_udacity_folder(tmp_path / "f", generator, 3)
    for image in (tmp_path / "f" / "center").glob("*.jpg"):
        image.unlink()
    with pytest.raises(DataError, match=r"3 image\(s\) do not exist, first: .*center/\d+\.jpg"):
        UdacityFolderSource(tmp_path / "f")


def test_cache_of_another_config_is_rebuilt_and_the_old_entry_kept(tmp_path, generator) -> None:
    write_simlog(tmp_path / "sim", generator, 4)
    source = SimLogSource(tmp_path / "sim")
    yuv = build_cache(source, Preprocessing(color="yuv"), tmp_path / "cache", False)
    rgb = build_cache(source, Preprocessing(color="rgb"), tmp_path / "cache", False)
    assert not np.array_equal(np.asarray(yuv.images), np.asarray(rgb.images))
    assert len(list((tmp_path / "cache").iterdir())) == 2
    again = build_cache(source, Preprocessing(color="yuv", mean=[0.1, 0.2, 0.3]), tmp_path / "cache", False)
    assert again.meta == yuv.meta, "normalization does not change the cached pixels: reused"
    (tmp_path / "sim" / "driving_log.csv").write_text((tmp_path / "sim" / "driving_log.csv").read_text() + "\n")
    build_cache(SimLogSource(tmp_path / "sim"), Preprocessing(color="yuv"), tmp_path / "cache", False)
    assert len(list((tmp_path / "cache").iterdir())) == 3, "a changed source gets a new entry"


@pytest.mark.parametrize("fmt, kind", [("udacity_bag", "udacity_bag"), ("ros2_bag", "ros2_bag"),
                                       ("udacity_folder", "udacity_folder"), ("ch2_test", "ch2_test"),
                                       ("simlog", "simlog")])  # fmt: skip
def test_a_path_opens_as_the_layout_it_holds(tmp_path, fmt, kind) -> None:
    """What the bag player's `source:=<path>` relies on: each written layout is recognised by its files."""
    write_splits(tmp_path, {"test": 3}, height=48, width=64, fmt=fmt)
    path = tmp_path / ("test.bag" if fmt == "udacity_bag" else "test")
    assert spec_for_path(path)["kind"] == kind
    records = list(open_source(str(path)))
    assert len(records) == 3 and records[0].image.shape == (48, 64, 3)


def test_a_path_of_no_known_layout_is_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a recognised dataset"):
        spec_for_path(tmp_path)
