"""Noise-level experts against one model of the same total training budget, on the two-moons toy.

    .venv/bin/python benchmarks/experts.py        # about 2 minutes on a 2-core CPU

One model: ``budget`` optimizer steps over all timesteps. Two experts: a shared model trained for half the
budget, then two copies fine-tuned for a quarter each, on timesteps [0, 299] and [300, 999] (eDiffi's
recipe: the low-noise expert refines, the high-noise expert lays out). Both are sampled with DDIM at 8 and
50 steps; the sliced Wasserstein distance to held-out data is printed for each, with the true-vs-true ceiling.
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from legato.diffusion import Denoiser, NoiseLevelExperts, VPSchedule, expert_ranges, generators, randn, sample
from legato.diffusion.models import MLP
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer
from legato.diffusion.two_moons import sliced_wasserstein, two_moons

SCHEDULE = VPSchedule.from_scheduler(DDPMScheduler())
BOUNDARY = 300


def train(network: MLP, steps: int, out: str, timestep_range: tuple[float, float] | None = None) -> MLP:
    config = TrainConfig(
        steps=steps, batch_size=256, learning_rate=2e-3, lr_schedule="cosine", warmup_steps=50, ema_decay=0.995,
        timestep_range=timestep_range, progress=False,
    )  # fmt: skip
    trainer = Trainer(
        network, SCHEDULE, Objective("v_prediction"), TensorItems(two_moons(8192, 0)), config, out
    )
    trainer.fit(resume=False)
    return trainer.trained_network()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=2000, help="total optimizer steps for either side")
    args = parser.parse_args()
    out = tempfile.mkdtemp()
    test = two_moons(2048, 1)
    torch.manual_seed(0)
    single = Denoiser(train(MLP(hidden=64, depth=2), args.budget, f"{out}/single"), "v_prediction")
    torch.manual_seed(0)
    shared = train(MLP(hidden=64, depth=2), args.budget // 2, f"{out}/shared")
    low_range, high_range = expert_ranges([BOUNDARY])
    low = train(copy.deepcopy(shared).train(), args.budget // 4, f"{out}/low", low_range)
    high = train(copy.deepcopy(shared).train(), args.budget // 4, f"{out}/high", high_range)
    experts = NoiseLevelExperts([Denoiser(low, "v_prediction"), Denoiser(high, "v_prediction")], [BOUNDARY])

    print(
        f"budget {args.budget} steps each; ceiling (true vs true) {sliced_wasserstein(two_moons(2048, 2), test):.4f}"
    )
    print("| sampler steps | one model SW | 2 experts SW |")
    print("| --- | --- | --- |")
    for steps in (8, 50):
        noise = randn((2048, 2, 1, 1), generators(range(2048)))
        scores = [
            sliced_wasserstein(sample(d, DDIMScheduler(clip_sample=False), noise, steps=steps), test)
            for d in (single, experts)
        ]
        print(f"| {steps} | {scores[0]:.4f} | {scores[1]:.4f} |")


if __name__ == "__main__":
    main()
