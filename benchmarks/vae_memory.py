"""Peak memory and time of a latent decode, whole against tiled and sliced (`Cascade.with_vae`).

    .venv/bin/python benchmarks/vae_memory.py                       # CPU, SD's VAE layout at a quarter width
    .venv/bin/python benchmarks/vae_memory.py --size 1024 --batch 2 --width 64

Stable Diffusion's ``AutoencoderKL`` layout (4 blocks, 8x, 4 latent channels, its tile of 512 pixels) with
random weights at ``--width`` base channels (SD's own: 128), decoding ``--batch`` latents of ``--size / 8``
square through `LatentSpace`, each mode in a fresh process: the peak resident memory the decode adds (CPU;
on CUDA, ``max_memory_allocated``), its time, and its pixels' difference from the whole decode's (in [-1, 1];
random weights make the tiles' seams larger than a trained VAE's).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MODES = {"whole": {}, "slicing": {"slicing": True}, "tiling": {"tiling": True},
         "tiling + slicing": {"tiling": True, "slicing": True}}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    import torch
    from diffusers import AutoencoderKL

    from legato.diffusion import LatentSpace

    torch.manual_seed(0)
    width = args.width
    vae = AutoencoderKL(
        block_out_channels=[width, 2 * width, 4 * width, 4 * width], latent_channels=4, layers_per_block=2,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, sample_size=512,
        scaling_factor=0.18215, norm_num_groups=min(32, width),
    ).eval().to(args.device)  # fmt: skip
    space = LatentSpace(vae, **MODES[args.child])
    latents = torch.randn(args.batch, 4, args.size // 8, args.size // 8, device=args.device)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.max_memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    with torch.inference_mode():
        pixels = space.decode(latents).float().cpu()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # fmt: skip
    torch.save(pixels, f"{args.out}.{args.child.replace(' ', '')}.pt")
    print(json.dumps({"extra_mb": (peak - before) / 2**20, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="decoded pixels per side")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--width", type=int, default=32, help="the VAE's first block channels (SD: 128)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="/tmp/legato-vae-memory")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    import torch

    rows = {}
    for mode in MODES:
        cmd = [sys.executable, __file__, "--child", mode, *sys.argv[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{mode}: {done.stderr.strip().splitlines()[-1]}")
        rows[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    whole = torch.load(f"{args.out}.whole.pt")
    print(
        f"{args.batch} x {args.size}x{args.size} pixels, SD's VAE layout at width {args.width}, {args.device}"
    )
    for mode, row in rows.items():
        gap = (torch.load(f"{args.out}.{mode.replace(' ', '')}.pt") - whole).abs()
        print(f"{mode:17s} +{row['extra_mb']:8.0f} MB ({row['extra_mb'] / rows['whole']['extra_mb']:.2f} of whole)"
              f"  {row['seconds']:6.2f} s  |pixel - whole| mean {gap.mean():.4f} max {gap.max():.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
