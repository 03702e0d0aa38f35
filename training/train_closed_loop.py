#!/usr/bin/env python3
"""Closed-loop training in the simulator: DAgger rounds with recovery views and randomized worlds.

python training/train_closed_loop.py config/train/closed_loop.yaml
python training/train_closed_loop.py config/train/closed_loop.yaml --model config/models/kim_canny.yaml \
    --out runs/closed_loop/kim_canny --seed 1 --set closed_loop.rounds=2 --set optim.epochs=4

Round 0: pure pursuit drives randomized training roads and labels every frame (plus recovery
views); the model trains on those and the static frames. Each further round: the last model
drives, beta-mixed with the expert, the expert labels what it visited, the set grows, the model is
fine-tuned. `--set closed_loop.<key>=...` changes the rounds, anything else the training config.
Rerunning continues after the last finished round's data or model. The final model: <out>/best.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qattn_ros.core.errors import CheckpointError, ConfigError, DataError, script_result
from qattn_ros.fit.config import load_train_config, read_yaml, set_dotted
from qattn_ros.fit.dagger import ClosedLoopTraining, DaggerConfig


def load(path: Path, overrides: list[str], model: str | None, out: str | None, seed: int | None
         ) -> tuple[ClosedLoopTraining, Path]:  # fmt: skip
    """The run a closed-loop config describes, with --set / --model / --out / --seed applied."""
    data = read_yaml(path)
    unknown = sorted(set(data) - {"train", "model", "out", "closed_loop"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: train, model, out, closed_loop")
    if "train" not in data:
        raise ConfigError(f"{path}: `train` (the training config it builds on) is missing")
    loop = {"closed_loop": dict(data.get("closed_loop") or {})}
    train_overrides = [] if seed is None else [f"seed={seed}"]
    if seed is not None:  # another seed drives other worlds too (unless --set closed_loop.world_seed says otherwise)
        loop["closed_loop"]["world_seed"] = seed
    for assignment in overrides:
        if assignment.startswith("closed_loop."):
            set_dotted(loop, assignment)
        else:
            train_overrides.append(assignment)
    model_path = model or (str(path.parent / data["model"]) if data.get("model") else None)
    train = load_train_config(path.parent / data["train"], train_overrides, model_path=model_path)
    target = Path(out or data.get("out") or train.out)
    return ClosedLoopTraining(train, DaggerConfig.from_dict(loop["closed_loop"]), target, train.device), target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="closed-loop config YAML (config/train/closed_loop.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override: closed_loop.rounds=2, optim.epochs=4, ... (repeatable)")  # fmt: skip
    parser.add_argument("--model", help="model config YAML replacing the config's model")
    parser.add_argument("--out", help="output folder replacing the config's out")
    parser.add_argument("--seed", type=int, help="training seed and world seed")
    args = parser.parse_args(argv)

    def work() -> str:
        best = load(Path(args.config), args.set, args.model, args.out, args.seed)[0].run()
        return f"best checkpoint: {best} (rounds and data mix: training.closed_loop in {best}.json)"

    return script_result("train_closed_loop", work, ConfigError, DataError, CheckpointError)


if __name__ == "__main__":
    sys.exit(main())
