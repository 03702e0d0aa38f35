"""A ROS domain id that no other process on this machine holds, for graphs started as processes.

Tests, benchmarks and launchers that start a node graph of their own must not hear another
run's graph. Each claims an id by holding an exclusive lock file for as long as it lives;
the lock goes with the process, even when it is killed. Ids stay in 1..101: higher ids put
DDS ports into Linux's ephemeral range (ROS 2 documentation, "The ROS_DOMAIN_ID").
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path

MAX_DOMAIN_ID = 101
_held: dict[int, int] = {}  # domain id -> open lock file descriptor, kept open for the process's life


def claim_domain_id() -> int:
    """The first free id from a random start: concurrent runs rarely contend, and runs in containers (where
    pids repeat) that share a network rarely pick the same id."""
    folder = Path(tempfile.gettempdir())
    first = random.SystemRandom().randrange(MAX_DOMAIN_ID)
    for offset in range(MAX_DOMAIN_ID):
        domain = 1 + (first + offset) % MAX_DOMAIN_ID
        if domain in _held:
            continue
        fd = os.open(folder / f"qattn_ros_ros_domain_{domain}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held[domain] = fd
        return domain
    raise RuntimeError(f"all ROS domain ids 1..{MAX_DOMAIN_ID} are held by other processes on this machine")
