#!/usr/bin/env python3
"""How long `make demo` takes here, idle or beside busy processes, and whether it made the same summary.

    python -m benchmarks.demo_time             # benchmarks/results/demo_time.json
    python -m benchmarks.demo_time --hogs 2    # two busy loops beside it: demo_time_hogs2.json

Runs the demo as `make demo` does (`training/demo.py`, its defaults: 2 training threads, synthetic data made
if missing, extra demo arguments after `--`) and records the wall time, the load average at the end and
summary.md's SHA-256: the demo is deterministic on a fixed thread count, so the hash is the same idle or
loaded, in any clone, and equals the one benchmarks/results/demo.json records.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.busy import hogs
from benchmarks.record import record
from qattn_ros.core.atomic import read_json

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hogs", type=int, default=0, help="busy processes beside the demo (default 0)")
    parser.add_argument("--out", default="runs/demo", help="the demo's output folder")
    parser.add_argument("demo_args", nargs="*", help="extra demo arguments, after --")
    args = parser.parse_args()
    command = [sys.executable, "training/demo.py", f"--out={args.out}", *args.demo_args]
    with hogs(args.hogs):
        start = time.monotonic()
        returncode = subprocess.run(command, cwd=ROOT).returncode
        wall = time.monotonic() - start
        load = os.getloadavg()
    if returncode != 0:
        print(f"demo_time: the demo failed (exit {returncode})", file=sys.stderr)
        return returncode
    digest = hashlib.sha256((ROOT / args.out / "summary.md").read_bytes()).hexdigest()
    recorded = (read_json(ROOT / "benchmarks" / "results" / "demo.json") or {}).get("summary", {})
    summary = {
        "wall_min": round(wall / 60, 1),
        "hogs": args.hogs,
        "load_average_15min_at_end": round(load[2], 1),
        "summary_sha256": digest,
        "same_as_recorded_demo": digest == recorded.get("summary_sha256"),
    }
    record("demo_time" + (f"_hogs{args.hogs}" if args.hogs else ""), summary, demo_command=" ".join(command[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
