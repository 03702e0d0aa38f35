"""Pairing camera frames with what was published for them: the replay evaluator's rules, without ROS.

Every part of a pair (the image, the node's steering and attention map, the player's ground
truth and source index) carries the camera frame's header stamp. Parts are matched by that
stamp, and among frames sharing a stamp by order: each topic is delivered in order, so the
n-th steering output stamped t belongs to the n-th image stamped t — unless one was lost: so a frame
that took a part while another frame of its stamp also lacked it is marked `ambiguous`, and the
evaluator refuses to join it (counted; lockstep sends one frame at a time, so it never happens there).
Any part may come first.
Nothing is dropped as a repeat: lockstep sends each frame once, and a part with no frame to
join opens one, which times out as unmatched (counted by what it lacked) if the rest never comes.
A stamp is just a key: 0 is a frame like any other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(eq=False)  # identity: parts hold arrays
class Pending:
    """What has arrived for one camera frame so far."""

    stamp: int  # ns
    since: float  # when its first part came (monotonic s)
    parts: dict[str, object] = field(default_factory=dict)
    ambiguous: bool = False  # a part it took could have been another frame's of the same stamp


class Pairing:
    """Frames waiting for their parts, by stamp; a frame is complete when every `required` part is in."""

    def __init__(self, required: tuple[str, ...], timeout: float) -> None:
        if not required or timeout <= 0:
            raise ValueError("a pairing needs at least one required part and a timeout > 0")
        self.required = tuple(required)
        self.timeout = timeout
        self.waiting: dict[int, deque[Pending]] = {}

    def require(self, part: str) -> None:
        """One more part every frame needs from now on (the player's source index, once it says it sends one)."""
        if part not in self.required:
            self.required += (part,)

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.waiting.values())

    def missing(self, entry: Pending) -> list[str]:
        return [part for part in self.required if part not in entry.parts]

    def add(self, stamp: int, part: str, value: object, now: float) -> Pending | None:
        """`value` for `part` of the frame stamped `stamp`: the oldest frame of that stamp still lacking the part
        takes it, else it opens a new one. The frame, removed, once it is complete; None while it is not."""
        queue = self.waiting.setdefault(stamp, deque())
        lacking = [e for e in queue if part not in e.parts]
        entry = lacking[0] if lacking else None
        if len(lacking) > 1:  # by order it is the oldest's, unless the oldest's own part was lost
            for other in lacking:
                other.ambiguous = True
        if entry is None:
            entry = Pending(stamp, now)
            queue.append(entry)
        entry.parts[part] = value
        if self.missing(entry):
            return None
        queue.remove(entry)
        if not queue:
            del self.waiting[stamp]
        return entry

    def expire(self, now: float, keep: int | None = None) -> list[Pending]:
        """Frames waiting longer than `timeout`, and the oldest beyond `keep` waiting ones: removed, oldest first."""
        entries = sorted((e for queue in self.waiting.values() for e in queue), key=lambda e: e.since)
        excess = max(0, len(entries) - keep) if keep is not None else 0
        gone = [e for k, e in enumerate(entries) if k < excess or now - e.since > self.timeout]
        for entry in gone:
            queue = self.waiting[entry.stamp]
            queue.remove(entry)
            if not queue:
                del self.waiting[entry.stamp]
        return gone
