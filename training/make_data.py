#!/usr/bin/env python3
"""Write a synthetic road dataset in the Udacity simulator layout (driving_log.csv + IMG/ + masks/).

Splits use disjoint generator seeds, so held-out frames are never seen in training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qattn_ros.data.record import DataError
from qattn_ros.data.simlog import write_simlog
from qattn_ros.data.synthetic import RoadGenerator

SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data_out/synthetic", help="output folder (one sub-folder per split)")
    parser.add_argument("--train", type=int, default=8000, help="training frames")
    parser.add_argument("--val", type=int, default=1000, help="validation frames")
    parser.add_argument("--test", type=int, default=1000, help="held-out test frames")
    parser.add_argument("--height", type=int, default=160)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0, help="added to each split's generator seed")
    parser.add_argument("--side-cameras", action="store_true", help="also render the left/right cameras")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        for split, count in (("train", args.train), ("val", args.val), ("test", args.test)):
            if count <= 0:
                continue
            generator = RoadGenerator(args.height, args.width, seed=1000 * args.seed + SPLIT_SEEDS[split])
            write_simlog(out / split, generator, count, side_cameras=args.side_cameras)
        (out / "meta.json").write_text(
            json.dumps(
                {
                    **vars(args),
                    "split_seeds": SPLIT_SEEDS,
                    "label": "steering in simulator units (x25 deg, positive right)",
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
