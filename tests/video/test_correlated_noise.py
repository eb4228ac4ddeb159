"""Noise correlated across frames (PYoCo's mixed noise): its exact covariance, the objective that trains on it,
and the stage that samples from it, through save and load."""

import json

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from legato.cascade import Cascade, Stage
from legato.diffusion import Conditioning, Denoiser, DiffusionError, correlate_frames, randn
from legato.diffusion.denoisers import VPSchedule
from legato.diffusion.training import Objective
from legato.video import UNet3D

FRAMES = 6


def small() -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(in_channels=3, block_out_channels=(8, 16), attention_levels=(False, False), heads=2,
                  norm_groups=4).eval()  # fmt: skip


@pytest.mark.parametrize("correlation", [0.3, 0.5, 0.9])
def test_the_map_gives_unit_variance_frames_correlated_exactly_as_asked(correlation):
    # the map is linear along the frames: applied to the identity it is its own matrix M, and M M^T the
    # covariance of the noise it makes from independent noise
    matrix = correlate_frames(torch.eye(FRAMES, dtype=torch.float64)[None, None], correlation)[0, 0]
    wanted = (1 - correlation) * torch.eye(FRAMES, dtype=torch.float64) + correlation
    torch.testing.assert_close(matrix @ matrix.T, wanted)
    noise = torch.randn(4096, 1, FRAMES, 2, 2, generator=torch.Generator().manual_seed(1))
    frames = correlate_frames(noise, correlation).transpose(0, 2).reshape(FRAMES, -1)
    measured = torch.corrcoef(frames)[~torch.eye(FRAMES, dtype=torch.bool)]
    assert (measured - correlation).abs().max() < 0.05
    assert (frames.std(1) - 1).abs().max() < 0.05


def test_no_correlation_is_the_noise_itself_and_bad_values_name_the_range():
    noise = torch.randn(2, 3, FRAMES, 4, 4)
    assert correlate_frames(noise, 0) is noise
    for bad in (1.0, -0.1, float("nan"), True):
        with pytest.raises(DiffusionError, match=r"frame_correlation=.* must lie in \[0, 1\)"):
            correlate_frames(noise, bad)
    with pytest.raises(DiffusionError, match="must lie in"):
        Objective(frame_correlation=1.5)


@pytest.mark.parametrize("correlation", [0.0, 0.7])
def test_the_objective_noises_videos_with_frames_correlated_as_set(correlation):
    """x0 = 0 makes the network's input sigma * noise: its frames show the correlation the objective drew."""
    network, seen = small(), []
    network.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    schedule = VPSchedule.from_scheduler(DDIMScheduler())
    x0 = torch.zeros(48, 3, FRAMES, 4, 4)
    Objective("epsilon", frame_correlation=correlation).loss(
        network, schedule, x0, Conditioning(), torch.Generator().manual_seed(0)
    )
    frames = (
        seen[0] / seen[0].flatten(1).std(1)[:, None, None, None, None]
    )  # each item is scaled by its sigma
    frames = frames.transpose(0, 2).reshape(FRAMES, -1)
    measured = torch.corrcoef(frames)[~torch.eye(FRAMES, dtype=torch.bool)].mean()
    assert abs(measured - correlation) < 0.05, measured
    with pytest.raises(DiffusionError, match=r"correlates the frames of videos .* set it to 0"):
        Objective(frame_correlation=0.5).loss(
            network, schedule, torch.zeros(2, 3, 4, 4), Conditioning(), torch.Generator()
        )


def stage(correlation: float, scheduler=None) -> Stage:
    return Stage("base", Denoiser(small()), scheduler or DDIMScheduler(), steps=2, shape=(3, FRAMES, 8, 8),
                 frame_correlation=correlation)  # fmt: skip


def test_a_stage_starts_from_its_seeds_noise_correlated_and_keeps_the_setting_through_save_and_load(tmp_path):
    base, plain = stage(0.6), stage(0.0)
    gens = base.generators([3, 4], 0)
    torch.testing.assert_close(
        base.starting_noise(gens),
        correlate_frames(randn((2, 3, FRAMES, 8, 8), base.generators([3, 4], 0)), 0.6),
    )
    with torch.no_grad():
        out = base.run(None, Conditioning(), [3, 4], 0)
        from_noise = base.run(
            None, Conditioning(), [3, 4], 0, noise=base.starting_noise(base.generators([3, 4], 0))
        )
        independent = plain.run(None, Conditioning(), [3, 4], 0)
    torch.testing.assert_close(out, from_noise)
    assert (out - independent).abs().max() > 1e-3
    Cascade((base,)).save_pretrained(tmp_path / "correlated")
    Cascade((plain,)).save_pretrained(tmp_path / "plain")
    assert (
        json.loads((tmp_path / "correlated" / "cascade.json").read_text())["stages"][0]["frame_correlation"]
        == 0.6
    )
    assert (
        "frame_correlation" not in json.loads((tmp_path / "plain" / "cascade.json").read_text())["stages"][0]
    )
    loaded = Cascade.from_pretrained(tmp_path / "correlated").stages[0]
    assert loaded.frame_correlation == 0.6
    with torch.no_grad():
        torch.testing.assert_close(loaded.run(None, Conditioning(), [3, 4], 0), out)
    assert Cascade.from_pretrained(tmp_path / "plain").stages[0].frame_correlation == 0.0


def test_a_correlated_stage_refuses_what_would_break_the_correlation():
    with pytest.raises(DiffusionError, match=r"DDPMScheduler draws independent noise .* ddim, dpm\+\+"):
        stage(0.5, DDPMScheduler()).run(None, Conditioning(), [0], 0)
    with pytest.raises(DiffusionError, match=r"video base stage .* set it to 0"):
        Stage("image", Denoiser(small()), DDIMScheduler(), steps=2, shape=(3, 8, 8), frame_correlation=0.5)


def test_a_stage_trains_on_the_noise_it_samples_from():
    """The pipelines' trainers read the objective off the stage: a correlated base stage trains on
    correlated noise, its super-resolution stages on independent noise with their own augmentation."""
    from legato.pipelines.training import stage_objective
    from legato.recipes.networks import video_cascade

    base, temporal, spatial = video_cascade(frames=4, size=8, text_dim=8, frame_correlation=0.5).stages
    assert base.frame_correlation == 0.5
    assert (stage_objective(base).frame_correlation, stage_objective(base).augmentation) == (0.5, None)
    for sr in (temporal, spatial):
        assert (stage_objective(sr).frame_correlation, stage_objective(sr).augmentation) == (
            0.0,
            sr.sr.augmentation,
        )
