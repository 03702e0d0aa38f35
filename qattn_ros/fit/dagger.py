"""Closed-loop training: DAgger rounds in the simulator, with recovery views and randomized worlds.

Round 0 (the expert's): pure pursuit drives randomized training worlds, every frame and the recovery
views are labelled by it, and the model trains on them (with the config's static frames when
`keep_base`). Round r >= 1: the last round's model drives, beta-mixed with the expert (beta_r =
beta * beta_decay^(r-1)), the expert labels every frame it visited, the set grows by them and the
model is fine-tuned on all of it (`finetune_epochs` at `finetune_lr`). `rounds: 0` is augmentation
only. Every round keeps its frames (`round_<r>/data`, a simulator log) and its checkpoints
(`round_<r>/model`): a rerun continues with the first unfinished step, if `<out>/config.json` says the same
config made them (a rerun under another config refuses and names what changed; `rounds` may grow). The final
model is `<out>/best`; its sidecar's `training.closed_loop` records the seeds, the rounds and the data mix.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..core.atomic import write_json
from ..core.errors import ConfigError
from ..inference.predictor import SteeringPredictor
from ..model.checkpoint import load_checkpoint, read_info, save_checkpoint
from ..sim.track import HELD_OUT_SEEDS
from ..sim.training_world import KEEP_OUT, Randomization, held_out_violations, training_worlds
from .config import TrainConfig
from .rollout import RecoveryConfig, collect, summary, write_visits
from .trainer import Trainer


@dataclass
class DaggerConfig:
    rounds: int = 3  # on-policy rounds after the expert's round 0; 0: augmentation only
    beta: float = 0.5  # share of expert commands in round 1
    beta_decay: float = 0.5  # round r: beta * beta_decay^(r - 1)
    worlds_per_round: int = 12  # randomized training roads driven per round
    track_m: float = 250.0  # m of each
    world_seed: int = 0  # seeds the worlds, the beta coin and the recovery shifts
    keep_base: bool = True  # train on the config's data.train frames too
    finetune_epochs: int = 2
    finetune_lr: float = 3e-4
    init: str | None = None  # a checkpoint round 0 fine-tunes instead of training from scratch
    frame_size: tuple[int, int] = (160, 320)  # camera (height, width) of the simulator
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    randomization: Randomization = field(default_factory=Randomization)

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.worlds_per_round < 1 or self.track_m <= 0 or self.finetune_epochs < 1:
            raise ConfigError("closed_loop: rounds >= 0, worlds_per_round >= 1, track_m > 0, finetune_epochs >= 1")
        if not (0.0 <= self.beta <= 1.0 and 0.0 <= self.beta_decay <= 1.0):
            raise ConfigError(f"closed_loop: beta and beta_decay in [0, 1], got {self.beta}, {self.beta_decay}")

    def beta_of(self, round_index: int) -> float:
        return 1.0 if round_index == 0 else self.beta * self.beta_decay ** (round_index - 1)

    @classmethod
    def from_dict(cls, data: dict | None) -> DaggerConfig:
        from ..core.config_mapping import from_mapping

        data = dict(data or {})
        if "frame_size" in data:
            data["frame_size"] = tuple(data["frame_size"])
        data["recovery"] = from_mapping(RecoveryConfig, data.get("recovery"), "closed_loop.recovery")
        data["randomization"] = Randomization.from_dict(data.get("randomization"))
        return from_mapping(cls, data, "closed_loop")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ClosedLoopTraining:
    """The rounds of one closed-loop training run into `out` (resumable)."""

    def __init__(self, train: TrainConfig, config: DaggerConfig, out: str | Path, device: str = "cpu") -> None:
        self.train, self.config, self.out, self.device = train, config, Path(out), device
        problems = held_out_violations(config.randomization)
        if problems:
            raise ConfigError("closed_loop.randomization overlaps the sweep: " + "; ".join(problems))
        self.log: list[dict] = []

    def made_by(self) -> dict:
        """What the rounds' frames and models depend on: every setting but where to write and `rounds`."""
        train = dataclasses.asdict(self.train)
        for key in ("out", "device", "progress"):
            train.pop(key)
        loop = self.config.to_dict()
        loop.pop("rounds")
        return json.loads(json.dumps({"train": train, "closed_loop": loop}, default=str))

    def claim(self) -> None:
        """Rounds in `out` are this config's, or `out` holds none yet: never continue another config's rounds."""
        path, mine = self.out / "config.json", self.made_by()
        if path.is_file():
            changed = differences(json.loads(path.read_text()), mine)
            if changed:
                raise ConfigError(f"{self.out}: its rounds were made by another config ({'; '.join(changed[:6])}); "
                                  "give another out, or remove the folder to start afresh")  # fmt: skip
            return
        if any(self.out.glob("round_*")):
            raise ConfigError(f"{self.out}: holds rounds but no config.json saying which config made them; "
                              "give another out, or remove the folder to start afresh")  # fmt: skip
        write_json(path, mine)

    def round_dir(self, index: int) -> Path:
        return self.out / f"round_{index}"

    def data(self, index: int) -> Path:
        """Round `index`'s frames: collected with the previous round's model, or read back when kept."""
        folder = self.round_dir(index) / "data"
        if (folder / "visits.npz").is_file():
            return folder
        config = self.config
        worlds = training_worlds(config.worlds_per_round, config.randomization, config.frame_size, config.world_seed,
                                 index)  # fmt: skip
        problems = held_out_violations(config.randomization, [w.track_seed for w in worlds])
        if problems:
            raise ConfigError("; ".join(problems))
        previous = self._previous_model(index)
        policy = SteeringPredictor(previous, self.device) if previous is not None else None
        beta = config.beta_of(index) if policy is not None else 1.0
        visits = collect(worlds, policy, beta, seed=config.world_seed * 1009 + index,
                         recovery=config.recovery, length_m=config.track_m, progress=self.train.progress)  # fmt: skip
        meta = {"round": index, "beta": beta, "policy": str(previous) if previous else "expert",
                "world_seed": config.world_seed, **summary(visits)}  # fmt: skip
        return write_visits(folder, visits, worlds, meta)

    def _previous_model(self, index: int) -> Path | None:
        if index > 0:
            return self.round_dir(index - 1) / "model" / "best"
        return Path(self.config.init) if self.config.init else None

    def train_round(self, index: int) -> Path:
        """Round `index`'s model on every frame so far: from scratch in round 0, else fine-tuned."""
        folder = self.round_dir(index) / "model"
        best = folder / "best"
        if (folder / "history.json").is_file() and "closed_loop" in read_info(best).training:
            return best
        sources = list(self.train.data.train) if self.config.keep_base else []
        sources += [{"kind": "simlog", "path": str(self.round_dir(k) / "data")} for k in range(index + 1)]
        start = self._previous_model(index)
        optim = self.train.optim
        if start is not None:
            optim = dataclasses.replace(optim, epochs=self.config.finetune_epochs, lr=self.config.finetune_lr)
        config = dataclasses.replace(self.train, data=dataclasses.replace(self.train.data, train=sources),
                                     optim=optim, out=str(folder), seed=self.train.seed + index)  # fmt: skip
        trainer = Trainer(config)
        try:
            if start is not None and not (folder / "last.json").is_file():
                self._start_from(trainer, start)
            parts = [len(rows) for rows in trainer.train_set.local]
            trainer.fit()
        finally:
            trainer.dist.close()
        self._annotate(best, index, sources, parts)
        return best

    @staticmethod
    def _start_from(trainer: Trainer, checkpoint: Path) -> None:
        """Fine-tune: the weights and the input statistics of `checkpoint`, not a fresh model."""
        model, info = load_checkpoint(checkpoint, trainer.device)
        if info.model != trainer.config.model:
            raise ConfigError(f"{checkpoint}: another model config than this run's ({info.model.variant})")
        if info.preprocessing.cache_key() != trainer.preprocessing.cache_key():
            raise ConfigError(f"{checkpoint}: another preprocessing than this run's ({info.preprocessing.cache_key()})")
        state = model.state_dict()
        trainer.model.load_state_dict(state)
        if trainer.ema is not None:
            trainer.ema.module.load_state_dict(state)
        trainer.preprocessing = info.preprocessing

    def _annotate(self, best: Path, index: int, sources: list, parts: list[int]) -> None:
        """Seeds, rounds and the data mix into the checkpoint's sidecar (training.closed_loop)."""
        model, info = load_checkpoint(best)
        rounds = []
        for k in range(index + 1):
            meta = json.loads((self.round_dir(k) / "data" / "worlds.json").read_text())
            rounds.append({key: meta[key] for key in ("round", "beta", "policy", "frames", "visited", "recovery",
                                                       "policy_steps", "policy_rmse_rad", "mean_abs_offset_m")}
                          | {"track_seeds": [w["track_seed"] for w in meta["worlds"]]})  # fmt: skip
        base = parts[: len(parts) - (index + 1)]
        info.training["closed_loop"] = {
            "recipe": "dagger+augmentation" if self.config.rounds else "augmentation",
            "round": index,
            "rounds": self.config.rounds,
            "seeds": {"train": self.train.seed + index, "world": self.config.world_seed},
            "data_mix": {
                "base_frames": int(sum(base)),
                "base_sources": sources[: len(base)],
                "round_frames": [int(n) for n in parts[len(base) :]],
                "rounds": rounds,
            },  # fmt: skip
            "config": self.config.to_dict(),
            "held_out": {"track_seeds": [HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.stop - 1], "kept_out_levels": KEEP_OUT},
        }
        save_checkpoint(best, model, info)

    def run(self) -> Path:
        """Every round not finished yet; the last round's best checkpoint copied to `<out>/best`."""
        self.claim()
        bar = tqdm(range(self.config.rounds + 1), desc="closed-loop rounds", unit="round",
                   disable=not self.train.progress)  # fmt: skip
        for index in bar:
            self.data(index)
            best = self.train_round(index)
            bar.set_postfix(val_rmse=f"{read_info(best).metrics.get('rmse', float('nan')):.4f}")
        model, info = load_checkpoint(best)
        save_checkpoint(self.out / "best", model, info)
        return self.out / "best"


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ, as `name old -> new`."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += differences(a, b, name + ".")
        elif a != b:
            changes.append(f"{name} {a} -> {b}")
    return changes
