"""Trainer throughput against a plain hand-written PyTorch loop: same model, batch, data and device.

    .venv/bin/python benchmarks/train.py                               # CPU, 32x32 UNet, batch 32
    .venv/bin/python benchmarks/train.py --device cuda --bf16          # where there is a GPU
    .venv/bin/python benchmarks/train.py --bf16 --compile              # the Trainer through torch.compile

The plain loop is the minimum a diffusion training step needs: sample timesteps and noise, noise the batch,
predict, MSE, backward, AdamW step. The Trainer does the same plus everything it is for: EMA, gradient
clipping, LR schedule, metrics logging and a final checkpoint, all included in its time. Runs alternate
(plain, trainer, plain, ...), and the median samples/s of each gives the ratio.
Target (issue 5): trainer >= 0.95x the plain loop. With ``--compile`` the Trainer runs with
``TrainConfig(compile=True)`` against the same eager plain loop; its compile (a few warm-up steps, in the same
run) is left out of its time, so the ratio is the steady-state speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from diffusers import DDPMScheduler, UNet2DModel

from legato.diffusion import VPSchedule
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer


def build_unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )  # fmt: skip


def plain_loop(data: torch.Tensor, steps: int, batch: int, device: torch.device, bf16: bool) -> float:
    """Seconds for ``steps`` optimizer steps of the minimal loop."""
    unet = build_unet().to(device).train()
    scheduler = DDPMScheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    gen = torch.Generator(device).manual_seed(0)
    start = time.perf_counter()
    for step in range(steps):
        x0 = data[step * batch : (step + 1) * batch].to(device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        t = torch.randint(0, 1000, (batch,), generator=gen, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = unet(scheduler.add_noise(x0, noise, t), t).sample
            loss = torch.nn.functional.mse_loss(pred.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def trainer_run(data: torch.Tensor, steps: int, batch: int, device: torch.device, bf16: bool,
                compile: bool = False) -> float:  # fmt: skip
    """Seconds for ``steps`` optimizer steps of the Trainer (with ``compile``, after 3 untimed ones)."""
    warm = 3 if compile else 0
    config = TrainConfig(
        steps=steps + warm, batch_size=batch, learning_rate=1e-4, ema_decay=0.999, max_grad_norm=1.0,
        mixed_precision="bf16" if bf16 else "no", compile=compile, log_every=10, progress=False,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(build_unet(), VPSchedule.from_scheduler(DDPMScheduler()), Objective("epsilon"),
                          TensorItems(data), config, out, device=device)  # fmt: skip
        if warm:
            trainer.fit(resume=False, stop_at=warm)
        start = time.perf_counter()
        trainer.fit(resume=bool(warm))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true", help="the Trainer with TrainConfig(compile=True)")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = torch.randn(args.steps * args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    params = sum(p.numel() for p in build_unet().parameters()) / 1e6
    print(f"UNet2DModel {params:.2f}M params, batch {args.batch}, {args.steps} steps, {device}, bf16={args.bf16}, "
          f"compile={args.compile}, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    plain_loop(data, 3, args.batch, device, args.bf16)  # warm-up
    rates: dict[str, list[float]] = {"plain": [], "trainer": []}
    for _ in range(args.repeats):
        rates["plain"].append(
            args.steps * args.batch / plain_loop(data, args.steps, args.batch, device, args.bf16)
        )
        seconds = trainer_run(data, args.steps, args.batch, device, args.bf16, args.compile)
        rates["trainer"].append(args.steps * args.batch / seconds)
    plain, ours = statistics.median(rates["plain"]), statistics.median(rates["trainer"])
    print(f"plain loop: {plain:7.1f} samples/s")
    print(
        f"Trainer   : {ours:7.1f} samples/s (EMA, clipping, LR schedule, logging, final checkpoint included)"
    )
    target = "steady state, compile left out" if args.compile else "target >= 0.95x"
    print(f"ratio Trainer / plain: {ours / plain:.3f}x ({target})")


if __name__ == "__main__":
    main()
