"""Progressive distillation of one stage of a trained cascade: N sampling steps -> N / 2 per round.

::

    data = load("data/music").split(held_out=False)
    fast = distill_cascade(pipe.cascade, data.samples, data.text, "runs/distill", stage="base", rounds=2)
    replace(pipe, cascade=fast).save_pretrained("models/my-music-fast")

What `legato.pipelines.bundled.train_stage` does for the bundled recipes, for any cascade (Salimans & Ho
2022): the first round's teacher is the stage as it samples, its classifier-free guidance folded in, so the
student needs one forward per step; each round's student (v-prediction, DDIM "trailing" spacing) teaches
the next. Round ``r`` trains with the one `Trainer` in ``out_dir/<stage>-<steps after r>`` and resumes
from its checkpoints, so an interrupted distillation continues exactly.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from legato.cascade import Cascade
from legato.diffusion import ClassifierFreeGuidance, Conditioning, Denoiser, VPSchedule
from legato.diffusion.distill import ProgressiveDistillation, student_from, student_scheduler
from legato.diffusion.training import TrainConfig, Trainer
from legato.pipelines.build import stage_items


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
    """The cascade with stage ``stage`` distilled ``rounds`` times (its sampling steps halved each round),
    trained ``steps`` optimizer steps per round on ``samples`` ``(N, C, ...)`` in [-1, 1] at the cascade's
    output resolution and their prompts' embeddings ``text`` ``(N, L, D)``."""
    names = [s.name for s in cascade.stages]
    index = names.index(stage) if stage in names else stage
    if not isinstance(index, int) or not 0 <= index < len(names):
        raise ValueError(f"stage={stage!r} is not a stage of this cascade; use one of {names}")
    current = cascade.stages[index]
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds={rounds!r} must be a positive integer (each halves the sampling steps)")
    if current.steps % 2**rounds:
        raise ValueError(
            f"stage {current.name!r} samples in {current.steps} steps: {rounds} rounds need a multiple of "
            f"{2**rounds}; use fewer rounds"
        )
    if current.guidance_input:
        raise ValueError(
            f"stage {current.name!r} takes the guidance scale as input; it cannot be distilled here"
        )
    items = stage_items(cascade, index, samples, text)
    schedule = VPSchedule.from_scheduler(current.scheduler)
    augmentation = None if current.is_base else current.sr.augmentation
    teacher: nn.Module = current.denoiser
    if current.guidance_scale != 1.0:  # the null prompt is all-zero token embeddings, as in training
        null = Conditioning(text=torch.zeros_like(text[:1]).to(device))
        teacher = ClassifierFreeGuidance(teacher, null, scale=current.guidance_scale)
    network, teacher_steps = current.denoiser.network, current.steps
    for round_ in range(rounds):
        config = TrainConfig(
            steps=steps, batch_size=batch_size, learning_rate=learning_rate, ema_decay=0.999 if steps >= 1000 else 0.99,
            lr_schedule="cosine", warmup_steps=min(200, steps // 10), checkpoint_every=checkpoint_every,
            log_every=50, progress=progress, seed=100 + round_,
            mixed_precision="bf16" if device.startswith("cuda") else "no",
        )  # fmt: skip
        objective = ProgressiveDistillation(teacher.to(device), teacher_steps, augmentation=augmentation)
        trainer = Trainer(student_from(network), schedule, objective, items, config,
                          Path(out_dir) / f"{current.name}-{teacher_steps // 2}", device=device)  # fmt: skip
        trainer.fit()
        network = trainer.trained_network().cpu()
        teacher, teacher_steps = Denoiser(network, "v_prediction"), teacher_steps // 2
    student = replace(current, denoiser=Denoiser(network, "v_prediction"), steps=teacher_steps, guidance_scale=1.0,
                      scheduler=student_scheduler(current.scheduler.config), device="cpu")  # fmt: skip
    stages = list(cascade.stages)
    stages[index] = student
    return replace(cascade, stages=tuple(stages))
