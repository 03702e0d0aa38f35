"""The camera subscription: the newest frame from any camera driver's QoS, and one WARN when none can match.

Camera drivers publish with REP-2003's sensor-data QoS (best effort), with rclpy's and rclcpp's
default (reliable, keep last 10) or best effort with a short history; a user cannot change theirs.
`reliability: auto` (the default) reads the publishers' QoS from the graph and subscribes reliable
when every publisher offers reliable (a lost fragment of a large frame is then sent again, whatever
the transport), best effort when any publisher is best effort (a reliable subscription cannot match
it) or none is there yet, and follows the graph as publishers come and go. History is keep last 1:
the newest frame, no queue to build latency. With `reliable` or `best_effort` the choice is the
user's; a publisher it cannot match is named, with both profiles, in one WARN.
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from .dds_transport import receive_buffer_warning

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

CHECK_PERIOD = 1.0  # s between looks at the graph


def reliability_for(setting: str, offered: list[ReliabilityPolicy]) -> ReliabilityPolicy:
    """The subscription's reliability for the `reliability` parameter and the publishers' offered reliabilities."""
    if setting == "reliable" or (setting == "auto" and offered and all(r == ReliabilityPolicy.RELIABLE
                                                                        for r in offered)):  # fmt: skip
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def describe(qos: QoSProfile) -> str:
    """A QoS profile in the words of `ros2 topic info -v` (the graph does not carry a publisher's history)."""
    history = "" if qos.history.name == "UNKNOWN" else f"{qos.history.name.lower()} {qos.depth}, "
    return f"{qos.reliability.name.lower()}, {history}{qos.durability.name.lower()}"


def _node_name(namespace: str, name: str) -> str:
    """The publisher's node, or 'a publisher' while discovery has not yet named it."""
    return "a publisher" if "_UNKNOWN_" in name else f"{namespace.rstrip('/')}/{name}"


class ImageSubscription:
    """The node's subscription to its camera topic, made (and remade) with the reliability its publishers need."""

    def __init__(self, node: Node, message_type, topic: str, callback: Callable, setting: str) -> None:
        self.node, self.message_type, self.topic, self.callback, self.setting = (
            node, message_type, topic, callback, setting)  # fmt: skip
        self.subscription = None
        self.offered: list[tuple[str, str]] = []  # the publishers last seen, with their QoS
        self.warned: set[tuple[str, str]] = set()  # (publisher, its QoS) already named in a WARN
        self.update()

    @property
    def topic_name(self) -> str:
        return self.subscription.topic_name

    def qos(self) -> QoSProfile:
        return QoSProfile(depth=1, reliability=self.reliability)

    def update(self) -> None:
        """Look at the graph: remake the subscription if its publishers now need another reliability."""
        publishers = self._publishers()
        wanted = reliability_for(self.setting, [qos.reliability for _, qos in publishers])
        offered = sorted((name, describe(qos)) for name, qos in publishers)
        if self.subscription is not None and wanted == self.reliability and offered == self.offered:
            return
        if self.subscription is None or wanted != self.reliability:
            self.destroy()
            self.reliability = wanted
            self.subscription = self.node.create_subscription(
                self.message_type, self.topic, self.callback, self.qos(),
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda event: self._explain()))  # fmt: skip
        self.offered = offered
        if publishers:  # said when the publishers change
            by = "; ".join(f"{name}: {qos}" for name, qos in offered)
            self.node.get_logger().info(f"image QoS {describe(self.qos())} (reliability={self.setting}; "
                                        f"{self.subscription.topic_name} offered by {by})")  # fmt: skip
            if wanted == ReliabilityPolicy.BEST_EFFORT and (note := receive_buffer_warning()):
                self.node.get_logger().warning(note)

    def _publishers(self) -> list[tuple[str, QoSProfile]]:
        topic = self.subscription.topic_name if self.subscription is not None else self.topic
        infos = self.node.get_publishers_info_by_topic(self.node.resolve_topic_name(topic))
        return [(_node_name(i.node_namespace, i.node_name), i.qos_profile) for i in infos]

    def _explain(self) -> None:
        """A publisher whose QoS cannot match this subscription: followed (auto), or named once with both profiles."""
        if self.setting == "auto":  # the graph is followed every CHECK_PERIOD
            return
        ours = self.qos()
        for name, qos in self._publishers():
            key = (name, describe(qos))
            if (
                ours.reliability == qos.reliability
                or ours.reliability == ReliabilityPolicy.BEST_EFFORT
                or (key in self.warned)
            ):
                continue
            self.warned.add(key)
            self.node.get_logger().warning(
                f"no frames from {name} on {self.subscription.topic_name}: it offers {describe(qos)}, this node "
                f"requests {describe(ours)} (reliability={self.setting}), and a reliable subscription cannot take "
                "a best-effort publisher; set reliability:=auto (or best_effort)")  # fmt: skip

    def destroy(self) -> None:
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None
