"""Super-resolution plumbing: resampling, residual targets, noise augmentation, camera moves and metrics."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from legato.diffusion import Conditioning, Denoiser, DiffusionError, NoiseAugmentation, VPSchedule, generators
from legato.diffusion.superres import SuperResolution, interpolate_frames
from legato.diffusion.training import Objective
from legato.video import UNet3D, VideoError
from legato.video.camera import camera_move
from legato.video.metrics import frame_consistency, frechet_distance, psnr, video_frechet_distance

SCHEDULE = VPSchedule.from_scheduler(DDPMScheduler())


def ramp(frames: int = 5) -> torch.Tensor:
    """A video whose every pixel of frame ``t`` is ``t``: linear in time."""
    return torch.arange(frames, dtype=torch.float32)[None, None, :, None, None].expand(2, 3, frames, 4, 4)


def test_temporal_downsampling_keeps_every_other_frame_and_interpolation_restores_linear_motion():
    sr = SuperResolution(time=2)
    video = ramp(5)
    low = sr.downsample(video)
    assert low.shape == (2, 3, 3, 4, 4)
    assert torch.equal(low[0, 0, :, 0, 0], torch.tensor([0.0, 2.0, 4.0]))
    assert torch.equal(sr.upsample(low, frames=5), video)  # kept frames exact, the rest linear
    assert sr.upsample(low).shape[2] == 6  # default T * time: the trailing frame holds the last one
    assert torch.equal(interpolate_frames(low, 2)[:, :, -1], low[:, :, -1])


def test_spatial_round_trip_of_a_smooth_video_is_close_and_shapes_follow_the_factor():
    x = torch.linspace(-1, 1, 32)
    smooth = (x[None, :] * x[:, None]).expand(1, 3, 4, 32, 32).contiguous()
    for space in (2, 4):
        sr = SuperResolution(space=space)
        low = sr.downsample(smooth)
        assert low.shape == (1, 3, 4, 32 // space, 32 // space)
        up = sr.upsample(low)
        assert up.shape == smooth.shape
        assert psnr(up, smooth, data_range=2).min() > 30


def test_items_hold_the_scaled_residual_and_from_target_inverts_it():
    video = torch.rand(3, 3, 4, 16, 16) * 2 - 1
    sr = SuperResolution(space=2, residual_scale=0.25)
    items = sr.items(video)
    assert items[1][1].low_res.shape == (3, 4, 16, 16)
    target, cond = items[1]
    assert torch.allclose(sr.from_target(target, cond.low_res), video[1], atol=1e-6)
    assert torch.allclose(target, (video[1] - cond.low_res) / 0.25)
    plain = SuperResolution(space=2, residual_scale=None).items(video)
    assert torch.equal(plain[1][0], video[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"space": 0}, "space=0"),
        ({"time": 1.5}, "time=1.5"),
        ({}, "not super-resolution"),
        ({"space": 2, "residual_scale": 0.0}, "residual_scale=0.0"),
    ],
)
def test_bad_factors_name_the_value(kwargs, match):
    with pytest.raises(DiffusionError, match=match):
        SuperResolution(**kwargs)


def test_sizes_that_do_not_divide_are_refused():
    with pytest.raises(DiffusionError, match=r"18x16 do not divide by space=4"):
        SuperResolution(space=4).downsample(torch.zeros(1, 3, 2, 18, 16))
    with pytest.raises(DiffusionError, match=r"expected a \(B, C, T, H, W\) video for space=1, time=2"):
        SuperResolution(time=2).downsample(torch.zeros(1, 3, 16, 16))


def test_images_such_as_mel_spectrograms_take_spatial_sr():
    sr = SuperResolution(space=2, augmentation=NoiseAugmentation(100, 0))
    mel = torch.rand(2, 1, 16, 32) * 2 - 1
    low = sr.downsample(mel)
    assert low.shape == (2, 1, 8, 16)
    assert sr.upsample(low).shape == mel.shape
    target, cond = sr.items(mel)[0]
    assert target.shape == cond.low_res.shape == (1, 16, 32)
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, cond_channels=sr.cond_channels(1), block_out_channels=(8, 16), norm_groups=4,
                 heads=1, noise_level_conditioning=True).eval()  # fmt: skip
    out = sr.generate(Denoiser(net, "sample"), DDIMScheduler(), low, steps=2, generator=generators([0, 1]))
    assert out.shape == mel.shape


def test_noise_augmentation_levels_and_determinism():
    low = torch.rand(64, 3, 2, 4, 4)
    cond = Conditioning(low_res=low)
    aug = NoiseAugmentation(max_level=200, sample_level=0)
    trained = aug.train(cond, SCHEDULE, torch.Generator().manual_seed(0))
    assert trained.noise_level.min() >= 0
    assert trained.noise_level.max() <= 200
    assert trained.noise_level.unique().numel() > 20  # random per item
    again = aug.train(cond, SCHEDULE, torch.Generator().manual_seed(0))
    assert torch.equal(trained.low_res, again.low_res)
    # Noise grows with the level the model is told.
    err = (trained.low_res - low).flatten(1).pow(2).mean(1)
    order = trained.noise_level.argsort()
    assert err[order[:16]].mean() < err[order[-16:]].mean()
    # Sampling at level 0 keeps the input exactly; per-item generators make items independent of the batch.
    clean = aug.sample(cond, SCHEDULE, generators(range(64)))
    assert torch.equal(clean.low_res, low)
    assert torch.equal(clean.noise_level, torch.zeros(64))
    noisy = NoiseAugmentation(200, 100)
    whole = noisy.sample(cond, SCHEDULE, generators(range(64)))
    part = noisy.sample(Conditioning(low_res=low[5:7]), SCHEDULE, generators(range(5, 7)))
    assert torch.equal(whole.low_res[5:7], part.low_res)


def test_noise_augmentation_errors_name_the_fix():
    with pytest.raises(DiffusionError, match="sample_level=300 must lie in"):
        NoiseAugmentation(max_level=250, sample_level=300)
    with pytest.raises(DiffusionError, match="low_res"):
        NoiseAugmentation().train(Conditioning(), SCHEDULE, torch.Generator())
    with pytest.raises(DiffusionError, match="max_level=1000"):
        NoiseAugmentation(1000, 0).sample(
            Conditioning(low_res=torch.zeros(1, 1, 1, 1)), SCHEDULE, torch.Generator()
        )


def test_objective_noises_the_low_res_input_and_tells_the_model():
    seen = []

    class Spy(UNet3D):
        def forward(self, sample, timestep, **kwargs):
            seen.append(kwargs["noise_level"])
            return super().forward(sample, timestep, **kwargs)

    torch.manual_seed(0)
    net = Spy(in_channels=3, cond_channels=3, block_out_channels=(8, 16), norm_groups=4, heads=1,
              noise_level_conditioning=True)  # fmt: skip
    objective = Objective("sample", augmentation=NoiseAugmentation(100, 0))
    video = torch.rand(4, 3, 2, 8, 8)
    loss = objective.loss(net, SCHEDULE, video, Conditioning(low_res=video), torch.Generator().manual_seed(0))
    assert loss.shape == (4,)
    assert seen[0].shape == (4,)
    assert seen[0].max() <= 100


def test_temporal_sr_keeps_the_frames_it_was_given():
    sr = SuperResolution(time=2, augmentation=NoiseAugmentation(100, 0))
    torch.manual_seed(0)
    net = UNet3D(in_channels=3, cond_channels=sr.cond_channels(3), block_out_channels=(8, 16), norm_groups=4,
                 heads=1, noise_level_conditioning=True).eval()  # fmt: skip
    low = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    out = sr.generate(
        Denoiser(net, "sample"), DDIMScheduler(), low, steps=3, generator=generators([0, 1]), frames=5
    )
    assert out.shape == (2, 3, 5, 8, 8)
    assert torch.allclose(out[:, :, ::2], low, atol=1e-5)
    assert not torch.allclose(out[:, :, 1], (low[:, :, 0] + low[:, :, 1]) / 2, atol=1e-3)  # generated


def test_camera_move_pans_and_zooms(astronaut):
    still = camera_move(astronaut, 3, 32)
    assert still.shape == (3, 3, 32, 32)
    assert torch.allclose(still[:, 0], still[:, 2])
    assert still.min() >= 0
    assert still.max() <= 1
    pan = camera_move(astronaut, 9, 32, start=(-0.5, 0.0), end=(0.5, 0.0), view=(0.5, 0.5))
    # The photo is shrunk to 64x64 so that the half-size window samples it 1:1; the centre travels
    # (0.5 - -0.5) * (1 - 0.5) = 0.5 half-widths = 16 px in 8 steps: 2 px per frame, to the right.
    assert torch.allclose(pan[:, 1, :, :-2], pan[:, 0, :, 2:], atol=1e-4)
    zoom = camera_move(astronaut, 2, 32, view=(1.0, 0.5))
    assert not torch.allclose(zoom[:, 0], zoom[:, 1], atol=0.05)
    with pytest.raises(VideoError, match=r"view=\(1.5, 1.0\)"):
        camera_move(astronaut, 2, 32, view=(1.5, 1.0))


def test_metrics_order_what_they_should(astronaut):
    clip = camera_move(astronaut, 8, 32, start=(-0.3, -0.3), end=(0.3, 0.3), view=(0.6, 0.4))[None]
    assert psnr(clip, clip).item() > 150
    noisy = (clip + 0.1 * torch.randn(clip.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert psnr(noisy, clip).item() == pytest.approx(20.5, abs=1.0)
    shuffled = clip[:, :, torch.randperm(8, generator=torch.Generator().manual_seed(0))]
    flicker = clip.clone()
    flicker[:, :, 1::2] = 1 - flicker[:, :, 1::2]
    assert frame_consistency(clip) > frame_consistency(shuffled) > frame_consistency(flicker)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 16, generator=gen), torch.randn(500, 16, generator=gen)
    assert frechet_distance(a, b) < 0.5
    assert frechet_distance(a, b + 1) == pytest.approx(16 + frechet_distance(a, b), abs=0.5)
    blurred = SuperResolution(space=4).upsample(SuperResolution(space=4).downsample(clip))
    assert video_frechet_distance(clip.expand(4, -1, -1, -1, -1), clip.expand(4, -1, -1, -1, -1)) < 1e-6
    with pytest.raises(VideoError, match="frame_consistency needs"):
        frame_consistency(clip[:, :, :1])
    assert psnr(blurred, clip).item() < 40
