"""The camera subscription's reliability under `reliability: auto`: by a hand table, and over a real graph whose
publishers come and go."""

from __future__ import annotations

import time

import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.image_qos import ImageSubscription, reliability_for

R, B = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


@pytest.mark.parametrize(
    ("setting", "offered", "expected"),
    [("auto", [], B), ("auto", [R], R), ("auto", [R, R], R), ("auto", [B], B), ("auto", [R, B], B),
     ("auto", [B, R], B), ("reliable", [B], R), ("reliable", [], R), ("best_effort", [R], B)],
)  # fmt: skip
def test_auto_is_reliable_only_when_every_publisher_is(setting, offered, expected) -> None:
    assert reliability_for(setting, offered) == expected


def test_auto_follows_the_publishers_as_they_come_and_go() -> None:
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=claim_domain_id())
    camera = rclpy.create_node("camera_drivers", context=context)
    node = rclpy.create_node("subscriber", context=context)
    subscription = ImageSubscription(node, Image, "image", lambda m: None, "auto")

    def settles_on(wanted: ReliabilityPolicy) -> bool:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            subscription.update()
            if subscription.reliability == wanted:
                return True
            time.sleep(0.1)
        return False

    try:
        assert subscription.reliability == B, "nobody there yet: best effort takes whoever comes"
        reliable = camera.create_publisher(Image, "image", QoSProfile(depth=10, reliability=R))
        assert settles_on(R), "one reliable publisher"
        best_effort = camera.create_publisher(Image, "image", QoSProfile(depth=1, reliability=B))
        assert settles_on(B), "a best-effort one joins: a reliable subscription could not take it"
        camera.destroy_publisher(best_effort)
        assert settles_on(R), "it leaves: back to reliable"
        assert subscription.subscription.qos_profile.reliability == R
        camera.destroy_publisher(reliable)
    finally:
        subscription.destroy()
        node.destroy_node()
        camera.destroy_node()
        rclpy.shutdown(context=context)


def test_the_steering_node_looks_at_its_publishers_again_while_it_runs(tmp_path) -> None:
    """The node's own periodic look (not a test's update()): activated before any camera is up, it subscribes best
    effort, and turns reliable once the only publisher that comes offers reliable (the module's documented rule);
    seen from outside, in the graph."""
    from checkpoints import random_checkpoint
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from qattn_ros.ros.steering_node import SteeringNode

    checkpoint = random_checkpoint(tmp_path)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=claim_domain_id())
    camera = rclpy.create_node("camera_driver", context=context)
    node = SteeringNode(context=context, parameter_overrides=[Parameter("checkpoint", value=checkpoint),
                                                              Parameter("device", value="cpu")])  # fmt: skip
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def seen_by_the_graph() -> list[ReliabilityPolicy]:
        return [i.qos_profile.reliability for i in camera.get_subscriptions_info_by_topic("/image")
                if i.node_name == "qattn_steering"]  # fmt: skip

    def settles_on(wanted: ReliabilityPolicy) -> bool:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)  # the node's timers run here, nothing else calls update()
            if seen_by_the_graph() == [wanted]:
                return True
        return False

    try:
        node.trigger_configure()
        node.trigger_activate()
        assert settles_on(B), "nobody there yet: best effort"
        publisher = camera.create_publisher(Image, "image", QoSProfile(depth=10, reliability=R))
        assert settles_on(R), "the one publisher offers reliable: the node follows without being told"
        camera.destroy_publisher(publisher)
    finally:
        node.finalize()
        executor.remove_node(node)
        node.close()
        camera.destroy_node()
        rclpy.shutdown(context=context)
