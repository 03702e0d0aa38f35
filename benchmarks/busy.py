"""Busy processes beside a measured job, as other jobs on a shared runner or laptop would be."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Iterator


def spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """`count` processes that each spin on one core until the block ends."""
    busy = [mp.Process(target=spin, daemon=True) for _ in range(count)]
    for process in busy:
        process.start()
    try:
        yield
    finally:
        for process in busy:
            process.terminate()
