"""Keep freed memory in the process so per-frame buffers are reused, not page-faulted in anew.

A 640x480 frame is ~1 MB; glibc serves such blocks with mmap and returns them on free, so
every frame pays for fresh zeroed pages (~1-2 ms per frame on a 2-core VM, in the node and in
rclpy's message conversion). Turning off mmap for large blocks and heap trimming is the
allocator setting the ROS 2 real-time guidelines recommend. The cost: the heap never shrinks.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc malloc.h


def keep_heap() -> bool:
    """Apply the setting; False where the C library is not glibc (the process runs as before)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
