"""The DDS transport the package's nodes choose: the user's choice kept, and large frames delivered to plain tools."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from processes import output, spawn

from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.dds_transport import apply_transport, choose_transport, receive_buffer_warning, write_profile
from qattn_ros.ros.graph import stop_as_launch_does

NS = {"dds": "http://www.eprosima.com"}
# Another process: writes a profile, says its pid and the path, exits (its exit removes the folder)
WRITES_A_PROFILE = """
import os
from qattn_ros.ros.dds_transport import write_profile
print(os.getpid(), write_profile("<dds/>"))
"""


def _profile(choice) -> ET.Element:
    return ET.fromstring(choice.profile)


def test_default_range_gets_large_shared_memory_and_udp(tmp_path) -> None:
    choice = choose_transport({}, tmp_path)
    root = _profile(choice)
    shm = root.find(".//dds:transport_descriptor[dds:type='SHM']", NS)
    assert int(shm.find("dds:segment_size", NS).text) >= 8 * 1024 * 1024
    assert int(shm.find("dds:maxMessageSize", NS).text) > 640 * 480 * 3, "a 640x480 rgb8 frame in one message"
    assert root.find(".//dds:transport_descriptor[dds:type='UDPv4']", NS) is not None, "other hosts, discovery"
    assert root.find(".//dds:useBuiltinTransports", NS).text == "false"
    assert root.find(".//dds:initialPeersList", NS) is None and not choice.environment, "discovery as usual"


@pytest.mark.parametrize("env", [{"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}, {"ROS_LOCALHOST_ONLY": "1"}])
def test_localhost_is_kept_by_the_profile_not_by_rmw(env, tmp_path) -> None:
    choice = choose_transport(env, tmp_path)
    root = _profile(choice)
    assert root.find(".//dds:initialPeersList//dds:address", NS).text == "127.0.0.1"
    assert root.find(".//dds:metatrafficUnicastLocatorList", NS) is not None, "no multicast"
    assert choice.environment == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", "ROS_LOCALHOST_ONLY": None}
    assert "LOCALHOST" in choice.message and not choice.warning


def test_static_peers_join_localhost_as_rmw_would_add_them(tmp_path) -> None:
    env = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_STATIC_PEERS": "192.168.0.7; localhost",
    }
    addresses = [
        a.text for a in _profile(choose_transport(env, tmp_path)).findall(".//dds:initialPeersList//dds:address", NS)
    ]
    assert addresses == ["127.0.0.1", "192.168.0.7", "127.0.0.1"], "names resolved"


@pytest.mark.parametrize(
    "env, says",
    [
        ({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}, "yours, FASTDDS_BUILTIN_TRANSPORTS=UDPv4"),
        ({"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my.xml"}, "yours, the Fast DDS XML profile /etc/my.xml"),
        ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/old.xml"}, "yours, the Fast DDS XML profile /etc/old.xml"),
        ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, "left to rmw_cyclonedds_cpp"),
        ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}, "left to rmw_c"),
    ],
)
def test_a_users_own_choice_is_kept(env, says, tmp_path) -> None:
    choice = choose_transport(env, tmp_path)
    assert choice.profile is None and not choice.environment and says in choice.message and not choice.warning


def test_a_profile_in_the_working_folder_is_the_users(tmp_path) -> None:
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    choice = choose_transport({}, tmp_path)
    assert choice.profile is None and str(tmp_path / "DEFAULT_FASTDDS_PROFILES.xml") in choice.message


def test_builtin_transports_under_localhost_are_said_to_have_no_effect(tmp_path) -> None:
    choice = choose_transport(
        {"FASTDDS_BUILTIN_TRANSPORTS": "SHM", "ROS_AUTOMATIC_DISCOVERY_RANGE": "localhost"}, tmp_path
    )
    assert choice.warning and "has no effect" in choice.message and choice.profile is None


def test_applied_once_inherited_by_the_processes_it_starts(tmp_path) -> None:
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    first = apply_transport(env)
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).read_text() == first.profile
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SYSTEM_DEFAULT"
    child = choose_transport(dict(env), tmp_path)
    assert child.profile is None and "qattn_ros's profile" in child.message
    path = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700, "private"
    # write_profile's promise: a new private folder `<PROFILE_PREFIX><pid>_<random>` of this process (the name
    # remove_dead_profiles reads the writer from) in the temporary folder, the profile read back whole
    again = write_profile(first.profile)
    assert again.parent != path.parent and again.read_text() == first.profile
    for written in (path, again):
        assert written.parent.parent == Path(tempfile.gettempdir()) and written.name == "profile.xml"
        assert written.parent.name.startswith(f"qattn_ros_fastdds_{os.getpid()}_")
    child = subprocess.run([sys.executable, "-c", WRITES_A_PROFILE], capture_output=True, text=True, timeout=60)
    pid, written = child.stdout.split()
    assert Path(written).parent.name.startswith(f"qattn_ros_fastdds_{pid}_"), "another process, a folder of its own"
    assert int(pid) != os.getpid() and not Path(written).parent.exists(), "removed when that process exits"


@pytest.mark.parametrize(
    ("folder_mode", "file_mode", "used"),
    [
        (0o1777, 0o600, False),  # a shared folder as /tmp is: anyone may put a file there
        (0o770, 0o600, False),  # the group may
        (0o700, 0o666, False),  # a private folder, but anyone may rewrite the file
        (0o700, 0o600, True),  # private and whole: a profile of ours, used
    ],
    ids=["shared_as_tmp", "group_writable", "file_anyone_writes", "private"],
)
def test_a_profile_planted_where_others_can_write_is_not_used(tmp_path, folder_mode, file_mode, used) -> None:
    """Anyone can create /tmp/qattn_ros_fastdds_<x>: a profile that is not this user's private, whole one is ignored
    (said in a warning) and LOCALHOST is kept by a profile of our own. Planted in a folder of this user (whoever runs
    the test, root too), so that only the permission bits tell the cases apart, never who owns /tmp."""
    folder = tmp_path / f"qattn_ros_fastdds_{os.getpid()}_planted"
    folder.mkdir()
    planted = folder / "profile.xml"
    planted.write_text(choose_transport({}, tmp_path).profile)  # a complete profile
    planted.chmod(file_mode)
    folder.chmod(folder_mode)
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": str(planted), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    if used:
        choice = choose_transport(dict(env), tmp_path)
        assert not choice.warning and choice.profile is None and f"qattn_ros's profile {planted}" in choice.message
        return
    applied = apply_transport(env)
    assert applied.warning and f"ignored {planted}" in applied.message
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]) != planted
    assert "<initialPeersList>" in Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).read_text(), "LOCALHOST kept"


def test_a_truncated_profile_in_a_private_folder_is_not_used(tmp_path) -> None:
    env: dict[str, str] = {}
    apply_transport(env)
    ours = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    ours.write_text(ours.read_text()[:300])  # cut short, as by a crash or a full disk
    child = choose_transport(dict(env), tmp_path)
    assert child.warning and child.profile is not None and f"ignored {ours}" in child.message


def test_frames_come_in_over_udp_with_a_receive_buffer_for_whole_frames(tmp_path) -> None:
    """A foreign camera's writer would otherwise put its fragments in its own 512 KB shared-memory segment."""
    root = _profile(choose_transport({}, tmp_path))
    incoming = root.findall(".//dds:participant//dds:defaultUnicastLocatorList/dds:locator/*", NS)
    assert [element.tag.split("}")[1] for element in incoming] == ["udpv4"]
    udp = root.find(".//dds:transport_descriptor[dds:type='UDPv4']", NS)
    assert int(udp.find("dds:receiveBufferSize", NS).text) >= 2 * 1280 * 720 * 3, "two 720p bgr8 frames"


def test_a_small_kernel_receive_cap_is_said(tmp_path) -> None:
    (tmp_path / "rmem_max").write_text("212992\n")
    assert "net.core.rmem_max is 212992" in receive_buffer_warning(tmp_path / "rmem_max")
    (tmp_path / "rmem_max").write_text("8388608\n")
    assert receive_buffer_warning(tmp_path / "rmem_max") == ""


# What a user's own tool does (`ros2 topic echo`, RViz): rclpy with nothing set but the discovery range
PLAIN_SUBSCRIBER = """
import time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("plain_tool")
got = []
node.create_subscription(Image, "/image", lambda m: got.append(m.width), QoSProfile(depth=5,
                         reliability=ReliabilityPolicy.BEST_EFFORT))
end = time.monotonic() + 90
while len(got) < 10 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
print("frames", len(got), "widths", set(got), flush=True)
"""


@pytest.mark.parametrize("discovery_range", ["", "LOCALHOST"])
def test_a_plain_tool_receives_640x480_frames_from_a_package_node(discovery_range, tmp_path) -> None:
    """The package's camera (its own transport choice) and a tool with none: discovered, and whole frames arrive."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTDDS_", "FASTRTPS_", "ROS_AUTOMATIC"))}
    env |= {"ROS_DOMAIN_ID": str(claim_domain_id()), "PYTHONUNBUFFERED": "1"}
    if discovery_range:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery_range
    camera = spawn([sys.executable, "-m", "qattn_ros.ros.camera_publisher", "--ros-args", "-p", "width:=640",
                    "-p", "height:=480", "-p", "rate:=10.0"], env=env, cwd=tmp_path)  # fmt: skip
    try:
        tool = subprocess.run([sys.executable, "-c", PLAIN_SUBSCRIBER], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=240)  # fmt: skip
    finally:
        stop_as_launch_does([camera])
    assert "frames 10 widths {640}" in tool.stdout, tool.stdout + tool.stderr[-2000:] + output(camera)[-2000:]
    assert output(camera).count("DDS transport: frames in over UDP") == 1, "said once"


def test_profile_folders_of_killed_processes_are_removed_at_the_next_start(tmp_path) -> None:
    """Three nodes SIGKILLed (no exit to remove their folders), then one more start: no folder of a dead process
    is left; a folder of a live process, and one of another name, stay."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTDDS_", "FASTRTPS_"))}
    env |= {"TMPDIR": str(tmp_path), "ROS_DOMAIN_ID": str(claim_domain_id())}
    command = [sys.executable, "-m", "qattn_ros.ros.entry_points", "camera_publisher", "--ros-args", "-p", "rate:=1.0"]

    def started() -> subprocess.Popen:
        process = spawn(command, env=env)
        end = time.monotonic() + 120
        while not list(tmp_path.glob(f"qattn_ros_fastdds_{process.pid}_*")) and time.monotonic() < end:
            assert process.poll() is None, output(process)
            time.sleep(0.05)
        return process

    killed = [started() for _ in range(3)]
    for process in killed:
        process.kill()
        process.wait()
    assert len(list(tmp_path.glob("qattn_ros_fastdds_*"))) == 3, "SIGKILL left them"
    (tmp_path / "qattn_ros_fastdds_notapid").mkdir()
    latest = started()
    try:
        left = sorted(p.name for p in tmp_path.glob("qattn_ros_fastdds_*"))
        alive = [p.name for p in tmp_path.glob(f"qattn_ros_fastdds_{latest.pid}_*")]
    finally:
        stop_as_launch_does([latest])
    assert len(alive) == 1 and [n for n in left if n != "qattn_ros_fastdds_notapid"] == alive, left
    assert "qattn_ros_fastdds_notapid" in left
