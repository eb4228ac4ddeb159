"""Writing a recipe's trained runs as the shipped model folders: ``models/<kind>-default`` and ``-fast``.

::

    legato recipes export music --runs runs/music --models models

`assemble` reads each stage's exported network from the runs (``runs/<stage>/model``, and a distilled
student's ``runs/<stage>-<steps>/model``) into the default cascade (sampling as the recipe says) and its fast
twin; `export` saves both as pipeline folders with float16 weights, the fast one sharing the default's
undistilled stages.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from legato.cascade import Cascade
from legato.cascade.pretrained import share_stages, update_metadata
from legato.codec import SMALL
from legato.diffusion import Denoiser
from legato.diffusion.distill import student_scheduler
from legato.pipelines import MusicPipeline, VideoPipeline
from legato.pipelines.text import DEFAULT_TEXT_ENCODER, TextEncoder
from legato.recipes.catalog import MAX_TOKENS, RECIPES, VOCODER
from legato.recipes.datasets import music, video


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
    text = TextEncoder(DEFAULT_TEXT_ENCODER, max_tokens=MAX_TOKENS)
    known = music.vocabulary() if kind == "music" else video.vocabulary()  # what the models were trained on
    written = []
    for variant, cascade in zip(("default", "fast"), assemble(kind, runs), strict=True):
        pipe = (
            MusicPipeline(cascade, SMALL, text, vocabulary=known)
            if kind == "music"
            else VideoPipeline(cascade, fps=8, text=text, vocabulary=known)
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
