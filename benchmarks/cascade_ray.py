"""Stage overlap on Ray: a cascade's pipelining efficiency, and the Ray path's throughput against LocalExecutor.

    .venv/bin/python benchmarks/cascade_ray.py                 # 2 single-threaded stages on this 2-core CPU
    .venv/bin/python benchmarks/cascade_ray.py --stages 3 --device cuda   # on a GPU machine
    .venv/bin/python benchmarks/cascade_ray.py --model models/ltx --items 16   # an imported cascade, as it is

The cascade: a text-conditioned base image stage and x2 super-resolution stages (diffusers UNets), batches
of ``--batch`` (default 2) items, each stage on its own actor with one CPU and one torch thread (or a GPU
each with ``--device cuda``, fractions of one GPU where there is only one). Steps are set so that the
stages take about the same time per item. ``--model`` runs a cascade folder instead (an imported one: LTX-Video's
base, latent upsampler, refining pass and decode, each step on its own actor), its items prompted, its steps
as saved (unbalanced: the efficiency is then the slowest step's). Measured in one run:

- each stage's time per item alone (same thread count, after a warm-up), measured before and after the Ray
  runs and averaged, so that a drift of the machine's speed during the run (a shared VM's) cancels;
- the Ray executor's throughput on K items, ``--repeats`` times (after a warm-up run that starts the actors);
- pipelining efficiency = throughput / (1 / slowest stage time), per repeat and their median: 1.0 means the
  stages overlap perfectly (target >= 0.9). Filling and draining the pipeline bound it by
  batches / (batches + stages - 1), printed beside it;
- LocalExecutor's throughput on the same items, one thread (the per-stage work, run in sequence) and with
  every core (torch's own intra-op threads), and the Ray path's ratio against each;
- the pipeline simulator's prediction (`legato.cascade.simulate`) from the stages' measured times, against
  the Ray runs' median throughput (issue 45: within 10%).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from legato.cascade import Cascade, Item, LocalExecutor, Stage
from legato.cascade.simulate import stage_costs
from legato.diffusion import Conditioning, Denoiser, NoiseAugmentation, SuperResolution

TEXT = 32


def unet(in_channels: int, noise_level: bool, width: int) -> UNet2DConditionModel:
    torch.manual_seed(in_channels)
    return UNet2DConditionModel(
        sample_size=16, in_channels=in_channels, out_channels=3, layers_per_block=1,
        block_out_channels=(width, 2 * width), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TEXT, attention_head_dim=8,
        norm_num_groups=8, class_embed_type="timestep" if noise_level else None,
    ).eval()  # fmt: skip


def build(stages: int, device: str, base_steps: int, sr_steps: int, batch: int) -> Cascade:
    out = [Stage("base", Denoiser(unet(3, False, 32)), DDIMScheduler(), base_steps, shape=(3, 16, 16),
                 guidance_scale=3.0, batch_size=batch, device=device)]  # fmt: skip
    for i in range(stages - 1):
        sr = SuperResolution(space=2, augmentation=NoiseAugmentation(100, 20))
        out.append(Stage(f"sr{i + 1}", Denoiser(unet(6, True, 16 if i else 32), "sample"), DDIMScheduler(),
                         sr_steps // (4**i) or 1, sr=sr, batch_size=batch, device=device))  # fmt: skip
    return Cascade(tuple(out))


def items(count: int, prompted: bool = False) -> list[Item]:
    """Items with random token embeddings, or (``prompted``: stages that encode their own prompts) prompts."""
    if prompted:
        return [Item(f"{i}", i, prompt=("a cat playing piano", "rain on wood")[i % 2]) for i in range(count)]
    gen = torch.Generator().manual_seed(0)
    return [Item(f"{i}", i, Conditioning(text=torch.randn(4, TEXT, generator=gen))) for i in range(count)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--items", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--base-steps", type=int, default=24)
    parser.add_argument("--sr-steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--model", default=None, help="a cascade folder to run instead (e.g. an imported one)"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if args.model:
        from dataclasses import replace

        loaded = Cascade.from_pretrained(args.model, device=args.device)
        cascade = replace(loaded, stages=tuple(replace(s, batch_size=args.batch) for s in loaded.stages))
    else:
        cascade = build(args.stages, args.device, args.base_steps, args.sr_steps, args.batch)
    work = items(args.items, prompted=bool(args.model))
    local = LocalExecutor()

    # 1. Each stage alone, one thread (what each actor gets), per item; again after the Ray runs.
    torch.set_num_threads(1)
    probe = work[: 8 * args.batch]
    before = stage_costs(cascade, probe)

    # 2. LocalExecutor on all items: one thread, then every core.
    local_1 = args.items / timed(lambda: local.run(cascade, work))
    torch.set_num_threads(cores)
    local_n = args.items / timed(lambda: local.run(cascade, work))
    torch.set_num_threads(1)

    # 3. Ray: one actor per stage.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from legato.pipelines.ray_executor import RayExecutor, StageResources

    ray.init(num_cpus=max(cores, len(cascade.stages)), include_dashboard=False, log_to_driver=False)
    share = None
    if args.device.startswith("cuda"):
        share = 1.0 / len(cascade.stages) if torch.cuda.device_count() < len(cascade.stages) else 1.0
    executor = RayExecutor({s.name: StageResources(num_cpus=1, num_gpus=share) for s in cascade.stages})
    executor.run(cascade, work[:2])  # starts the actors
    ray_tps = [args.items / timed(lambda: executor.run(cascade, work)) for _ in range(args.repeats)]
    executor.shutdown()
    ray.shutdown()
    after = stage_costs(cascade, probe, warm=False)
    stage_times = [(a + b) / 2 for a, b in zip(before, after, strict=True)]
    slowest = max(stage_times)
    ray_tp = statistics.median(ray_tps)
    chunks = -(-args.items // args.batch)

    print(
        f"device {args.device}, {cores} cores, {len(cascade.stages)} stages, {args.items} items, batch {args.batch}"
    )
    for stage, t, a, b in zip(cascade.stages, stage_times, before, after, strict=True):
        print(f"  stage {stage.name:10s} ({getattr(stage, 'steps', 0):2d} steps): {t * 1000:7.1f} ms/item alone, 1 thread"
              f" (before the Ray runs {a * 1000:.1f}, after {b * 1000:.1f})")  # fmt: skip
    print(f"ideal pipelined throughput (1 / slowest stage): {1 / slowest:6.2f} items/s")
    print(f"RayExecutor throughput, {args.repeats} runs:".ljust(48)
          + ", ".join(f"{tp:.2f}" for tp in ray_tps) + " items/s")  # fmt: skip
    print("pipelining efficiency per run:                  "
          + ", ".join(f"{tp * slowest:.3f}" for tp in ray_tps))  # fmt: skip
    print(f"pipelining efficiency, median:                  {ray_tp * slowest:.3f}  (target >= 0.9; "
          f"fill and drain bound it by {chunks / (chunks + len(cascade.stages) - 1):.3f})")  # fmt: skip
    print(
        f"LocalExecutor, 1 thread:                        {local_1:6.2f} items/s -> Ray x{ray_tp / local_1:.2f}"
    )
    from legato.cascade.simulate import StageModel, linear, simulate

    models = [
        StageModel(s.name, linear(0.0, t), s.batch_size)
        for s, t in zip(cascade.stages, stage_times, strict=True)
    ]
    predicted = simulate(models, args.items).throughput
    print(f"simulator's prediction:                         {predicted:6.2f} items/s -> measured / predicted "
          f"{ray_tp / predicted:.3f}")  # fmt: skip
    print(
        f"LocalExecutor, {cores} threads:                       {local_n:6.2f} items/s -> Ray x{ray_tp / local_n:.2f}"
    )


if __name__ == "__main__":
    main()
