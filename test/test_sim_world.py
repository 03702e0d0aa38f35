"""The simulator's world, headless: geometry signs, the road ahead, a world that stays put, harder conditions."""

import hashlib
import math

import numpy as np
import pytest

from qattn_ros.core.errors import ConfigError
from qattn_ros.core.streams import stream
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.sim.drive import drive
from qattn_ros.sim.track import HELD_OUT_SEEDS, Track, generate_track
from qattn_ros.sim.world import ONCOMING_SPEED, RoadSim, SimConfig

SPEED = 15.0

# sha256 (first 16 hex) of image + mask of training frames, recorded before the simulator's view was added
# drawn from the purpose-named streams (qattn_ros/core/streams.py; before them, 453ea09c538ef727 for frame 0, ...)
TRAINING_FRAMES = {0: "4906425f1944b9bf", 1: "e82c4c57ae21c2e3", 5: "dc7ee65ef4f67565", 11: "84362478f1a766ca",
                   23: "c9e6f7793dfd5f01"}  # fmt: skip


def test_training_frames_are_bit_identical_to_before_the_simulator_view() -> None:
    """Checkpoints were trained on these frames: the renderer's hooks must not change a pixel of them."""
    generator = RoadGenerator(160, 320, seed=7)
    for index, digest in TRAINING_FRAMES.items():
        frame = generator.frame(index)
        assert hashlib.sha256(frame.image.tobytes() + frame.mask.tobytes()).hexdigest()[:16] == digest, index


# -- signs (mutations: the lateral sign in Track.pose, the sign of dn/dt) -----------------------------------
def test_pose_puts_left_offsets_on_the_left() -> None:
    """REP-103, x forward, y left: 1 m left of a road heading +x is y = +1; left of a left bend, inside it."""
    straight = Track(np.array([100.0]), np.array([0.0]))
    x, y, yaw = straight.pose(20.0, 1.0, 0.1)
    assert (x, y, yaw) == pytest.approx((20.0, 1.0, 0.1), abs=1e-6)
    k = 1 / 40
    circle = Track(np.array([200.0]), np.array([k]))  # centred at (0, 40)
    for s in (10.0, 30.0, 60.0):
        x, y, _ = circle.pose(s, 1.0, 0.0)
        assert math.hypot(x, y - 40) == pytest.approx(39.0, abs=0.05), "left of a left bend is inside it"


def test_heading_and_wheel_to_the_left_move_the_car_left() -> None:
    sim = RoadSim(Track(np.array([400.0]), np.array([0.0])), SimConfig(steering_delay=0.0))
    sim.theta = 0.05
    sim.step(SPEED, 0.0)
    assert sim.n == pytest.approx(SPEED * 0.05 * math.sin(0.05) / 0.05 / 20, rel=1e-3), "dn/dt = v sin(theta) > 0"
    sim = RoadSim(Track(np.array([400.0]), np.array([0.0])), SimConfig(steering_delay=0.0))
    for _ in range(10):
        sim.step(SPEED, 0.02)
    assert sim.theta > 0 and sim.n > 0 and sim.log.y[-1] > 0, "a left wheel turns the car left, in Frenet and in odom"


def test_an_intervention_drops_the_commands_still_in_the_steering_delay() -> None:
    """Re-centred with the wheels straight: a command given before the intervention never turns them after it."""
    sim = RoadSim(Track(np.array([400.0]), np.array([0.0])), SimConfig(steering_delay=0.2))
    while not sim.log.interventions:
        sim.step(SPEED, 0.3)  # hard left until the car leaves the lane
        assert sim.steps < 100
    for _ in range(10):  # 0.5 s of straight-ahead commands: longer than the delay
        sim.step(SPEED, 0.0)
        assert (sim.delta, sim.theta, sim.n) == (0.0, 0.0, 0.0), sim.steps


def test_pursuit_drives_held_out_roads_without_interventions() -> None:
    """Closed loop on the ground truth: a sign error in the geometry shows as interventions (34 with dn/dt flipped)."""
    for seed in HELD_OUT_SEEDS[:3]:
        sim = RoadSim(generate_track(seed, 1000))
        drive(sim, lambda frame, sim=sim: sim.pursuit_steering(), SPEED, progress=False, render=False)
        assert not sim.log.interventions and np.abs(sim.log.offset).max() < 0.5, seed


# -- the road ahead ------------------------------------------------------------------------------------------
def _centre_line_in_car_frame(track: Track, s: float, ahead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(forward, right) of the centre line `ahead` m on, seen from a car on the centre line at s facing the road."""
    _, x, y, yaw = track.centre_line(0.05)
    i = round(s / 0.05)
    j = np.round((s + ahead) / 0.05).astype(int)
    dx, dy = x[j] - x[i], y[j] - y[i]
    return dx * np.cos(yaw[i]) + dy * np.sin(yaw[i]), dx * np.sin(yaw[i]) - dy * np.cos(yaw[i])


def test_the_road_ahead_follows_an_s_bend_where_one_mean_curvature_cannot() -> None:
    """An S-bend's far half bends back: the profile draws it within cm, one mean curvature misses it by metres."""
    track = Track(np.array([20.0, 25.0, 40.0, 100.0]), np.array([0.0, 1 / 40, -1 / 40, 0.0]), 1000)
    ahead = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    forward, right = _centre_line_in_car_frame(track, 15.0, ahead)
    errors = {}
    for mode in ("profile", "mean"):
        sim = RoadSim(track, SimConfig(road_ahead=mode))
        sim.s = 15.0
        errors[mode] = np.abs(np.asarray(sim.scene().lane_center(forward)) - right).max()
    assert errors["profile"] < 0.01 and errors["mean"] > 2.0, errors


def test_world_objects_stay_put_and_oncoming_cars_come_closer() -> None:
    sim = RoadSim(generate_track(HELD_OUT_SEEDS[3], 400))
    view, scene = sim.renderer, sim.scene()
    view.s, view.time = 100.0, 5.0
    before = view._objects(scene, [], None)
    view.s, view.time = 104.0, 5.25
    after = view._objects(scene, [], None)
    trees = lambda objects: sorted(o[1:3] for o in objects if o[0] == "tree")  # noqa: E731
    moved = {round(z_after - z_before, 6) for (z_before, lat), (z_after, lat2) in zip(trees(before), trees(after))
             if lat == lat2}  # fmt: skip
    assert moved == {-4.0}, "a tree 4 m nearer after driving 4 m"
    cars = [(o[1] for o in objects if o[0] == "car") for objects in (before, after)]
    for z_before, z_after in zip(*cars):
        assert z_after - z_before == pytest.approx(-4.0 - ONCOMING_SPEED * 0.25)
    view.s = 101.0
    shadows = view._shadows([], None)
    view.s = 103.0
    assert [z + 2.0 for _, z, _, _ in view._shadows([], None)] == pytest.approx([z for _, z, _, _ in shadows][:4])


def test_dashes_flow_past_the_car() -> None:
    """On a straight, the near road looks the same one dash period (12 m) on, and different half a period on."""
    sim = RoadSim(Track(np.array([400.0]), np.array([0.0]), 1003), SimConfig(zone_length=400.0))
    assert stream("sim_world", 1003, 0, 2).random(24)[6] < 0.6, "this road's centre line is dashed"
    near = {}
    for s in (100.0, 106.0, 112.0):
        sim.s = s
        near[s] = sim.frame().mask[120:]
    assert np.array_equal(near[100.0], near[112.0]) and (near[100.0] != near[106.0]).sum() > 50


# -- harder conditions ---------------------------------------------------------------------------------------
def test_camera_noise_and_photometric_shift_are_seeded_and_off_by_default() -> None:
    track = generate_track(HELD_OUT_SEEDS[0], 300)
    plain = RoadSim(track).frame().image
    again = RoadSim(track, SimConfig(road_ahead="profile")).frame().image
    assert np.array_equal(plain, again)
    shifted = [RoadSim(track, SimConfig(noise=20, brightness=0.5, colour_cast=(1.2, 1, 0.8))).frame().image
               for _ in range(2)]  # fmt: skip
    assert np.array_equal(*shifted) and shifted[0].mean() < 0.7 * plain.mean()
    assert shifted[0][..., 0].mean() > shifted[0][..., 2].mean() + 5, "a warm cast"


def test_unseen_markings_change_the_picture_and_missing_ones_leave_only_the_edge() -> None:
    track = generate_track(HELD_OUT_SEEDS[1], 300)
    blue = RoadSim(track, SimConfig(marking_colour=(0.0, 0.0, 1.0), line_width=0.4)).frame()
    assert ((blue.image[..., 2] > 150) & (blue.image[..., 0] < 60)).sum() > 200
    plain, bare = RoadSim(track).frame(), RoadSim(track, SimConfig(missing_markings=1.0)).frame()
    assert bare.mask.sum() < 0.8 * plain.mask.sum() and not np.array_equal(bare.image, plain.image)


def test_gusts_push_the_car_and_a_start_off_centre_alternates_sides() -> None:
    runs = []
    for _ in range(2):
        sim = RoadSim(generate_track(HELD_OUT_SEEDS[0], 400), SimConfig(gust=0.6, start_offset=0.5))
        assert sim.n == 0.5
        drive(sim, lambda frame, sim=sim: sim.pursuit_steering(), SPEED, progress=False, render=False)
        runs.append(sim.log.offset)
    assert runs[0] == runs[1], "seeded: the same gusts every time"
    calm = RoadSim(generate_track(HELD_OUT_SEEDS[0], 400))
    drive(calm, lambda frame: calm.pursuit_steering(), SPEED, progress=False, render=False)
    assert np.abs(runs[0][40:]).mean() > 2 * np.abs(calm.log.offset[40:]).mean()
    assert RoadSim(generate_track(HELD_OUT_SEEDS[1], 100), SimConfig(start_offset=0.5)).n == -0.5


@pytest.mark.parametrize("bad", [{"gust": -1}, {"start_offset": 1.0}, {"noise": 300}, {"road_ahead": "flat"},
                                 {"marking_colour": (2, 0, 0)}, {"missing_markings": 1.5}])  # fmt: skip
def test_bad_conditions_are_refused_by_name(bad) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        SimConfig(**bad)
