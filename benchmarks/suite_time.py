#!/usr/bin/env python3
"""How long `make test` takes here, idle or beside busy processes, and which tests take the time.

    python -m benchmarks.suite_time             # benchmarks/results/suite_time.json
    python -m benchmarks.suite_time --hogs 2    # two busy loops beside it: suite_time_hogs2.json

Runs the suite as `make test` does (`python -m pytest -q test`, extra pytest arguments after `--`) and
records wall time, the outcome counts, the load average while it ran and the slowest tests (setup, call
and teardown together, from pytest's JUnit XML). A hog is a process that spins on one core until the
suite ends, as another job on a shared runner or laptop would.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks.busy import hogs
from benchmarks.record import record

ROOT = Path(__file__).resolve().parent.parent


def slowest(junit: Path, count: int) -> list[dict]:
    cases = ET.parse(junit).getroot().iter("testcase")
    times = [(float(case.get("time", 0)), f"{case.get('classname')}::{case.get('name')}") for case in cases]
    return [{"test": name, "s": round(seconds, 1)} for seconds, name in sorted(times, reverse=True)[:count]]


def outcome(junit: Path) -> dict:
    suite = ET.parse(junit).getroot().find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hogs", type=int, default=0, help="busy processes beside the suite (default 0)")
    parser.add_argument("--slowest", type=int, default=20, help="how many of the slowest tests to record")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "test", f"--junitxml={junit}", *args.pytest_args]
        with hogs(args.hogs):
            start = time.monotonic()
            returncode = subprocess.run(command, cwd=ROOT).returncode
            wall = time.monotonic() - start
            load = os.getloadavg()
        if not junit.exists():
            print(f"suite_time: pytest wrote no report (exit {returncode})", file=sys.stderr)
            return 1
        summary = {
            "wall_min": round(wall / 60, 1),
            "hogs": args.hogs,
            "exit": returncode,
            **outcome(junit),
            "load_average_15min_at_end": round(load[2], 1),
        }
        record("suite_time" + (f"_hogs{args.hogs}" if args.hogs else ""), summary, slowest=slowest(junit, args.slowest))
    return returncode


if __name__ == "__main__":
    sys.exit(main())
