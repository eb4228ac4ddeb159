"""Quality of the bundled cascades on held-out prompts, measured by the verifiers.

::

    python -m legato.pipelines.evaluate music --items 40       # prints the table, writes models/quality-music.json

The held-out split (pieces never trained on; for video, (photo, motion) pairs never trained on) is shuffled
by the seed; its first ``items`` samples give the prompts (their captions' embeddings and attributes), the
rest are the reference set for the Fréchet distance. Rows, all scored by the same verifier:

- ``real (ceiling)``: the held-out real samples of those prompts;
- ``default`` and ``fast``: the bundled cascades, one sample per prompt (seed = its index);
- ``untrained (floor)``: the same architecture with its initial weights, sampled at the fast step counts;
- ``base + bilinear``: the default cascade's base-stage output, upsampled to the final size by the SR
  stages' own bilinear/linear upsampling instead of the SR models (does the cascade pay?).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from legato.cascade import Cascade, Item, LocalExecutor
from legato.diffusion import Conditioning
from legato.pipelines.bundled import RECIPES
from legato.pipelines.datasets import load
from legato.pipelines.text import load_pipeline_cascade
from legato.pipelines.verify import Verifier, frechet_distance, predict, score


def model_evaluations(cascade: Cascade) -> int:
    """Network forwards per item: steps per stage, twice where classifier-free guidance runs."""
    return sum(
        s.steps * (2 if s.guidance_scale != 1.0 and not s.guidance_input else 1) for s in cascade.stages
    )


def untrained(kind: str) -> Cascade:
    """The recipe's architecture with its initial weights, at the fast cascade's step counts."""
    recipe = RECIPES[kind]
    cascade = recipe.build()
    stages = tuple(
        replace(s, steps=n, guidance_scale=1.0 if rounds else s.guidance_scale)
        for s, n, rounds in zip(cascade.stages, recipe.fast_steps, recipe.distill_rounds, strict=True)
    )
    return replace(cascade, stages=stages)


def bilinear(cascade: Cascade, base: Tensor) -> Tensor:
    """Base-stage outputs brought to the final size by each SR stage's own upsampling (no model)."""
    x = base
    for stage in cascade.stages[1:]:
        x = stage.sr.upsample(x)
    return x


def evaluate(
    kind: str, *, data: str, models: str, verifier: str, items: int, seed: int = 0, only: str | None = None
) -> dict:
    """Every row (see the module docstring), or with ``only="fast"`` just that model's row, the others taken
    from the last full run's ``models/quality-<kind>.json`` (same items and seed: checked)."""
    held = load(data).split(held_out=True)
    order = torch.randperm(len(held.samples), generator=torch.Generator().manual_seed(seed))
    prompts, reference = order[:items], order[items:]
    model = Verifier.from_pretrained(verifier, low_cpu_mem_usage=False).eval()
    _, ref_embedding = predict(model, held.samples[reference])
    labels = {k: v[prompts] for k, v in held.labels.items()}
    work = [Item(f"{i:04d}", i, Conditioning(text=held.text[p])) for i, p in enumerate(prompts.tolist())]

    def row(samples: Tensor, evals: int | None, seconds: float | None) -> dict:
        _, embedding = predict(model, samples)
        return {"accuracy": score(model, samples, labels), "fd": frechet_distance(embedding, ref_embedding),
                "evals": evals, "seconds": seconds}  # fmt: skip

    def run(cascade: Cascade, **kw) -> tuple[Tensor, float]:
        started = time.perf_counter()
        out = torch.stack(LocalExecutor().run(cascade, work, **kw)).clamp(-1, 1)
        return out, time.perf_counter() - started

    if only is not None:
        previous = json.loads((Path(models) / f"quality-{kind}.json").read_text())
        if (previous["items"], previous["seed"]) != (items, seed) or only not in previous["rows"]:
            raise ValueError(
                f"the last run scored {previous['items']} items with seed {previous['seed']}; run them all"
            )
        rows = previous["rows"]
        cascade, _ = load_pipeline_cascade(Path(models) / f"{kind}-{only}", kind, "cpu")
        samples, seconds = run(cascade)
        rows[only] = row(samples, model_evaluations(cascade), seconds)
        return ratios({**previous, "rows": rows})
    rows = {"real (ceiling)": row(held.samples[prompts], None, None)}
    default, _ = load_pipeline_cascade(Path(models) / f"{kind}-default", kind, "cpu")
    base, base_s = run(default, stop=1)
    full, sr_s = run(default, start=1, inputs=list(base))
    rows["default"] = row(full, model_evaluations(default), base_s + sr_s)
    base_evals = model_evaluations(replace(default, stages=default.stages[:1]))
    rows["base + bilinear"] = row(bilinear(default, base), base_evals, base_s)
    fast, _ = load_pipeline_cascade(Path(models) / f"{kind}-fast", kind, "cpu")
    samples, seconds = run(fast)
    rows["fast"] = row(samples, model_evaluations(fast), seconds)
    floor = untrained(kind)
    samples, seconds = run(floor)
    rows["untrained (floor)"] = row(samples, model_evaluations(floor), seconds)
    return ratios(
        {"kind": kind, "items": items, "reference_items": len(reference), "seed": seed, "rows": rows}
    )


def ratios(result: dict) -> dict:
    """Each row's accuracy against the ceiling's and the share of the floor-to-ceiling FD gap it closes."""
    rows = result["rows"]
    ceiling, bottom = rows["real (ceiling)"], rows["untrained (floor)"]
    for r in rows.values():
        r["accuracy_vs_ceiling"] = r["accuracy"]["mean"] / ceiling["accuracy"]["mean"]
        r["fd_gap_closed"] = (bottom["fd"] - r["fd"]) / (bottom["fd"] - ceiling["fd"])
    return result


def table(result: dict) -> str:
    rows = result["rows"]
    attrs = [k for k in next(iter(rows.values()))["accuracy"] if k != "mean"]
    head = ["", *attrs, "mean acc", "acc / ceiling", "FD", "FD gap closed", "evals/item", "CPU s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in rows.items():
        cells = [name, *(f"{r['accuracy'][a]:.3f}" for a in attrs), f"{r['accuracy']['mean']:.3f}",
                 f"{r['accuracy_vs_ceiling']:.2f}", f"{r['fd']:.3f}", f"{r['fd_gap_closed']:.2f}",
                 str(r["evals"] or ""), f"{r['seconds']:.0f}" if r["seconds"] else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m legato.pipelines.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("kind", choices=("music", "video"))
    parser.add_argument("--data", default=None, help="default: data/<kind>")
    parser.add_argument("--models", default="models")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only", choices=("default", "fast"), help="score this model again, keep the other rows"
    )
    args = parser.parse_args(argv)
    result = evaluate(args.kind, data=args.data or f"data/{args.kind}", models=args.models,
                      verifier=f"{args.models}/verifiers/{args.kind}", items=args.items, seed=args.seed,
                      only=args.only)  # fmt: skip
    out = Path(args.models) / f"quality-{args.kind}.json"
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"\n{args.items} held-out prompts, {result['reference_items']} reference items; wrote {out}")


if __name__ == "__main__":
    main()
