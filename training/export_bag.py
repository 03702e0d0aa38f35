#!/usr/bin/env python3
"""Write a recorded drive, or one time block of it, as a ROS 2 bag a camera driver could have recorded.

    python training/export_bag.py --data data/udacity --block test --out data_out/hmb3_test   # HMB_3's test block
    qattn_replay data_out/hmb3_test --checkpoint runs/udacity_ch2/models/binary_sign_s0/best --out reports/hmb3

The bag holds /camera/image_raw/compressed (the recorded JPEGs, their camera stamps) and /steering
(std_msgs/Float64, the label in the source's unit at each frame); it prints the source mapping that reads it
back for training (`data.train`) or evaluation (`--data`). --block takes the time blocks of
benchmarks/udacity_ch2.py (--blocks, --gap-s, --order).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from qattn_ros.core.errors import ConfigError, DataError
from qattn_ros.data.drive_bag import source_spec, write_drive_bag
from qattn_ros.data.sources import open_source, spec_from_text
from qattn_ros.data.time_blocks import BLOCKS, TimeBlocks, split_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a path or a mapping {kind: ...} (qattn_ros/data/sources.py)")
    parser.add_argument("--out", required=True, help="the bag folder to write")
    parser.add_argument("--block", choices=BLOCKS, help="only this time block (default: every frame)")
    parser.add_argument("--blocks", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--gap-s", type=float, default=2.0)
    parser.add_argument("--order", default="test,val,train")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    args = parser.parse_args(argv)
    try:
        source = open_source(spec_from_text(args.data))
        stamps = np.array(sorted(item[2] for item in source.items) if hasattr(source, "items")
                          else [r.stamp_ns for r in source], np.int64)  # fmt: skip
        if args.block:
            stamps = stamps[split_rows(stamps, TimeBlocks(*args.blocks, args.gap_s, args.order.split(",")))[args.block]]
        path = write_drive_bag(source, stamps, args.out, args.storage)
    except (ConfigError, DataError, OSError) as error:
        print(f"export_bag: {error}", file=sys.stderr)
        return 1
    spec = json.dumps(source_spec(path, source))
    print(f"export_bag: {len(stamps)} frames -> {path}; read it back with --data '{spec}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
