"""The DDS transport this package's node processes use when the user has chosen none.

A 640x480 rgb8 camera frame is 900 KB. Between processes on one machine Fast DDS (3.2, what
rmw_fastrtps 9.3 ships) carries it whole only over shared memory with room for it: the UDP
path loses fragments of large best-effort samples under load, and the default shared-memory
segment (512 KB) splits a frame into 64 KB fragments that are lost or repaired slowly. Every
node of this package therefore asks, before rclpy.init, for shared memory with 8 MB segments
and 2 MB messages, plus UDP for everything else (other hosts, discovery), through a Fast DDS
XML profile:

- default discovery range (SUBNET): discovery as usual (UDP multicast), so `ros2 topic`,
  RViz and nodes of other packages that set nothing still see and hear these nodes.
- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (or the older ROS_LOCALHOST_ONLY=1): rmw_fastrtps
  then replaces the participant's transports with its own (the 512 KB shared-memory segment
  and UDP), which also silently drops FASTDDS_BUILTIN_TRANSPORTS
  (rmw_fastrtps_shared_cpp/src/participant.cpp, `RMW_AUTOMATIC_DISCOVERY_RANGE_LOCALHOST`).
  The profile sets up what rmw would (no multicast, 127.0.0.1 as the initial peer, up to 32
  participants), with the larger segment, and this process's range becomes SYSTEM_DEFAULT so
  that rmw leaves the profile alone: discovery stays on this machine and other LOCALHOST
  processes still find these nodes.

A user's own choice wins: FASTDDS_BUILTIN_TRANSPORTS, an XML profile (FASTDDS_DEFAULT_PROFILES_FILE,
FASTRTPS_DEFAULT_PROFILES_FILE, DEFAULT_FASTDDS_PROFILES.xml in the working directory) or an RMW
other than Fast DDS is left as it is, and the log says so once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

FAST_DDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILES_IN_CWD = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")
PROFILE_PREFIX = "qattn_ros_fastdds_"
SHM_SEGMENT = 8 * 1024 * 1024  # several whole frames in flight per writer
SHM_MESSAGE = 2 * 1024 * 1024  # a 640x480 rgb8 frame (900 KB) in one message, a 800x600 rgba8 one too

# what rmw_fastrtps sets up for LOCALHOST: no multicast, a unicast locator, 127.0.0.1 as the initial peer
_LOCALHOST_DISCOVERY = """
        <builtin>
          <metatrafficUnicastLocatorList><locator><udpv4/></locator></metatrafficUnicastLocatorList>
          <initialPeersList><locator><udpv4><address>127.0.0.1</address></udpv4></locator></initialPeersList>
        </builtin>"""
_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<!-- written by qattn_ros (qattn_ros/ros/dds_transport.py): shared memory for whole camera frames, UDP for the rest -->
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>qattn_shm</transport_id>
        <type>SHM</type>
        <segment_size>{segment}</segment_size>
        <maxMessageSize>{message}</maxMessageSize>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>qattn_udp</transport_id>
        <type>UDPv4</type>
        <maxInitialPeersRange>32</maxInitialPeersRange>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="qattn_ros_{name}" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>qattn_shm</transport_id>
          <transport_id>qattn_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>{discovery}
      </rtps>
    </participant>
  </profiles>
</dds>
"""


@dataclass(frozen=True)
class TransportChoice:
    """What to change in the environment before rclpy.init, and the one log line that says why."""

    message: str
    profile: str | None = None  # Fast DDS XML to write and name in FASTDDS_DEFAULT_PROFILES_FILE
    environment: dict[str, str | None] = field(default_factory=dict)  # None: unset
    warning: bool = False


def profile_xml(localhost: bool) -> str:
    name, discovery = ("localhost", _LOCALHOST_DISCOVERY) if localhost else ("subnet", "")
    return _PROFILE.format(segment=SHM_SEGMENT, message=SHM_MESSAGE, name=name, discovery=discovery)


def _localhost(env: MutableMapping[str, str]) -> bool:
    discovery_range = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper()
    return discovery_range == "LOCALHOST" or (not discovery_range and env.get("ROS_LOCALHOST_ONLY") == "1")


def choose_transport(env: MutableMapping[str, str], cwd: Path) -> TransportChoice:
    """The transport for a node process started with environment `env` in folder `cwd`."""
    rmw = env.get("RMW_IMPLEMENTATION", "").strip() or FAST_DDS_RMWS[0]
    if rmw not in FAST_DDS_RMWS:
        return TransportChoice(f"DDS transport: left to {rmw} (RMW_IMPLEMENTATION)")
    localhost = _localhost(env)
    if builtin := env.get("FASTDDS_BUILTIN_TRANSPORTS"):
        if localhost:
            return TransportChoice(
                f"DDS transport: FASTDDS_BUILTIN_TRANSPORTS={builtin} is yours but has no effect: under "
                "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST rmw_fastrtps sets its own transports (a 512 KB shared-"
                "memory segment that loses large images); unset it and this package sets up a working one",
                warning=True,
            )
        return TransportChoice(f"DDS transport: yours, FASTDDS_BUILTIN_TRANSPORTS={builtin}")
    if profile := next((env[v] for v in PROFILE_VARIABLES if env.get(v)), None) or next(
        (str(cwd / f) for f in PROFILES_IN_CWD if (cwd / f).is_file()), None
    ):
        if Path(profile).name.startswith(PROFILE_PREFIX):  # this package's, from the process that started us
            return TransportChoice(f"DDS transport: qattn_ros's profile {profile}, as the process that started us")
        return TransportChoice(f"DDS transport: yours, the Fast DDS XML profile {profile}")
    if localhost:
        return TransportChoice(
            "DDS transport: shared memory with 8 MB segments (whole camera frames) and UDP, discovery on this "
            "machine only (initial peer 127.0.0.1, no multicast): what ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST "
            "asks for, set up by an XML profile because rmw_fastrtps's own LOCALHOST transports (a 512 KB "
            "segment) lose large images",
            profile=profile_xml(localhost=True),
            environment={"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", "ROS_LOCALHOST_ONLY": None},
        )
    return TransportChoice(
        "DDS transport: shared memory with 8 MB segments (whole camera frames) and UDP (other hosts, discovery); "
        "set FASTDDS_BUILTIN_TRANSPORTS or a Fast DDS XML profile to choose your own",
        profile=profile_xml(localhost=False),
    )


def write_profile(xml: str) -> Path:
    """The profile in the temporary folder, named by its content; written whole (rename) so that processes
    starting together never read half a file."""
    path = Path(tempfile.gettempdir()) / f"{PROFILE_PREFIX}{hashlib.sha256(xml.encode()).hexdigest()[:12]}.xml"
    if not path.is_file():
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".qattn_ros_fastdds_")
        with os.fdopen(fd, "w") as file:
            file.write(xml)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    return path


def apply_transport(env: MutableMapping[str, str] | None = None) -> TransportChoice:
    """Choose (choose_transport) and apply the choice to `env` (os.environ: this process, before rclpy.init,
    and every process it starts)."""
    env = os.environ if env is None else env
    choice = choose_transport(env, Path.cwd())
    if choice.profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(write_profile(choice.profile))
    for name, value in choice.environment.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return choice
