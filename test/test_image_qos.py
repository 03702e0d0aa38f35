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
