"""Train / val / test as contiguous time blocks of one recording, with a gap between blocks.

Neighbouring frames of a drive are near copies (20 Hz), so a random split leaks the test set
into training. Blocks follow each other in time (`order`: train, then val, then test unless told
otherwise, for a drive whose end holds nothing to test on) and the frames within `gap_s / 2` on
either side of each boundary belong to no block, so no frame of one block is closer than `gap_s`
in time to a frame of another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..core.errors import ConfigError

BLOCKS = ("train", "val", "test")


@dataclass(frozen=True)
class TimeBlocks:
    """Shares of the frames per block, the gap between blocks and the blocks' order in time."""

    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    gap_s: float = 2.0
    order: tuple[str, ...] = BLOCKS

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(self.order))
        if sorted(self.order) != sorted(BLOCKS):
            raise ConfigError(f"time blocks: order {list(self.order)} must name train, val and test once each")
        shares = [self.train, self.val, self.test]
        if any(not 0.0 <= s <= 1.0 for s in shares) or not 0.99 <= sum(shares) <= 1.01 or self.train == 0:
            raise ConfigError(f"time blocks {shares}: shares of train, val, test in [0, 1], train > 0, summing to 1")
        if self.gap_s < 0:
            raise ConfigError(f"time blocks: gap_s {self.gap_s} must be >= 0 s")

    @classmethod
    def from_dict(cls, data: dict | None) -> TimeBlocks:
        data = dict(data or {})
        unknown = sorted(set(data) - {"train", "val", "test", "gap_s", "order"})
        if unknown:
            known = "train, val, test, gap_s, order"
            raise ConfigError(f"data.blocks: unknown key(s) {', '.join(unknown)}; known: {known}")
        order = data.pop("order", BLOCKS)
        order = order.split(",") if isinstance(order, str) else order
        return cls(**{k: float(v) for k, v in data.items()}, order=tuple(str(name).strip() for name in order))

    def as_dict(self) -> dict:
        return asdict(self) | {"order": list(self.order)}


def split_rows(stamps_ns: np.ndarray, blocks: TimeBlocks) -> dict[str, np.ndarray]:
    """{block: row indices, ascending} of frames with these stamps, cut in time order by frame count."""
    order = np.argsort(np.asarray(stamps_ns, np.int64), kind="stable")
    stamps = np.asarray(stamps_ns, np.int64)[order]
    count = len(stamps)
    shares = [getattr(blocks, name) for name in blocks.order]
    cuts = np.round(np.cumsum([0.0, *shares]) * count).astype(np.int64)
    cuts[-1] = count
    half_gap = int(round(blocks.gap_s * 1e9 / 2))
    keep = np.ones(count, bool)
    for cut in cuts[1:-1]:
        if 0 < cut < count:
            boundary = stamps[cut]
            keep &= (stamps < boundary - half_gap) | (stamps >= boundary + half_gap)
    position = np.arange(count)
    rows = {}
    for i, name in enumerate(blocks.order):
        rows[name] = np.sort(order[(position >= cuts[i]) & (position < cuts[i + 1]) & keep])
    return {name: rows[name] for name in BLOCKS}


def describe_blocks(stamps_ns: np.ndarray, steering: np.ndarray, rows: dict[str, np.ndarray]) -> dict:
    """Per block: frames, time span, steering mean and variance, and the RMSE of two constant predictions
    (the block's own mean, and the training block's mean: what a model that learned nothing would score)."""
    stamps, steering = np.asarray(stamps_ns, np.int64), np.asarray(steering, np.float64)
    train_mean = float(steering[rows["train"]].mean())
    out = {}
    for name, picked in rows.items():
        if len(picked) == 0:
            out[name] = {"frames": 0}
            continue
        values = steering[picked]
        out[name] = {
            "frames": int(len(picked)),
            "first_stamp_ns": int(stamps[picked[0]]),
            "last_stamp_ns": int(stamps[picked[-1]]),
            "duration_s": round(float(stamps[picked[-1]] - stamps[picked[0]]) / 1e9, 2),
            "steering_mean": float(values.mean()),
            "steering_variance": float(values.var()),
            "own_mean_rmse": float(values.std()),
            "train_mean_rmse": float(np.sqrt(np.mean((values - train_mean) ** 2))),
        }
    return out


def smallest_gap_s(stamps_ns: np.ndarray, rows: dict[str, np.ndarray]) -> float:
    """The shortest time between two frames of different blocks (inf with fewer than two blocks)."""
    stamps = np.asarray(stamps_ns, np.int64)
    gaps = [
        np.abs(stamps[a][:, None] - stamps[b][None, :]).min() / 1e9
        for i, a in enumerate(rows.values())
        for b in list(rows.values())[i + 1 :]
        if len(a) and len(b)
    ]
    return float(min(gaps)) if gaps else float("inf")
