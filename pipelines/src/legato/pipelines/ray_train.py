"""Data-parallel training on Ray Train: the same `legato.diffusion.training.Trainer`, on many workers.

Ray Train's ``TorchTrainer`` starts the workers and the ``torch.distributed`` process group (gloo on CPU,
NCCL on GPU). Inside each worker, `build` makes the very trainer a single process would make; the trainer
sees the process group, wraps its network in DDP, takes every ``world``-th batch, and rank 0 writes the
checkpoints and metrics to ``out_dir`` (which every worker must reach: the local disk on one machine, shared
storage on a cluster).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from legato.diffusion.training import Trainer


@dataclass(frozen=True)
class RayTrainResult:
    step: int
    metrics: list[dict]  # the rows of out_dir/metrics.jsonl
    checkpoint: Path
    model: Path  # out_dir/model: the trained (EMA) network in diffusers layout, written by rank 0


def train_on_ray(
    build: Callable[[], Trainer],
    out_dir: str | Path,
    *,
    num_workers: int = 2,
    use_gpu: bool = False,
    cpus_per_worker: float | None = None,
    threads_per_worker: int | None = None,
) -> RayTrainResult:
    """Run ``build().fit()`` on ``num_workers`` Ray Train workers; ``build`` must make its trainer write to
    ``out_dir`` and must be picklable (a module-level function or a ``functools.partial`` of one).

    ``cpus_per_worker`` defaults to an equal share of the cluster's CPUs (Ray's default of one CPU per worker
    cannot place two workers on a 2-CPU machine and waits for ever); ``threads_per_worker`` defaults to
    that share, so that workers do not oversubscribe the cores.
    """
    if not ray.is_initialized():
        raise RuntimeError("start or connect to a Ray cluster first (ray.init(...))")
    total_cpus = ray.cluster_resources().get("CPU", 0.0)
    share = cpus_per_worker if cpus_per_worker is not None else max(0.1, (total_cpus - 0.1) / num_workers)
    if share * num_workers > total_cpus:
        raise RuntimeError(
            f"{num_workers} workers x {share} CPU need {share * num_workers} CPUs; the cluster has {total_cpus}. "
            "Lower num_workers or cpus_per_worker"
        )
    threads = threads_per_worker or max(1, int(share))
    driver_cwd = os.getcwd()

    def loop() -> None:
        torch.set_num_threads(threads)
        if os.path.isdir(driver_cwd):  # relative paths in `build` mean what they mean to the caller
            os.chdir(driver_cwd)
        trainer = build()
        trainer.fit()
        if trainer.rank == 0:
            trainer.export()

    TorchTrainer(
        loop,
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": share}
        ),
        run_config=RunConfig(storage_path=str(Path(out_dir).resolve() / "ray")),
    ).fit()
    out = Path(out_dir)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    return RayTrainResult(
        step=metrics[-1]["step"], metrics=metrics, checkpoint=checkpoints[-1], model=out / "model"
    )
