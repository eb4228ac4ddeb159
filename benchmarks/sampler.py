"""Sampling-loop overhead against diffusers' own pipelines: same UNet2DModel, scheduler, noise and steps.

    .venv/bin/python benchmarks/sampler.py                  # CPU, 32x32 RGB UNet, batch 4, 25 steps
    .venv/bin/python benchmarks/sampler.py --device cuda --dtype bfloat16 --compile   # where there is a GPU

Runs alternate (pipeline, ours, pipeline, ours, ...) so that drift in the machine's speed hits both equally;
the median time per step of each is reported with the ratio ours / diffusers'.
Target (issue 4): <= 1.05x on CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from legato.diffusion import Denoiser, sample


def build_unet(device: torch.device, dtype: torch.dtype) -> UNet2DModel:
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=2, block_out_channels=(64, 128, 128),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    unet = unet.to(device)
    return (unet if dtype == torch.float32 else unet.to(dtype)).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet on our side only")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    unet = build_unet(device, dtype)
    ours_unet = torch.compile(unet) if args.compile else unet
    print(
        f"UNet2DModel {sum(p.numel() for p in unet.parameters()) / 1e6:.1f}M params, batch {args.batch}, "
        f"{args.steps} steps, {device} {args.dtype}, torch threads {torch.get_num_threads()}"
    )
    for name, scheduler, pipeline_cls in [
        ("DDPM", DDPMScheduler(), DDPMPipeline),
        ("DDIM", DDIMScheduler(), DDIMPipeline),
    ]:
        theirs, ours = compare(unet, ours_unet, scheduler, pipeline_cls, args, device, dtype)
        print(
            f"{name}: diffusers {theirs * 1e3:7.2f} ms/step, legato {ours * 1e3:7.2f} ms/step, "
            f"ratio {ours / theirs:.3f}x (target <= 1.05x)"
        )


def compare(
    unet: UNet2DModel,
    ours_unet: torch.nn.Module,
    scheduler: SchedulerMixin,
    pipeline_cls: type,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[float, float]:
    """Median seconds per step of the diffusers pipeline and of `sample`, runs alternating."""
    pipe = pipeline_cls(unet=unet, scheduler=scheduler).to(device)
    pipe.set_progress_bar_config(disable=True)
    shape = (args.batch, 3, 32, 32)

    def run_pipeline() -> None:
        pipe(batch_size=args.batch, generator=torch.Generator(device).manual_seed(0),
             num_inference_steps=args.steps, output_type="np")  # fmt: skip

    def run_ours() -> None:
        gen = torch.Generator(device).manual_seed(0)
        noise = randn_tensor(shape, generator=gen, device=device, dtype=dtype)
        x = sample(Denoiser(ours_unet), scheduler, noise, steps=args.steps, generator=gen)
        (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()  # what output_type="np" does

    run_pipeline()  # warm-up (and compilation) for both
    run_ours()
    times: dict[str, list[float]] = {"diffusers": [], "legato": []}
    for _ in range(args.repeats):
        for label, fn in (("diffusers", run_pipeline), ("legato", run_ours)):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[label].append((time.perf_counter() - t0) / args.steps)
    return statistics.median(times["diffusers"]), statistics.median(times["legato"])


if __name__ == "__main__":
    main()
