"""Imported flow-matching and DiT checkpoints against diffusers' own pipelines, on tiny random-weight folders
with the real classes, layouts and config keys (legato.recipes.dit_checkpoints): the same starting latents,
scheduler, steps, guidance and negative prompt give the same latents and pixels, to 1e-4 of the output range."""

import json
from dataclasses import replace

import pytest
import torch

from legato.cascade import Cascade, Item, LocalExecutor
from legato.diffusion import scheduler_config, scheduler_from_config
from legato.pipelines.checkpoints import from_diffusers
from legato.recipes import dit_checkpoints

from .test_checkpoints import _close, _pipe  # diffusers' pipelines as oracles, and 1e-4 of the range

PROMPTS = ["a cat playing piano", "rain on wood"]
NEGATIVES = ["blurry", ""]


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return dit_checkpoints.wan(tmp_path_factory.mktemp("dit") / "wan")


def _items(seeds=(3, 4)):
    return [
        Item(f"{i}", s, prompt=p, negative=n)
        for i, (s, p, n) in enumerate(zip(seeds, PROMPTS, NEGATIVES, strict=False))
    ]


# Wan ships UniPC on flow sigmas ("unipc" is its own scheduler converted back, the shift kept)
@pytest.mark.parametrize("scheduler", [None, "flow_euler", "dpm++"])
def test_wan_equals_diffusers(wan, scheduler):
    from diffusers import WanPipeline

    cascade = from_diffusers(wan, steps=[3], guidance=5.0, size=(32, 32), frames=9)
    assert [s.name for s in cascade.stages] == ["base", "base-decode"]
    if scheduler is not None:
        cascade = cascade.with_sampling(scheduler=scheduler)
    base = cascade.stages[0]
    assert base.shape == (16, 3, 4, 4)  # 9 frames: 1 + 4 * 2 latent frames; 32 pixels: 4 latents
    items = _items()
    latents = torch.stack(LocalExecutor().run(cascade, items, stop="base-decode"))
    frames = torch.stack(LocalExecutor().run(cascade, items))
    assert frames.shape == (2, 3, 9, 32, 32)
    pipe = _pipe(WanPipeline, wan)
    pipe.scheduler = scheduler_from_config(scheduler_config(base.scheduler))
    noise = base.starting_noise(base.generators([3, 4], 0))
    kw = dict(prompt=PROMPTS, negative_prompt=NEGATIVES, num_inference_steps=3, guidance_scale=5.0, height=32,
              width=32, num_frames=9)  # fmt: skip
    _close(latents, pipe(**kw, latents=noise.clone(), output_type="latent").frames, "latents")
    ref = pipe(**kw, latents=noise.clone(), output_type="pt").frames  # (B, T, C, H, W) in [0, 1]
    _close((frames + 1) / 2, ref.permute(0, 2, 1, 3, 4), "frames")


def test_wan_saves_and_loads_with_the_same_outputs(wan, tmp_path):
    cascade = from_diffusers(wan, steps=[2], size=(32, 32), frames=5)
    items = _items()
    expected = LocalExecutor().run(cascade, items)
    cascade.save_pretrained(tmp_path / "wan")
    spec = json.loads((tmp_path / "wan" / "cascade.json").read_text())["stages"][0]
    assert spec["denoiser"] == {"type": "denoiser", "prediction_type": "flow_prediction"}
    assert spec["text_encoder"]["settings"]["zero_padding"] is True
    again = LocalExecutor().run(Cascade.from_pretrained(tmp_path / "wan"), items)
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))


def test_wan_refuses_frame_counts_its_vae_cannot_make(wan):
    with pytest.raises(ValueError, match=r"frames=8: .* takes 1 \+ 4 \* k frames \(e.g. 5\)"):
        from_diffusers(wan, size=(32, 32), frames=8)
    with pytest.raises(ValueError, match="must divide by 16"):
        from_diffusers(wan, size=(40, 32), frames=9)


@pytest.fixture(scope="module")
def ltx(tmp_path_factory):
    root = tmp_path_factory.mktemp("ltx")
    return dit_checkpoints.ltx(root / "ltx"), dit_checkpoints.ltx_upsampler(root / "upsampler")


def _ltx_cascade(ltx, **settings):
    """LTX's multi-scale recipe on the tiny folders: a 64x64 base pass, the latent upsampler, a refining pass."""
    base, upsampler = ltx
    return from_diffusers([base, upsampler, base], steps=[3, None, 5], size=(64, 64), frames=9, strength=0.4,
                          **settings)  # fmt: skip


def test_ltx_base_and_latent_upsampler_equal_diffusers(ltx):
    from diffusers import LTXLatentUpsamplePipeline, LTXPipeline

    folder, upsampler = ltx
    cascade = _ltx_cascade(ltx)
    assert [s.name for s in cascade.stages] == ["base", "sr1", "sr2", "sr2-decode"]
    assert cascade.output_shape() == (3, 9, 128, 128)
    base = cascade.stages[0]
    assert base.shape == (8, 2, 2, 2)  # 9 frames: 1 + 8 latent frames; 64 pixels: 2 latents
    items = _items()
    latents = torch.stack(LocalExecutor().run(cascade, items, stop="sr1"))
    upsampled = torch.stack(
        LocalExecutor().run(cascade, items, start="sr1", stop="sr2", inputs=list(latents))
    )
    decoded = torch.stack(
        LocalExecutor().run(from_diffusers(folder, steps=[3], size=(64, 64), frames=9), items)
    )
    pipe = _pipe(LTXPipeline, folder)
    pipe.scheduler = scheduler_from_config(scheduler_config(base.scheduler))
    noise = LTXPipeline._pack_latents(base.starting_noise(base.generators([3, 4], 0)), 1, 1)  # its tokens
    kw = dict(prompt=PROMPTS, negative_prompt=NEGATIVES, num_inference_steps=3, guidance_scale=3.0, height=64,
              width=64, num_frames=9)  # fmt: skip
    ref = LTXPipeline._unpack_latents(pipe(**kw, latents=noise.clone(), output_type="latent").frames, 2, 2, 2)
    _close(latents, ref, "latents")
    frames = pipe(**kw, latents=noise.clone(), output_type="pt").frames  # (B, T, C, H, W) in [0, 1]
    _close((decoded + 1) / 2, frames.permute(0, 2, 1, 3, 4), "frames")
    up = _pipe(LTXLatentUpsamplePipeline, upsampler)
    _close(upsampled, up(latents=latents.clone(), output_type="latent").frames, "upsampled latents")


def test_ltx_three_stage_cascade_gives_the_same_files_on_every_executor(ltx, ray_cluster, tmp_path):
    from legato.pipelines.ray_executor import RayExecutor, ray_data_run

    cascade = _ltx_cascade(ltx, batch_size=1)
    items = _items()
    expected = LocalExecutor().run(cascade, items)
    assert all(float(x.std()) > 0.01 for x in expected)
    executor = RayExecutor()
    try:
        remote = executor.run(cascade, items)
        assert len(executor.actors(cascade)) == len(cascade.stages)  # base, upsampler, refiner, decode
    finally:
        executor.shutdown()
    assert all(torch.equal(a, b) for a, b in zip(expected, remote, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(expected, ray_data_run(cascade, items), strict=True))
    cascade.save_pretrained(tmp_path / "ltx")  # the upsample step and the stages' timestep rule travel too
    again = LocalExecutor().run(Cascade.from_pretrained(tmp_path / "ltx"), items)
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))


def test_wan_video_continues_past_its_window_in_latent_space(wan, tmp_path):
    """3x the window (27 frames of 9): latents made window by window, each later one keeping the last latent
    frame of the one before exactly, decoded once as one latent video: the causal decoder sees each join as one
    more latent frame. Windows decoded one by one and butted together (a hard cut) show an edge on the same
    measure."""
    from legato.pipelines import VideoPipeline
    from legato.pipelines.checkpoints import import_checkpoint
    from legato.pipelines.continuation import continue_windows, window_seed

    folder = import_checkpoint(wan, tmp_path / "wan", kind="video", steps=[2], size=(32, 32), frames=9)
    pipe = VideoPipeline.from_pretrained(folder)
    assert pipe.frames == 9
    (clip,) = pipe("a cat playing piano", seeds=3, frames=27)
    assert clip.frames.shape == (3, 27, 32, 32)
    # the latents it decoded: 8 latent frames (1 + 4 * 7 = 29 frames, cut to 27) from windows of 3 keeping 1
    latent = Cascade(pipe.cascade.stages[:-1])
    items = pipe.items(["a cat playing piano"], [3])
    (joined,) = continue_windows(pipe.executor, latent, items, 8, 1)
    assert torch.equal(
        joined[:, :3], LocalExecutor().run(latent, items)[0]
    )  # later windows continue the first
    decoded = LocalExecutor().run(pipe.cascade, items, start=len(pipe.cascade.stages) - 1, inputs=[joined])[0]
    assert torch.equal(((decoded[:, :27] + 1) / 2).clamp(0, 1), clip.frames)
    # The join measure of benchmarks/video_joins.py: the largest frame difference where a window's new frames
    # begin, against the clip's own p90. Measured (seeds 0-2): continued 13.1-13.7 against a p90 of 25.1-25.7
    # (0.5x; the random decoder's own start-up transient sets the p90); hard cut 35.2-38.8 against 26.0-26.8
    # (1.3-1.5x: each butted window restarts that transient).
    differences = _frame_differences(clip.frames)
    at = [*range(8, 12), *range(16, 20), *range(24, 26)]  # into frames 9-12, 17-20, 25-26: latents 3, 5, 7
    rest = torch.cat([differences[:8], differences[12:16], differences[20:24]])
    assert differences[at].max() <= 1.15 * rest.quantile(0.9)
    windows = [
        LocalExecutor().run(pipe.cascade, [replace(items[0], seed=window_seed(3, k))])[0] for k in range(3)
    ]
    cut = _frame_differences(((torch.cat(windows, dim=1) + 1) / 2).clamp(0, 1))
    at = [*range(8, 14), *range(17, 23)]  # windows butted at frames 9 and 18
    rest = torch.cat([cut[:8], cut[14:17], cut[23:]])
    assert cut[at].max() > 1.25 * rest.quantile(0.9)


def _frame_differences(video: torch.Tensor) -> torch.Tensor:
    """``(C, T, H, W)`` in [0, 1] -> mean absolute differences of consecutive 8-bit frames (benchmarks/video_joins)."""
    frames = (video.clamp(0, 1) * 255).round()
    return (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=(0, 2, 3))


@pytest.fixture(scope="module")
def stable_audio(tmp_path_factory):
    return dit_checkpoints.stable_audio(tmp_path_factory.mktemp("audio") / "stable-audio")


# With negative prompts, and without: an empty negative is StableAudioPipeline's negative_prompt=None (zeros)
@pytest.mark.parametrize("negatives", [["blurry", "low quality"], None])
def test_stable_audio_equals_diffusers(stable_audio, negatives):
    from diffusers import StableAudioPipeline

    from legato.cascade import stage_seed

    cascade = from_diffusers(stable_audio, steps=[4], guidance=7.0)
    base = cascade.stages[0]
    assert base.shape == (8, 16)
    assert cascade.output_shape() == (2, 16 * 2048)  # stereo, hop 2048
    items = [Item(f"{i}", s, prompt=p, negative=(negatives or ["", ""])[i])
             for i, (s, p) in enumerate(zip((3, 4), PROMPTS, strict=True))]  # fmt: skip
    latents = torch.stack(LocalExecutor().run(cascade, items, stop="base-decode"))
    audio = torch.stack(LocalExecutor().run(cascade, items))
    pipe = _pipe(StableAudioPipeline, stable_audio)
    noise = base.starting_noise(base.generators([3, 4], 0))
    # its scheduler's SDE noise comes from Brownian trees seeded by the generators: give it each item's
    gens = lambda: [torch.Generator().manual_seed(stage_seed(s, 0)) for s in (3, 4)]  # noqa: E731
    kw = dict(prompt=PROMPTS, negative_prompt=negatives, num_inference_steps=4, guidance_scale=7.0)
    _close(
        latents, pipe(**kw, latents=noise.clone(), generator=gens(), output_type="latent").audios, "latents"
    )
    _close(audio, pipe(**kw, latents=noise.clone(), generator=gens(), output_type="pt").audios, "audio")


def test_stable_audio_saves_and_loads_with_the_same_outputs(stable_audio, tmp_path):
    cascade = from_diffusers(stable_audio, steps=[3], seconds=0.5)
    items = _items()
    expected = LocalExecutor().run(cascade, items)
    cascade.save_pretrained(tmp_path / "sa")
    spec = json.loads((tmp_path / "sa" / "cascade.json").read_text())["stages"][0]
    assert spec["text_encoder"]["projection"] == "projection_model"
    assert spec["text_encoder"]["settings"]["seconds"] == [0.0, 0.5]
    again = LocalExecutor().run(Cascade.from_pretrained(tmp_path / "sa"), items)
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))
    with pytest.raises(ValueError, match=r"seconds=2 must lie in \(0, 0.743"):
        from_diffusers(stable_audio, seconds=2)


def test_stable_audio_continues_past_its_window_without_a_click(stable_audio, tmp_path):
    """3x the window (0.74 s) in latent space, decoded once: the energy jumps at the joins (the click measure
    of test_long_music.py) sit inside the clip's own; windows decoded one by one and butted together jump.
    Measured (seeds 0-2): joins 0.04-0.11 dB against the rest's p90 0.09-0.10 and max 0.32-0.34; butted windows
    0.50-0.59 dB at every join."""
    from legato.pipelines import MusicPipeline
    from legato.pipelines.checkpoints import import_checkpoint
    from legato.pipelines.continuation import window_seed

    from .test_long_music import energy_jumps

    folder = import_checkpoint(stable_audio, tmp_path / "sa", kind="music", steps=[4])
    pipe = MusicPipeline.from_pretrained(folder, mastering=None)
    window, hop = 16 * 2048, pipe.params.hop_length
    (clip,) = pipe("a cat playing piano", seeds=0, duration=3 * window / 44100)
    assert clip.audio.shape == (2, 3 * window)
    assert clip.sample_rate == 44100
    # windows of 16 latent frames continuing 4: new latents from 16 and 28 on
    at = [16 * 2048 // hop, 28 * 2048 // hop]
    jumps, rest = energy_jumps(clip.audio.mean(0, keepdim=True), hop, at)
    assert jumps.median() <= rest.quantile(0.9)
    assert jumps.max() <= rest.max()
    items = pipe.items(["a cat playing piano"], [0])
    windows = [
        LocalExecutor().run(pipe.cascade, [replace(items[0], seed=window_seed(0, k))])[0] for k in range(3)
    ]
    butted = torch.cat(windows, dim=-1).mean(0, keepdim=True)
    cut, rest = energy_jumps(butted, hop, [window // hop, 2 * window // hop])
    assert cut.min() > rest.max()
    with pytest.raises(ValueError, match="not supported yet"):
        pipe.edit(clip, "rain", strength=0.5)


def test_wan_edits_through_its_causal_vae_and_inverts_under_flow(wan, tmp_path):
    """img2img and inversion edits of a Wan clip: its 9 frames encoded whole (1 + 4 * 2), inverted by the
    flow ODE run upwards, sampled back with Euler; the same call gives the same frames."""
    from legato.pipelines import VideoPipeline
    from legato.pipelines.checkpoints import import_checkpoint

    folder = import_checkpoint(wan, tmp_path / "wan", kind="video", steps=[4], size=(32, 32), frames=9)
    pipe = VideoPipeline.from_pretrained(folder)
    frames = pipe("a cat playing piano", seeds=1)[0].frames.permute(1, 0, 2, 3)  # (T, C, H, W) in [0, 1]
    for edit in (lambda: pipe.edit(frames, "rain on wood", strength=0.5, seed=2),
                 lambda: pipe.invert_edit(frames, "a cat playing piano", "rain on wood", seed=2)):  # fmt: skip
        first, again = edit(), edit()
        assert first.frames.shape == (3, 9, 32, 32)
        assert torch.equal(first.frames, again.frames)


def test_the_dit_families_run_in_half_precision(wan, ltx, stable_audio):
    """Weights and activations in bfloat16/float16, against float32 on the same folders. Measured (max difference
    over the output's range): Wan 1.4% / 0.16%, LTX's three-stage cascade 4.2% / 1.0%, Stable Audio 0.95% /
    0.12% (bfloat16 / float16)."""
    cases = [(wan, dict(size=(32, 32), frames=9, steps=[3])),
             ([ltx[0], ltx[1], ltx[0]], dict(size=(64, 64), frames=9, steps=[3, None, 5], strength=0.4)),
             (stable_audio, dict(steps=[4]))]  # fmt: skip
    items = [Item("0", 3, prompt="a cat playing piano", negative="blurry")]
    for folders, settings in cases:
        ref = LocalExecutor().run(from_diffusers(folders, **settings), items)[0]
        span = (ref.max() - ref.min()).item()
        for dtype, bound in (("bfloat16", 0.1), ("float16", 0.03)):
            out = LocalExecutor().run(from_diffusers(folders, dtype=dtype, **settings), items)[0]
            assert bool(torch.isfinite(out).all())
            assert (out - ref).abs().max().item() <= bound * span, (folders, dtype)
