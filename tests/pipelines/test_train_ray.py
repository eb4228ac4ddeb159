"""A 2-worker data-parallel training run on a real local Ray cluster (gloo on CPU)."""

import functools

import pytest
import torch
from diffusers import DDPMScheduler

from legato.diffusion import VPSchedule
from legato.diffusion.models import MLP
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer
from legato.diffusion.training import checkpoint as ckpt
from legato.diffusion.two_moons import two_moons
from legato.pipelines.ray_train import train_on_ray


def build(out_dir: str) -> Trainer:
    torch.manual_seed(0)  # every worker starts from the same weights (DDP also broadcasts rank 0's)
    config = TrainConfig(steps=60, batch_size=64, learning_rate=3e-3, log_every=5, checkpoint_every=30,
                         ema_decay=0.95, progress=False)  # fmt: skip
    return Trainer(MLP(hidden=32, depth=2), VPSchedule.from_scheduler(DDPMScheduler()), Objective("epsilon"),
                   TensorItems(two_moons(2048, 0)), config, out_dir)  # fmt: skip


@pytest.mark.slow  # 21 s; the user's path, `legato train --workers 2`, runs by default (tests/services/test_train.py)
def test_two_workers_train_and_write_the_same_kind_of_checkpoint(ray_cluster, tmp_path):
    result = train_on_ray(functools.partial(build, str(tmp_path)), tmp_path, num_workers=2)
    assert result.step == 60
    latest = ckpt.latest(tmp_path / "checkpoints")
    assert latest.step == 60
    tensors, meta = ckpt.read(latest)
    assert meta["world"] == 2
    assert (latest.path / "model" / "diffusion_pytorch_model.safetensors").exists()
    assert any(k.startswith("ema.") for k in tensors)
    losses = [row["loss"] for row in result.metrics]
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])
    # 2 workers x 64 items per step: the throughput counts both
    assert all(row["samples_per_s"] > 0 for row in result.metrics)
