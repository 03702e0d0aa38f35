#!/usr/bin/env python3
"""Write a synthetic road dataset in one of the real formats, one folder per split.

Formats: simlog (Udacity simulator: driving_log.csv + IMG/ + masks/, the default),
udacity_bag (ROS 1 bag like HMB_*.bag), udacity_folder (udacity-driving-reader output),
ch2_test (Challenge 2 test layout), ros2_bag (mcap). Splits use disjoint generator
seeds, so held-out frames are never seen in training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qattn_ros.data.record import DataError
from qattn_ros.data.simlog import write_simlog
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.writers import write_ch2_test, write_ros2_bag, write_udacity_bag, write_udacity_folder

SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}
WRITERS = {
    "simlog": None,
    "udacity_bag": lambda out, gen, n: write_udacity_bag(out.with_suffix(".bag"), gen, n),
    "udacity_folder": write_udacity_folder,
    "ch2_test": write_ch2_test,
    "ros2_bag": write_ros2_bag,
}


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
    parser.add_argument("--format", choices=sorted(WRITERS), default="simlog")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        for split, count in (("train", args.train), ("val", args.val), ("test", args.test)):
            if count <= 0:
                continue
            generator = RoadGenerator(args.height, args.width, seed=1000 * args.seed + SPLIT_SEEDS[split])
            if args.format == "simlog":
                write_simlog(out / split, generator, count, side_cameras=args.side_cameras)
            else:
                WRITERS[args.format](out / split, generator, count)
        (out / "meta.json").write_text(
            json.dumps(
                {
                    **vars(args),
                    "split_seeds": SPLIT_SEEDS,
                    "label_unit": {"simlog": "sim_normalized", "ros2_bag": "wheel_rad"}.get(
                        args.format, "steering_wheel_rad"
                    ),
                },
                indent=2,
            )
        )
    except (DataError, ValueError, OSError) as error:
        print(f"make_data: {error}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
