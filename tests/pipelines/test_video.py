"""The video pipeline on a tiny trained cascade: videos longer than a window, and editing real video files."""

from dataclasses import replace

import pytest
import skimage.data
import torch

from legato.pipelines.video import VideoPipeline
from legato.video import camera_move, read_video, write_video

from .conftest import VIDEO_PROMPTS

OTHER = "a rocket on its launch pad"


@pytest.fixture(scope="module")
def pipe(video_model) -> VideoPipeline:
    return VideoPipeline.from_pretrained(video_model)


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    """A real mp4 through av: a pan over a photo, 12 fps and 40x48, unlike the model's 8 fps and 16x16."""
    photo = torch.tensor(skimage.data.coffee(), dtype=torch.float32).permute(2, 0, 1) / 255
    frames = camera_move(photo, 30, 48, start=(-0.5, 0.0), end=(0.5, 0.2), view=(0.8, 0.6))[..., 4:44, :]
    return write_video(tmp_path_factory.mktemp("movie") / "pan.mp4", frames.transpose(0, 1), fps=12)


def test_every_stage_keeps_a_prefix_of_frames_and_continues_it(pipe):
    """Continuation runs along the time axis of (C, T, H, W): the first frames are kept exactly."""
    cascade = pipe.cascade
    assert cascade.time_axis == -3
    assert cascade.factors() == (1, 2, 2, 2)
    first = pipe.executor.run(cascade, pipe.items([VIDEO_PROMPTS[0]], [5]))[0]
    prefix = first[:, -2:]
    out = pipe.executor.run(cascade, [replace(pipe.items([VIDEO_PROMPTS[0]], [6])[0], prefix=prefix)])[0]
    assert torch.equal(out[:, :2], prefix)
    assert not torch.equal(out[:, 2:4], first[:, 2:4])
    base = pipe.executor.run(
        cascade, [replace(pipe.items([VIDEO_PROMPTS[0]], [6])[0], prefix=prefix)], stop=1
    )
    assert torch.equal(base[0][:, :1], cascade.prefix_at(0, prefix))  # the base keeps every 2nd frame
    # Item.realign: the super-resolution stages make the frame past the base stage's last one again.
    assert cascade.prefix_at(0, prefix, realign=True).shape == cascade.prefix_at(0, prefix).shape
    assert cascade.prefix_at(len(cascade.stages) - 1, prefix, realign=True).shape[1] == 1
    item = replace(pipe.items([VIDEO_PROMPTS[0]], [6])[0], prefix=prefix, realign=True)
    realigned = pipe.executor.run(cascade, [item])[0]
    assert torch.equal(realigned[:, :1], prefix[:, :1])  # the frame the base stage made: kept exactly
    assert not torch.equal(realigned[:, 1], prefix[:, 1])  # the one interpolated past it: made again


def test_frames_longer_than_a_window_join_as_smoothly_as_the_frames_within_one(pipe, tmp_path):
    video = pipe([VIDEO_PROMPTS[0]], seeds=[3], frames=20)[0]
    assert video.frames.shape == (3, 20, 16, 16)
    assert torch.equal(pipe([VIDEO_PROMPTS[0]], seeds=[3], frames=5)[0].frames, video.frames[:, :5])
    # windows of 8 frames overlapping by 2: new frames begin at 8 and 14
    step = (video.frames[:, 1:] - video.frames[:, :-1]).abs().mean(dim=(0, 2, 3))  # step[i]: frame i -> i+1
    joins = step[[7, 13]]
    within = torch.cat([step[:7], step[8:13], step[14:]])
    # Independent windows cut together (what continuation replaces) jump at the cut.
    a, b = (pipe([VIDEO_PROMPTS[0]], seeds=[s])[0].frames for s in (3, 4))
    cut = (b[:, 0] - a[:, -1]).abs().mean()
    assert joins.max() <= within.max() * 1.5, (joins, within)
    assert joins.max() < cut, (joins, cut)
    saved = read_video(video.save(tmp_path / "long.mp4"))
    assert saved.frames.shape == (20, 3, 16, 16)
    assert saved.fps == 8


def test_encode_retimes_scales_and_crops_a_real_file(pipe, movie):
    x = pipe.encode(movie)
    assert x.shape == (3, 20, 16, 16)  # 30 frames at 12 fps is 2.5 s: 20 frames at 8 fps
    assert x.min() >= -1
    assert x.max() <= 1
    with pytest.raises(ValueError, match="frames of shape"):
        pipe.encode(torch.rand(4, 2, 8, 8))


def test_inpainting_a_time_range_keeps_every_other_frame_exactly(pipe, movie):
    x = pipe.encode(movie)
    out = pipe.inpaint(movie, OTHER, 0.5, 1.25, seed=1).frames * 2 - 1
    assert out.shape == x.shape
    kept = torch.ones(20, dtype=torch.bool)
    kept[4:10] = False  # 0.5 s .. 1.25 s at 8 fps
    assert torch.allclose(out[:, kept], x[:, kept], atol=1e-6)
    assert (out[:, ~kept] - x[:, ~kept]).abs().mean() > 0.02


def test_inpainting_a_mask_keeps_the_pixels_outside_it(pipe, movie, tmp_path):
    from PIL import Image

    mask = torch.zeros(32, 32)
    mask[8:24, 16:] = 1  # the right half of the middle rows, at any resolution
    Image.fromarray((mask.numpy() * 255).astype("uint8")).save(tmp_path / "mask.png")
    x = pipe.encode(movie)
    out = pipe.inpaint(movie, OTHER, mask=tmp_path / "mask.png", seed=2).frames * 2 - 1
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[4:12, 8:] = True
    assert torch.allclose(out[..., ~inside], x[..., ~inside], atol=1e-6)
    assert (out[..., inside] - x[..., inside]).abs().mean() > 0.02
    with pytest.raises(ValueError, match="selects nothing"):
        pipe.inpaint(movie, OTHER, mask=torch.zeros(4, 4))


def test_img2img_strength_orders_how_far_an_edit_goes_and_inversion_rebuilds(pipe, movie):
    x = pipe.encode(movie)

    def distance(clip) -> float:
        return float((clip.frames * 2 - 1 - x).abs().mean())

    light, heavy = (distance(pipe.edit(movie, OTHER, strength=s, seed=0)) for s in (0.2, 0.9))
    assert light < heavy, (light, heavy)
    rebuilt = distance(pipe.invert_edit(movie, VIDEO_PROMPTS[0], VIDEO_PROMPTS[0]))
    assert rebuilt < heavy, (rebuilt, heavy)
    with pytest.raises(ValueError, match=r"strength=1\.5"):
        pipe.edit(movie, OTHER, strength=1.5)


def test_an_edit_keeps_the_sources_soundtrack(pipe, tmp_path):
    """An mp4 with an AAC track in, an edited mp4 with the same track out (cut to the edit's length); a
    file without audio gives a silent edit."""
    import math

    photo = torch.tensor(skimage.data.chelsea(), dtype=torch.float32).permute(2, 0, 1) / 255
    frames = camera_move(photo, 15, 24, start=(0.0, -0.4), end=(0.0, 0.4))
    rate = 16000
    t = torch.arange(round(15 / 12 * rate)) / rate
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)[None]
    source = write_video(tmp_path / "cat.mp4", frames.transpose(0, 1), fps=12, audio=tone, sample_rate=rate)
    original = read_video(source)
    assert original.audio is not None
    for edited in (pipe.edit(source, OTHER, strength=0.5), pipe.inpaint(source, OTHER, 0.25, 0.75)):
        assert edited.soundtrack is not None
        seconds = edited.frames.shape[1] / edited.fps
        kept = original.audio[:, : round(seconds * original.sample_rate)]
        assert torch.equal(edited.soundtrack.audio, kept)
        written = read_video(edited.save(tmp_path / "edited.mp4"))
        assert written.audio is not None
        assert abs(written.audio.shape[-1] / written.sample_rate - seconds) < 0.1
        # AAC is lossy, but the tone survives: its level, not silence
        assert abs(float(written.audio.square().mean().sqrt()) - 0.3 / math.sqrt(2)) < 0.05
    silent = write_video(tmp_path / "silent.mp4", frames.transpose(0, 1), fps=12)
    assert pipe.edit(silent, OTHER, strength=0.5).soundtrack is None
