"""Sampling with a denoiser whose answer is known in closed form: the exact denoiser of Gaussian data.

For data ``x0 ~ N(mu, s^2)`` (each value independent) the posterior mean ``E[x0 | x_t]`` is linear in
``x_t``, so the ideal model is a formula, not a network. Its probability-flow ODE maps the starting noise ``z``
to ``mu + s z`` (up to the tiny signal left at t=999), so a deterministic sampler's per-item error against
that answer is its discretisation error alone, which must shrink at the sampler's order; stochastic samplers
must reproduce the data's mean and spread. Nothing here is trained, so a failure is the loop's, a
scheduler's or an adapter's, never a model's.
"""

import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from legato.diffusion import (
    Denoiser,
    VPSchedule,
    convert_scheduler,
    generators,
    make_scheduler,
    randn,
    register_network,
    sample,
    scheduler_config,
    scheduler_from_config,
)
from legato.diffusion.distill import student_scheduler
from legato.diffusion.errors import DiffusionError

MU, STD = 0.3, 0.5
# Built in-process with diffusers' default betas, as a recipe builds it. The data reach |x| ~ 2.3, so no
# clipping of predictions to [-1, 1] (a setting that carries over to every scheduler that has it).
TRAINING = DDPMScheduler(clip_sample=False)
SCHEDULE = VPSchedule.from_scheduler(TRAINING)


class ExactGaussian(nn.Module):
    """``E[x0 | x_t]`` for ``x0 ~ N(MU, STD^2)``, returned in the parameterisation ``kind``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = (v.view(-1, 1, 1, 1) for v in SCHEDULE.alpha_sigma(t))
        var = STD**2
        x0 = MU + alpha * var / (alpha**2 * var + sigma**2) * (x - alpha * MU)
        eps = (x - alpha * x0) / sigma
        return {"epsilon": eps, "sample": x0, "v_prediction": alpha * eps - sigma * x0}[self.kind]


@register_network(ExactGaussian, ranks=(4,))
def _call_exact(network, x, t, cond):
    return network(x, t)


def run(
    name: str, steps: int, kind: str = "epsilon", stochastic: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of 256 items of 8x8 values, and the noise they started from."""
    scheduler = make_scheduler(name, TRAINING.config)
    noise = randn((256, 1, 8, 8), generators(range(256)))
    gens = generators(range(1000, 1256)) if stochastic else None
    return sample(Denoiser(ExactGaussian(kind), kind), scheduler, noise, steps=steps, generator=gens), noise


def error(name: str, steps: int, kind: str = "epsilon") -> float:
    x, noise = run(name, steps, kind)
    return float((x - (MU + STD * noise)).pow(2).mean().sqrt())


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("name", ["ddim", "euler"])
def test_first_order_samplers_converge_to_the_exact_answer_at_first_order(name, kind):
    # Measured: RMS error 0.028 at 50 steps, 0.014 at 100 (both samplers, any parameterisation).
    at_50, at_100 = error(name, 50, kind), error(name, 100, kind)
    assert at_100 < 0.02
    assert 1.7 < at_50 / at_100 < 2.3


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("name", ["dpm++", "heun"])
def test_second_order_samplers_reach_the_exact_answer(name, kind):
    # Measured: dpm++ 0.012 at 25 steps, 0.001 at 50; heun (Karras sigmas) 0.015 and 0.0035. Before the
    # training schedule carried over to heun, it converged to the wrong answer (std 0.55 instead of 0.5).
    at_25, at_50 = error(name, 25, kind), error(name, 50, kind)
    assert at_50 < 0.006
    assert at_25 / at_50 > 3


@pytest.mark.parametrize("name", ["ddpm", "euler_a"])
def test_stochastic_samplers_reproduce_the_datas_mean_and_spread(name):
    # Measured (16384 values): std 0.439 at 50 steps, 0.486 at 200, 0.494 at 500; mean 0.297-0.302.
    coarse, _ = run(name, 50, stochastic=True)
    fine, _ = run(name, 200, stochastic=True)
    assert abs(float(fine.mean()) - MU) < 0.015  # 3.7 standard errors of a mean of 16384 values
    assert abs(float(fine.std()) - STD) < 0.03
    assert abs(float(fine.std()) - STD) < 0.5 * abs(float(coarse.std()) - STD)
    assert float(fine.abs().max()) < MU + 6 * STD  # no blow-up on the last ancestral step


@pytest.mark.parametrize("name", ["ddim", "ddpm", "dpm++", "euler", "euler_a", "heun"])
def test_a_scheduler_built_in_process_samples_as_the_same_one_saved_and_loaded(name, tmp_path):
    """diffusers' ``from_config`` drops keys the source left at their defaults; the training schedule must
    carry over anyway, or a model samples differently before and after a save."""
    TRAINING.save_config(tmp_path)
    loaded = DDPMScheduler.from_pretrained(tmp_path)
    fresh, reloaded = make_scheduler(name, TRAINING.config), make_scheduler(name, loaded.config)
    assert torch.equal(torch.as_tensor(fresh.alphas_cumprod), torch.as_tensor(TRAINING.alphas_cumprod))
    for scheduler in (fresh, reloaded):
        scheduler.set_timesteps(10)
    assert torch.equal(fresh.timesteps, reloaded.timesteps)


def test_overrides_win_over_the_configs_defaults():
    in_process = DDPMScheduler()  # every setting at diffusers' default
    assert make_scheduler("ddim", in_process.config, clip_sample=False).config.clip_sample is False
    student = student_scheduler(in_process.config)
    assert student.config.timestep_spacing == "trailing"
    assert student.config.clip_sample is False
    student.set_timesteps(4)  # the grid the student was distilled on (`trailing_timesteps`)
    assert student.timesteps.tolist() == [999, 749, 499, 249]
    custom = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    heun = convert_scheduler(type(make_scheduler("heun")), custom.config)
    assert torch.allclose(torch.as_tensor(heun.alphas_cumprod), custom.alphas_cumprod)


@pytest.mark.parametrize("name", ["ddim", "ddpm", "dpm++", "euler", "euler_a", "heun"])
def test_a_scheduler_sent_as_its_config_samples_alike_in_another_process(name):
    """A serving replica gets the scheduler a request chose as `scheduler_config`'s JSON (the form diffusers
    saves): the one it rebuilds samples the exact denoiser to the same values, bit for bit."""
    scheduler = make_scheduler(name, TRAINING.config)
    text = scheduler_config(scheduler)
    rebuilt = scheduler_from_config(text)
    assert type(rebuilt) is type(scheduler)
    assert scheduler_config(rebuilt) == text
    noise = randn((16, 1, 8, 8), generators(range(16)))
    denoiser = Denoiser(ExactGaussian("epsilon"), "epsilon")
    a, b = (
        sample(denoiser, s, noise, steps=12, generator=generators(range(100, 116)))
        for s in (scheduler, rebuilt)
    )
    assert torch.equal(a, b)
    with pytest.raises(DiffusionError, match="unknown scheduler class 'UNet2DModel'"):
        scheduler_from_config(text.replace(type(scheduler).__name__, "UNet2DModel"))
