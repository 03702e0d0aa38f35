#!/usr/bin/env python3
"""Train a steering model from a YAML config; under torchrun it trains with DDP.

python training/train.py config/train/synthetic.yaml --set model=../models/kim_canny.yaml --set out=runs/kc
torchrun --nproc_per_node 4 training/train.py config/train/udacity.yaml
"""

from __future__ import annotations

import argparse
import sys

from qattn_ros.core.errors import CheckpointError, ConfigError, DataError
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="training config YAML")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. optim.epochs=3 or model.bits=4 (repeatable)",
    )
    parser.add_argument("--model", help="model config YAML replacing the config's model")
    parser.add_argument("--out", help="output folder replacing the config's out")
    parser.add_argument("--seed", type=int, help="random seed replacing the config's seed")
    args = parser.parse_args(argv)
    overrides = list(args.set)
    if args.out:
        overrides.append(f"out={args.out}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    trainer = None
    try:
        config = load_train_config(args.config, overrides, model_path=args.model)
        trainer = Trainer(config)
        best = trainer.fit()
    except (ConfigError, DataError, CheckpointError) as error:
        print(f"train: {error}", file=sys.stderr)
        return 1
    finally:
        if trainer is not None:
            trainer.dist.close()
    if trainer.dist.main:
        print(f"best checkpoint: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
