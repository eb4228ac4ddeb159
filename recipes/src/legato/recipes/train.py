"""Training one stage of a bundled recipe: its data, then the one train-then-distil driver.

::

    legato recipes dataset music data/music
    legato train music --data data/music --runs runs/music --device cuda      # every stage, or --stage base
    legato recipes export music --runs runs/music --models models

`train_stage` fits stage ``name`` of recipe ``kind`` (`legato.recipes.catalog.RECIPES`) on the dataset's
training split (plus any training-only data, a caption filter and an initial network: a curriculum's phases)
with `legato.pipelines.training.train_stage`, then distils it by the recipe's rounds
(`legato.pipelines.training.distill_stage`). Stages are independent, so they can train in parallel processes.
Every run checkpoints into ``runs/<stage>[-<steps>]`` and resumes exactly where it stopped: the same command
continues an interrupted training.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from torch import nn

from legato.cascade import Stage
from legato.cascade.pretrained import load_cascade
from legato.diffusion import Denoiser
from legato.pipelines import training
from legato.pipelines.training import stage_items
from legato.recipes.catalog import CHECKPOINT_EVERY, RECIPES, default_precision, train_config
from legato.recipes.datasets import Dataset, load


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
    meets every photo (recipes/docs/history.md). ``distill=False`` trains only. ``steps``, ``batch_size``,
    ``distill_steps`` and ``learning_rate`` (the training's peak; distillation keeps the recipe's) override
    the recipe's.
    ``precision`` ("bf16" autocast or "no") defaults to `default_precision(device)`: bf16 on a GPU or a CPU
    with AMX, float32 on other CPUs.
    ``compile`` trains through ``torch.compile`` (`TrainConfig.compile`; a compile of about 3 minutes per run
    on a 2-core CPU). ``checkpoint_every`` steps each run writes a checkpoint (what a lost machine costs at
    most; the results do not depend on it).
    ``more_data`` are training-only datasets (``legato recipes dataset video FOLDER
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
    rounds = recipe.distill_rounds[index]
    if rounds and stage.steps >> rounds != recipe.fast_steps[index]:
        raise ValueError(
            f"{kind}/{name}: {rounds} rounds from {stage.steps} steps do not reach fast_steps={recipe.fast_steps[index]}"
        )
    if stage.frame_correlation and rounds:
        raise ValueError(
            f"{kind}/{name}: frame_correlation={stage.frame_correlation} with distillation, whose objectives "
            "draw independent noise; set distill_rounds to 0 for this stage"
        )
    if init is not None:
        stage = replace(stage, denoiser=trained_denoiser(init, kind, stage))
    parts = training_parts(data, more_data)
    if stage.is_base and recipe.base_augmentation is not None:
        parts = [x for part in parts for x in (part, recipe.base_augmentation(part))]
    train = Dataset.concat(parts)
    if captions is not None or clips_per_caption is not None:
        train = matching(train, captions, clips_per_caption)
    items = stage_items(cascade, index, train.samples, train.text)
    started = time.time()
    config = train_config(recipe, index, recipe.train_steps[index], recipe.learning_rate, index, 0.1, precision,
                          compile, checkpoint_every)  # fmt: skip
    stage = training.train_stage(stage, items, Path(runs) / name, config, device=device)
    print(
        f"{kind}/{name}: trained {recipe.train_steps[index]} steps in {time.time() - started:.0f} s",
        flush=True,
    )
    if distill and rounds:
        started = time.time()
        configs = [train_config(recipe, index, recipe.distill_steps, recipe.distill_learning_rate, 100 + r, 0.0,
                                precision, compile, checkpoint_every) for r in range(rounds)]  # fmt: skip
        student = training.distill_stage(stage, items, runs, configs, device=device)
        print(
            f"{kind}/{name}: distilled to {student.steps} steps in {time.time() - started:.0f} s", flush=True
        )


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
                "build it with `legato recipes dataset video FOLDER --more-photos`"
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
