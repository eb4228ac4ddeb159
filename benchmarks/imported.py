"""Overhead of an imported checkpoint's stage against diffusers' own pipeline, on the same weights.

    .venv/bin/python benchmarks/imported.py                    # CPU: SD-shaped, reduced widths, 64x64 latents
    .venv/bin/python benchmarks/imported.py --device cuda --widths 320,640,1280,1280

A ``StableDiffusionPipeline`` folder is written with random weights (`legato.recipes.checkpoints`: the real
classes and layout; UNet widths ``--widths``, latents 64x64 = 512x512 pixels) and imported
(`legato.pipelines.checkpoints.from_diffusers`). Both sides make the same latents from the same starting
noise, prompt, negative prompt, scheduler and guidance (checked equal here), timed per call with the
prompt encoding included and the VAE decode left out (``output_type="latent"`` / ``stop="base-decode"``):
calls alternate, the median of ``--repeats`` each. One step and ``--steps`` steps are timed, and the
per-step cost is their difference. Target (issue 43): at most 1.05x diffusers' time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--widths", default="32,64,64", help="the UNet's block widths")
    parser.add_argument("--latents", type=int, default=64, help="latent side (pixels: 8x)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from diffusers import StableDiffusionPipeline

    from legato.cascade import Item, LocalExecutor
    from legato.pipelines.checkpoints import from_diffusers
    from legato.recipes import checkpoints

    widths = tuple(int(w) for w in args.widths.split(","))
    size = 8 * args.latents
    with tempfile.TemporaryDirectory() as tmp:
        folder = checkpoints.stable_diffusion(Path(tmp) / "sd", sample_size=args.latents, widths=widths)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = StableDiffusionPipeline.from_pretrained(
                folder, safety_checker=None, requires_safety_checker=False
            )
        pipe = pipe.to(args.device)
        pipe.set_progress_bar_config(disable=True)
        cascade = {
            n: from_diffusers(folder, steps=[n], guidance=7.5, size=(size, size), device=args.device)
            for n in (1, args.steps)
        }
    base = cascade[1].stages[0]
    noise = base.starting_noise(base.generators([7], 0))
    items = [Item("a", 7, prompt="a lighthouse at dusk", negative="blurry")]
    kw = dict(prompt="a lighthouse at dusk", negative_prompt="blurry", guidance_scale=7.5, height=size,
              width=size, output_type="latent")  # fmt: skip

    def ours(n: int) -> torch.Tensor:
        return LocalExecutor().run(cascade[n], items, stop="base-decode")[0]

    def theirs(n: int) -> torch.Tensor:
        with torch.no_grad():
            return pipe(**kw, num_inference_steps=n, latents=noise.clone()).images[0].float().cpu()

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    gap = (ours(args.steps) - theirs(args.steps)).abs().max().item()  # also the warm-up
    params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    print(f"UNet {params:.2f} M parameters (widths {widths}), latents {args.latents}x{args.latents}, "
          f"guidance 7.5 (batch 2 per step), {args.device}, torch threads {torch.get_num_threads()}; "
          f"Legato's latents vs diffusers': max difference {gap:.2g}")  # fmt: skip
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for n in (1, args.steps):
            for name, fn in (("legato", ours), ("diffusers", theirs)):
                sync()
                start = time.perf_counter()
                fn(n)
                sync()
                times.setdefault((name, n), []).append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in ("diffusers", "legato"):
        per_step = (med[(name, args.steps)] - med[(name, 1)]) / (args.steps - 1)
        print(f"{name:9s} 1 step {med[(name, 1)] * 1000:8.1f} ms   {args.steps} steps "
              f"{med[(name, args.steps)] * 1000:8.1f} ms   per step {per_step * 1000:8.1f} ms")  # fmt: skip
    ratio_call = med[("legato", args.steps)] / med[("diffusers", args.steps)]
    ratio_one = med[("legato", 1)] / med[("diffusers", 1)]
    print(f"legato / diffusers: one step {ratio_one:.3f}x, {args.steps} steps {ratio_call:.3f}x "
          f"(target <= 1.05x)")  # fmt: skip


if __name__ == "__main__":
    main()
