"""``legato train`` and ``legato distill``: thin wrappers over the one train-then-distil driver
(`legato.pipelines.training`), for a dataset folder built by ``legato recipes dataset``. Every run
checkpoints under ``--runs`` and the same command resumes it where it stopped.

- ``train KIND --data D``: the bundled recipe (`legato.recipes.train.train_stage`: train, then the recipe's
  progressive distillation), ``--export`` writes ``<kind>-default`` and ``<kind>-fast``; ``--init``,
  ``--captions``, ``--clips-per-caption``, ``--more-data``, ``--no-distill``, ``--steps`` and ``--batch-size``
  run a curriculum's phases (recipes/docs/history.md);
- ``train KIND --data D --from MODEL --steps N,M --out NEW [--workers W]``: fine-tune a model's cascade
  (`legato.pipelines.training.train_cascade`), data-parallel on ``W`` Ray Train workers where ``W > 1``;
- ``distill MODEL --data D --out NEW``: halve a stage's sampling steps per round
  (`legato.pipelines.training.distill_cascade`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import typer

from legato.services.cli.common import JsonOption, emit, fail, handle_errors, parse_steps, resolve_model

Data = Annotated[
    Path,
    typer.Option(help="A dataset folder from `legato recipes dataset`.", show_default=False),
]
Runs = Annotated[
    Path | None,
    typer.Option(help="Checkpoints and metrics; a re-run resumes from them.", show_default="runs/<name>"),
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda...", show_default="cuda if available, else cpu")]
BatchSize = Annotated[int, typer.Option(min=1, help="Items per optimizer step.")]


def training_split(data: Path, cascade):
    """The dataset's training split, checked to match the cascade's output size."""
    from legato.recipes.datasets import load

    train = load(data).split(held_out=False)
    if len(train.samples) == 0:
        fail(f"{data} has no training items (all are held out)")
    if tuple(train.samples.shape[1:]) != tuple(cascade.output_shape()):
        fail(f"{data} holds samples of shape {tuple(train.samples.shape[1:])}, the model makes "
             f"{tuple(cascade.output_shape())}; build a dataset at the model's size")  # fmt: skip
    return train


def resumes(runs: Path, names: list[str]) -> dict[str, int]:
    """The step each run folder has a checkpoint at (what a re-run continues from)."""
    found = {}
    for name in names:
        steps = [
            int(p.name.split("-")[-1])
            for p in (runs / name / "checkpoints").glob("step-*")
            if p.name.split("-")[-1].isdigit()
        ]
        if steps:
            found[name] = max(steps)
    return found


def default_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@handle_errors
def train(
    kind: Annotated[Literal["music", "video"], typer.Argument(help="What to train.", show_default=False)],
    data: Data,
    from_model: Annotated[
        str | None,
        typer.Option("--from", help="Fine-tune this model (folder or name) instead of the bundled recipe."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="With --from: the new model folder.")
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help="With --from: optimizer steps per stage (one number, or N,M; 0 keeps a stage). "
            "Recipe: each trained stage's training steps (one number).",
            show_default="the recipe's",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Items per optimizer step.", show_default="16 with --from, else the recipe's"
        ),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            help="The training's peak learning rate.", show_default="1e-3 with --from, else the recipe's"
        ),
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="Recipe: train this stage only (stages can run in parallel).")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="Recipe: afterwards write <kind>-default and <kind>-fast into this folder."),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Recipe: start each stage from this model folder's network, or this runs folder's (a "
            "curriculum's next phase), instead of the recipe's fresh one."
        ),
    ] = None,
    captions: Annotated[
        str | None,
        typer.Option(help="Recipe: train on the clips whose caption this regular expression matches."),
    ] = None,
    clips_per_caption: Annotated[
        int | None, typer.Option(min=1, help="Recipe: and on the first K of each caption only.")
    ] = None,
    distill: Annotated[
        bool, typer.Option(help="Recipe: the distillation rounds after training (--no-distill: train only).")
    ] = True,
    precision: Annotated[
        Literal["bf16", "no"] | None,
        typer.Option(
            help="Recipe: bf16 autocast or none.", show_default="bf16 on a GPU or an AMX CPU, else none"
        ),
    ] = None,
    compile: Annotated[
        bool, typer.Option("--compile", help="Recipe: train through torch.compile (compiles first, minutes).")
    ] = False,
    more_data: Annotated[
        list[Path] | None,
        typer.Option(
            "--more-data",
            metavar="FOLDER",
            help="Recipe: training-only clips to add (`legato recipes dataset video FOLDER --more-photos`); "
            "repeatable.",
        ),
    ] = None,
    distill_steps: Annotated[
        int | None,
        typer.Option(min=1, help="Recipe: steps per distillation round.", show_default="the recipe's"),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="STEPS", help="Recipe: a checkpoint every STEPS steps.", show_default="250"
        ),
    ] = None,
    runs: Runs = None,
    device: Device = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --from: data-parallel Ray Train workers (DDP; gloo on CPU, NCCL on GPU); "
            "--batch-size is per worker and a resume needs the same number.",
        ),
    ] = 1,
    address: Annotated[
        str | None,
        typer.Option(
            help="With --workers: the Ray cluster (e.g. 10.0.0.5:6379; --runs must be on storage its nodes "
            "share).",
            show_default="$RAY_ADDRESS or a new local one",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a KIND cascade on a dataset folder: the bundled recipe, or a fine-tune with --from."""
    if not data.is_dir():
        fail(f"--data {data} is not a folder; build one with `legato recipes dataset {kind} {data}`")
    started, device = time.perf_counter(), default_device(device)
    if learning_rate is not None and not 0 < learning_rate < 1:
        fail(f"--learning-rate {learning_rate}: give a peak rate in (0, 1), e.g. 3e-4, or leave it out")
    if from_model is None:
        if out is not None or workers > 1:
            fail("--out and --workers go with --from; the bundled recipe writes its runs (use --export)")
        if steps is not None and not steps.isdigit():
            fail(f"--steps {steps!r}: the recipe takes one number, each trained stage's training steps")
        from legato.recipes import RECIPES, train_stage
        from legato.recipes import export as write_models
        from legato.recipes.catalog import CHECKPOINT_EVERY

        runs = runs or Path("runs") / kind
        names = [s.name for s in RECIPES[kind].build().stages]
        if stage is not None and stage not in names:
            fail(f"--stage {stage!r}: the {kind} recipe has stages {names}")
        before = resumes(runs, names)
        for name in [stage] if stage else names:
            train_stage(kind, name, data, runs, device, init=init, steps=int(steps) if steps else None,
                        batch_size=batch_size, distill_steps=distill_steps, precision=precision,
                        captions=captions, clips_per_caption=clips_per_caption, distill=distill,
                        learning_rate=learning_rate, compile=compile,
                        checkpoint_every=checkpoint_every or CHECKPOINT_EVERY, more_data=more_data or [])  # fmt: skip
        written = [str(p.resolve()) for p in write_models(kind, runs, export)] if export else []
        result = {
            "ok": True,
            "mode": "recipe",
            "runs": str(runs.resolve()),
            "resumed": before,
            "models": written,
        }
    else:
        if recipe_only := [flag for flag, value in (("--init", init), ("--captions", captions),
                           ("--clips-per-caption", clips_per_caption), ("--no-distill", not distill),
                           ("--precision", precision), ("--compile", compile), ("--more-data", more_data),
                           ("--distill-steps", distill_steps), ("--checkpoint-every", checkpoint_every),
                           ("--stage", stage), ("--export", export)) if value]:  # fmt: skip
            fail(
                f"{', '.join(recipe_only)}: only the bundled recipe takes these; --from fine-tunes without them"
            )
        if out is None or steps is None:
            fail("--from needs --out (the new model folder) and --steps (optimizer steps per stage)")
        batch_size, learning_rate = batch_size or 16, learning_rate or 1e-3
        path, config = resolve_model(from_model, kind)
        per_stage = parse_steps(steps, config, zero_keeps=True)
        if out.resolve() == path:
            fail(f"--out {out} is the --from model; write the fine-tuned model to a new folder")
        from legato.pipelines import MusicPipeline, VideoPipeline
        from legato.pipelines.training import train_cascade

        pipe = (MusicPipeline if kind == "music" else VideoPipeline).from_pretrained(path)
        split = training_split(data, pipe.cascade)
        runs = runs or Path("runs") / out.name
        names = [s["name"] for s in config["stages"]]
        before = resumes(runs, names)
        if workers > 1:
            from legato.pipelines.ray_cluster import connect

            connect(address)
        trained = train_cascade(pipe.cascade, split.samples, split.text, runs, steps=per_stage,
                                batch_size=batch_size, learning_rate=learning_rate, device=device,
                                progress=not as_json, workers=workers)  # fmt: skip
        saved = replace(pipe, cascade=trained).save_pretrained(out)
        result = {"ok": True, "mode": "fine-tune", "from": str(path), "model": str(saved.resolve()),
                  "runs": str(runs.resolve()), "resumed": before, "items": len(split.samples),
                  "workers": workers}  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 3)
    emit(result, as_json)
    if not as_json:
        print(f"trained in {result['seconds']:.0f} s; runs in {result['runs']}"
              + "".join(f"\nwrote {p}" for p in result.get("models", [result.get("model")]) if p))  # fmt: skip


@handle_errors
def distill(
    model: Annotated[str, typer.Argument(help="The teacher model (folder or name).", show_default=False)],
    data: Data,
    out: Annotated[Path, typer.Option("--out", "-o", help="The distilled model folder.", show_default=False)],
    stage: Annotated[str, typer.Option(help="The stage to distil (its name).")] = "base",
    rounds: Annotated[int, typer.Option(min=1, help="Each round halves the stage's sampling steps.")] = 1,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps per round.")] = 250,
    batch_size: BatchSize = 16,
    learning_rate: Annotated[float, typer.Option(help="The peak learning rate.")] = 1e-4,
    runs: Runs = None,
    device: Device = None,
    as_json: JsonOption = False,
) -> None:
    """Progressive distillation: a student of one stage that samples in half the steps, per round."""
    path, config = resolve_model(model, None)
    names = [s["name"] for s in config["stages"]]
    if stage not in names:
        fail(f"--stage {stage!r}: {path.name} has stages {names}")
    if out.resolve() == path:
        fail(f"--out {out} is the teacher; write the student to a new folder")
    started, device = time.perf_counter(), default_device(device)
    from legato.pipelines import MusicPipeline, VideoPipeline
    from legato.pipelines.training import distill_cascade

    kind = config["metadata"]["pipeline"]
    pipe = (MusicPipeline if kind == "music" else VideoPipeline).from_pretrained(path)
    split = training_split(data, pipe.cascade)
    runs = runs or Path("runs") / out.name
    teacher_steps = config["stages"][names.index(stage)]["steps"]
    before = resumes(runs, [f"{stage}-{teacher_steps >> r}" for r in range(1, rounds + 1)])  # round folders
    student = distill_cascade(pipe.cascade, split.samples, split.text, runs, stage=stage, rounds=rounds, steps=steps,
                              batch_size=batch_size, learning_rate=learning_rate, device=device,
                              progress=not as_json)  # fmt: skip
    saved = replace(pipe, cascade=student).save_pretrained(out)
    new_steps = student.stages[names.index(stage)].steps
    seconds = time.perf_counter() - started
    emit({"ok": True, "teacher": str(path), "model": str(saved.resolve()), "stage": stage, "steps": new_steps,
          "runs": str(runs.resolve()), "resumed": before, "seconds": round(seconds, 3)}, as_json)  # fmt: skip
    if not as_json:
        print(f"{stage}: {teacher_steps} -> {new_steps} sampling steps in "
              f"{seconds:.0f} s; wrote {saved.resolve()}")  # fmt: skip
