"""Quality of the bundled cascades on held-out prompts, measured by the verifiers.

::

    legato recipes evaluate music --items 40       # prints the table, writes models/quality-music.json

The held-out split (pieces never trained on; for video, (photo, motion) pairs never trained on) is shuffled
by the seed; its first ``items`` samples give the prompts (their captions' embeddings and attributes), the
rest are the reference set for the Fréchet distance. Rows, all scored by the same verifier:

- ``real (ceiling)``: the held-out real samples of those prompts;
- ``default`` and ``fast``: the bundled cascades, one sample per prompt (seed = its index);
- ``untrained (floor)``: the same architecture with its initial weights, sampled at the fast step counts;
- ``base + bilinear``: the default cascade's base-stage output, upsampled to the final size by the SR
  stages' own bilinear/linear upsampling instead of the SR models (does the cascade pay?).

``--probe`` (video) asks the default base stage whether it reads the motion words (`legato.recipes.probes`) and
whether its samples of pan captions slide the way they say (`pan_drift`, measured by `horizontal_drift`, no verifier
involved; sampled at the model's base guidance, or at ``--guidance G``): 10 minutes on a 2-core CPU (1.5
for the loss probe) where the table takes most of an hour, a check to run while training the base stage
for motion.

``--guidance 3,5,7`` instead scores the default cascade at each base-stage guidance scale on prompts of the
*training* split (FD against other training items), so that an inference setting is chosen without looking
at the held-out prompts the table above reports::

    legato recipes evaluate music --guidance 3,5,7 --items 40
    legato recipes evaluate music --guidance 3 --scheduler dpm++ --steps 16,8   # other samplers
    legato recipes evaluate video --probe
    legato recipes evaluate video --guidance 2,3,4.5 --bases   # base stage alone: its motion

``--bases`` says where the fast cascade loses what it loses: the base stages alone on the held-out prompts,
brought to the final size by bilinear upsampling as in the ``base + bilinear`` row, sampled by the default's
own sampler, by the distillation's teacher (the default's network and guidance on DDIM's trailing grid,
which a first round's student learns to follow two steps at a time) and by the fast cascade's base stage
(a distilled student where the recipe distils, as music's; for video the default's network at 8 steps)::

    legato recipes evaluate video --bases --items 40

Every row keeps each attribute's accuracy per class asked for (``by_class``); the printed rows show it for
the attributes not always right: which motions a video base misses.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from legato.cascade import Cascade, Item, LocalExecutor
from legato.diffusion import Conditioning, frechet_distance
from legato.diffusion.distill import student_scheduler
from legato.pipelines.folders import load_pipeline_cascade
from legato.recipes.catalog import RECIPES
from legato.recipes.datasets import Dataset, load
from legato.recipes.train import trained_denoiser
from legato.recipes.verifiers import Verifier, accuracy, accuracy_by_class, predict


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


@dataclass(frozen=True)
class Bench:
    """``items`` prompts of one split of the dataset (shuffled by the seed), the split's other real items as
    the Fréchet-distance reference, and the verifier that scores what a cascade makes for the prompts."""

    split: Dataset
    prompts: Tensor  # indices into the split
    reference: Tensor
    verifier: Verifier
    reference_embedding: Tensor

    @classmethod
    def of(cls, data: str, *, held_out: bool, items: int, seed: int, verifier: str) -> Bench:
        split = load(data).split(held_out=held_out)
        order = torch.randperm(len(split.samples), generator=torch.Generator().manual_seed(seed))
        model = Verifier.from_pretrained(verifier, low_cpu_mem_usage=False).eval()
        _, embedding = predict(model, split.samples[order[items:]])
        return cls(split, order[:items], order[items:], model, embedding)

    def run(self, cascade: Cascade, **kw) -> tuple[Tensor, float]:
        """One sample per prompt (seed = its index), and the seconds it took."""
        work = [Item(f"{i:04d}", i, Conditioning(text=self.split.text[p]))
                for i, p in enumerate(self.prompts.tolist())]  # fmt: skip
        started = time.perf_counter()
        out = torch.stack(LocalExecutor().run(cascade, work, **kw)).clamp(-1, 1)
        return out, time.perf_counter() - started

    def row(self, samples: Tensor, evals: int | None = None, seconds: float | None = None) -> dict:
        labels = {k: v[self.prompts] for k, v in self.split.labels.items()}
        predicted, embedding = predict(self.verifier, samples)
        return {"accuracy": accuracy(predicted, labels),
                "by_class": accuracy_by_class(predicted, labels, self.split.meta["attributes"]),
                "fd": frechet_distance(embedding, self.reference_embedding), "evals": evals,
                "seconds": seconds}  # fmt: skip

    def base_row(self, cascade: Cascade) -> tuple[dict, Tensor]:
        """``cascade``'s base stage alone, brought to the final size by `bilinear`, scored; and its samples
        at the base stage's size (the rest of the cascade can go on from them)."""
        base, seconds = self.run(cascade, stop=1)
        evals = model_evaluations(replace(cascade, stages=cascade.stages[:1]))
        return self.row(bilinear(cascade, base), evals, seconds), base


def evaluate(
    kind: str, *, data: str, models: str, verifier: str, items: int, seed: int = 0, only: str | None = None
) -> dict:
    """Every row (see the module docstring), or with ``only="fast"`` just that model's row, the others taken
    from the last full run's ``models/quality-<kind>.json`` (same items and seed: checked)."""
    bench = Bench.of(data, held_out=True, items=items, seed=seed, verifier=verifier)
    row, run = bench.row, bench.run

    def default_rows() -> dict:  # the default and, from the same base outputs, base + bilinear
        default, _ = load_pipeline_cascade(Path(models) / f"{kind}-default", kind, "cpu")
        base_row, base = bench.base_row(default)
        full, sr_s = run(default, start=1, inputs=list(base))
        return {"default": row(full, model_evaluations(default), base_row["seconds"] + sr_s),
                "base + bilinear": base_row}  # fmt: skip

    def fast_rows() -> dict:
        fast, _ = load_pipeline_cascade(Path(models) / f"{kind}-fast", kind, "cpu")
        samples, seconds = run(fast)
        return {"fast": row(samples, model_evaluations(fast), seconds)}

    if only is not None:
        previous = json.loads((Path(models) / f"quality-{kind}.json").read_text())
        if (previous["items"], previous["seed"]) != (items, seed) or only not in previous["rows"]:
            raise ValueError(
                f"the last run scored {previous['items']} items with seed {previous['seed']}; run them all"
            )
        rows = {**previous["rows"], **(default_rows() if only == "default" else fast_rows())}
        return ratios({**previous, "rows": rows})
    rows = {"real (ceiling)": row(bench.split.samples[bench.prompts]), **default_rows(), **fast_rows()}
    floor = untrained(kind)
    samples, seconds = run(floor)
    rows["untrained (floor)"] = row(samples, model_evaluations(floor), seconds)
    return ratios(
        {"kind": kind, "items": items, "reference_items": len(bench.reference), "seed": seed, "rows": rows}
    )


def sweep_guidance(
    kind: str,
    scales: list[float],
    *,
    data: str,
    models: str,
    verifier: str,
    items: int,
    seed: int = 0,
    scheduler: str | None = None,
    steps: list[int] | None = None,
    base_only: bool = False,
) -> dict:
    """The default cascade at each base guidance scale (optionally on another ``scheduler`` and ``steps``
    per stage, see `Cascade.with_sampling`), scored on ``items`` training-split prompts; with ``base_only``,
    its base stage alone brought to the final size bilinearly (what the cascade's motion is decided by, in
    a third of the time for video)."""
    bench = Bench.of(data, held_out=False, items=items, seed=seed, verifier=verifier)
    default, _ = load_pipeline_cascade(Path(models) / f"{kind}-default", kind, "cpu")
    rows = {}
    for scale in scales:
        cascade = default.with_sampling(steps, scale, scheduler)
        name = sweep_name(scale, scheduler, steps) + (", base + bilinear" if base_only else "")
        if base_only:
            rows[name], _ = bench.base_row(cascade)
        else:
            samples, seconds = bench.run(cascade)
            rows[name] = bench.row(samples, model_evaluations(cascade), seconds)
        print(row_line(name, rows[name]), flush=True)
    return {"kind": kind, "split": "train", "items": items, "seed": seed, "rows": rows}


def base_rows(kind: str, *, data: str, models: str, verifier: str, items: int, seed: int = 0,
              candidate: str | None = None) -> dict:  # fmt: skip
    """The base stages of ``<kind>-default``, of its distillation teacher and of ``<kind>-fast`` on the
    held-out prompts (the quality table's), each brought to the final size by bilinear upsampling.

    ``candidate`` (a ``legato train`` runs folder) scores instead that folder's trained base network, sampled
    as the default's base stage is: the default base row of a network not shipped yet."""
    bench = Bench.of(data, held_out=True, items=items, seed=seed, verifier=verifier)
    default, _ = load_pipeline_cascade(Path(models) / f"{kind}-default", kind, "cpu")
    base = default.stages[0]
    if candidate is not None:
        stages = [(f"{candidate} base", replace(base, denoiser=trained_denoiser(candidate, kind, base)))]
    else:
        fast, _ = load_pipeline_cascade(Path(models) / f"{kind}-fast", kind, "cpu")
        # `legato.recipes.train.train_stage`'s first-round teacher: the recipe build's step count (the default may
        # sample at others, `Recipe.sampling`) on the trailing grid the student learns
        steps = RECIPES[kind].build().stages[0].steps
        teacher = replace(base, steps=steps, scheduler=student_scheduler(base.scheduler.config))
        stages = [("default base", base), ("distillation teacher", teacher), ("fast base", fast.stages[0])]
    rows = {}
    for name, stage in stages:
        rows[name], _ = bench.base_row(replace(default, stages=(stage, *default.stages[1:])))
        print(row_line(name, rows[name]), flush=True)
    return {"kind": kind, "items": items, "seed": seed, "rows": rows}


def sweep_name(scale: float, scheduler: str | None, steps: list[int] | None) -> str:
    """A sweep row's name: ``guidance 3``, plus the scheduler and steps where they are not the model's."""
    extra = ([scheduler] if scheduler else []) + (["steps " + ",".join(map(str, steps))] if steps else [])
    return ", ".join([f"guidance {scale:g}", *extra])


def row_line(name: str, row: dict) -> str:
    """One scored row as a line: each attribute's accuracy, the FD, the seconds; then, for each attribute
    not always right, its accuracy per class asked for."""
    scores = " ".join(f"{k} {v:.3f}" for k, v in row["accuracy"].items())
    seconds = "" if row["seconds"] is None else f", {row['seconds']:.0f} s"  # real samples: none
    lines = [f"{name}: {scores}, FD {row['fd']:.3f}{seconds}"]
    for attribute, classes in row.get("by_class", {}).items():
        if row["accuracy"][attribute] < 1.0:
            lines.append(f"  {attribute}: " + ", ".join(f"{c} {v:.2f}" for c, v in classes.items()))
    return "\n".join(lines)


def ratios(result: dict) -> dict:
    """Each row's accuracy against the ceiling's and the share of the floor-to-ceiling FD gap it closes."""
    rows = result["rows"]
    ceiling, bottom = rows["real (ceiling)"], rows["untrained (floor)"]
    for r in rows.values():
        r["accuracy_vs_ceiling"] = r["accuracy"]["mean"] / ceiling["accuracy"]["mean"]
        r["fd_gap_closed"] = (bottom["fd"] - r["fd"]) / (bottom["fd"] - ceiling["fd"])
    return result


def table(result: dict) -> str:
    """The rows as a Markdown table; the two ratios the targets are judged on to three decimals, since two
    hide a miss (0.797 of the ceiling printed as 0.80)."""
    rows = result["rows"]
    attrs = [k for k in next(iter(rows.values()))["accuracy"] if k != "mean"]
    head = ["", *attrs, "mean acc", "acc / ceiling", "FD", "FD gap closed", "evals/item", "CPU s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in rows.items():
        cells = [name, *(f"{r['accuracy'][a]:.3f}" for a in attrs), f"{r['accuracy']['mean']:.3f}",
                 f"{r['accuracy_vs_ceiling']:.3f}", f"{r['fd']:.3f}", f"{r['fd_gap_closed']:.3f}",
                 str(r["evals"] or ""), f"{r['seconds']:.0f}" if r["seconds"] else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save(result: dict, path: str | Path, *, merge: bool = False) -> dict:
    """Write ``result`` as JSON to ``path`` and return what was written: with ``merge``, the rows ``path``
    already holds for the same items and seed stay (a sweep's scales scored before)."""
    path = Path(path)
    if merge and path.is_file():
        before = json.loads(path.read_text())
        if (before["items"], before["seed"]) == (result["items"], result["seed"]):
            result = {**result, "rows": {**before["rows"], **result["rows"]}}
    path.write_text(json.dumps(result, indent=1))
    return result
