"""Processes a test starts, with their output in a file.

A pipe that nobody reads while the test waits fills at 64 KiB, and the process writing to it
blocks: a chatty transport or progress bar would hang the graph under test. A file never fills.
"""

from __future__ import annotations

import subprocess
import tempfile


def spawn(command: list[str], **popen) -> subprocess.Popen:
    """Start `command` with stdout and stderr together in an unnamed temporary file (`output` reads it)."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
    process.log = log  # closed with the process object
    return process


def output(process: subprocess.Popen) -> str:
    """Everything the process has written so far."""
    process.log.seek(0)
    return process.log.read().decode(errors="replace")


def finish(process: subprocess.Popen, timeout: float) -> str:
    """Wait for the process to exit (TimeoutExpired if it does not), then its whole output."""
    process.wait(timeout=timeout)
    return output(process)
