"""The one loop: determinism, rank, img2img, inpainting, guidance, callbacks, prediction types."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from legato.diffusion import (
    ClassifierFreeGuidance,
    Conditioning,
    Denoiser,
    DiffusionError,
    EDMDenoiser,
    SamplingCancelled,
    VPSchedule,
    generators,
    make_scheduler,
    randn,
    register_network,
    sample,
)
from legato.diffusion.schedulers import VP_SCHEDULERS

from .conftest import bars, orientation, tiny_unet


@pytest.fixture(scope="module")
def unet_denoiser() -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(tiny_unet().eval())


class Tiny3D(nn.Module):
    """A rank-5 test network: the loop must not care whether samples are images or videos."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 2, 3, padding=1)
        self.time = nn.Linear(1, 2)

    def forward(self, x, t):
        return self.conv(x) + self.time(t.float()[:, None] / 1000)[:, :, None, None, None]


@register_network(Tiny3D, ranks=(5,))
def _call_tiny3d(network, x, t, cond):
    return network(x, t)


@pytest.mark.parametrize("name", VP_SCHEDULERS)  # flow: test_flow.py
def test_every_scheduler_runs_on_images_and_videos(name, unet_denoiser):
    scheduler = make_scheduler(name)
    image = sample(
        unet_denoiser,
        scheduler,
        randn((2, 2, 16, 16), generators([1, 2])),
        steps=6,
        generator=generators([1, 2]),
    )
    assert image.shape == (2, 2, 16, 16)
    assert bool(torch.isfinite(image).all())
    torch.manual_seed(0)
    video_denoiser = Denoiser(Tiny3D().eval())
    noise = randn((2, 2, 3, 8, 8), generators([1, 2]))
    video = sample(video_denoiser, scheduler, noise, steps=6, generator=generators([3, 4]))
    assert video.shape == (2, 2, 3, 8, 8)
    assert bool(torch.isfinite(video).all())


@pytest.mark.parametrize("name", ["ddpm", "euler_a", "dpm++"])
def test_an_item_does_not_depend_on_its_batch(name, trained_bars):
    # On a trained model the bound is meaningful: float32 round-off of batched against single GEMMs, relative to
    # the samples' size (on an AVX2-only CPU 1.2e-5 apart at |x| ~ 6). The fixture's samples leave [-1, 1]
    # wherever nothing clips them: unclipped DDIM reaches |x| ~ 6 too, and with the exact denoiser every
    # scheduler stays in range (test_exact_denoiser.py), so it is the 400-step model's error, not the loop's.
    scheduler = make_scheduler(name)
    seeds, labels = [5, 6, 7], torch.tensor([0, 1, 0])

    def run(picked: list[int]) -> torch.Tensor:
        chosen = [seeds[i] for i in picked]
        noise = randn((len(picked), 1, 16, 16), generators(chosen))
        cond = trained_bars.cond(labels[picked])
        return sample(
            trained_bars.denoiser, scheduler, noise, steps=8, cond=cond, generator=generators(chosen)
        )

    batch = run([0, 1, 2])
    bound = 1e-5 * max(1.0, float(batch.abs().max()))
    assert (batch[1:2] - run([1])).abs().max() <= bound
    assert (batch[2:3] - run([2, 0])[:1]).abs().max() <= bound
    assert torch.equal(batch, run([0, 1, 2]))  # same seeds, same device: same bytes


def test_scheduler_passed_in_is_not_modified(unet_denoiser):
    scheduler = DDIMScheduler()
    before = scheduler.timesteps.clone()
    sample(unet_denoiser, scheduler, torch.randn(1, 2, 16, 16), steps=5)
    assert torch.equal(scheduler.timesteps, before)


def test_img2img_at_strength_one_equals_sampling_from_noise(unet_denoiser):
    noise = randn((2, 2, 16, 16), generators([8, 9]))
    init = torch.rand(2, 2, 16, 16) * 2 - 1
    plain = sample(unet_denoiser, DDIMScheduler(), noise, steps=10)
    from_init = sample(unet_denoiser, DDIMScheduler(), noise, steps=10, init=init, strength=1.0)
    assert torch.equal(plain, from_init)


def test_img2img_strength_runs_that_share_of_the_steps_and_stays_near_the_input(trained_bars):
    x0, labels = bars(4, torch.Generator().manual_seed(11))
    cond = trained_bars.cond(labels)
    noise = randn(x0.shape, generators(range(4)))
    seen = []
    out = sample(
        trained_bars.denoiser, DDIMScheduler(clip_sample=False), noise, steps=20, cond=cond,
        init=x0, strength=0.3, callback=seen.append,
    )  # fmt: skip
    assert len(seen) == 6  # int(20 * 0.3)
    fresh = sample(trained_bars.denoiser, DDIMScheduler(clip_sample=False), noise, steps=20, cond=cond)
    assert (out - x0).pow(2).mean() < 0.25 * (fresh - x0).pow(2).mean()


@pytest.mark.parametrize(("name", "resample"), [("ddim", 1), ("euler", 1), ("dpm++", 1), ("ddpm", 3)])
def test_inpainting_leaves_the_kept_region_as_it_was(name, resample, trained_bars):
    known, labels = bars(2, torch.Generator().manual_seed(12))
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., :, 8:] = 1.0  # regenerate the right half
    noise = randn(known.shape, generators([1, 2]))
    out = sample(
        trained_bars.denoiser, make_scheduler(name), noise, steps=10, cond=trained_bars.cond(labels),
        mask=mask, known=known, resample=resample, generator=generators([3, 4]),
    )  # fmt: skip
    assert torch.equal(out[..., :8], known[..., :8])
    assert not torch.allclose(out[..., 8:], known[..., 8:], atol=1e-3)


def test_guidance_scale_one_is_the_conditional_model(trained_bars):
    labels = torch.tensor([0, 1])
    cond = trained_bars.cond(labels)
    noise = randn((2, 1, 16, 16), generators([1, 2]))
    alone = sample(trained_bars.denoiser, DDIMScheduler(), noise, steps=8, cond=cond)
    skip = ClassifierFreeGuidance(trained_bars.denoiser, trained_bars.uncond(), scale=1.0)
    assert torch.equal(sample(skip, DDIMScheduler(), noise, steps=8, cond=cond), alone)
    # Per-item scales take the batched path: the scale-1 item still equals the conditional model.
    mixed = ClassifierFreeGuidance(
        trained_bars.denoiser, trained_bars.uncond(), scale=torch.tensor([1.0, 4.0])
    )
    out = sample(mixed, DDIMScheduler(), noise, steps=8, cond=cond)
    assert (out[0] - alone[0]).abs().max() <= 1e-5
    assert (out[1] - alone[1]).abs().max() > 1e-3


def test_trained_model_follows_its_prompt_and_guidance_sharpens_it(trained_bars):
    labels = torch.tensor([0, 1] * 8)
    noise = randn((16, 1, 16, 16), generators(range(16)))
    guided = ClassifierFreeGuidance(trained_bars.denoiser, trained_bars.uncond(), scale=3.0)
    out = sample(guided, DDIMScheduler(clip_sample=False), noise, steps=20, cond=trained_bars.cond(labels))
    assert (orientation(out) == labels).float().mean() >= 0.9


def test_callback_sees_every_step_and_can_cancel(unet_denoiser):
    seen = []
    sample(unet_denoiser, DDIMScheduler(), torch.randn(1, 2, 16, 16), steps=7, callback=seen.append)
    assert [s.index for s in seen] == list(range(7))
    assert all(s.total == 7 for s in seen)
    with pytest.raises(SamplingCancelled, match="step 3 of 7"):
        sample(
            unet_denoiser, DDIMScheduler(), torch.randn(1, 2, 16, 16), steps=7, callback=lambda s: s.index < 2
        )


class AsVelocity(nn.Module):
    """An epsilon network re-expressed as a v- or x0-predicting one: v = (eps - sigma x) / alpha and
    x0 = (x - sigma eps) / alpha, with alpha and sigma of the training schedule."""

    def __init__(self, eps_net: nn.Module, schedule: VPSchedule, kind: str) -> None:
        super().__init__()
        self.eps_net, self.schedule, self.kind = eps_net, schedule, kind

    def forward(self, x, t):
        eps = self.eps_net(x, t).sample
        alpha, sigma = (v[:, None, None, None] for v in self.schedule.alpha_sigma(t))
        return (eps - sigma * x) / alpha if self.kind == "v" else (x - sigma * eps) / alpha


@register_network(AsVelocity, ranks=(4,))
def _call_as_velocity(network, x, t, cond):
    return network(x, t)


class AsEDM(nn.Module):
    """The same epsilon network as the raw network F of an EDMDenoiser: F = (x0 - c_skip x_ve) / c_out."""

    def __init__(self, eps_net: nn.Module, edm: EDMDenoiser) -> None:
        super().__init__()
        self.eps_net, self.edm = eps_net, edm

    def forward(self, scaled, c_noise):
        sigma = (c_noise / 250.0).exp()
        c_skip, c_out, c_in, _ = (v[:, None, None, None] for v in self.edm.precondition(sigma))
        x_ve = scaled / c_in
        t = self.edm.schedule.timestep_of(sigma)
        sigma = sigma[:, None, None, None]
        alpha = 1 / (1 + sigma**2).sqrt()  # VE -> VP: x_vp = alpha x_ve
        eps = self.eps_net(alpha * x_ve, t).sample
        x0 = x_ve - sigma * eps
        return (x0 - c_skip * x_ve) / c_out


@register_network(AsEDM, ranks=(4,))
def _call_as_edm(network, x, t, cond):
    return network(x, t)


@pytest.mark.parametrize("name", ["ddim", "euler", "dpm++"])
def test_prediction_types_are_adapters_the_loop_does_not_see(name, unet_denoiser):
    eps_net = unet_denoiser.network
    scheduler = make_scheduler(name)
    schedule = VPSchedule.from_scheduler(scheduler)
    noise = randn((2, 2, 16, 16), generators([1, 2]))
    reference = sample(unet_denoiser, scheduler, noise, steps=10)
    for kind, prediction in (("v", "v_prediction"), ("x0", "sample")):
        other = sample(Denoiser(AsVelocity(eps_net, schedule, kind), prediction), scheduler, noise, steps=10)
        assert (other - reference).abs().max() <= 1e-3 * max(1.0, float(reference.abs().max()))
    edm = EDMDenoiser(nn.Identity(), schedule)
    edm.network = AsEDM(eps_net, edm)
    other = sample(edm, scheduler, noise, steps=10)
    assert (other - reference).abs().max() <= 1e-3 * max(1.0, float(reference.abs().max()))


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_edm_denoiser_samples_with_karras_schedulers(name):
    from legato.diffusion import DiT

    torch.manual_seed(0)
    dit = DiT(in_channels=2, patch_size=2, hidden_size=32, depth=2, num_heads=2).eval()
    scheduler = make_scheduler(name, DDPMScheduler().config)
    edm = EDMDenoiser(dit, VPSchedule.from_scheduler(scheduler))
    out = sample(edm, scheduler, randn((2, 2, 8, 8), generators([1, 2])), steps=5)
    assert out.shape == (2, 2, 8, 8)
    assert bool(torch.isfinite(out).all())


def test_conditioning_rows_are_checked():
    with pytest.raises(ValueError, match="same fields"):
        Conditioning(text=torch.zeros(1, 2, 3)).cat(Conditioning(pooled=torch.zeros(1, 3)))


def test_reconstruction_guidance_draws_the_generated_part_to_agree_with_the_kept_one(trained_bars):
    """Inpainting the right half of bar images: with reconstruction guidance the new half continues the
    kept one (the same bars) more closely than with replacement alone, and the kept half stays exact."""
    known, labels = bars(8, torch.Generator().manual_seed(5))
    mask = torch.zeros(8, 1, 16, 16)
    mask[..., :, 8:] = 1.0
    noise = randn(known.shape, generators(range(8)))
    cond = trained_bars.cond(labels)
    errors = {}
    for weight in (0.0, 4.0):
        out = sample(trained_bars.denoiser, DDIMScheduler(clip_sample=False), noise, steps=10, cond=cond,
                     mask=mask, known=known, reconstruction=weight)  # fmt: skip
        assert torch.equal(out[..., :8], known[..., :8])
        errors[weight] = float((out[..., 8:] - known[..., 8:]).abs().mean())
    print(
        f"error of the generated half: replacement {errors[0.0]:.3f}, reconstruction guidance {errors[4.0]:.3f}"
    )
    assert errors[4.0] < errors[0.0]
    with pytest.raises(DiffusionError, match="reconstruction=-1"):
        sample(
            trained_bars.denoiser, DDIMScheduler(), noise, steps=2, mask=mask, known=known, reconstruction=-1
        )
