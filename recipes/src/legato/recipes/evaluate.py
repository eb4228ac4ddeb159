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

``--probe`` (video) asks the default base stage whether it reads the motion words (`motion_probe`) and whether
its samples of pan captions slide the way they say (`pan_drift`, measured by `horizontal_drift`, no verifier
involved; sampled at the model's base guidance, or at ``--guidance G``): 10 minutes on a 2-core CPU (1.5
for the loss probe) where the table takes most of an hour, a check to run while training the base stage
for motion.

``--guidance 3,5,7`` instead scores the default cascade at each base-stage guidance scale on prompts of the
*training* split (FD against other training items), so that an inference setting is chosen without looking
at the held-out prompts the table above reports::

    python -m legato.pipelines.evaluate music --guidance 3,5,7 --items 40
    python -m legato.pipelines.evaluate music --guidance 3 --scheduler dpm++ --steps 16,8   # other samplers
    python -m legato.pipelines.evaluate video --probe
    python -m legato.pipelines.evaluate video --guidance 2,3,4.5 --bases   # base stage alone: its motion

``--bases`` says where the fast cascade loses what it loses: the base stages alone on the held-out prompts,
brought to the final size by bilinear upsampling as in the ``base + bilinear`` row, sampled by the default's
own sampler, by the distillation's teacher (the default's network and guidance on DDIM's trailing grid,
which a first round's student learns to follow two steps at a time) and by the fast cascade's base stage
(a distilled student where the recipe distils, as music's; for video the default's network at 8 steps)::

    python -m legato.pipelines.evaluate video --bases --items 40

Every row keeps each attribute's accuracy per class asked for (``by_class``); the printed rows show it for
the attributes not always right: which motions a video base misses.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from legato.cascade import Cascade, Item, LocalExecutor
from legato.diffusion import Conditioning, VPSchedule
from legato.diffusion.distill import student_scheduler
from legato.pipelines.build import stage_objective
from legato.pipelines.bundled import RECIPES, trained_denoiser
from legato.pipelines.datasets import Dataset, load
from legato.pipelines.datasets.video import MOTIONS, OPPOSITE, caption, speed_of
from legato.pipelines.text import TextEncoder, load_pipeline_cascade
from legato.pipelines.verify import Verifier, accuracy, accuracy_by_class, frechet_distance, predict
from legato.video.metrics import horizontal_drift


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

    ``candidate`` (a ``bundled train`` runs folder) scores instead that folder's trained base network, sampled
    as the default's base stage is: the default base row of a network not shipped yet."""
    bench = Bench.of(data, held_out=True, items=items, seed=seed, verifier=verifier)
    default, _ = load_pipeline_cascade(Path(models) / f"{kind}-default", kind, "cpu")
    base = default.stages[0]
    if candidate is not None:
        stages = [(f"{candidate} base", replace(base, denoiser=trained_denoiser(candidate, kind, base)))]
    else:
        fast, _ = load_pipeline_cascade(Path(models) / f"{kind}-fast", kind, "cpu")
        # `bundled.train_stage`'s first-round teacher: the recipe build's step count (the default may
        # sample at others, `Recipe.sampling`) on the trailing grid the student learns
        steps = RECIPES[kind].build().stages[0].steps
        teacher = replace(base, steps=steps, scheduler=student_scheduler(base.scheduler.config))
        stages = [("default base", base), ("distillation teacher", teacher), ("fast base", fast.stages[0])]
    rows = {}
    for name, stage in stages:
        rows[name], _ = bench.base_row(replace(default, stages=(stage, *default.stages[1:])))
        print(row_line(name, rows[name]), flush=True)
    return {"kind": kind, "items": items, "seed": seed, "rows": rows}


PROBE_LEVELS = (600, 800, 900)
ANOTHER = {"pan left": "zoom in", "pan right": "zoom out", "zoom in": "pan left", "zoom out": "pan right",
           "rotate": "ball", "ball": "rotate"}  # fmt: skip


@torch.no_grad()
def motion_probe(
    cascade: Cascade,
    split: Dataset,
    text: TextEncoder,
    *,
    items: int = 40,
    levels: tuple[int, ...] = PROBE_LEVELS,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, float]:
    """Does a video cascade's base stage read the motion words of a prompt? Its training loss on ``items``
    real clips of ``split`` (drawn by the seed) with their own captions, against the same clips and noise
    with the caption of ``another motion`` (`ANOTHER`, same photo and speed), of the ``opposite direction``
    (`OPPOSITE`: the pans and zooms among them) and with ``no prompt``. Returns each one's mean relative
    loss increase over the noise levels ``levels`` (0.05: 5% higher loss than with the clip's own caption).

    A base stage that has bound the words to the motions they name predicts a clip worse under another
    motion's caption; under the opposite direction's only if it also knows which way its motion goes."""
    stage = cascade.stages[0]
    network, schedule = stage.denoiser.network, VPSchedule.from_scheduler(stage.scheduler)
    objective = stage_objective(stage)
    order = torch.randperm(len(split.samples), generator=torch.Generator().manual_seed(seed))[:items]
    subjects = split.meta["attributes"]["subject"]
    rows = [(int(split.labels["subject"][i]), MOTIONS[int(split.labels["motion"][i])],
             speed_of(split.captions[i])) for i in order.tolist()]  # fmt: skip
    swapped = {
        "another motion": (ANOTHER, list(range(len(rows)))),
        "opposite direction": (OPPOSITE, [k for k, (_, m, _) in enumerate(rows) if m in OPPOSITE]),
    }
    x0 = cascade.downsample(0, split.samples[order])
    own = split.text[order]
    prompts = {"no prompt": (torch.zeros_like(own), list(range(len(rows))))}
    for name, (motion, keep) in swapped.items():
        embedded = text([caption(subjects[rows[k][0]], motion[rows[k][1]], rows[k][2]) for k in keep])
        prompts[name] = (torch.zeros_like(own).index_copy_(0, torch.tensor(keep), embedded), keep)

    def losses(embeddings: Tensor, level: int) -> Tensor:
        out = []
        for start in range(0, len(x0), batch_size):  # the same noise for every prompt: a paired comparison
            generator = torch.Generator().manual_seed(seed * 1000 + level * 7 + start)
            out.append(objective.loss(network, schedule, x0[start : start + batch_size],
                                      Conditioning(text=embeddings[start : start + batch_size]), generator,
                                      timestep_range=(level, level)))  # fmt: skip
        return torch.cat(out)

    result = {}
    for level in levels:
        base = losses(own, level)
        for name, (embeddings, keep) in prompts.items():
            ratio = (losses(embeddings, level)[keep] / base[keep]).mean().item() - 1
            result[name] = result.get(name, 0.0) + ratio / len(levels)
    return result


PANS = {"pan left": 1, "pan right": -1}  # which way a pan's content slides (`horizontal_drift`'s sign)


@torch.no_grad()
def pan_drift(cascade: Cascade, split: Dataset, *, items: int = 24, seed: int = 0,
              threshold: float = 0.5) -> dict[str, dict[str, float]]:  # fmt: skip
    """How ``items`` real pans of ``split`` (at the base stage's resolution) and the base stage's samples of
    their captions (seed = row) slide: the fraction whose `horizontal_drift` goes the caption's way by more
    than ``threshold`` pixels a frame, and their mean drift in the caption's direction. A readout of motion
    that needs no verifier: a base stage whose frames change without sliding drifts near 0 pixels."""
    motions = [MOTIONS[int(m)] for m in split.labels["motion"]]
    pans = [i for i, motion in enumerate(motions) if motion in PANS]
    order = torch.randperm(len(pans), generator=torch.Generator().manual_seed(seed))[:items].tolist()
    rows = [pans[k] for k in order]
    way = torch.tensor([PANS[motions[i]] for i in rows], dtype=torch.double)
    real = cascade.downsample(0, split.samples[rows])
    work = [Item(f"{k:04d}", k, Conditioning(text=split.text[i])) for k, i in enumerate(rows)]
    generated = torch.stack(LocalExecutor().run(cascade, work, stop=1))
    result = {}
    for name, clips in (("real", real), ("generated", generated)):
        along = horizontal_drift((clips + 1) / 2) * way
        result[name] = {
            "right way": (along > threshold).double().mean().item(),
            "px per frame": along.mean().item(),
        }
    return result


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m legato.pipelines.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("kind", choices=("music", "video"))
    parser.add_argument("--data", default=None, help="default: data/<kind>")
    parser.add_argument("--models", default="models")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        choices=("default", "fast"),
        help="score this model again (default: with base + bilinear), keep the other rows",
    )
    parser.add_argument(
        "--guidance", help="comma-separated base guidance scales for the default model, on training prompts"
    )
    parser.add_argument(
        "--probe", action="store_true", help="video: does the default base stage read the motion words?"
    )
    parser.add_argument("--bases", action="store_true", help="score the default's base stage, its "
                        "distillation teacher's and the fast one's, each upsampled bilinearly; with "
                        "--guidance: the default's base stage alone at each scale")  # fmt: skip
    parser.add_argument("--candidate", metavar="RUNS", help="with --bases: score this bundled train runs "
                        "folder's base network instead, sampled as the default's base stage")  # fmt: skip
    parser.add_argument("--scheduler", help="with --guidance: sample every stage with this scheduler")
    parser.add_argument("--steps", help="with --guidance: sampling steps per stage, comma-separated")
    args = parser.parse_args(argv)
    if (args.scheduler or args.steps) and not args.guidance:
        parser.error("--scheduler and --steps set up a sweep: add --guidance (e.g. --guidance 3)")
    if args.probe:
        if args.kind != "video":
            parser.error("--probe asks a video base stage about motion: use it with video")
        if args.guidance and "," in args.guidance:
            parser.error(
                f"--probe --guidance {args.guidance}: give one scale (the pan readout samples at it)"
            )
        cascade, text = load_pipeline_cascade(Path(args.models) / "video-default", "video", "cpu")
        if args.guidance:  # the pan readout samples at this base guidance instead of the model's
            cascade = cascade.with_sampling(None, float(args.guidance), None)
        split = load(args.data or "data/video").split(held_out=False)
        result = motion_probe(cascade, split, text, items=args.items, seed=args.seed)
        levels = ", ".join(map(str, PROBE_LEVELS))
        print(f"loss against the clip's own caption, {args.items} training clips, noise levels {levels}:")
        print("\n".join(f"  {name}: {value:+.1%}" for name, value in result.items()))
        drift = pan_drift(cascade, split, items=args.items, seed=args.seed)
        print(f"pans sliding the way their caption says (> 0.5 px a frame at the base stage's size), {args.items} "
              f"training captions, guidance {cascade.stages[0].guidance_scale:g}:")  # fmt: skip
        print(
            "\n".join(
                f"  {name}: {v['right way']:.0%}, {v['px per frame']:+.2f} px a frame"
                for name, v in drift.items()
            )
        )
        return
    if args.candidate and (not args.bases or args.guidance):
        parser.error(f"--candidate {args.candidate} scores a trained base stage: use it with --bases alone")
    if args.bases and not args.guidance:
        base_rows(args.kind, data=args.data or f"data/{args.kind}", models=args.models,
                  verifier=f"{args.models}/verifiers/{args.kind}", items=args.items, seed=args.seed,
                  candidate=args.candidate)  # fmt: skip
        print(f"\n{args.items} held-out prompts, base stages only, upsampled bilinearly")
        return
    if args.guidance:
        scales = [float(g) for g in args.guidance.split(",")]
        steps = [int(n) for n in args.steps.split(",")] if args.steps else None
        result = sweep_guidance(args.kind, scales, data=args.data or f"data/{args.kind}", models=args.models,
                                verifier=f"{args.models}/verifiers/{args.kind}", items=args.items,
                                seed=args.seed, scheduler=args.scheduler, steps=steps,
                                base_only=args.bases)  # fmt: skip
        out = Path(args.models) / f"guidance-{args.kind}.json"
        if out.is_file():  # scales scored before on the same prompts stay in the file
            before = json.loads(out.read_text())
            if (before["items"], before["seed"]) == (args.items, args.seed):
                result["rows"] = {**before["rows"], **result["rows"]}
        out.write_text(json.dumps(result, indent=1))
        print("\n".join(row_line(name, r) for name, r in result["rows"].items()))
        print(f"\n{args.items} training-split prompts; wrote {out}")
        return
    result = evaluate(args.kind, data=args.data or f"data/{args.kind}", models=args.models,
                      verifier=f"{args.models}/verifiers/{args.kind}", items=args.items, seed=args.seed,
                      only=args.only)  # fmt: skip
    out = Path(args.models) / f"quality-{args.kind}.json"
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"\n{args.items} held-out prompts, {result['reference_items']} reference items; wrote {out}")


if __name__ == "__main__":
    main()
