#!/usr/bin/env python3
"""Assemble the Udacity Challenge 2 evaluation drive (HMB_3) into data/udacity/, every file checked.

    git clone https://github.com/peikexin9/deepxplore          # the frames (about 500 MB)
    git clone https://github.com/udacity/self-driving-car      # the ground truth
    python training/assemble_udacity.py --frames deepxplore --labels self-driving-car

--frames takes the clone or its Driving/testing/center/ folder, --labels the clone or the CSV itself.
Every frame and the labels are checked against config/udacity_ch2.sha256; a missing or changed file, or
Udacity's example submission (final_example.csv) in place of the ground truth, is refused by name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qattn_ros.core.errors import DataError, script_result
from qattn_ros.data.udacity_ch2 import assemble

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", required=True, help="clone of peikexin9/deepxplore, or its center/ folder")
    parser.add_argument("--labels", required=True, help="clone of udacity/self-driving-car, or the CSV")
    parser.add_argument("--out", default="data/udacity", help="where the checked set goes")
    parser.add_argument("--manifest", default=str(ROOT / "config" / "udacity_ch2.sha256"),
                        help="names and SHA-256 of every file (sha256sum format)")  # fmt: skip
    args = parser.parse_args(argv)

    def work() -> str:
        done = assemble(Path(args.frames), Path(args.labels), Path(args.out), Path(args.manifest))
        return f"assemble_udacity: {done['frames']} frames checked against {args.manifest} -> {done['out']}"

    return script_result("assemble_udacity", work, DataError, OSError)


if __name__ == "__main__":
    sys.exit(main())
