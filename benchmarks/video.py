"""UNet3D against diffusers' UNet3DConditionModel: forward+backward throughput and peak memory.

    .venv/bin/python benchmarks/video.py                          # CPU: batch 2, 4x8x32x32 latents, text
    .venv/bin/python benchmarks/video.py --device cuda --bf16     # where there is a GPU

Both models get the same input ``(B, 4, T, H, W)``, timestep and text embeddings ``(B, 8, 256)``, and the same
shape of network: two resolution levels, one res block per level going down and two going up, space-time
attention with text cross-attention at the lower level and in the middle. Channel widths are set so both
have the same parameter count within 5% (printed). Runs alternate between the models; the median
iterations/s of each gives the ratio. Peak memory: CUDA's max_memory_allocated on a GPU; on CPU, the peak
resident set of a fresh process running only that model's iterations, minus its resident set before the
first iteration. Target (issue 6): UNet3D >= 1.2x diffusers' throughput at equal or lower memory.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import torch
from diffusers import UNet3DConditionModel

from legato.video import UNet3D

TEXT_DIM = 256


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "diffusers":
        return UNet3DConditionModel(
            in_channels=4, out_channels=4, block_out_channels=(64, 128), layers_per_block=1,
            down_block_types=("DownBlock3D", "CrossAttnDownBlock3D"),
            up_block_types=("CrossAttnUpBlock3D", "UpBlock3D"),
            cross_attention_dim=TEXT_DIM, attention_head_dim=32, norm_num_groups=32,
        )  # fmt: skip
    return UNet3D(
        in_channels=4, block_out_channels=(128, 192), attention_levels=(False, True), heads=4, norm_groups=32,
        cross_attention_dim=TEXT_DIM,
    )  # fmt: skip


def inputs(args: argparse.Namespace, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 4, args.frames, args.size, args.size, generator=gen).to(device)
    t = torch.randint(0, 1000, (args.batch,), generator=gen).to(device)
    text = torch.randn(args.batch, 8, TEXT_DIM, generator=gen).to(device)
    return x, t, text


def iterations(model: torch.nn.Module, args: argparse.Namespace, device: torch.device, count: int) -> float:
    """Seconds for ``count`` forward+backward passes."""
    x, t, text = inputs(args, device)
    start = time.perf_counter()
    for _ in range(count):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = model(x, t, encoder_hidden_states=text).sample
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def peak_memory(name: str, args: argparse.Namespace) -> float:
    """MiB above the starting point for ``args.steps`` iterations of model ``name`` (see module docstring)."""
    device = torch.device(args.device)
    model = build(name).to(device).train()
    if device.type == "cuda":
        iterations(model, args, device, 1)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        iterations(model, args, device, args.steps)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_cpu_peak, (name, args))


def _cpu_peak(name: str, args: argparse.Namespace) -> float:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = build(name).train()
    x = inputs(args, torch.device("cpu"))  # noqa: F841 - resident before the baseline, like the model
    before = _rss_mib()
    iterations(model, args, torch.device("cpu"), args.steps)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = {name: build(name).to(device).train() for name in ("legato", "diffusers")}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    print(
        f"parameters: UNet3D {params['legato'] / 1e6:.2f} M, UNet3DConditionModel {params['diffusers'] / 1e6:.2f} M"
    )
    print(f"input ({args.batch}, 4, {args.frames}, {args.size}, {args.size}), {device}, bf16={args.bf16}")
    speed: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        iterations(model, args, device, 1)  # warm-up
    for _ in range(args.repeats):
        for name, model in models.items():
            speed[name].append(args.steps / iterations(model, args, device, args.steps))
    memory = {name: peak_memory(name, args) for name in models}
    for name in models:
        print(f"{name:10s} {statistics.median(speed[name]):7.2f} it/s   peak {memory[name]:8.1f} MiB")
    ratio = statistics.median(speed["legato"]) / statistics.median(speed["diffusers"])
    print(f"throughput ratio UNet3D / UNet3DConditionModel: {ratio:.2f}x (target >= 1.2x)")
    print(f"memory ratio: {memory['legato'] / memory['diffusers']:.2f}x (target <= 1.0x)")


if __name__ == "__main__":
    main()
