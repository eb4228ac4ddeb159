"""Overhead of an imported checkpoint's stage against diffusers' own pipeline, on the same weights.

    .venv/bin/python benchmarks/imported.py                    # every family, CPU, reduced widths
    .venv/bin/python benchmarks/imported.py --family sd --device cuda --widths 320,640,1280,1280

Each family's folder is written with random weights in the real classes and layout (`legato.recipes.checkpoints`,
`legato.recipes.dit_checkpoints`) at reduced widths, and imported (`legato.pipelines.checkpoints.from_diffusers`):

- ``sd``: ``StableDiffusionPipeline``, UNet widths ``--widths``, latents 64x64 (512x512 pixels);
- ``wan``: ``WanPipeline``, 4 heads x 32, 4 layers, 64x64 pixels x 17 frames (16x5x8x8 latents, 80 tokens);
- ``ltx``: ``LTXPipeline``, 4 heads x 32, 4 layers, 256x256 pixels x 17 frames (8x3x8x8 latents, 192 tokens);
- ``stable-audio``: ``StableAudioPipeline``, 4 heads x 32, 4 layers, 128 latent frames (5.9 s of audio).

Both sides make the same latents from the same starting noise, prompt, negative prompt, scheduler and guidance
(checked equal here), timed per call with the prompt encoding included and the decode left out (diffusers'
``output_type="latent"``, Legato's ``stop="base-decode"``): calls alternate, the median of ``--repeats`` each.
One step (two for LTX, whose terminal-shift stretch divides by zero at one, in diffusers too) and ``--steps``
steps are timed; the per-step cost is their difference. Target (issues 43 and 44): at
most 1.05x diffusers' time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

PROMPT, NEGATIVE = "a lighthouse at dusk", "blurry"
WIDE = dict(heads=4, head_dim=32, layers=4)  # the DiT families' reduced widths


@dataclass
class Family:
    """A family's diffusers pipeline on a folder, the call that makes its latents, and the import settings."""

    pipe: object
    call: Callable[
        [int, torch.Tensor, int], torch.Tensor
    ]  # (steps, Legato's noise, its seed) -> diffusers' latents
    settings: dict
    guidance: float


def _load(cls, folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = cls.from_pretrained(folder, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def family(name: str, tmp: Path, args) -> Family:
    from legato.recipes import checkpoints, dit_checkpoints

    kw = dict(prompt=PROMPT, negative_prompt=NEGATIVE, output_type="latent")
    if name == "sd":
        from diffusers import StableDiffusionPipeline

        widths = tuple(int(w) for w in args.widths.split(","))
        folder = checkpoints.stable_diffusion(tmp / name, sample_size=args.latents, widths=widths)
        pipe = _load(StableDiffusionPipeline, folder, safety_checker=None, requires_safety_checker=False)
        size = 8 * args.latents
        return Family(pipe, lambda n, z, _: pipe(**kw, num_inference_steps=n, guidance_scale=7.5, height=size,
                                                 width=size, latents=z).images,
                      dict(folder=folder, size=(size, size)), 7.5)  # fmt: skip
    if name == "wan":
        from diffusers import WanPipeline

        folder = dit_checkpoints.wan(tmp / name, **WIDE)
        pipe = _load(WanPipeline, folder)
        return Family(pipe, lambda n, z, _: pipe(**kw, num_inference_steps=n, guidance_scale=5.0, height=64,
                                                 width=64, num_frames=17, latents=z).frames,
                      dict(folder=folder, size=(64, 64), frames=17), 5.0)  # fmt: skip
    if name == "ltx":
        from diffusers import LTXPipeline

        folder = dit_checkpoints.ltx(tmp / name, **WIDE)
        pipe = _load(LTXPipeline, folder)

        def call(n: int, z: torch.Tensor, _: int) -> torch.Tensor:
            packed = LTXPipeline._pack_latents(z, 1, 1)
            out = pipe(**kw, num_inference_steps=n, guidance_scale=3.0, height=256, width=256, num_frames=17,
                       latents=packed).frames  # fmt: skip
            return LTXPipeline._unpack_latents(out, *z.shape[2:])

        return Family(pipe, call, dict(folder=folder, size=(256, 256), frames=17), 3.0)
    if name == "stable-audio":
        from diffusers import StableAudioPipeline

        folder = dit_checkpoints.stable_audio(tmp / name, latents=128, **WIDE)
        pipe = _load(StableAudioPipeline, folder)
        # its scheduler's SDE noise: a Brownian tree seeded as the stage's generator is
        return Family(pipe, lambda n, z, seed: pipe(**kw, num_inference_steps=n, guidance_scale=7.0, latents=z,
                                                    generator=[torch.Generator().manual_seed(seed)]).audios,
                      dict(folder=folder), 7.0)  # fmt: skip
    raise SystemExit(f"unknown family {name!r}")


def measure(name: str, args) -> float:
    from legato.cascade import Item, LocalExecutor
    from legato.pipelines.checkpoints import from_diffusers

    with tempfile.TemporaryDirectory() as tmp:
        fam = family(name, Path(tmp), args)
        settings = dict(fam.settings)
        folder = settings.pop("folder")
        # LTX's shift_terminal stretch divides by zero at one step (in diffusers too): its fewest is two
        small = 2 if name == "ltx" else 1
        cascade = {n: from_diffusers(folder, steps=[n], guidance=fam.guidance, device=args.device, **settings)
                   for n in (small, args.steps)}  # fmt: skip
    fam.pipe.to(args.device)
    base = cascade[small].stages[0]
    noise = base.starting_noise(base.generators([7], 0))
    items = [Item("a", 7, prompt=PROMPT, negative=NEGATIVE)]
    seed = base.generators([7], 0)[0].initial_seed()

    def ours(n: int) -> torch.Tensor:
        return LocalExecutor().run(cascade[n], items, stop="base-decode")[0]

    def theirs(n: int) -> torch.Tensor:
        with torch.no_grad():
            return fam.call(n, noise.clone(), seed)[0].float().cpu()

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    network = base.denoiser.network
    params = sum(p.numel() for p in network.parameters()) / 1e6
    gap = (ours(args.steps) - theirs(args.steps)).abs().max().item()  # also the warm-up
    print(f"{name}: {type(network).__name__} {params:.2f} M parameters, sample {tuple(base.shape)}, "
          f"{args.device}, torch threads {torch.get_num_threads()}; latents vs diffusers': max difference {gap:.2g}")  # fmt: skip
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for n in (small, args.steps):
            for side, fn in (("legato", ours), ("diffusers", theirs)):
                sync()
                start = time.perf_counter()
                fn(n)
                sync()
                times.setdefault((side, n), []).append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    for side in ("diffusers", "legato"):
        per_step = (med[(side, args.steps)] - med[(side, small)]) / (args.steps - small)
        print(f"  {side:9s} {small} step(s) {med[(side, small)] * 1000:8.1f} ms   {args.steps} steps "
              f"{med[(side, args.steps)] * 1000:8.1f} ms   per step {per_step * 1000:8.1f} ms")  # fmt: skip
    ratio_one = med[("legato", small)] / med[("diffusers", small)]
    ratio_call = med[("legato", args.steps)] / med[("diffusers", args.steps)]
    print(f"  legato / diffusers: {small} step(s) {ratio_one:.3f}x, {args.steps} steps {ratio_call:.3f}x "
          "(target <= 1.05x)")  # fmt: skip
    return ratio_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", nargs="+", default=["sd", "wan", "ltx", "stable-audio"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--widths", default="32,64,64", help="sd: the UNet's block widths")
    parser.add_argument("--latents", type=int, default=64, help="sd: latent side (pixels: 8x)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ratios = {name: measure(name, args) for name in args.family}
    print("one step, legato / diffusers: " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
