"""The replay evaluator's pairing of frames with their outputs: exhaustive and property-based, no ROS."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qattn_ros.rules.pairing import Pairing

PARTS = ("image", "steering", "truth", "map")


@st.composite
def deliveries(draw, lose: bool = False):
    """Frames with stamps drawn from a few values (0 and repeats included), and the arrival of their parts: each
    part's topic in frame order (a topic is delivered in order), the topics interleaved at random."""
    stamps = draw(st.lists(st.integers(0, 3), min_size=1, max_size=12))
    streams = {part: [(frame, stamp) for frame, stamp in enumerate(stamps)] for part in PARTS}
    if lose:
        for part in PARTS:
            streams[part] = [item for item in streams[part] if draw(st.booleans()) or draw(st.booleans())]
    arrivals = []
    while any(streams.values()):
        part = draw(st.sampled_from([p for p in PARTS if streams[p]]))
        frame, stamp = streams[part].pop(0)
        arrivals.append((stamp, part, frame))
    return stamps, arrivals


@settings(max_examples=400, deadline=None)
@given(deliveries())
def test_every_frame_pairs_with_its_own_parts_in_any_order_of_arrival(delivery) -> None:
    stamps, arrivals = delivery
    pairing = Pairing(PARTS, timeout=5.0)
    complete = []
    for now, (stamp, part, frame) in enumerate(arrivals):
        entry = pairing.add(stamp, part, frame, float(now))
        if entry is not None:
            complete.append(entry)
    assert len(pairing) == 0 and not pairing.waiting
    assert sorted(e.parts["image"] for e in complete) == list(range(len(stamps))), "each frame once, none dropped"
    for entry in complete:
        assert {entry.parts[part] for part in PARTS} == {entry.parts["image"]}, "a frame's parts are its own"
        assert entry.stamp == stamps[entry.parts["image"]]


@settings(max_examples=400, deadline=None)
@given(deliveries(lose=True))
def test_lost_parts_are_accounted_for_and_never_pair_across_stamps(delivery) -> None:
    stamps, arrivals = delivery
    pairing = Pairing(PARTS, timeout=5.0)
    complete = [e for now, (s, p, f) in enumerate(arrivals) if (e := pairing.add(s, p, f, float(now))) is not None]
    left = pairing.expire(now=1e9)
    assert not pairing.waiting
    delivered = sorted((part, frame) for _, part, frame in arrivals)
    kept = sorted((part, value) for e in complete + left for part, value in e.parts.items())
    assert kept == delivered, "every part that came is in a pair or in an unmatched frame: nothing silently lost"
    for entry in complete + left:
        assert all(stamps[frame] == entry.stamp for frame in entry.parts.values()), "pairs never mix stamps"
    for entry in left:
        assert pairing.missing(entry), "what expires lacks something"


def test_a_second_frame_with_the_same_stamp_and_a_frame_stamped_zero_are_frames() -> None:
    pairing = Pairing(("image", "steering"), timeout=1.0)
    assert pairing.add(0, "image", "a", 0.0) is None
    assert pairing.add(0, "image", "b", 0.0) is None  # same stamp: a second frame, not a repeat
    first = pairing.add(0, "steering", 1.0, 0.1)
    assert first.parts == {"image": "a", "steering": 1.0}
    assert pairing.add(0, "steering", 2.0, 0.2).parts == {"image": "b", "steering": 2.0}
    assert len(pairing) == 0
    assert first.ambiguous, "two frames of one stamp waited for a steering: by order only"


def test_a_lost_output_among_frames_of_one_stamp_is_never_joined_to_another_frame() -> None:
    """Frames a and b share a stamp; a's steering is lost, b's comes: by order it would join a (wrong)."""
    pairing = Pairing(("image", "steering"), timeout=1.0)
    pairing.add(7, "image", "a", 0.0)
    pairing.add(7, "image", "b", 0.0)
    joined = pairing.add(7, "steering", "b's", 0.1)
    assert joined.parts["image"] == "a" and joined.ambiguous, "the evaluator must refuse it"
    assert [e.parts for e in pairing.expire(5.0)] == [{"image": "b"}], "b waits, then is unmatched"


def test_frames_of_distinct_stamps_are_never_ambiguous() -> None:
    pairing = Pairing(("image", "steering"), timeout=1.0)
    pairing.add(1, "image", "a", 0.0)
    pairing.add(2, "image", "b", 0.0)
    assert not pairing.add(2, "steering", 2.0, 0.1).ambiguous
    assert not pairing.add(1, "steering", 1.0, 0.1).ambiguous


def test_outputs_before_the_image_wait_for_it() -> None:
    pairing = Pairing(("image", "steering", "map"), timeout=1.0)
    assert pairing.add(7, "map", "m", 0.0) is None and pairing.add(7, "steering", 0.5, 0.0) is None
    entry = pairing.add(7, "image", "i", 0.5)
    assert entry is not None and entry.parts == {"map": "m", "steering": 0.5, "image": "i"}


def test_expiry_by_age_and_by_count_oldest_first() -> None:
    pairing = Pairing(("image", "steering"), timeout=1.0)
    for k in range(5):
        pairing.add(k, "image", k, float(k))
    assert [e.stamp for e in pairing.expire(now=2.5)] == [0, 1], "older than 1 s at 2.5 s"
    assert [e.stamp for e in pairing.expire(now=2.5, keep=1)] == [2, 3], "beyond the newest one kept"
    (last,) = pairing.expire(now=10.0)
    assert last.stamp == 4 and pairing.missing(last) == ["steering"] and len(pairing) == 0


def test_a_frame_exactly_timeout_old_still_waits() -> None:
    """Frames waiting *longer* than the timeout expire: at exactly 1 s a part may still come."""
    pairing = Pairing(("image", "steering"), timeout=1.0)
    pairing.add(1, "image", "i", 0.5)
    assert pairing.expire(now=1.5) == []
    assert pairing.add(1, "steering", 0.1, 1.5).parts == {"image": "i", "steering": 0.1}


def test_expiry_goes_by_arrival_not_by_stamp() -> None:
    """Stamps need not grow with arrival (another camera, a replay jumping back): the oldest waiting goes first."""
    pairing = Pairing(("image", "steering"), timeout=1.0)
    for stamp, since in ((5, 0.0), (1, 0.5), (3, 0.2)):
        pairing.add(stamp, "image", stamp, since)
    assert [e.stamp for e in pairing.expire(now=0.6, keep=1)] == [5, 3], "beyond the newest one kept"
    assert [e.stamp for e in pairing.expire(now=10.0)] == [1]
    for stamp, since in ((5, 0.0), (1, 0.5), (3, 0.2)):
        pairing.add(stamp, "image", stamp, since)
    assert [e.stamp for e in pairing.expire(now=10.0)] == [5, 3, 1], "oldest first"


def test_a_part_required_later_holds_frames_back() -> None:
    pairing = Pairing(("image",), timeout=1.0)
    pairing.require("index")
    pairing.require("index")
    assert pairing.required == ("image", "index")
    assert pairing.add(3, "image", "i", 0.0) is None
    assert pairing.add(3, "index", 42, 0.0).parts == {"image": "i", "index": 42}


def test_a_pairing_without_parts_or_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="required part"):
        Pairing((), 1.0)
    with pytest.raises(ValueError, match="timeout > 0"):
        Pairing(("image",), 0.0)
