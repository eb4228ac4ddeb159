"""Distillation pays, measured on the 2-D two-moons toy (sliced Wasserstein distance to held-out data).

    .venv/bin/python benchmarks/distill.py            # about 6 minutes on a 2-core CPU
    .venv/bin/python benchmarks/distill.py --quick    # fewer training steps, for a smoke run

1. A class-conditional v-prediction teacher (MLP) with 10% label dropout.
2. Progressive distillation 64 -> 32 -> 16 -> 8 -> 4 steps. Each student is scored against the teacher
   at 64 steps, and the teacher at the student's step count is scored too.
3. Guided distillation: a student conditioned on w learns the teacher's guided prediction for w in
   [1, 6]. At w in {1, 3, 5}, its samples are compared with the teacher's guided samples from the same
   noise (RMSE, and the SW between the two sets), counting model forwards per step.
Prints markdown tables (docs/training.md holds a copy).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from diffusers import DDPMScheduler
from torch import nn

from legato.diffusion import (
    ClassifierFreeGuidance,
    Conditioning,
    Denoiser,
    VPSchedule,
    generators,
    randn,
    sample,
)
from legato.diffusion.distill import (
    GuidedDistillation,
    ProgressiveDistillation,
    student_from,
    student_scheduler,
)
from legato.diffusion.models import MLP
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer
from legato.diffusion.two_moons import sliced_wasserstein, two_moons_labelled

SCHEDULE = VPSchedule.from_scheduler(DDPMScheduler())


class Counting(nn.Module):
    """Counts forwards (batched calls) of a denoiser."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.output_type, self.calls = inner, inner.output_type, 0

    def forward(self, x, t, cond=None):
        self.calls += 1
        return self.inner(x, t, cond)


def train(network, objective, data, labels, steps, out, lr=2e-3, **extra):
    config = TrainConfig(steps=steps, batch_size=256, learning_rate=lr, lr_schedule="cosine", warmup_steps=50,
                         ema_decay=0.995, progress=False, log_every=100, **extra)  # fmt: skip
    trainer = Trainer(network, SCHEDULE, objective, TensorItems(data, labels=labels), config, out)
    trainer.fit(resume=False)
    return trainer.trained_network()


def draw(denoiser, steps, labels, guidance=None):
    noise = randn((len(labels), 2, 1, 1), generators(range(len(labels))))
    cond = Conditioning(labels=labels) if guidance is None else Conditioning(labels=labels, guidance=guidance)
    return sample(denoiser, student_scheduler(), noise, steps=steps, cond=cond)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--eval", type=int, default=8192,
        help="points per evaluation set; the distance's own noise floor shrinks with it (2048 gave 0.031)",
    )  # fmt: skip
    args = parser.parse_args()
    n_eval = args.eval
    scale = 0.25 if args.quick else 1.0
    data, labels = two_moons_labelled(8192, 0)
    test, test_labels = two_moons_labelled(n_eval, 1)
    eval_labels = test_labels
    out = tempfile.mkdtemp()
    started = time.time()

    torch.manual_seed(0)
    teacher_net = train(MLP(hidden=128, depth=3, num_classes=2), Objective("v_prediction"), data, labels,
                        int(4000 * scale), f"{out}/teacher", cond_dropout=0.1, null_label=2)  # fmt: skip
    teacher = Denoiser(teacher_net, "v_prediction")
    ceiling = sliced_wasserstein(two_moons_labelled(n_eval, 2)[0], test)
    sw_teacher = {n: sliced_wasserstein(draw(teacher, n, eval_labels), test) for n in (64, 32, 16, 8, 4)}
    print(f"two-moons SW: true-vs-true ceiling {ceiling:.4f}; teacher at 64 steps {sw_teacher[64]:.4f}\n")

    print("| student steps | student SW | vs teacher@64 | teacher at same steps |")
    print("| --- | --- | --- | --- |")
    current, steps = teacher, 64
    while steps > 4:
        student = train(student_from(current.network), ProgressiveDistillation(current, steps), data, labels,
                        int(1500 * scale), f"{out}/round{steps}", lr=5e-4)  # fmt: skip
        steps //= 2
        current = Denoiser(student, "v_prediction")
        sw = sliced_wasserstein(draw(current, steps, eval_labels), test)
        print(f"| {steps} | {sw:.4f} | {sw / sw_teacher[64]:.2f}x | {sw_teacher[steps]:.4f} |")

    print(
        "\n| w | teacher forwards/step | student forwards/step | RMSE student vs teacher | SW(student, teacher) | teacher SW to data |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    uncond = Conditioning(labels=torch.full((1,), 2))
    guided_net = MLP(hidden=128, depth=3, num_classes=2, guidance_conditioning=True)
    guided_net.load_state_dict(teacher_net.state_dict(), strict=False)  # same trunk, new guidance embedding
    guided = Denoiser(train(guided_net, GuidedDistillation(teacher, uncond, (1.0, 6.0)), data, labels,
                            int(3000 * scale), f"{out}/guided"), "v_prediction")  # fmt: skip
    for w in (1.0, 3.0, 5.0):
        cfg = Counting(ClassifierFreeGuidance(Counting(teacher), uncond, scale=w))
        teacher_out = draw(cfg, 64, eval_labels)
        student = Counting(guided)
        student_out = draw(student, 64, eval_labels, guidance=torch.full((n_eval,), w))
        rmse = float((student_out - teacher_out).pow(2).mean().sqrt())
        forwards = cfg.inner.denoiser.calls * (2 if w != 1.0 else 1) / 64
        print(f"| {w:g} | {forwards:g} | {student.calls / 64:g} | {rmse:.4f} | "
              f"{sliced_wasserstein(student_out, teacher_out):.4f} | {sliced_wasserstein(teacher_out, test):.4f} |")  # fmt: skip
    print(f"\n(total {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
