"""Generation speed of the bundled cascades: music clips per second and videos per second, default against fast.

    .venv/bin/python benchmarks/generate.py                       # the bundled models, on the CPU
    python benchmarks/generate.py --untrained --device cuda --dtype bfloat16   # a GPU machine
    .venv/bin/python benchmarks/generate.py --kinds video          # one kind only
    python benchmarks/generate.py --untrained --device cuda --compile reduce-overhead   # compiled steps

Each cascade runs ``--items`` items (prompts from the held-out captions' style) through `LocalExecutor` in
its stages' own batch sizes, after a warm-up run; music clips also time the mel -> audio inversion
(the model's: its vocoder where its folder names one, else Griffin-Lim; none with ``--untrained``). ``--untrained`` builds the same architectures and step counts from
the recipes in `legato.recipes` with their initial weights: speed does not depend on the weights,
and no model files or text encoder need to be on the machine (prompts are then random embeddings).
Printed, from one run: model evaluations per item, seconds, items per second, and fast / default.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from legato.cascade import Item, LocalExecutor
from legato.diffusion import Conditioning
from legato.recipes.catalog import MAX_TOKENS, RECIPES, TEXT_DIM
from legato.recipes.datasets.music import INSTRUMENTS, STYLES
from legato.recipes.datasets.video import MOTIONS, SUBJECTS, caption
from legato.recipes.evaluate import model_evaluations, untrained


def prompts(kind: str, count: int) -> list[str]:
    if kind == "music":
        return [
            f"a {STYLES[i % 4]} on {list(INSTRUMENTS)[i // 4 % 4]}, moderate tempo, in D major"
            for i in range(count)
        ]
    return [
        caption(list(SUBJECTS)[i % len(SUBJECTS)], MOTIONS[i % len(MOTIONS)], "slow") for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--models", default="models")
    parser.add_argument("--untrained", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--kinds", nargs="+", default=["music", "video"], choices=("music", "video"))
    parser.add_argument("--compile", choices=("default", "reduce-overhead", "max-autotune"),
                        help="torch.compile every stage (Stage.compile); the warm-up runs every batch shape")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}, "
          f"{torch.get_num_threads()} threads), dtype {args.dtype}, compile {args.compile}, {args.items} items, "
          f"{'untrained weights' if args.untrained else args.models}\n")  # fmt: skip
    print("| cascade | evals/item | cascade s | items/s | inversion s | total items/s | fast vs default |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind in args.kinds:
        if args.untrained:
            cascades, pipes = {"default": RECIPES[kind].build(), "fast": untrained(kind)}, {}
            text = torch.randn(args.items, MAX_TOKENS, TEXT_DIM) * 0.1
        else:
            from legato.pipelines import MusicPipeline, VideoPipeline

            cls = MusicPipeline if kind == "music" else VideoPipeline
            pipes = {v: cls.from_pretrained(f"{args.models}/{kind}-{v}") for v in ("default", "fast")}
            cascades = {v: p.cascade for v, p in pipes.items()}
            text = pipes["default"].text(prompts(kind, args.items))
        items = [Item(f"{i}", i, Conditioning(text=text[i])) for i in range(args.items)]
        rates = {}
        for variant, cascade in cascades.items():
            cascade = replace(cascade, stages=tuple(s.to(args.device) for s in cascade.stages))
            cascade = replace(cascade, stages=tuple(replace(s, dtype=args.dtype) for s in cascade.stages))
            if args.compile:
                cascade = cascade.with_sampling(compile=args.compile)
            executor = LocalExecutor()
            # warm-up: allocations, kernels (and, compiled, a graph per batch shape: all of them)
            executor.run(cascade, items if args.compile else items[: min(2, len(items))])
            sync(args.device)
            started = time.perf_counter()
            outputs = executor.run(cascade, items)
            sync(args.device)
            seconds = time.perf_counter() - started
            inversion = 0.0
            if kind == "music" and variant in pipes:
                started = time.perf_counter()
                for x in outputs:
                    pipes[variant].clip(x.cpu(), "", 0)
                inversion = time.perf_counter() - started
            rates[variant] = args.items / (seconds + inversion)
            ratio = f"{rates['fast'] / rates['default']:.2f}x" if variant == "fast" else ""
            print(f"| {kind}-{variant} | {model_evaluations(cascade)} | {seconds:.2f} | {args.items / seconds:.2f} | "
                  f"{inversion:.2f} | {rates[variant]:.2f} | {ratio} |", flush=True)  # fmt: skip


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
