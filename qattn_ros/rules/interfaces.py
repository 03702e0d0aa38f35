"""What each node of the package publishes, subscribes and serves, without ROS: the documented interface.

The nodes in `qattn_ros/ros/` create their own publishers; this module declares the same topics
for the documentation (`python -m tools.doc_tables` makes the topic tables and the node-graph
picture from it) and `test/test_docs.py` checks it against the nodes' source. Topic names are
relative (in the node's namespace) unless they start with `/`; `~/` is the node's private namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

# QoS profiles, in the words of `ros2 topic info -v`
CAMERA_IN = "keep last 1; reliable or best effort: `reliability` (auto: as the camera's publishers offer)"
IMAGE_OUT = "keep last 1; best effort with `reliability: best_effort`, else reliable"
DEPTH_10 = "reliable, keep last 10"
BEST_EFFORT_1 = "best effort, keep last 1"
IN_ORDER = "reliable, keep all"
LATCHED = "reliable, transient local, keep last 1"


@dataclass(frozen=True)
class Topic:
    """One topic or service of a node."""

    name: str
    type: str  # package/msg/Name or package/srv/Name
    direction: str  # "out" (published), "in" (subscribed) or "service"
    qos: str
    description: str
    builtin: bool = False  # made by rclpy (lifecycle), not by the node's own code


@dataclass(frozen=True)
class NodeInterface:
    """A node: its name (also its executable), the module that implements it, and its topics."""

    name: str
    module: str
    role: str
    topics: tuple[Topic, ...]


STEERING = NodeInterface(
    "qattn_steering",
    "qattn_ros.ros.steering_node",
    "camera image in; steering command, attention and diagnostics out (a lifecycle node)",
    (
        Topic("image", "sensor_msgs/msg/Image", "in", CAMERA_IN,
              "camera frames (`transport: raw`): rgb8/16, bgr8/16, rgba8/16, bgra8/16, mono8/16, yuv422 (uyvy), "
              "yuv422_yuy2 (yuyv), nv12, nv21, bayer_rggb/bggr/gbrg/grbg 8 and 16"),
        Topic("image/compressed", "sensor_msgs/msg/CompressedImage", "in", CAMERA_IN,
              "camera frames (`transport: compressed`): jpeg, png"),
        Topic("cmd_vel", "geometry_msgs/msg/TwistStamped", "out", DEPTH_10,
              "linear.x = `cruise_speed`, angular.z = v·tan(δ)/`wheelbase`; Twist with `cmd_vel_type: twist`"),
        Topic("drive", "ackermann_msgs/msg/AckermannDriveStamped", "out", DEPTH_10,
              "front-wheel angle δ and speed; only where ackermann_msgs is installed"),
        Topic("steering_angle", "sensor_msgs/msg/JointState", "out", DEPTH_10,
              "joint `front_wheel`: the predicted front-wheel angle (rad, positive left, before clamping)"),
        Topic("attention/overlay", "sensor_msgs/msg/Image", "out", IMAGE_OUT,
              "bgr8, camera size: the attention blended on the frame (`publish_overlay`)"),
        Topic("attention/map", "sensor_msgs/msg/Image", "out", IMAGE_OUT, "32FC1: the raw 10×20 attention (sums to 1)"),
        Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "out", DEPTH_10,
              "per `diagnostics_period`: frames in/out, dropped, bad, non-finite, clamped, latency p50/p99"),
        Topic("~/enable", "std_srvs/srv/SetBool", "service", "–",
              "false: a zero-speed command, then commands paused (attention keeps flowing); true: resume"),
        Topic("~/change_state", "lifecycle_msgs/srv/ChangeState", "service", "–",
              "lifecycle transitions (`ros2 lifecycle set`)", builtin=True),
        Topic("~/transition_event", "lifecycle_msgs/msg/TransitionEvent", "out", DEPTH_10,
              "each lifecycle transition, `finalized` last", builtin=True),
    ),
)  # fmt: skip

CAMERA = NodeInterface(
    "qattn_camera",
    "qattn_ros.ros.camera_publisher",
    "a camera for trying the node: synthetic roads, an image folder, a video or a Udacity bag",
    (
        Topic("image", "sensor_msgs/msg/Image", "out", BEST_EFFORT_1, "`transport: raw`, `encoding` (rgb8 default)"),
        Topic("image/compressed", "sensor_msgs/msg/CompressedImage", "out", BEST_EFFORT_1,
              "`transport: compressed`: JPEG"),
    ),
)  # fmt: skip

BAG_PLAYER = NodeInterface(
    "qattn_bag_player",
    "qattn_ros.ros.bag_player",
    "plays a recorded drive with its stamps; lockstep waits for the evaluator's answer",
    (
        Topic("image", "sensor_msgs/msg/Image", "out", IN_ORDER, "rgb8 frames with the recorded stamps"),
        Topic("ground_truth/steering_angle", "sensor_msgs/msg/JointState", "out", IN_ORDER,
              "the recorded steering as the front-wheel angle (rad, positive left)"),
        Topic("replay/frame", "std_msgs/msg/Header", "out", IN_ORDER,
              "the frame's stamp; frame_id = its index in the source"),
        Topic("/clock", "rosgraph_msgs/msg/Clock", "out", IN_ORDER, "the recorded time"),
        Topic("replay/status", "std_msgs/msg/String", "out", LATCHED, "JSON: where the replay stands"),
        Topic("replay/ack", "std_msgs/msg/Header", "in", IN_ORDER, "the evaluator's answer per frame (lockstep)"),
    ),
)  # fmt: skip

EVALUATOR = NodeInterface(
    "qattn_replay_evaluator",
    "qattn_ros.ros.replay_evaluator",
    "pairs each frame with what the node published for it and evaluates it online",
    (
        Topic("image", "sensor_msgs/msg/Image", "in", IN_ORDER, "the player's frames"),
        Topic("attention/map", "sensor_msgs/msg/Image", "in", IN_ORDER, "the node's attention, the saliency evaluated"),
        Topic("steering_angle", "sensor_msgs/msg/JointState", "in", IN_ORDER, "the node's prediction"),
        Topic("ground_truth/steering_angle", "sensor_msgs/msg/JointState", "in", IN_ORDER, "the player's ground truth"),
        Topic("replay/frame", "std_msgs/msg/Header", "in", IN_ORDER, "each frame's index in the source"),
        Topic("attention/overlay", "sensor_msgs/msg/Image", "in", IN_ORDER, "recorded only"),
        Topic("cmd_vel", "geometry_msgs/msg/TwistStamped", "in", IN_ORDER, "recorded only"),
        Topic("replay/status", "std_msgs/msg/String", "in", LATCHED, "the player's state"),
        Topic("replay/ack", "std_msgs/msg/Header", "out", IN_ORDER, "`ready`, then per frame: answered or `held`"),
    ),
)  # fmt: skip

SIMULATOR = NodeInterface(
    "qattn_simulator",
    "qattn_ros.ros.simulator",
    "renders the synthetic road from the car's pose and drives the car from the node's commands",
    (
        Topic("image", "sensor_msgs/msg/Image", "out", DEPTH_10, "rgb8 (`transport: raw`), 320×160 by default"),
        Topic("image/compressed", "sensor_msgs/msg/CompressedImage", "out", DEPTH_10, "JPEG (`transport: compressed`)"),
        Topic("/clock", "rosgraph_msgs/msg/Clock", "out", DEPTH_10,
              "sim time; lockstep: moves on when the command is in"),
        Topic("ground_truth/steering_angle", "sensor_msgs/msg/JointState", "out", DEPTH_10,
              "pure pursuit on the visible road: the training label"),
        Topic("sim/pose", "geometry_msgs/msg/PoseStamped", "out", DEPTH_10, "the car in `odom`"),
        Topic("sim/lane", "geometry_msgs/msg/Vector3Stamped", "out", DEPTH_10,
              "lateral offset, heading error, curvature"),
        Topic("sim/status", "std_msgs/msg/String", "out", LATCHED, "JSON: where the drive stands"),
        Topic("/tf", "tf2_msgs/msg/TFMessage", "out", DEPTH_10, "odom → base_link, where tf2_msgs is installed"),
        Topic("cmd_vel", "geometry_msgs/msg/TwistStamped", "in", DEPTH_10, "wheel angle = atan(L·ω / v)"),
        Topic("drive", "ackermann_msgs/msg/AckermannDriveStamped", "in", DEPTH_10, "where ackermann_msgs is installed"),
    ),
)  # fmt: skip

NODES: dict[str, NodeInterface] = {n.name: n for n in (STEERING, CAMERA, BAG_PLAYER, EVALUATOR, SIMULATOR)}
