"""The bundled models: their recipes, and the one command that trains, distils and exports them.

::

    python -m legato.pipelines.datasets music data/music
    python -m legato.pipelines.bundled train music --data data/music --runs runs/music --device cuda
    python -m legato.pipelines.bundled export music --runs runs/music --models models

``train`` fits every stage of the cascade (or the one named by ``--stage``; stages are independent, so they
can train in parallel processes) on the dataset's training split with the project's `Trainer`, then
distils it: progressive distillation (Salimans & Ho) halves the stage's sampling steps per round, the first
round of the base stage from its classifier-free-guided predictions (a fixed guidance scale, so the student
needs one forward per step). Every run checkpoints into ``runs/<stage>[-<steps>]`` and resumes exactly
where it stopped: the same command continues an interrupted training. ``export`` assembles
``models/<kind>-default`` (the teachers) and ``models/<kind>-fast`` (the students), weights in float16.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from legato.cascade import Cascade, Stage
from legato.cascade.pretrained import load_cascade, share_stages, update_metadata
from legato.codec import SMALL
from legato.diffusion import ClassifierFreeGuidance, Conditioning, Denoiser, VPSchedule
from legato.diffusion.distill import ProgressiveDistillation, student_from, student_scheduler
from legato.diffusion.training import TrainConfig, Trainer
from legato.pipelines.build import music_cascade, stage_items, stage_objective, video_cascade
from legato.pipelines.datasets import Dataset, load
from legato.pipelines.datasets.video import time_reversed
from legato.pipelines.text import DEFAULT_TEXT_ENCODER, TextEncoder

TEXT_DIM = 384  # all-MiniLM-L6-v2
VOCODER = "vocoder-music"  # the models folder's vocoder (legato.pipelines.vocoder), which music cascades name
MAX_TOKENS = 16
CHECKPOINT_EVERY = 250  # steps between a training run's checkpoints (--checkpoint-every)


@dataclass(frozen=True)
class Recipe:
    """How one bundled cascade is built, trained and distilled."""

    build: Callable[[], Cascade]
    train_steps: tuple[int, ...]  # per stage
    fast_steps: tuple[int, ...]  # per stage: the fast cascade's sampling steps
    distill_rounds: tuple[int, ...]  # per stage: each halves the steps (0: the teacher at fast_steps)
    distill_steps: int  # optimizer steps per distillation round
    batch_size: tuple[int, ...]  # per stage
    learning_rate: float = 3e-4
    distill_learning_rate: float = 1e-4
    # How the shipped default cascade samples, if not as built (the build's DDIM steps are also the
    # distillation teacher's): every stage's scheduler and the steps per stage, chosen on training prompts
    # (`python -m legato.pipelines.evaluate KIND --guidance 3 --scheduler NAME --steps ...`).
    sampling: tuple[str, tuple[int, ...]] | None = None
    # Extra training samples for the base stage, made from the training split (never from held-out data).
    base_augmentation: Callable[[Dataset], Dataset] | None = None


# Step counts fit one 9-minute run of all five stages at once on one H100 (models/README.md has the times).
RECIPES: dict[str, Recipe] = {
    # base 32x128 mel (2.05 s of 16 kHz audio at half resolution) -> x2 SR -> 64x256 (4.1 s), SMALL preset
    "music": Recipe(
        build=lambda: music_cascade(
            SMALL,
            window=256,
            text_dim=TEXT_DIM,
            channels=(64, 128, 128),
            sr_channels=(32, 64),
            steps=(32, 16),
            guidance_scale=3.0,
            batch_size=(8, 4),
        ),
        train_steps=(1800, 1100),
        fast_steps=(8, 8),
        distill_rounds=(2, 0),
        distill_steps=250,
        batch_size=(32, 32),
        sampling=("dpm++", (32, 16)),  # models/README.md: better than DDIM on training prompts
    ),
    # base 8 frames of 32x32 -> temporal x2 -> 16 frames -> spatial x2 -> 16 frames of 64x64
    "video": Recipe(
        build=lambda: video_cascade(
            frames=16,
            size=64,
            text_dim=TEXT_DIM,
            channels=(64, 128),
            sr_channels=(32, 64),
            steps=(32, 16, 16),
            guidance_scale=3.0,
            batch_size=(8, 4, 4),
        ),
        train_steps=(1400, 1600, 500),
        # The default's own networks and sampler at fewer steps (8 guided + 4 + 4 = 24 evaluations): on the
        # base trained with the training-only photos, DPM-Solver++ at 8 guided steps reads every held-out
        # motion its 32 steps read, where two progressive-distillation rounds (150 steps each) lost half the
        # zooms out (models/README.md, Quality). `distill_rounds=(2, 0, 0)` distils it again.
        fast_steps=(8, 4, 4),
        distill_rounds=(0, 0, 0),
        distill_steps=150,
        batch_size=(32, 32, 32),
        sampling=("dpm++", (32, 16, 16)),  # models/README.md: better than DDIM on training prompts
        base_augmentation=time_reversed,  # pans and zooms backwards: which way a motion goes
    ),
}


def null_text(batch: int = 1) -> Conditioning:
    """The guidance null: the empty prompt is all-zero token embeddings (`TextEncoder` pads with zeros)."""
    return Conditioning(text=torch.zeros(batch, MAX_TOKENS, TEXT_DIM))


def _config(recipe: Recipe, index: int, steps: int, lr: float, seed: int, cond_dropout: float,
            precision: str, compile: bool, checkpoint_every: int) -> TrainConfig:  # fmt: skip
    return TrainConfig(
        steps=steps, batch_size=recipe.batch_size[index], learning_rate=lr, cond_dropout=cond_dropout,
        ema_decay=0.999 if steps >= 1000 else 0.99, lr_schedule="cosine", warmup_steps=min(200, steps // 10),
        checkpoint_every=checkpoint_every, log_every=50, progress=False, seed=seed,
        mixed_precision=precision, compile=compile,
    )  # fmt: skip


def default_precision(device: str) -> str:
    """bf16 autocast on a GPU and on a CPU with AMX tiles, else "no" (float32): the rule the four CPUs timed
    in models/README.md (Training) support, though it leaves the one without AMX where bf16 paid at float32."""
    if str(device).startswith("cuda"):
        return "bf16"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # a private torch API: without it, float32
    return "bf16" if amx is not None and amx() else "no"


def train_stage(kind: str, name: str, data: str | Path, runs: str | Path, device: str, *,
                init: str | Path | None = None, steps: int | None = None, batch_size: int | None = None,
                distill_steps: int | None = None, precision: str | None = None, captions: str | None = None,
                clips_per_caption: int | None = None, distill: bool = True,
                learning_rate: float | None = None, compile: bool = False,
                checkpoint_every: int = CHECKPOINT_EVERY, more_data: Sequence[str | Path] = ()) -> None:  # fmt: skip
    """Train stage ``name`` of cascade ``kind``, then its distillation rounds; each run resumes from its
    checkpoints and ends by writing ``runs/<run>/model`` (the EMA network, diffusers layout).

    ``init`` (a cascade folder, e.g. ``models/video-default``, or another ``runs`` folder) starts the stage
    from that cascade's or run's trained network instead of the recipe's fresh one: more training on a
    shipped stage, where its first run's checkpoints are gone, or the second phase of a curriculum.
    ``captions`` (a regular expression) and ``clips_per_caption`` train on the clips (time-reversed twins
    included) whose caption it matches, the first ``clips_per_caption`` of each: a curriculum's first phase,
    e.g. one photo's fast pans, on which the video base stage binds a pan's direction to its words before it
    meets every photo (models/README.md). ``distill=False`` trains only. ``steps``, ``batch_size``,
    ``distill_steps`` and ``learning_rate`` (the training's peak; distillation keeps the recipe's) override
    the recipe's.
    ``precision`` ("bf16" autocast or "no") defaults to `default_precision(device)`: bf16 on a GPU or a CPU
    with AMX, float32 on other CPUs.
    ``compile`` trains through ``torch.compile`` (`TrainConfig.compile`; a compile of about 3 minutes per run
    on a 2-core CPU). ``checkpoint_every`` steps each run writes a checkpoint (what a lost machine costs at
    most; the results do not depend on it).
    ``more_data`` are training-only datasets (``python -m legato.pipelines.datasets video FOLDER
    --more-photos``) whose clips join ``data``'s training split, each with its own base augmentation; none may
    hold a held-out prompt of ``data``."""
    if checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every {checkpoint_every}: give a positive whole number of steps")
    precision = precision or default_precision(device)
    recipe = RECIPES[kind]
    cascade = recipe.build()
    index = [s.name for s in cascade.stages].index(name)
    recipe = replace(
        recipe,
        train_steps=_with(recipe.train_steps, index, steps, "--steps"),
        batch_size=_with(recipe.batch_size, index, batch_size, "--batch-size"),
        distill_steps=_with((recipe.distill_steps,), 0, distill_steps, "--distill-steps")[0],
    )
    if learning_rate is not None:
        recipe = replace(recipe, learning_rate=learning_rate)
    stage = cascade.stages[index]
    if init is not None:
        stage = replace(stage, denoiser=trained_denoiser(init, kind, stage))
    parts = training_parts(data, more_data)
    if stage.is_base and recipe.base_augmentation is not None:
        parts = [x for part in parts for x in (part, recipe.base_augmentation(part))]
    train = Dataset.concat(parts)
    if captions is not None or clips_per_caption is not None:
        train = matching(train, captions, clips_per_caption)
    items = stage_items(cascade, index, train.samples, train.text)
    schedule = VPSchedule.from_scheduler(stage.scheduler)
    augmentation = None if stage.is_base else stage.sr.augmentation
    if (
        stage.steps >> recipe.distill_rounds[index] != recipe.fast_steps[index]
        and recipe.distill_rounds[index]
    ):
        raise ValueError(
            f"{kind}/{name}: {recipe.distill_rounds[index]} rounds from {stage.steps} steps do not "
            f"reach fast_steps={recipe.fast_steps[index]}"
        )
    if stage.frame_correlation and recipe.distill_rounds[index]:
        raise ValueError(
            f"{kind}/{name}: frame_correlation={stage.frame_correlation} with distillation, whose objectives "
            "draw independent noise; set distill_rounds to 0 for this stage"
        )
    started = time.time()
    trainer = Trainer(
        stage.denoiser.network, schedule, stage_objective(stage),
        items,
        _config(recipe, index, recipe.train_steps[index], recipe.learning_rate, index, 0.1, precision, compile,
                checkpoint_every),
        Path(runs) / name, device=device,
    )  # fmt: skip
    trainer.fit()
    network = trainer.trained_network()
    trainer.export()
    print(
        f"{kind}/{name}: trained {recipe.train_steps[index]} steps in {time.time() - started:.0f} s",
        flush=True,
    )
    teacher: nn.Module = Denoiser(network, stage.denoiser.output_type)
    if stage.is_base and stage.guidance_scale != 1.0:
        teacher = ClassifierFreeGuidance(
            teacher, null_text().map(lambda v: v.to(device)), scale=stage.guidance_scale
        )
    steps = stage.steps
    for round_ in range(recipe.distill_rounds[index] if distill else 0):
        started = time.time()
        objective = ProgressiveDistillation(teacher.to(device), steps, augmentation=augmentation)
        trainer = Trainer(
            student_from(network), schedule, objective, items,
            _config(recipe, index, recipe.distill_steps, recipe.distill_learning_rate, 100 + round_, 0.0,
                    precision, compile, checkpoint_every),
            Path(runs) / f"{name}-{steps // 2}", device=device,
        )  # fmt: skip
        trainer.fit()
        network = trainer.trained_network()
        trainer.export()
        teacher = Denoiser(network, "v_prediction")
        steps //= 2
        print(f"{kind}/{name}: distilled to {steps} steps in {time.time() - started:.0f} s", flush=True)


def training_parts(data: str | Path, more_data: Sequence[str | Path]) -> list[Dataset]:
    """``data``'s training split, then each ``more_data`` folder's (`training_only`); the whole of ``data``,
    held-out clips included, is not kept past this."""
    dataset = load(data)
    return [dataset.split(held_out=False), *(training_only(load(folder), dataset) for folder in more_data)]


def training_only(more: Dataset, data: Dataset) -> Dataset:
    """``more``'s training split, checked to extend ``data``: its attribute classes begin with ``data``'s (so
    joined labels name the same classes) and none of its captions is a held-out prompt of ``data``."""
    for name, classes in data.meta["attributes"].items():
        if more.meta["attributes"].get(name, [])[: len(classes)] != classes:
            raise ValueError(
                f"--more-data's {name} classes {more.meta['attributes'].get(name)} do not extend {classes}: "
                "build it with `python -m legato.pipelines.datasets video FOLDER --more-photos`"
            )
    more = more.split(held_out=False)
    held_out = {text for text, held in zip(data.captions, data.held_out.tolist(), strict=True) if held}
    leaked = set(more.captions) & held_out
    if leaked:
        raise ValueError(
            f"--more-data holds held-out prompts {sorted(leaked)[:3]}: it must not train on them"
        )
    return more


def _with(values: tuple[int, ...], index: int, value: int | None, flag: str) -> tuple[int, ...]:
    """``values`` with ``values[index]`` replaced by ``value`` (kept where it is None)."""
    if value is None:
        return values
    if value < 1:
        raise ValueError(f"{flag} {value}: give a positive whole number, or leave it out for the recipe's")
    return (*values[:index], value, *values[index + 1 :])


def matching(train: Dataset, captions: str | None, clips_per_caption: int | None) -> Dataset:
    """The clips whose caption the regular expression ``captions`` matches (anywhere; None: all), the first
    ``clips_per_caption`` of each caption (None: all)."""
    try:
        pattern = re.compile(captions or "")
    except re.error as error:
        raise ValueError(f"--captions {captions!r} is not a regular expression ({error})") from None
    if clips_per_caption is not None and clips_per_caption < 1:
        raise ValueError(f"--clips-per-caption {clips_per_caption}: give a positive whole number")
    seen: dict[str, int] = {}
    rows = []
    for i, text in enumerate(train.captions):
        if pattern.search(text):
            seen[text] = seen.get(text, 0) + 1
            if clips_per_caption is None or seen[text] <= clips_per_caption:
                rows.append(i)
    if not rows:
        raise ValueError(
            f"--captions {captions!r} matches no training caption; some are: {sorted(set(train.captions))[:4]}"
        )
    return train.subset(rows)


def trained_denoiser(init: str | Path, kind: str, stage: Stage) -> Denoiser:
    """Stage ``stage.name`` of the cascade folder or ``runs`` folder ``init``, checked to be the recipe's
    network."""
    run = Path(init) / stage.name / "model"
    if (run / "config.json").is_file():  # a runs folder: the stage's trained (EMA) network
        network = type(stage.denoiser.network).from_pretrained(run, low_cpu_mem_usage=False).float()
    else:
        trained = {s.name: s for s in load_cascade(init, device="cpu").stages}
        if stage.name not in trained:
            raise ValueError(f"--init {init}: no stage {stage.name!r} there (it has {sorted(trained)})")
        network = trained[stage.name].denoiser.network.float()
    if _arch(network) != _arch(stage.denoiser.network):
        raise ValueError(
            f"--init {init}: its {stage.name!r} network is not the {kind} recipe's; start from a folder the "
            "recipe exported"
        )
    return Denoiser(network, stage.denoiser.output_type)


def _arch(network: nn.Module) -> dict[str, tuple[int, ...]]:
    """A network's parameter names and shapes."""
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}


def assemble(kind: str, runs: str | Path) -> tuple[Cascade, Cascade]:
    """The trained default cascade (sampling as the recipe says) and its distilled fast twin, from the runs'
    exported networks."""
    recipe = RECIPES[kind]
    cascade = recipe.build()
    trained = []
    for stage in cascade.stages:
        cls = type(stage.denoiser.network)
        network = (
            cls.from_pretrained(Path(runs) / stage.name / "model", low_cpu_mem_usage=False).float().eval()
        )
        trained.append(replace(stage, denoiser=Denoiser(network, stage.denoiser.output_type)))
    default = replace(cascade, stages=tuple(trained))
    if recipe.sampling is not None:
        scheduler, steps = recipe.sampling
        default = default.with_sampling(steps, None, scheduler)
    fast = []
    for index, stage in enumerate(cascade.stages):
        steps = recipe.fast_steps[index]
        if recipe.distill_rounds[index]:
            folder = Path(runs) / f"{stage.name}-{steps}" / "model"
            student = (
                type(stage.denoiser.network).from_pretrained(folder, low_cpu_mem_usage=False).float().eval()
            )
            fast.append(replace(stage, denoiser=Denoiser(student, "v_prediction"), steps=steps,
                                guidance_scale=1.0, scheduler=student_scheduler(stage.scheduler.config)))  # fmt: skip
        else:  # the default's trained stage at fewer steps (not `stage`: the recipe's untrained network)
            fast.append(replace(default.stages[index], steps=steps))
    return default, replace(cascade, stages=tuple(fast))


def export(kind: str, runs: str | Path, models: str | Path) -> list[Path]:
    """Write ``models/<kind>-default`` and ``models/<kind>-fast`` (float16 weights) as pipeline folders; the
    music ones name ``models/vocoder-music`` as their vocoder where it is there."""
    from legato.pipelines import MusicPipeline, VideoPipeline

    text = TextEncoder(DEFAULT_TEXT_ENCODER, max_tokens=MAX_TOKENS)
    written = []
    for variant, cascade in zip(("default", "fast"), assemble(kind, runs), strict=True):
        pipe = (
            MusicPipeline(cascade, SMALL, text)
            if kind == "music"
            else VideoPipeline(cascade, fps=8, text=text)
        )
        written.append(pipe.save_pretrained(Path(models) / f"{kind}-{variant}", weights_dtype="float16"))
    # The fast variant runs the default's undistilled stages with fewer steps: one copy of their weights.
    recipe = RECIPES[kind]
    shared = [
        s.name for s, rounds in zip(recipe.build().stages, recipe.distill_rounds, strict=True) if not rounds
    ]
    share_stages(written[1], written[0], shared)
    vocoder = Path(models) / VOCODER
    if kind == "music" and (vocoder / "config.json").is_file():  # one copy, named by both cascades
        for path in written:
            update_metadata(path, vocoder=os.path.relpath(vocoder, path))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m legato.pipelines.bundled", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train and distil a cascade's stages (resumes)")
    train.add_argument("kind", choices=sorted(RECIPES))
    train.add_argument("--data", required=True)
    train.add_argument("--runs", required=True)
    train.add_argument("--stage", help="one stage only (default: all, one after another)")
    train.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    train.add_argument("--init", help="start each stage from this cascade folder's network (more training "
                       "on shipped weights, e.g. models/video-default) or this runs folder's")  # fmt: skip
    train.add_argument("--more-data", action="append", default=[], metavar="FOLDER",
                       help="training-only clips to add (datasets video FOLDER --more-photos); repeatable")  # fmt: skip
    train.add_argument("--captions", help="train on the clips whose caption this regular expression matches "
                       "(a curriculum's first phase)")  # fmt: skip
    train.add_argument("--clips-per-caption", type=int, help="and only the first K of each caption")
    train.add_argument("--no-distill", action="store_true", help="train only; no distillation rounds")
    train.add_argument("--steps", type=int, help="training steps per stage (default: the recipe's)")
    train.add_argument("--batch-size", type=int, help="training batch size (default: the recipe's)")
    train.add_argument("--learning-rate", type=float, help="training's peak rate (default: the recipe's)")
    train.add_argument(
        "--distill-steps", type=int, help="steps per distillation round (default: the recipe's)"
    )
    train.add_argument("--precision", choices=("bf16", "no"),
                       help="bf16 autocast or none (default: bf16 on a GPU or an AMX CPU, else none)")  # fmt: skip
    train.add_argument("--compile", action="store_true", help="train through torch.compile")
    train.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY, metavar="STEPS",
                       help=f"checkpoint every STEPS steps (default {CHECKPOINT_EVERY})")  # fmt: skip
    out = sub.add_parser("export", help="write models/<kind>-default and models/<kind>-fast")
    out.add_argument("kind", choices=sorted(RECIPES))
    out.add_argument("--runs", required=True)
    out.add_argument("--models", default="models")
    args = parser.parse_args(argv)
    if args.command == "train":
        names = [s.name for s in RECIPES[args.kind].build().stages]
        for name in [args.stage] if args.stage else names:
            if name not in names:
                parser.error(f"--stage {name!r}: the {args.kind} cascade has stages {names}")
            train_stage(args.kind, name, args.data, args.runs, args.device, init=args.init, steps=args.steps,
                        batch_size=args.batch_size, distill_steps=args.distill_steps,
                        precision=args.precision, captions=args.captions,
                        clips_per_caption=args.clips_per_caption, distill=not args.no_distill,
                        learning_rate=args.learning_rate, compile=args.compile,
                        checkpoint_every=args.checkpoint_every, more_data=args.more_data)  # fmt: skip
    else:
        for path in export(args.kind, args.runs, args.models):
            print(f"wrote {path}")
        if args.kind == "music" and not (Path(args.models) / VOCODER / "config.json").is_file():
            print(f"no {Path(args.models) / VOCODER}: the music cascades invert mels with Griffin-Lim until it "
                  "is trained (python -m legato.pipelines.vocoder) and this export runs again")  # fmt: skip


if __name__ == "__main__":
    main()
