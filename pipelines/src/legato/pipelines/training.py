"""Training and distilling a cascade's stages: the one train-then-distil driver.

::

    data = load("data/music").split(held_out=False)                    # legato.recipes.datasets
    tuned = train_cascade(pipe.cascade, data.samples, data.text, "runs/tune", steps=(400, 0))
    fast = distill_cascade(tuned, data.samples, data.text, "runs/distill", stage="base", rounds=2)
    replace(pipe, cascade=fast).save_pretrained("models/my-music-fast")

Every stage trains on the same real samples at its own resolution (`Cascade.downsample`): the base stage on
downsampled samples, each super-resolution stage on (downsampled, full) pairs with its noise-conditioning
augmentation (`stage_items`), with the objective read off the stage (`stage_objective`). `train_stage` fits
one stage with the one `Trainer` (or on Ray Train workers, `legato.pipelines.ray_train`), `distill_stage`
halves its sampling steps per round by progressive distillation (Salimans & Ho 2022): the first round's
teacher is the stage as it samples, its classifier-free guidance folded in, so the student needs one
forward per step; each round's student (v-prediction, DDIM "trailing" spacing) teaches the next.

What differs between a fine-tune, a distillation and the bundled recipes (`legato.recipes`) is data: the
`TrainConfig` of each run. Each run checkpoints into ``out_dir/<stage>`` (a round into
``out_dir/<stage>-<steps after it>``) and resumes from there, so an interrupted run continues exactly.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from torch import Tensor, nn

from legato.cascade import Cascade, Stage
from legato.diffusion import Conditioning, Denoiser, VPSchedule
from legato.diffusion.distill import ProgressiveDistillation, student_from, student_scheduler
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer


def stage_items(cascade: Cascade, index: int, samples: Tensor, text: Tensor) -> TensorItems:
    """Stage ``index``'s training items from final-resolution ``samples`` ``(N, C, ...)`` in [-1, 1] and their
    text embeddings ``(N, L, D)``: the base stage's downsampled samples, or a super-resolution stage's
    (downsampled, full) pairs."""
    stage = cascade.stages[index]
    x = cascade.downsample(index, samples)
    return TensorItems(x, text=text) if stage.is_base else stage.sr.items(x, text=text)


def stage_objective(stage: Stage) -> Objective:
    """What a stage's network is trained on, read off the stage so that training and sampling agree: its
    denoiser's parameterisation, a super-resolution stage's noise augmentation, a base stage's noise
    correlation between frames."""
    return Objective(
        stage.denoiser.output_type,
        augmentation=None if stage.is_base else stage.sr.augmentation,
        frame_correlation=stage.frame_correlation,
    )


def stage_trainer(
    stage: Stage, items: TensorItems, config: TrainConfig, out_dir: Path, device: str
) -> Trainer:
    """The `Trainer` of one stage (module-level, so Ray Train workers can build it from a partial)."""
    return Trainer(stage.denoiser.network, VPSchedule.from_scheduler(stage.scheduler), stage_objective(stage),
                   items, config, out_dir, device=device)  # fmt: skip


def train_stage(
    stage: Stage,
    items: TensorItems,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    device: str = "cpu",
    workers: int = 1,
) -> Stage:
    """``stage`` with its network trained by ``config`` on ``items`` in ``out_dir`` (resuming from its
    checkpoints), the EMA network written to ``out_dir/model``; returns the stage on the CPU.

    ``workers > 1`` trains data-parallel on that many Ray Train workers (the caller has started or joined a
    Ray cluster, and ``out_dir`` is on storage every worker reaches); ``config.batch_size`` is then per
    worker, and a resume needs the same number of workers."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}; give a whole number of training workers, at least 1")
    build = functools.partial(stage_trainer, stage, items, config, Path(out_dir), device)
    if workers == 1:
        trainer = build()
        trainer.fit()
        network = trainer.trained_network().cpu()
        trainer.export()
    else:
        from legato.diffusion.training import checkpoint as ckpt
        from legato.pipelines.ray_train import train_on_ray

        result = train_on_ray(build, out_dir, num_workers=workers, use_gpu=device.startswith("cuda"))
        network = copy.deepcopy(stage.denoiser.network).cpu().eval()
        ckpt.load_network_weights(network, result.model)
    return replace(stage, denoiser=Denoiser(network, stage.denoiser.output_type), device="cpu")


def distill_stage(
    stage: Stage,
    items: TensorItems,
    out_dir: str | Path,
    rounds: Sequence[TrainConfig],
    *,
    device: str = "cpu",
) -> Stage:
    """``stage`` distilled ``len(rounds)`` times, each round trained by its `TrainConfig` on ``items`` in
    ``out_dir/<stage>-<steps after it>``: a student that samples in ``stage.steps / 2**len(rounds)`` steps
    without guidance (v-prediction on DDIM's trailing grid), on the CPU."""
    if not rounds:
        raise ValueError("rounds is empty; give one TrainConfig per distillation round")
    if stage.steps % 2 ** len(rounds):
        raise ValueError(
            f"stage {stage.name!r} samples in {stage.steps} steps: {len(rounds)} rounds need a multiple of "
            f"{2 ** len(rounds)}; use fewer rounds"
        )
    if stage.guidance_input:
        raise ValueError(
            f"stage {stage.name!r} takes the guidance scale as input; it cannot be distilled here"
        )
    if stage.frame_correlation:
        raise ValueError(
            f"stage {stage.name!r}: frame_correlation={stage.frame_correlation}, but distillation objectives "
            "draw independent noise; do not distil this stage"
        )
    schedule = VPSchedule.from_scheduler(stage.scheduler)
    augmentation = None if stage.is_base else stage.sr.augmentation
    # The first teacher is the stage as it samples: guided with its own null (`Stage.guided`).
    teacher: nn.Module = stage.denoiser
    if stage.guidance_scale != 1.0:
        text = items.cond.get("text")
        example = Conditioning(text=None if text is None else text[:1].to(device))
        teacher = stage.guided(example, 1)[0]
    network, steps = stage.denoiser.network, stage.steps
    for config in rounds:
        objective = ProgressiveDistillation(teacher.to(device), steps, augmentation=augmentation)
        trainer = Trainer(student_from(network), schedule, objective, items, config,
                          Path(out_dir) / f"{stage.name}-{steps // 2}", device=device)  # fmt: skip
        trainer.fit()
        network = trainer.trained_network().cpu()
        trainer.export()
        teacher, steps = Denoiser(network, "v_prediction"), steps // 2
    return replace(stage, denoiser=Denoiser(network, "v_prediction"), steps=steps, guidance_scale=1.0,
                   scheduler=student_scheduler(stage.scheduler.config), device="cpu")  # fmt: skip


def fine_tune_config(steps: int, seed: int, **settings) -> TrainConfig:
    """A fine-tune's or a distillation round's `TrainConfig`: a cosine schedule after a warm-up of a tenth of
    the steps (at most ``warmup``, default 100), metrics every 50 steps; ``settings`` are `TrainConfig`'s."""
    warmup = settings.pop("warmup", 100)
    return TrainConfig(steps=steps, lr_schedule="cosine", warmup_steps=min(warmup, steps // 10), log_every=50,
                       seed=seed, **settings)  # fmt: skip


def train_cascade(
    cascade: Cascade,
    samples: Tensor,
    text: Tensor,
    out_dir: str | Path,
    *,
    steps: Sequence[int],
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    cond_dropout: float = 0.1,
    ema_decay: float = 0.995,
    checkpoint_every: int = 500,
    device: str = "cpu",
    progress: bool = False,
    workers: int = 1,
) -> Cascade:
    """Fine-tune every stage on ``samples`` ``(N, C, ...)`` in [-1, 1] at the cascade's output resolution and
    their prompts' embeddings ``text`` ``(N, L, D)``: stage ``i`` trains ``steps[i]`` steps in
    ``out_dir/<stage name>`` (`train_stage`; ``workers`` as there); ``steps[i] == 0`` keeps that stage as it
    is. Returns the cascade with the EMA networks."""
    if len(steps) != len(cascade.stages):
        raise ValueError(
            f"steps={list(steps)} gives {len(steps)} step counts for {len(cascade.stages)} stages"
        )
    if min(steps) < 0 or max(steps) < 1:
        raise ValueError(f"steps={list(steps)}: give whole numbers >= 0 (0 keeps a stage), at least one > 0")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}; give a whole number of training workers, at least 1")
    trained = []
    for index, stage in enumerate(cascade.stages):
        if steps[index] == 0:
            trained.append(stage)
            continue
        config = fine_tune_config(
            steps[index], index, batch_size=batch_size, learning_rate=learning_rate, cond_dropout=cond_dropout,
            ema_decay=ema_decay, checkpoint_every=checkpoint_every, progress=progress and workers == 1,
        )  # fmt: skip
        items = stage_items(cascade, index, samples, text)
        trained.append(train_stage(stage, items, Path(out_dir) / stage.name, config, device=device,
                                   workers=workers))  # fmt: skip
    return replace(cascade, stages=tuple(trained))


def distill_cascade(
    cascade: Cascade,
    samples: Tensor,
    text: Tensor,
    out_dir: str | Path,
    *,
    stage: int | str = 0,
    rounds: int = 1,
    steps: int = 250,
    batch_size: int = 16,
    learning_rate: float = 1e-4,
    checkpoint_every: int = 250,
    device: str = "cpu",
    progress: bool = False,
) -> Cascade:
    """The cascade with stage ``stage`` distilled ``rounds`` times (`distill_stage`: its sampling steps halved
    each round), trained ``steps`` optimizer steps per round on ``samples`` and ``text`` as in
    `train_cascade`."""
    names = [s.name for s in cascade.stages]
    index = names.index(stage) if stage in names else stage
    if not isinstance(index, int) or not 0 <= index < len(names):
        raise ValueError(f"stage={stage!r} is not a stage of this cascade; use one of {names}")
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds={rounds!r} must be a positive integer (each halves the sampling steps)")
    configs = [
        fine_tune_config(
            steps, 100 + r, warmup=200, batch_size=batch_size, learning_rate=learning_rate,
            ema_decay=0.999 if steps >= 1000 else 0.99, checkpoint_every=checkpoint_every, progress=progress,
            mixed_precision="bf16" if device.startswith("cuda") else "no",
        )
        for r in range(rounds)
    ]  # fmt: skip
    items = stage_items(cascade, index, samples, text)
    student = distill_stage(cascade.stages[index], items, out_dir, configs, device=device)
    return replace(cascade, stages=(*cascade.stages[:index], student, *cascade.stages[index + 1 :]))
