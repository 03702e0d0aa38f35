"""The training loop: cached data -> SteeringNet -> best and last checkpoints.

Runs in one process or under `torchrun` (DDP; NCCL on GPUs, gloo on CPU). Each step
takes a global batch; rank r trains on its share batch[r::world], split into
`accumulation` micro-batches. So one process with accumulation = W computes the same
gradients as W DDP ranks: BatchNorm sees the same micro-batches either way.

With `optim.ema_decay` > 0 the kept model is an exponential moving average of the weights
(torch.optim.swa_utils): validation, `best` and `last` use it, and the resume state beside `last`
(`resume.py`) also holds the raw weights, so a resume continues both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..core.atomic import remove_leftovers, write_json
from ..core.device import pick_device
from ..core.errors import ConfigError, DataError
from ..core.metrics import steering_errors
from ..core.preprocess import CameraGeometry, Preprocessing, channel_stats
from ..data.cache import build_cache
from ..data.frames import FrameSet
from ..data.sources import open_source
from ..data.time_blocks import split_rows
from ..model.attention import doubly_stochastic_penalty, entropy_penalty
from ..model.checkpoint import CheckpointInfo, checkpoint_paths, checkpoint_saved, load_checkpoint, save_checkpoint
from ..model.network import SteeringNet
from .augment import augment
from .config import OptimConfig, TrainConfig
from .resume import restore_resume_state, save_resume_state


def make_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=0.9, weight_decay=optim.weight_decay)
    raise ConfigError(f"optim.optimizer: unknown optimizer {optim.optimizer!r}; expected adamw or sgd")


class Distributed:
    """Rank, world size and collectives; a single process when not under torchrun."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def concatenate(self, values: np.ndarray) -> np.ndarray:
        """Every rank's `values`, concatenated in rank order, on every rank."""
        if self.world == 1:
            return values
        parts: list = [None] * self.world
        dist.all_gather_object(parts, values)
        return np.concatenate(parts)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def load_frames(config: TrainConfig, dist_ctx: Distributed) -> tuple[FrameSet, FrameSet]:
    """Train and validation frame sets; rank 0 builds missing caches while the others wait."""
    if not config.data.train:
        raise DataError("data.train: no training source given")
    sources = [open_source(spec) for spec in config.data.train]
    val_sources = [open_source(spec) for spec in config.data.val]

    def build_all() -> tuple[list, list]:
        return tuple(
            [
                build_cache(s, config.preprocessing, config.data.cache_dir, config.progress and dist_ctx.main)
                for s in group
            ]
            for group in (sources, val_sources)
        )

    if dist_ctx.main:
        caches, val_caches = build_all()
    dist_ctx.barrier()
    if not dist_ctx.main:  # the entries exist now: this only opens them
        caches, val_caches = build_all()
    unit = config.data.target_unit or caches[0].steering_unit
    left = config.data.target_positive_is_left
    left = caches[0].positive_is_left if left is None else left
    vehicle = config.data.vehicle
    if val_caches:
        train = FrameSet([(c, np.arange(len(c))) for c in caches], unit, left, vehicle)
        val = FrameSet([(c, np.arange(len(c))) for c in val_caches], unit, left, vehicle)
    elif config.data.blocks is not None:  # each source's train and val time blocks, apart by the gap
        blocks = [split_rows(c.stamps, config.data.blocks) for c in caches]
        train = FrameSet([(c, b["train"]) for c, b in zip(caches, blocks)], unit, left, vehicle)
        val = FrameSet([(c, b["val"]) for c, b in zip(caches, blocks)], unit, left, vehicle)
    else:  # the last fraction of each source in time order
        cut = [int(round(len(c) * (1 - config.data.val_fraction))) for c in caches]
        train = FrameSet([(c, np.arange(k)) for c, k in zip(caches, cut)], unit, left, vehicle)
        val = FrameSet([(c, np.arange(k, len(c))) for c, k in zip(caches, cut)], unit, left, vehicle)
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"empty split: {len(train)} training and {len(val)} validation frames")
    return train, val


def _prefetch(batches: Iterator, depth: int = 3) -> Iterator:
    """Run a batch generator in a thread so reading overlaps compute."""
    slots: queue.Queue = queue.Queue(depth)
    done = object()

    def work() -> None:
        try:
            for item in batches:
                slots.put(item)
        finally:
            slots.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (item := slots.get()) is not done:
        yield item


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = pick_device(config.device)
        self.dist = Distributed(self.device)
        torch.manual_seed(config.seed)
        self.train_set, self.val_set = load_frames(config, self.dist)
        # the frames trained on (the first of each source), recorded so that inference maps cameras onto them
        self.camera = CameraGeometry.of_images(next(iter(open_source(spec))).image for spec in config.data.train)
        self.out = Path(config.out)
        optim = config.optim
        self.starts = self.train_set.sequence_starts(optim.seq_len)  # where a training sequence may begin
        self.steps_per_epoch = min(len(self.starts) // optim.batch_size, optim.max_steps_per_epoch or len(self.starts))
        # the config's preprocessing shapes the pixels; the channel statistics come from the data
        sample = self.train_set.gather(
            np.linspace(0, len(self.train_set) - 1, min(len(self.train_set), 2000)).astype(np.int64)
        )[0]
        mean, std = channel_stats(sample)
        self.preprocessing: Preprocessing = dataclasses.replace(config.preprocessing, mean=mean, std=std)
        self.model = SteeringNet(config.model).to(self.device)
        targets = self.train_set.targets
        self.model.target_mean.fill_(float(targets.mean()))
        self.model.target_std.fill_(float(max(targets.std(), 1e-6)))
        self.optimizer = make_optimizer(self.model, config.optim)
        self.epoch, self.step, self.best_rmse, self.history = 0, 0, math.inf, []
        kept_state = None
        if self.dist.main:
            remove_leftovers(self.out)  # temporaries of runs killed while saving here
        if checkpoint_saved(self.out / "last"):  # as load_checkpoint sees it: a save stopped between its renames too
            kept_state = self._resume()
        else:
            calibration = np.arange(min(256, len(self.train_set)))
            self.model.train()
            self.model.calibrate(self._inputs(calibration, augment_batch=False)[0])
        self.ema = self._make_ema(kept_state)
        self.ddp = None
        if self.dist.world > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    def _make_ema(self, kept_state: dict | None) -> AveragedModel | None:
        """The weight average (None with ema_decay 0); on resume it starts from the saved kept weights."""
        decay = self.config.optim.ema_decay
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"optim.ema_decay: must be in [0, 1), got {decay}")
        if decay == 0:
            return None
        ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        if kept_state is not None:
            ema.module.load_state_dict(kept_state)
            ema.n_averaged.fill_(max(self.step, 1))
        return ema

    @property
    def kept(self) -> SteeringNet:
        """The model validated and saved: the weight average, or the raw weights without one."""
        return self.ema.module if self.ema is not None else self.model

    # -- data -----------------------------------------------------------------------------
    def _inputs(
        self,
        indices: np.ndarray,
        augment_batch: bool,
        generator: torch.Generator | None = None,
        frames: FrameSet | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = (frames or self.train_set).gather(indices)
        pre = self.preprocessing
        x = pre.to_unit(torch.from_numpy(images).to(self.device, non_blocking=True))
        y = torch.from_numpy(targets).to(self.device)
        if augment_batch:
            x, y = augment(x, y, self.config.augment, pre.color, generator)
        return pre.standardize(x), y

    def _step_batches(self, epoch: int) -> Iterator[list[np.ndarray]]:
        """Per step: this rank's micro-batches of sequence start indices."""
        optim = self.config.optim
        order = np.random.default_rng([self.config.seed, epoch]).permutation(self.starts)
        for step in range(self.steps_per_epoch):
            mine = order[step * optim.batch_size : (step + 1) * optim.batch_size][self.dist.rank :: self.dist.world]
            yield [mine[j :: optim.accumulation] for j in range(optim.accumulation)]  # strided, as ranks are

    # -- optimization ---------------------------------------------------------------------
    def _lr(self) -> float:
        optim = self.config.optim
        total = max(self.steps_per_epoch * optim.epochs, 1)
        warm = min(optim.warmup_steps, total // 10 + 1)
        if self.step < warm:
            return optim.lr * (self.step + 1) / warm
        return optim.lr * 0.5 * (1 + math.cos(math.pi * min((self.step - warm) / max(total - warm, 1), 1.0)))

    def _loss(self, starts: np.ndarray, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Mean squared standardized error over a micro-batch (of sequences) plus the attention penalty."""
        model = self.ddp or self.model
        config = self.config.model
        state, losses, alphas = None, [], []
        for t in range(self.config.optim.seq_len):
            x, y = self._inputs(starts + t, augment_batch=True, generator=generator)
            out = model(x, state)
            state = out.state
            losses.append(F.mse_loss(out.steering / self.model.target_std, y / self.model.target_std))
            if out.attention is not None:
                alphas.append(out.attention.flatten(1))
        loss = torch.stack(losses).mean()
        penalty = torch.zeros((), device=self.device)
        if alphas and config.reg_weight > 0 and config.regularizer != "none":
            if config.regularizer == "entropy":
                penalty = torch.stack([entropy_penalty(a) for a in alphas]).mean()
            else:
                penalty = doubly_stochastic_penalty(torch.stack(alphas, dim=1))
        return loss + config.reg_weight * penalty, {"mse": loss.item(), "penalty": penalty.item()}

    def train_epoch(self, epoch: int) -> float:
        model = self.ddp or self.model
        model.train()
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch * 1009 + self.dist.rank)
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.config.optim.epochs}",
            unit="step",
            disable=not (self.config.progress and self.dist.main),
            leave=False,
        )
        total, count = 0.0, 0
        for micro_batches in _prefetch(self._step_batches(epoch)):
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr()
            self.optimizer.zero_grad(set_to_none=True)
            for index, starts in enumerate(micro_batches):
                last = index == len(micro_batches) - 1
                context = self.ddp.no_sync() if (self.ddp is not None and not last) else contextlib.nullcontext()
                with context:
                    loss, parts = self._loss(starts, generator)
                    (loss / len(micro_batches)).backward()
                total, count = total + parts["mse"], count + 1
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            self.step += 1
            bar.update(1)
            bar.set_postfix(mse=f"{total / count:.4f}", lr=f"{self._lr():.1e}")
        bar.close()
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate(self, frames: FrameSet | None = None) -> dict:
        """Steering RMSE / MAE over the validation frames (sharded over ranks)."""
        frames = frames or self.val_set
        model = self.kept.eval()
        mine = np.arange(len(frames))[self.dist.rank :: self.dist.world]
        batch = max(self.config.optim.batch_size, 256)
        predicted = [np.zeros(0, np.float32)]
        for begin in range(0, len(mine), batch):
            x, _ = self._inputs(mine[begin : begin + batch], augment_batch=False, frames=frames)
            predicted.append(model(x).steering.cpu().numpy())
        world = self.dist.world  # rank r evaluated frames r::world; gathered in rank order
        order = np.concatenate([np.arange(len(frames))[r::world] for r in range(world)])
        predicted = self.dist.concatenate(np.concatenate(predicted))
        baseline = steering_errors(np.full(len(frames), self.train_set.targets.mean()), frames.targets)["rmse"]
        return {**steering_errors(predicted, frames.targets[order]), "mean_baseline_rmse": baseline}

    # -- checkpoints ----------------------------------------------------------------------
    def _info(self, metrics: dict) -> CheckpointInfo:
        config = self.config
        return CheckpointInfo(
            model=config.model,
            preprocessing=self.preprocessing,
            steering_unit=self.train_set.unit,
            positive_is_left=self.train_set.positive_is_left,
            vehicle=self.train_set.vehicle,
            camera=self.camera,
            data={
                "train": [p.meta["source"] for p in self.train_set.parts],
                "train_frames": len(self.train_set),
                "val_frames": len(self.val_set),
                "target_mean": float(self.train_set.targets.mean()),
                "target_std": float(self.train_set.targets.std()),
            },
            metrics=metrics,
            training={
                "epoch": self.epoch,
                "step": self.step,
                "best_rmse": self.best_rmse,
                "history": self.history,
                "config": {
                    k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
                    for k, v in vars(config).items()
                    if k not in ("model", "preprocessing")
                },
            },
        )

    def _save(self, name: str, metrics: dict) -> Path:
        if name != "last":
            return save_checkpoint(self.out / name, self.kept, self._info(metrics))
        raw = self.model if self.ema is not None else None
        info = self._info(metrics)
        return save_resume_state(self.out, self.step, self.optimizer, raw, self.device,
                                 lambda: save_checkpoint(self.out / "last", self.kept, info))  # fmt: skip

    def _resume(self) -> dict:
        """Continue from `last`; returns its (kept) weights, which start the weight average."""
        model, info = load_checkpoint(self.out / "last", self.device)
        if info.model != self.config.model:
            raise DataError(
                f"{self.out / 'last.json'}: resume with a different model config ({info.model} vs {self.config.model})"
            )
        if info.preprocessing.cache_key() != self.preprocessing.cache_key():
            raise DataError(
                f"{self.out / 'last.json'}: resume with a different preprocessing "
                f"({info.preprocessing.cache_key()} vs {self.preprocessing.cache_key()})"
            )
        self.model.load_state_dict(model.state_dict())
        self.preprocessing = info.preprocessing  # the statistics the saved weights were trained with
        training = info.training
        restore_resume_state(self.out, training["step"], self.optimizer, self.model, self.device)
        self.epoch, self.step = training["epoch"], training["step"]
        self.best_rmse, self.history = training["best_rmse"], training["history"]
        if self.dist.main and self.config.progress:
            print(f"resuming {self.out} after epoch {self.epoch}")
        return model.state_dict()

    def fit(self) -> Path:
        """Train the remaining epochs; returns the path of the best checkpoint."""
        epochs = self.config.optim.epochs
        while self.epoch < epochs:
            start = time.perf_counter()
            train_mse = self.train_epoch(self.epoch)
            metrics = self.evaluate()
            self.epoch += 1
            record = {
                "epoch": self.epoch,
                "train_mse": train_mse,
                "val_rmse": metrics["rmse"],
                "val_mae": metrics["mae"],
                "seconds": time.perf_counter() - start,
            }
            self.history.append(record)
            if self.dist.main:
                if metrics["rmse"] < self.best_rmse:
                    self.best_rmse = metrics["rmse"]
                    self._save("best", metrics)
                self._save("last", metrics)
                if self.config.progress:
                    tqdm.write(
                        f"epoch {self.epoch}/{epochs}: val RMSE {metrics['rmse']:.4f} MAE {metrics['mae']:.4f} "
                        f"(predict-the-mean {metrics['mean_baseline_rmse']:.4f}) [{self.train_set.unit}] "
                        f"{record['seconds']:.1f}s"
                    )
            self.dist.barrier()
        if self.dist.main:
            write_json(self.out / "history.json", self.history)
        return checkpoint_paths(self.out / "best")[0]
