#!/usr/bin/env python3
"""Closed-loop driving: a checkpoint steers the simulated car on held-out roads; autonomy measured.

  python evaluation/closed_loop.py --checkpoint binary_sign=runs/demo/binary_sign/best \
      --checkpoint kim_canny=runs/demo/kim_canny/best --km 2 --out reports/closed_loop

Each checkpoint drives the same held-out tracks (seeds never used for anything else) at
`--speed`; the camera is rendered from the car's pose every 1/`--rate` s, the prediction is
the front-wheel angle the node would command. Autonomy = 1 - interventions x 6 s / elapsed
(NVIDIA's PilotNet measure); an intervention puts the car back on the centre line. Writes
table.md, results.json, track.png (the road and the driven paths), offset.png and, per
checkpoint, drive_<name>.gif (camera | attention overlay). `--pursuit` adds the ground-truth
pure-pursuit driver as a reference.

  python evaluation/closed_loop.py --checkpoint binary_sign=runs/demo/binary_sign/best --sweep --out reports/sweep

`--sweep [AXIS ...]` (all six when none is named): a difficulty sweep instead — every driver,
pure pursuit always among them, on `--tracks` held-out roads of `--track-m` m at every level of
each axis, from the nominal world to beyond what any driver survives (speed, steering_delay,
gust, camera, curvature, appearance). Writes sweep.json (figures per axis, level and driver,
with the sd over tracks; breaking points), sweep.md and sweep.png (autonomy against each axis).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from qattn_ros.core.atomic import write_json, write_text
from qattn_ros.core.errors import CheckpointError, ConfigError
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.sim.drive import drive, drive_predictor, merged_summary
from qattn_ros.sim.report import plot_offset, plot_track, write_summary
from qattn_ros.sim.sweep import AXIS_NAMES, run_sweep
from qattn_ros.sim.sweep_report import plot_sweep, sweep_table
from qattn_ros.sim.track import HELD_OUT_SEEDS, generate_track
from qattn_ros.sim.world import RoadSim, SimConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH", help="repeatable")
    parser.add_argument("--pursuit", action="store_true", help="also drive the ground-truth pure-pursuit controller")
    parser.add_argument("--km", type=float, default=2.0, help="km per driver, split over the tracks")
    parser.add_argument("--tracks", type=int, help="held-out tracks (seeds 1000, 1001, ...); 1, --sweep: 5")
    parser.add_argument("--speed", type=float, default=15.0, help="m/s")
    parser.add_argument("--rate", type=float, default=20.0, help="camera Hz = simulation steps per s")
    parser.add_argument("--height", type=int, default=160)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--steering-delay", type=float, default=0.1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reports/closed_loop")
    parser.add_argument("--sweep", nargs="*", choices=AXIS_NAMES, help="difficulty sweep over these axes (none: all)")
    parser.add_argument("--track-m", type=float, default=250.0, help="--sweep: length of each track, m")
    parser.add_argument("--jobs", type=int, default=1, help="--sweep: processes driving at once")
    return parser.parse_args(argv)


def sweep(args: argparse.Namespace, out: Path) -> int:
    """The difficulty sweep: pure pursuit and each checkpoint at every level of the chosen axes."""
    checkpoints = {}
    for entry in args.checkpoint:
        name, _, path = entry.partition("=")
        if not path:
            raise ConfigError(f"--checkpoint {entry!r}: expected NAME=PATH")
        checkpoints[name] = path
    result = run_sweep(checkpoints, args.sweep or AXIS_NAMES, args.tracks or 5, args.track_m, args.jobs)
    write_json(out / "sweep.json", dataclasses.asdict(result))
    table = sweep_table(result)
    write_text(out / "sweep.md", table)
    plot_sweep(result, out / "sweep.png")
    print(table)
    print(f"report: {out}/sweep.md, sweep.json, sweep.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if args.sweep is not None:
            return sweep(args, out)
        if not args.checkpoint and not args.pursuit:
            raise ConfigError("nothing to drive: pass --checkpoint NAME=PATH and/or --pursuit")
        config = SimConfig(rate=args.rate, height=args.height, width=args.width, steering_delay=args.steering_delay)
        count = args.tracks or 1
        tracks = [generate_track(seed, 1000 * args.km / count) for seed in HELD_OUT_SEEDS[:count]]
        runs: dict[str, list[RoadSim]] = {}
        if args.pursuit:
            sims = [RoadSim(track, config) for track in tracks]
            runs["pursuit"] = [drive(sim, lambda frame, sim=sim: sim.pursuit_steering(), args.speed, render=False)
                               for sim in sims]  # fmt: skip
        for entry in args.checkpoint:
            name, _, path = entry.partition("=")
            if not path:
                raise ConfigError(f"--checkpoint {entry!r}: expected NAME=PATH")
            predictor = SteeringPredictor(path, args.device)
            runs[name] = drive_predictor(predictor, tracks, config, args.speed, str(out / f"drive_{name}.gif"))
    except (ConfigError, CheckpointError) as error:
        print(f"closed_loop: {error}", file=sys.stderr)
        return 1
    summaries = {name: merged_summary(sims) for name, sims in runs.items()}
    meta = {"tracks": [t.seed for t in tracks], "km_per_driver": args.km, "speed": args.speed, "rate": args.rate,
            "camera": f"{args.width}x{args.height}", "steering_delay": args.steering_delay,
            "intervention_offset_m": config.intervention_offset}  # fmt: skip
    table = write_summary(summaries, out, meta)
    plot_track({name: sims[0] for name, sims in runs.items()}, out / "track.png")
    plot_offset({name: sims[0] for name, sims in runs.items()}, out / "offset.png")
    print(table)
    print(f"report: {out}/table.md, results.json, track.png, offset.png, drive_<name>.gif")
    return 0


if __name__ == "__main__":
    sys.exit(main())
