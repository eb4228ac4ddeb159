"""Distillation objectives on the two-moons toy: a round halves the steps, the guided student takes w."""

import torch
from diffusers import DDPMScheduler

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
    trailing_timesteps,
)
from legato.diffusion.models import MLP
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer
from legato.diffusion.two_moons import sliced_wasserstein, two_moons_labelled

SCHEDULE = VPSchedule.from_scheduler(DDPMScheduler())


def fit(network, objective, steps, tmp, **extra):
    data, labels = two_moons_labelled(4096, 0)
    options = {"learning_rate": 2e-3, **extra}
    config = TrainConfig(steps=steps, batch_size=256, lr_schedule="cosine", warmup_steps=20, ema_decay=0.99,
                         progress=False, **options)  # fmt: skip
    trainer = Trainer(network, SCHEDULE, objective, TensorItems(data, labels=labels), config, tmp)
    trainer.fit(resume=False)
    return trainer.trained_network()


def draw(denoiser, steps, n=1024, guidance=None):
    labels = torch.arange(n) % 2
    cond = Conditioning(labels=labels, guidance=None if guidance is None else torch.full((n,), guidance))
    return sample(
        denoiser, student_scheduler(), randn((n, 2, 1, 1), generators(range(n))), steps=steps, cond=cond
    )


def test_trailing_grids_nest_and_match_diffusers_ddim():
    eight, four = trailing_timesteps(8), trailing_timesteps(4)
    assert torch.equal(eight[::2], four)  # the N/2 grid is every other step of the N grid
    ddim = student_scheduler()
    ddim.set_timesteps(4)
    assert torch.equal(ddim.timesteps.float(), four[:-1])


def test_a_distillation_round_halves_the_steps(tmp_path):
    torch.manual_seed(0)
    teacher_net = fit(MLP(hidden=64, num_classes=2), Objective("v_prediction"), 800, tmp_path / "t",
                      cond_dropout=0.1, null_label=2)  # fmt: skip
    teacher = Denoiser(teacher_net, "v_prediction")
    test, _ = two_moons_labelled(1024, 1)
    student = Denoiser(fit(student_from(teacher_net), ProgressiveDistillation(teacher, 8), 500, tmp_path / "s",
                           learning_rate=5e-4), "v_prediction")  # fmt: skip
    sw_teacher_8 = sliced_wasserstein(draw(teacher, 8), test)
    sw_teacher_4 = sliced_wasserstein(draw(teacher, 4), test)
    sw_student_4 = sliced_wasserstein(draw(student, 4), test)
    # The 4-step student is closer to the data than the teacher run at 4 steps, and near the teacher at 8.
    assert sw_student_4 < sw_teacher_4
    assert sw_student_4 < 1.5 * sw_teacher_8


def test_guided_student_matches_guided_teacher_in_one_forward(tmp_path):
    torch.manual_seed(0)
    teacher_net = fit(MLP(hidden=64, num_classes=2), Objective("v_prediction"), 800, tmp_path / "t",
                      cond_dropout=0.1, null_label=2)  # fmt: skip
    teacher = Denoiser(teacher_net, "v_prediction")
    uncond = Conditioning(labels=torch.tensor([2]))
    net = MLP(hidden=64, num_classes=2, guidance_conditioning=True)
    net.load_state_dict(teacher_net.state_dict(), strict=False)
    student = Denoiser(
        fit(net, GuidedDistillation(teacher, uncond, (1.0, 6.0)), 600, tmp_path / "g"), "v_prediction"
    )
    for w in (1.0, 3.0, 5.0):
        guided_teacher = draw(ClassifierFreeGuidance(teacher, uncond, scale=w), 16)
        guided_student = draw(student, 16, guidance=w)
        unguided = draw(teacher, 16)
        gap = float((guided_student - guided_teacher).pow(2).mean().sqrt())
        assert gap < 0.15, (w, gap)
        if w > 1:  # guidance really moves the samples, and the student follows it
            assert float((unguided - guided_teacher).pow(2).mean().sqrt()) > 2 * gap
