"""The bundled models' recipes: how each cascade is built, trained, distilled and sampled, as data.

`RECIPES` names one `Recipe` per kind ("music", "video"); `legato.recipes.train` runs a recipe's stage through
the one train-then-distil driver (`legato.pipelines.training`) and `legato.recipes.export` writes the trained
cascades as ``models/<kind>-default`` and ``models/<kind>-fast``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from legato.cascade import Cascade
from legato.codec import SMALL
from legato.diffusion.training import TrainConfig
from legato.recipes.datasets import Dataset
from legato.recipes.datasets.video import time_reversed
from legato.recipes.networks import music_cascade, video_cascade

TEXT_DIM = 384  # all-MiniLM-L6-v2
VOCODER = "vocoder-music"  # the models folder's vocoder (legato.recipes.vocoder), which music cascades name
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
    # (`legato recipes evaluate KIND --guidance 3 --scheduler NAME --steps ...`).
    sampling: tuple[str, tuple[int, ...]] | None = None
    # Extra training samples for the base stage, made from the training split (never from held-out data).
    base_augmentation: Callable[[Dataset], Dataset] | None = None


# Step counts fit one 9-minute run of all five stages at once on one H100 (recipes/docs/history.md has the times).
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
        sampling=("dpm++", (32, 16)),  # recipes/docs/history.md: better than DDIM on training prompts
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
        # zooms out (recipes/docs/history.md, Quality). `distill_rounds=(2, 0, 0)` distils it again.
        fast_steps=(8, 4, 4),
        distill_rounds=(0, 0, 0),
        distill_steps=150,
        batch_size=(32, 32, 32),
        sampling=("dpm++", (32, 16, 16)),  # recipes/docs/history.md: better than DDIM on training prompts
        base_augmentation=time_reversed,  # pans and zooms backwards: which way a motion goes
    ),
}


def train_config(recipe: Recipe, index: int, steps: int, lr: float, seed: int, cond_dropout: float,
                 precision: str, compile: bool, checkpoint_every: int) -> TrainConfig:  # fmt: skip
    """The `TrainConfig` of one run of a recipe's stage ``index`` (its training, or a distillation round)."""
    return TrainConfig(
        steps=steps, batch_size=recipe.batch_size[index], learning_rate=lr, cond_dropout=cond_dropout,
        ema_decay=0.999 if steps >= 1000 else 0.99, lr_schedule="cosine", warmup_steps=min(200, steps // 10),
        checkpoint_every=checkpoint_every, log_every=50, progress=False, seed=seed,
        mixed_precision=precision, compile=compile,
    )  # fmt: skip


def default_precision(device: str) -> str:
    """bf16 autocast on a GPU and on a CPU with AMX tiles, else "no" (float32): the rule the four CPUs timed
    in recipes/docs/history.md (Training) support, though it leaves the one without AMX where bf16 paid at float32."""
    if str(device).startswith("cuda"):
        return "bf16"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # a private torch API: without it, float32
    return "bf16" if amx is not None and amx() else "no"
