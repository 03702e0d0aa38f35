"""The DDS transport this package's node processes use when the user has chosen none.

A 640x480 rgb8 camera frame is 900 KB. Fast DDS (3.2, what rmw_fastrtps 9.3 ships) sends it in
64 KB fragments, and a best-effort frame with one fragment lost is lost whole. Measured on one
machine with 640x480 rgb8 at 20 Hz (benchmarks/launch_pair.py records the full table):
- a camera driver with Fast DDS's defaults writes its fragments into its own 512 KB shared-memory
  segment, which a 900 KB frame overruns: 55-67 % of frames reach a best-effort subscriber over
  shared memory, whatever that subscriber's own segment;
- over UDP the fragments arrive, as long as the receiving socket's buffer holds a whole frame:
  the default (212 KB) keeps ~50 %, 4 MB keeps every frame.
No setting of the publisher's can be changed by this package (a camera driver is the user's), so
every node of this package receives user data over UDP only, with a large receive buffer (capped
by the kernel's net.core.rmem_max: `dds_transport.receive_buffer_warning` says when it is too
small), and sends over shared memory with 8 MB segments (so RViz and other plain tools get whole
frames from it) or UDP. Discovery stays as the user set it:

- default discovery range (SUBNET): discovery as usual (UDP multicast), so `ros2 topic`,
  RViz and nodes of other packages that set nothing still see and hear these nodes.
- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (or the older ROS_LOCALHOST_ONLY=1): rmw_fastrtps
  then replaces the participant's transports with its own (the 512 KB shared-memory segment
  and UDP), which also silently drops FASTDDS_BUILTIN_TRANSPORTS
  (rmw_fastrtps_shared_cpp/src/participant.cpp, `RMW_AUTOMATIC_DISCOVERY_RANGE_LOCALHOST`).
  The profile sets up what rmw would (no multicast, 127.0.0.1 and ROS_STATIC_PEERS as the
  initial peers, up to 32 participants), with the transports above, and this process's range becomes
  SYSTEM_DEFAULT so that rmw leaves the profile alone: discovery stays on this machine and other
  LOCALHOST processes still find these nodes.

The profile is written for each process into a private folder (mode 0700, file 0600) and read back
before use; a profile inherited from the process that started this one is used only if it is this
user's, private and exactly what this module writes, so a file planted or truncated in the shared
temporary folder is never used. A user's own choice wins: FASTDDS_BUILTIN_TRANSPORTS, an XML profile
(FASTDDS_DEFAULT_PROFILES_FILE, FASTRTPS_DEFAULT_PROFILES_FILE, DEFAULT_FASTDDS_PROFILES.xml in the
working directory) or an RMW other than Fast DDS is left as it is, and the log says so once.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

FAST_DDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILES_IN_CWD = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")
PROFILE_PREFIX = "qattn_ros_fastdds_"
SHM_SEGMENT = 8 * 1024 * 1024  # several whole frames in flight per writer
SHM_MESSAGE = 2 * 1024 * 1024  # a 640x480 rgb8 frame (900 KB) in one message, a 800x600 rgba8 one too
RECEIVE_BUFFER = 8 * 1024 * 1024  # bytes: two 1280x720 bgr8 frames (2.8 MB each) in flight
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")  # the kernel's cap on a socket's receive buffer

# what rmw_fastrtps sets up for LOCALHOST: no multicast, a unicast locator, 127.0.0.1 (and ROS_STATIC_PEERS) as
# the initial peers
_LOCALHOST_DISCOVERY = """
        <builtin>
          <metatrafficUnicastLocatorList><locator><udpv4/></locator></metatrafficUnicastLocatorList>
          <initialPeersList>{peers}</initialPeersList>
        </builtin>"""
_PEER = "<locator><udpv4><address>{}</address></udpv4></locator>"
_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<!-- written by qattn_ros (qattn_ros/ros/dds_transport.py): camera frames in over UDP, out over shared memory -->
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
        <receiveBufferSize>{receive_buffer}</receiveBufferSize>
        <maxInitialPeersRange>32</maxInitialPeersRange>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="qattn_ros_{name}" is_default_profile="true">
      <rtps>
        <!-- user data in over UDP only: a foreign writer's 512 KB shared-memory segment loses large frames -->
        <defaultUnicastLocatorList><locator><udpv4/></locator></defaultUnicastLocatorList>
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


def _ipv4(peer: str) -> str:
    """A peer's IPv4 address, resolved as rmw_fastrtps resolves ROS_STATIC_PEERS (the name if it does not resolve:
    Fast DDS then says so)."""
    try:
        return socket.gethostbyname(peer)
    except OSError:
        return peer


def profile_xml(localhost: bool, static_peers: str = "") -> str:
    """The profile; `static_peers` (ROS_STATIC_PEERS, ';'-separated) join 127.0.0.1 under LOCALHOST."""
    peers = "".join(
        _PEER.format(escape(_ipv4(p.strip()))) for p in ["127.0.0.1", *static_peers.split(";")] if p.strip()
    )
    name, discovery = ("localhost", _LOCALHOST_DISCOVERY.format(peers=peers)) if localhost else ("subnet", "")
    return _PROFILE.format(segment=SHM_SEGMENT, message=SHM_MESSAGE, receive_buffer=RECEIVE_BUFFER, name=name,
                           discovery=discovery)  # fmt: skip


def receive_buffer_warning(rmem_max: Path = RMEM_MAX) -> str:
    """A warning when the kernel caps the receive buffer below a large frame ('' when it does not)."""
    try:
        cap = int(rmem_max.read_text())
    except (OSError, ValueError):  # not Linux: nothing to say
        return ""
    if cap >= 4 * 1024 * 1024:
        return ""
    return (f"net.core.rmem_max is {cap} bytes: best-effort camera frames larger than that may arrive incomplete "
            f"(a 640x480 rgb8 frame is 900 KB); `sudo sysctl -w net.core.rmem_max={RECEIVE_BUFFER}` lifts the cap, "
            "a reliable camera is not affected")  # fmt: skip


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
        if PROFILE_PREFIX not in profile:
            return TransportChoice(f"DDS transport: yours, the Fast DDS XML profile {profile}")
        if is_ours(Path(profile), env):  # from the process that started us
            return TransportChoice(f"DDS transport: qattn_ros's profile {profile}, as the process that started us")
        ignored = f"; ignored {profile}: not a private, complete qattn_ros profile of this user"
        return _with_note(_package_choice(env, localhost), ignored)
    return _package_choice(env, localhost)


def _with_note(choice: TransportChoice, note: str) -> TransportChoice:
    """The package's choice, said as a warning; the ignored file is named by no variable afterwards."""
    environment = {**choice.environment, **dict.fromkeys(PROFILE_VARIABLES)}
    return TransportChoice(choice.message + note, choice.profile, environment, warning=True)


def _package_choice(env: MutableMapping[str, str], localhost: bool) -> TransportChoice:
    if localhost:
        return TransportChoice(
            "DDS transport: frames in over UDP (8 MB receive buffer), out over shared memory (8 MB segments), "
            "discovery on this machine only (initial peer 127.0.0.1, no multicast): what "
            "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST asks for, set up by an XML profile because rmw_fastrtps's own "
            "LOCALHOST transports (a 512 KB segment) lose large images",
            profile=profile_xml(localhost=True, static_peers=env.get("ROS_STATIC_PEERS", "")),
            environment={"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", "ROS_LOCALHOST_ONLY": None},
        )
    return TransportChoice(
        "DDS transport: frames in over UDP (8 MB receive buffer), out over shared memory (8 MB segments) or UDP; "
        "set FASTDDS_BUILTIN_TRANSPORTS or a Fast DDS XML profile to choose your own",
        profile=profile_xml(localhost=False),
    )


def is_ours(path: Path, env: MutableMapping[str, str]) -> bool:
    """A profile this module wrote for this user: owned by us, in a folder only we can write, whole."""
    try:
        folder, file = path.parent.lstat(), path.lstat()
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    uid = os.geteuid()
    private = stat.S_ISDIR(folder.st_mode) and folder.st_uid == uid and not folder.st_mode & 0o077
    if not (private and stat.S_ISREG(file.st_mode) and file.st_uid == uid and not file.st_mode & 0o022):
        return False
    return text in (profile_xml(localhost=False), profile_xml(True, env.get("ROS_STATIC_PEERS", "")))


def remove_dead_profiles(temp: Path | None = None) -> list[Path]:
    """Remove the profile folders of this user's processes that no longer run (a SIGKILL skips the exit that
    removes a folder); a folder is `<PROFILE_PREFIX><pid>_<random>`. Returns what it removed."""
    removed = []
    for folder in Path(temp or tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}*_*"):
        pid = folder.name.removeprefix(PROFILE_PREFIX).split("_", 1)[0]
        try:
            if not pid.isdigit() or folder.lstat().st_uid != os.geteuid() or not folder.is_dir():
                continue
            os.kill(int(pid), 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except OSError:  # gone meanwhile, or a process of another user under that pid: leave it
            continue
    return removed


def write_profile(xml: str) -> Path:
    """The profile in a new private folder of this process (removed at exit), read back before it is named.
    Folders that processes killed before their exit left behind are removed first."""
    remove_dead_profiles()
    folder = Path(tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}_"))  # mode 0700, a fresh name
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "profile.xml"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(xml)
        file.flush()
        os.fsync(file.fileno())
    if path.read_text() != xml:
        raise OSError(f"the DDS profile {path} does not read back as written")
    return path


def apply_transport(env: MutableMapping[str, str] | None = None) -> TransportChoice:
    """Choose (choose_transport) and apply the choice to `env` (os.environ: this process, before rclpy.init,
    and every process it starts)."""
    env = os.environ if env is None else env
    choice = choose_transport(env, Path.cwd())
    for name, value in choice.environment.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if choice.profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(write_profile(choice.profile))
    return choice
