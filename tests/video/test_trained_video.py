"""Video models trained for minutes on CPU, on camera pans and zooms over scikit-image photos, judged on clips of
a photo none of them saw (a cat). Run with ``scripts/test -m slow tests/video``.

Measured on a 2-core CPU (10 min for the three), 64 held-out clips, Fréchet distance (FD) on
`legato.video.metrics.VideoFeatures`:

- spatial x2, 16 -> 32 px, 600 steps (3.5 min): FD bilinear 0.0476, SR samples 0.0116 (4.1x closer);
  PSNR bilinear 29.63 dB, one-step SR (the posterior-mean estimate) 30.56, 10-step SR samples 29.02.
- temporal x2, 4 -> 8 frames at 16 px, fast pans, 1200 steps (3.3 min): FD linear interpolation 0.0189,
  SR samples 0.0161 (15% closer); PSNR of the new frames linear 26.84, one-step SR 26.75 (no better: motion
  compensation needs a bigger model or longer training than this test's budget).
- base model, 8 frames at 16 px, 1000 steps (3 min): FD to held-out clips of the training photos:
  trained 1.55, untrained 12.7 (the training clips themselves: 0.33); frame consistency trained 0.945,
  untrained 0.941, truth 0.995.

Multi-step samples trade PSNR for detail, as diffusion SR does (Saharia et al. 2021, SR3, Table 2).
"""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from legato.diffusion import (
    Denoiser,
    NoiseAugmentation,
    SuperResolution,
    VPSchedule,
    generators,
    randn,
    sample,
)
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer
from legato.video import UNet3D
from legato.video.metrics import frame_consistency, psnr, video_frechet_distance

from .conftest import camera_clips

pytestmark = pytest.mark.slow

SCHEDULE = VPSchedule.from_scheduler(DDPMScheduler())


def unit(video: torch.Tensor) -> torch.Tensor:
    return (video.clamp(-1, 1) + 1) / 2


def train(net: UNet3D, objective: Objective, items, steps: int, out, lr: float = 1e-3) -> torch.nn.Module:
    config = TrainConfig(
        steps=steps, batch_size=8, learning_rate=lr, ema_decay=0.99, progress=False, log_every=50
    )
    trainer = Trainer(net, SCHEDULE, objective, items, config, out)
    result = trainer.fit()
    assert sum(result.losses[-50:]) < 0.7 * sum(result.losses[:50])
    return trainer.trained_network()


def sr_model(sr: SuperResolution) -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(in_channels=3, cond_channels=sr.cond_channels(3), block_out_channels=(16, 32),
                  attention_levels=(False, True), heads=4, norm_groups=8, noise_level_conditioning=True)  # fmt: skip


def test_spatial_sr_beats_bilinear_upsampling(tmp_path):
    sr = SuperResolution(space=2, augmentation=NoiseAugmentation(max_level=250, sample_level=0))
    truth = camera_clips(64, frames=4, size=32, seed=1, held_out=True, max_shift=0.5)
    net = train(sr_model(sr), Objective("sample", augmentation=sr.augmentation),
                sr.items(camera_clips(512, frames=4, size=32, seed=0, held_out=False, max_shift=0.5)), 600, tmp_path)  # fmt: skip
    low = sr.downsample(truth)
    bilinear = sr.upsample(low)
    denoiser = Denoiser(net, "sample")
    scheduler = DDIMScheduler(timestep_spacing="trailing")
    mean = sr.generate(denoiser, scheduler, low, steps=1, generator=generators(range(64)))
    samples = sr.generate(denoiser, scheduler, low, steps=10, generator=generators(range(64)))
    fd_bilinear = video_frechet_distance(unit(bilinear), unit(truth))
    fd_sr = video_frechet_distance(unit(samples), unit(truth))
    psnr_bilinear, psnr_mean = psnr(bilinear, truth, 2).mean(), psnr(mean.clamp(-1, 1), truth, 2).mean()
    print(f"spatial x2: FD bilinear {fd_bilinear:.4f} SR {fd_sr:.4f}; PSNR bilinear {psnr_bilinear:.2f} "
          f"one-step SR {psnr_mean:.2f} 10-step SR {psnr(samples.clamp(-1, 1), truth, 2).mean():.2f}")  # fmt: skip
    assert fd_sr < 0.5 * fd_bilinear
    assert psnr_mean > psnr_bilinear + 0.3


def test_temporal_sr_beats_linear_frame_interpolation(tmp_path):
    sr = SuperResolution(time=2, augmentation=NoiseAugmentation(max_level=250, sample_level=0))
    truth = camera_clips(64, frames=8, size=16, seed=1, held_out=True, max_shift=2.0)
    net = train(sr_model(sr), Objective("sample", augmentation=sr.augmentation),
                sr.items(camera_clips(512, frames=8, size=16, seed=0, held_out=False, max_shift=2.0)), 1200, tmp_path)  # fmt: skip
    low = sr.downsample(truth)
    linear = sr.upsample(low, frames=8)
    denoiser = Denoiser(net, "sample")
    scheduler = DDIMScheduler(timestep_spacing="trailing")
    mean = sr.generate(denoiser, scheduler, low, steps=1, generator=generators(range(64)), frames=8)
    samples = sr.generate(denoiser, scheduler, low, steps=10, generator=generators(range(64)), frames=8)
    new = slice(1, None, 2)  # the frames temporal SR makes; the others are the input's
    psnr_linear = psnr(linear[:, :, new], truth[:, :, new], 2).mean()
    psnr_mean = psnr(mean[:, :, new].clamp(-1, 1), truth[:, :, new], 2).mean()
    fd_linear = video_frechet_distance(unit(linear), unit(truth))
    fd_sr = video_frechet_distance(unit(samples), unit(truth))
    print(f"temporal x2: FD linear {fd_linear:.4f} SR {fd_sr:.4f}; PSNR of new frames linear {psnr_linear:.2f} "
          f"one-step SR {psnr_mean:.2f}")  # fmt: skip
    assert torch.allclose(samples[:, :, ::2], truth[:, :, ::2], atol=1e-5)
    assert fd_sr < 0.9 * fd_linear
    assert psnr_mean > psnr_linear - 0.3  # within rounding of the baseline: it does not beat it at this size


def test_base_model_learns_camera_moves(tmp_path):
    clips = camera_clips(512, frames=8, size=16, seed=0, held_out=False, max_shift=1.0)
    truth = camera_clips(64, frames=8, size=16, seed=1, held_out=False, max_shift=1.0)

    def model():
        torch.manual_seed(0)
        return UNet3D(in_channels=3, block_out_channels=(32, 64), attention_levels=(False, True), heads=4,
                      norm_groups=8)  # fmt: skip

    net = train(model(), Objective("v_prediction"), TensorItems(clips), 1000, tmp_path, lr=2e-3)
    noise = randn((64, 3, 8, 16, 16), generators(range(64)))
    trained = sample(Denoiser(net, "v_prediction"), DDIMScheduler(), noise, steps=25)
    untrained = sample(Denoiser(model().eval(), "v_prediction"), DDIMScheduler(), noise, steps=25)
    fd_trained = video_frechet_distance(unit(trained), unit(truth))
    fd_untrained = video_frechet_distance(unit(untrained), unit(truth))
    consistency = frame_consistency(unit(trained)).mean()
    print(f"base: FD trained {fd_trained:.4f} untrained {fd_untrained:.4f} train clips "
          f"{video_frechet_distance(unit(clips[:64]), unit(truth)):.4f}; frame consistency trained {consistency:.3f} "
          f"truth {frame_consistency(unit(truth)).mean():.3f} untrained {frame_consistency(unit(untrained)).mean():.3f}")  # fmt: skip
    assert fd_trained < 0.5 * fd_untrained
    assert consistency > frame_consistency(unit(untrained)).mean()
