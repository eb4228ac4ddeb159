"""Flow matching in the one loop, with a denoiser whose answer is known in closed form.

For data ``x0 ~ N(mu, s^2)`` and the rectified-flow path ``x_t = (1 - r) x0 + r eps`` (``t = 1000 r``), the
ideal velocity ``E[eps - x0 | x_t]`` is linear in ``x_t``, and its ODE carries the starting noise ``z`` to
``mu + s z``: a deterministic flow sampler's error against that is its discretisation error alone. Nothing is
trained, so a failure is the loop's or a scheduler's. The schedulers are the ones the flow-matching checkpoints
ship with: ``FlowMatchEulerDiscreteScheduler`` with a shift (LTX-Video, and Wan converted), UniPC with flow
sigmas (Wan 2.1), and DPM-Solver++ with flow sigmas.
"""

import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from torch import nn

from legato.diffusion import (
    Denoiser,
    DiffusionError,
    generators,
    make_scheduler,
    randn,
    register_network,
    sample,
    scheduler_config,
    scheduler_from_config,
)
from legato.diffusion.schedulers import Timesteps, is_flow

MU, STD = 0.3, 0.5
SHIFT = 3.0
WAN = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=SHIFT)
LTX = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_image_seq_len=1024, max_image_seq_len=4096,
                                      base_shift=0.95, max_shift=2.05, shift_terminal=0.1)  # fmt: skip


class ExactFlow(nn.Module):
    """``E[eps - x0 | x_t]`` for ``x0 ~ N(MU, STD^2)`` on the rectified-flow path."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r = (t.double() / 1000).view(-1, *[1] * (x.ndim - 1))
        var, xd = STD**2, x.double()
        x0 = MU + (1 - r) * var / ((1 - r) ** 2 * var + r**2) * (xd - (1 - r) * MU)
        eps = (xd - (1 - r) * x0) / r
        return (eps - x0).to(x.dtype)


@register_network(ExactFlow, ranks=(3, 4, 5))
def _call_exact(network, x, t, cond):
    return network(x, t)


DENOISER = Denoiser(ExactFlow(), "flow_prediction")


def error(scheduler, steps: int, schedule: Timesteps | None = None, shape=(256, 1, 8, 8)) -> float:
    noise = randn(shape, generators(range(shape[0])))
    x = sample(DENOISER, scheduler, noise, steps=steps, schedule=schedule)
    return float((x - (MU + STD * noise)).pow(2).mean().sqrt())


# Measured RMS errors (Wan's schedule, shift 3) at 10/20/40/80 steps: flow_euler 0.142/0.071/0.036/0.018 (first
# order); unipc 0.090/0.014/0.0021/0.0015 and dpm++ 0.093/0.014/0.0049/0.0040 (higher order, down to a floor
# set by the last sigma, 1/1000 shifted).
@pytest.mark.parametrize(
    ("name", "at_40", "ratio"), [("flow_euler", 0.04, 1.8), ("unipc", 0.003, 5), ("dpm++", 0.006, 5)]
)
def test_flow_samplers_carry_noise_to_the_exact_answer(name, at_40, ratio):
    scheduler = make_scheduler(name, WAN.config)
    assert is_flow(scheduler)
    assert error(scheduler, 40) < at_40
    assert error(scheduler, 10) / error(scheduler, 20) > ratio


def test_the_shift_carries_from_one_flow_scheduler_to_another():
    euler = make_scheduler("flow_euler", WAN.config)
    assert euler.config.shift == SHIFT
    back = make_scheduler("unipc", euler.config)
    assert (back.config.flow_shift, back.config.use_flow_sigmas, back.config.prediction_type) == (
        SHIFT, True, "flow_prediction")  # fmt: skip
    # the shift is applied: the unshifted grid's middle, about 0.5, maps to about 3 * 0.5 / (1 + 2 * 0.5) = 0.75
    euler.set_timesteps(3)
    assert 0.74 < euler.sigmas[1].item() < 0.76


def test_ltx_timesteps_shift_with_the_samples_size():
    # LTX's pipeline passes sigmas linspace(1, 1/n, n) and a shift mu that grows with the latent token count
    rule = Timesteps("linspace")
    small, large = (rule.kwargs(LTX, 8, shape) for shape in [(1, 8, 3, 16, 16), (1, 8, 5, 32, 32)])
    assert small["mu"] < large["mu"]
    assert list(small["sigmas"]) == pytest.approx([1 - k * (7 / 8) / 7 for k in range(8)])
    # measured 0.037: LTX's schedule ends at sigma 0.1 (shift_terminal), then one Euler step to 0
    assert error(LTX, 30, rule, shape=(64, 2, 3, 4, 4)) < 0.05
    with pytest.raises(ValueError, match="mu"):  # the scheduler cannot run without the rule's shift
        error(LTX, 30, None, shape=(4, 2, 3, 4, 4))


def test_img2img_and_inpainting_under_flow():
    scheduler = make_scheduler("flow_euler", WAN.config)
    noise = randn((4, 1, 8, 8), generators(range(4)))
    init = MU + STD * randn((4, 1, 8, 8), generators(range(10, 14)))
    # strength 1 equals plain sampling; a small strength stays near init (flow: x = (1 - r) init + r noise)
    full = sample(DENOISER, scheduler, noise, steps=10)
    assert torch.allclose(sample(DENOISER, scheduler, noise, steps=10, init=init, strength=1.0), full)
    light = sample(DENOISER, scheduler, noise, steps=10, init=init, strength=0.2)
    assert (light - init).abs().mean() < 0.5 * (full - init).abs().mean()
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1
    inpainted = sample(DENOISER, scheduler, noise, steps=10, mask=mask, known=init)
    assert torch.equal(inpainted[..., :4], init[..., :4])
    with pytest.raises(DiffusionError, match="reconstruction guidance needs a variance-preserving"):
        sample(DENOISER, scheduler, noise, steps=10, mask=mask, known=init, reconstruction=1.0)


def test_flow_and_variance_preserving_models_are_not_mixed():
    with pytest.raises(DiffusionError, match="does not sample a flow-matching model"):
        make_scheduler("euler", WAN.config)
    with pytest.raises(DiffusionError, match="variance-preserving"):
        make_scheduler("flow_euler", DDPMScheduler().config)
    with pytest.raises(DiffusionError, match="cannot be sampled by DDPMScheduler"):
        sample(DENOISER, DDPMScheduler(), torch.zeros(1, 1, 4, 4), steps=2)


def test_a_flow_scheduler_travels_as_its_config():
    scheduler = make_scheduler("unipc", WAN.config)
    rebuilt = scheduler_from_config(scheduler_config(scheduler))
    noise = randn((4, 1, 8, 8), generators(range(4)))
    assert torch.equal(sample(DENOISER, scheduler, noise, steps=6), sample(DENOISER, rebuilt, noise, steps=6))


def test_inversion_under_flow_runs_the_ode_upwards_and_euler_sampling_rebuilds_the_input():
    # Measured: the round trip's RMS error 0.028/0.014/0.0069 at 20/40/80 steps (first order, both ways); the
    # inverted latents' std 1.11/1.05/1.03, towards the noise's 1 as the steps shrink.
    from legato.diffusion import invert

    x0 = MU + STD * randn((256, 1, 8, 8), generators(range(256)))
    euler = make_scheduler("flow_euler", WAN.config)
    errors = []
    for steps in (40, 80):
        z = invert(DENOISER, WAN, x0, steps=steps)
        errors.append(float((sample(DENOISER, euler, z, steps=steps) - x0).pow(2).mean().sqrt()))
    assert abs(float(z.std()) - 1.0) < 0.05
    assert errors[1] < 0.01
    assert errors[0] / errors[1] > 1.7
