"""`Trainer`: the one training loop, for any Legato network, objective and dataset of any sample rank.

Inside: EMA (diffusers' ``EMAModel``), bf16 autocast, ``torch.compile``, gradient accumulation and clipping,
LR warm-up and decay (diffusers' ``get_scheduler``), condition dropout, bucketed batches, atomic checkpoints
with exact resume (model, EMA, optimizer, LR schedule, data position and every RNG), JSONL metrics and a
progress bar.
Under ``torch.distributed`` (Ray Train's workers, or torchrun) it runs data-parallel: each worker takes
every ``world``-th batch, gradients are averaged by DDP, and rank 0 writes checkpoints and metrics.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from legato.diffusion.denoisers import VPSchedule
from legato.diffusion.errors import DiffusionError
from legato.diffusion.training import checkpoint as ckpt
from legato.diffusion.training.data import BucketBatches, ItemDataset, collate, drop_conditions, item_shapes
from legato.diffusion.training.objective import Objective, TrainingObjective
from legato.diffusion.training.previews import save_grid


@dataclass(frozen=True)
class TrainConfig:
    """Everything about *how* to train (the objective says *what*)."""

    steps: int
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    ema_decay: float | None = 0.999
    mixed_precision: Literal["no", "bf16"] = "no"
    # torch.compile the network's forward (and so its backward) for the loop; the weights, checkpoints and
    # exports are the uncompiled network's. The first step pays the compile (minutes for a UNet on a CPU).
    compile: bool = False
    cond_dropout: float = 0.0
    null_label: int | None = None
    timestep_range: tuple[float, float] | None = None
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    log_every: int = 10
    sample_every: int = 0  # > 0: write a preview grid every so many steps (needs Trainer(preview=...))
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "keep_checkpoints", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DiffusionError(f"TrainConfig.{name}={value!r} must be a positive integer")
        if not 0 < self.learning_rate < 1:
            raise DiffusionError(
                f"TrainConfig.learning_rate={self.learning_rate!r} must lie in (0, 1); 1e-4 to 1e-3 is usual"
            )
        if not 0 <= self.cond_dropout < 1:
            raise DiffusionError(
                f"TrainConfig.cond_dropout={self.cond_dropout!r} must lie in [0, 1); 0.1 is usual"
            )
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise DiffusionError(
                f"TrainConfig.ema_decay={self.ema_decay!r} must lie in (0, 1), or None for no EMA"
            )
        if self.mixed_precision not in ("no", "bf16"):
            raise DiffusionError(f"TrainConfig.mixed_precision={self.mixed_precision!r}; use 'no' or 'bf16'")


@dataclass
class TrainResult:
    step: int
    losses: list[float] = field(default_factory=list)  # mean loss of each optimizer step run by this call
    resumed_from: int | None = None


class Trainer:
    """Train ``network`` on ``dataset`` with ``objective`` under the noise ``schedule``; files go to ``out_dir``.

    ``out_dir/checkpoints/`` holds the checkpoints, ``out_dir/metrics.jsonl`` one line per logged step, and
    `export` writes the (EMA) network in diffusers layout.
    """

    def __init__(
        self,
        network: nn.Module,
        schedule: VPSchedule,
        objective: Objective | TrainingObjective,
        dataset: ItemDataset,
        config: TrainConfig,
        out_dir: str | Path,
        *,
        device: str | torch.device = "cpu",
        preview: Callable[[nn.Module], Tensor] | None = None,
    ) -> None:
        """``preview(network)``, with ``config.sample_every > 0``, returns ``(B, C, H, W)`` samples in [-1, 1]
        from the EMA network; they are written to ``out_dir/samples/step-XXXXXXXX.png``."""
        if config.sample_every and preview is None:
            raise DiffusionError(
                "TrainConfig.sample_every needs Trainer(preview=...): a function network -> samples"
            )
        self.preview = preview
        self.device = torch.device(device)
        self.network = network.to(self.device)
        self.schedule = schedule.to(self.device)
        self.objective, self.dataset, self.config = objective, dataset, config
        self.out_dir = Path(out_dir)
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.batches = BucketBatches(
            item_shapes(dataset), config.batch_size, config.seed, shard=(self.rank, self.world)
        )
        self.model: nn.Module = DistributedDataParallel(self.network) if self.world > 1 else self.network
        if config.compile:  # batches are all of one shape (short ones dropped): one static graph per bucket
            self.model = torch.compile(self.model, dynamic=False)
        params = [p for p in self.network.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.lr_scheduler = get_scheduler(
            config.lr_schedule
            if config.warmup_steps == 0 or config.lr_schedule != "constant"
            else "constant_with_warmup",
            self.optimizer,
            num_warmup_steps=config.warmup_steps,
            num_training_steps=config.steps,
        )
        self.ema = EMAModel(params, decay=config.ema_decay) if config.ema_decay else None
        # All of the trainer's own randomness (noise, timesteps, dropout) comes from this generator.
        self.generator = torch.Generator(self.device).manual_seed(config.seed * 7919 + self.rank)
        self.step = 0
        self.position = (0, 0)  # (epoch, batch index within the epoch) of the next batch

    # -- the loop --------------------------------------------------------------------------------------

    def fit(self, *, resume: bool = True, stop_at: int | None = None) -> TrainResult:
        """Train until ``config.steps``; with ``resume``, continue from the newest complete checkpoint.

        ``stop_at`` checkpoints and returns at that step without changing the run (its LR schedule still spans
        ``config.steps``): a later ``fit()`` continues exactly as if never stopped.
        """
        cfg = self.config
        result = TrainResult(step=self.step)
        if resume and (found := ckpt.latest(self.checkpoint_dir)) is not None:
            self._restore(found)
            result.resumed_from = found.step
        if self.rank == 0:
            self._trim_metrics(self.step)
        bar = tqdm(
            total=cfg.steps, initial=self.step, disable=not cfg.progress or self.rank != 0, desc="train"
        )
        stream = self._batch_stream()
        autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16"
        )
        window_start, window_samples = time.perf_counter(), 0
        self.network.train()
        last = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        while self.step < last:
            self.optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(cfg.grad_accum):
                indices = next(stream)
                x, cond = collate([self.dataset[i] for i in indices])
                x, cond = x.to(self.device), cond.map(lambda v: v.to(self.device))
                cond = drop_conditions(cond, cfg.cond_dropout, self.generator, cfg.null_label)
                with autocast:
                    loss = self.objective.loss(
                        self.model, self.schedule, x, cond, self.generator, timestep_range=cfg.timestep_range
                    ).mean()
                (loss / cfg.grad_accum).backward()
                total += loss.item() / cfg.grad_accum
                window_samples += x.shape[0] * self.world
            grad_norm = (
                float(nn.utils.clip_grad_norm_(self.network.parameters(), cfg.max_grad_norm))
                if cfg.max_grad_norm
                else None
            )
            self.optimizer.step()
            self.lr_scheduler.step()
            if self.ema is not None:
                self.ema.step(self.network.parameters())
            self.step += 1
            result.losses.append(total)
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == last:
                elapsed = time.perf_counter() - window_start
                self._log(
                    {"step": self.step, "loss": total, "lr": self.lr_scheduler.get_last_lr()[0],
                     "grad_norm": grad_norm, "samples_per_s": window_samples / max(elapsed, 1e-9)}
                )  # fmt: skip
                window_start, window_samples = time.perf_counter(), 0
            if (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or self.step == last:
                self.save_checkpoint()
            if cfg.sample_every and self.step % cfg.sample_every == 0 and self.rank == 0:
                self.write_preview()
        bar.close()
        result.step = self.step
        return result

    def _batch_stream(self) -> Iterator[list[int]]:
        epoch, index = self.position
        while True:
            batches = self.batches.epoch(epoch)
            while index < len(batches):
                self.position = (epoch, index + 1) if index + 1 < len(batches) else (epoch + 1, 0)
                yield batches[index]
                index += 1
            epoch, index = epoch + 1, 0

    # -- checkpoints -------------------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of the current state (rank 0 only; other ranks wait for it)."""
        path = None
        if self.rank == 0:
            opt_tensors, opt_meta = ckpt.flatten_optimizer(self.optimizer.state_dict())
            tensors = {
                **opt_tensors,
                "rng.trainer": self.generator.get_state(),
                "rng.torch": torch.get_rng_state(),
            }
            ema_meta = None
            if self.ema is not None:
                state = self.ema.state_dict()
                tensors.update({f"ema.{i}": p for i, p in enumerate(state.pop("shadow_params"))})
                ema_meta = state
            meta = {
                "position": list(self.position),
                "optimizer": opt_meta,
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "ema": ema_meta,
                "config": {k: v for k, v in asdict(self.config).items() if k != "progress"},
                "objective": asdict(self.objective)
                if is_dataclass(self.objective)
                else type(self.objective).__name__,
                "world": self.world,
            }
            path = ckpt.write(
                self.checkpoint_dir, self.step, self.network, tensors, meta, self.config.keep_checkpoints
            )
        if self.world > 1:
            dist.barrier()
        return path

    def _restore(self, found: ckpt.Checkpoint) -> None:
        tensors, meta = ckpt.read(found)
        if meta.get("world", 1) != self.world:
            raise DiffusionError(
                f"{found.path} was written by {meta['world']} worker(s), this run has {self.world}; the data order "
                "would differ. Resume with the same number of workers"
            )
        ckpt.load_network_weights(self.network, found.path / "model")
        self.optimizer.load_state_dict(ckpt.unflatten_optimizer(tensors, meta["optimizer"]))
        self.lr_scheduler.load_state_dict(meta["lr_scheduler"])
        if self.ema is not None:
            shadow = [tensors[f"ema.{i}"].to(self.device) for i in range(len(self.ema.shadow_params))]
            self.ema.load_state_dict({**meta["ema"], "shadow_params": shadow})
        if self.rank == 0:
            self.generator.set_state(tensors["rng.trainer"])
            torch.set_rng_state(tensors["rng.torch"])
        else:  # only rank 0's RNG is saved: the others continue from a deterministic reseed
            self.generator.manual_seed(self.config.seed * 7919 + self.rank + 104_729 * meta["step"])
        self.step, self.position = meta["step"], tuple(meta["position"])

    # -- outputs -----------------------------------------------------------------------------------------

    def trained_network(self) -> nn.Module:
        """The network with EMA weights where EMA is on (a copy; the training weights stay as they are)."""
        network = copy.deepcopy(self.network).eval()
        if self.ema is not None:
            self.ema.copy_to(network.parameters())
        return network

    def export(self, directory: str | Path | None = None) -> Path:
        """Save `trained_network` in diffusers layout (safetensors); defaults to ``out_dir/model``."""
        target = Path(directory) if directory is not None else self.out_dir / "model"
        ckpt.save_network(self.trained_network(), target)
        return target

    def write_preview(self) -> Path:
        """Sample with ``preview`` from the EMA network and write the grid for the current step."""
        network = self.trained_network()
        with torch.no_grad():
            images = self.preview(network)
        return save_grid(images, self.out_dir / "samples" / f"{ckpt.checkpoint_name(self.step)}.png")

    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _trim_metrics(self, step: int) -> None:
        """Drop metric lines past ``step`` (written after the checkpoint a resumed run starts from)."""
        path = self.out_dir / "metrics.jsonl"
        if path.exists():
            lines = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in lines))
