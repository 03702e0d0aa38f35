#!/usr/bin/env python3
"""Write a synthetic road dataset in one of the real formats, one folder per split.

Formats: simlog (Udacity simulator: driving_log.csv + IMG/ + masks/, the default),
udacity_bag (ROS 1 bag like HMB_*.bag), udacity_folder (udacity-driving-reader output),
ch2_test (Challenge 2 test layout), ros2_bag (mcap). Splits use disjoint generator
seeds, so held-out frames are never seen in training.
"""

from __future__ import annotations

import argparse
import sys

from qattn_ros.core.errors import DataError, script_result
from qattn_ros.data.splits import FORMATS, write_splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data_out/synthetic", help="output folder (one sub-folder per split)")
    parser.add_argument("--train", type=int, default=8000, help="training frames")
    parser.add_argument("--val", type=int, default=1000, help="validation frames")
    parser.add_argument("--test", type=int, default=1000, help="held-out test frames")
    parser.add_argument("--height", type=int, default=160)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0, help="added to each split's generator seed")
    parser.add_argument("--side-cameras", action="store_true", help="simlog: also render the left/right cameras")
    parser.add_argument("--format", choices=FORMATS, default="simlog")
    args = parser.parse_args(argv)
    counts = {"train": args.train, "val": args.val, "test": args.test}

    def work() -> str:
        out = write_splits(args.out, counts, args.height, args.width, args.seed, args.format, args.side_cameras)
        return f"wrote {out}"

    return script_result("make_data", work, DataError, ValueError, OSError)


if __name__ == "__main__":
    sys.exit(main())
