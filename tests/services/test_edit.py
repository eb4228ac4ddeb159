"""``legato edit music|video``: the command gives what the pipelines' edits give, as files."""

from pathlib import Path

import pytest
import torch

from legato.codec import load_mel_image, write_audio
from legato.codec.testing import harmonic_notes
from legato.pipelines import MusicPipeline

from .conftest import invoke, legato
from .test_generate import probe


@pytest.fixture
def song(tmp_path):
    return write_audio(tmp_path / "song.wav", harmonic_notes(2.0, 16_000)[None], 16_000)


def test_inpainting_a_range_matches_the_pipeline_and_keeps_the_rest(song, tmp_path, models, cli_env):
    out = [tmp_path / "patched.wav", tmp_path / "patched.png"]
    result = legato("edit", "music", str(song), "a low drone", "-m", "music-tiny", "--start", "0.5", "--end", "1.2",
                    "--seed", "3", "-o", str(out[0]), "-o", str(out[1]), "--no-master", "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["mode"] == "inpainting"
    assert summary["files"] == [str(p) for p in out]
    audio = probe(out[0])["audio"]
    assert (audio["rate"], audio["channels"]) == (16_000, 1)  # --no-master: the model's raw output
    assert abs(audio["count"] - 32_000) < 256  # the song's length, to a hop
    pipe = MusicPipeline.from_pretrained(models / "music-tiny")
    with torch.no_grad():
        expected = pipe.inpaint(song, "a low drone", 0.5, 1.2, seed=3).mel
        original = (pipe.encode(song) + 1) / 2
    written = load_mel_image(out[1]).unit
    assert written.shape == expected.shape
    assert (written - expected).abs().max() < 2 / 255  # the image's 8-bit rounding
    lo, hi = round(0.5 * 16_000 / 256), round(1.2 * 16_000 / 256)
    outside = torch.ones(written.shape[-1], dtype=torch.bool)
    outside[lo:hi] = False
    assert (written[..., outside] - original[..., outside]).abs().max() < 2 / 255  # kept
    assert (written[..., ~outside] - original[..., ~outside]).abs().mean() > 0.02  # regenerated


@pytest.mark.parametrize(("mode", "options"), [("img2img", ["--strength", "0.6", "--steps", "4"]),
                                               ("inversion", ["--source-prompt", "notes"])])  # fmt: skip
def test_img2img_and_inversion_write_the_song_length(mode, options, song, tmp_path, cli_env):
    out = tmp_path / f"{mode}.flac"
    result = invoke("edit", "music", str(song), "a low drone", "-m", "music-tiny", *options, "-o", str(out),
                    "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["mode"] == mode
    audio = probe(out)["audio"]
    assert (audio["rate"], audio["channels"]) == (44_100, 2)  # mastered by default
    assert abs(audio["count"] - 88_200) < 706  # the song's 2 s, to a hop


def test_img2img_on_another_scheduler_is_the_pipelines_edit_on_it(song, tmp_path, models, cli_env):
    from legato.pipelines.jobs import with_sampling

    out = tmp_path / "dpm.png"
    result = legato("edit", "music", str(song), "a low drone", "-m", "music-tiny", "--strength", "0.6", "--steps",
                    "4", "--scheduler", "dpm++", "--seed", "2", "-o", str(out), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    pipe = MusicPipeline.from_pretrained(models / "music-tiny")
    steps = [4] * len(pipe.cascade.stages)
    with torch.no_grad():
        expected, own = (
            with_sampling(pipe, steps, None, scheduler).edit(song, "a low drone", strength=0.6, seed=2).mel
            for scheduler in ("dpm++", None)
        )
    written = load_mel_image(out).unit
    assert (written - expected).abs().max() < 2 / 255  # the image's 8-bit rounding
    assert (written - own).abs().mean() > 0.01  # not the model's own DDIM edit


@pytest.fixture
def movie(tmp_path):
    """A real 12 fps, 24x20 mp4 of a pan over a photo (not the model's 8 fps, 16x16)."""
    import skimage.data

    from legato.video import camera_move, write_video

    photo = torch.tensor(skimage.data.astronaut(), dtype=torch.float32).permute(2, 0, 1) / 255
    frames = camera_move(photo, 18, 24, start=(-0.5, 0.0), end=(0.5, 0.0))[..., 2:22, :]
    return write_video(tmp_path / "pan.mp4", frames.transpose(0, 1), fps=12)


def test_inpainting_a_video_masked_region_matches_the_pipeline(movie, tmp_path, models, cli_env):
    from PIL import Image

    from legato.pipelines import VideoPipeline
    from legato.video import read_video

    mask = tmp_path / "mask.png"
    Image.fromarray((torch.arange(16)[None].expand(16, 16) >= 8).numpy().astype("uint8") * 255).save(mask)
    out = tmp_path / "patched.webm"
    result = legato("edit", "video", str(movie), "a rocket", "-m", "video-tiny", "--mask", str(mask), "--start", "0.5",
                    "--end", "1.0", "-o", str(out), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["mode"] == "inpainting"
    streams = probe(out)
    assert streams["video"]["count"] == 12  # 18 frames at 12 fps = 1.5 s = 12 frames at 8 fps
    assert streams["video"]["size"] == (16, 16)
    pipe = VideoPipeline.from_pretrained(models / "video-tiny")
    expected = pipe.inpaint(movie, "a rocket", 0.5, 1.0, mask=mask).frames
    written = read_video(out).frames.transpose(0, 1)
    assert (written - expected).abs().mean() < 0.03  # VP9's loss
    original = (pipe.encode(movie) + 1) / 2
    assert torch.equal(expected[:, :4], original[:, :4])  # before 0.5 s: kept
    assert torch.equal(expected[..., :8], original[..., :8])  # the mask's black left half: kept
    assert not torch.equal(expected[:, 4:8, :, 8:], original[:, 4:8, :, 8:])


@pytest.mark.parametrize(("mode", "options"), [("img2img", ["--strength", "0.5"]),
                                               ("inversion", ["--source-prompt", "a photo"])])  # fmt: skip
def test_video_img2img_and_inversion_write_the_videos_length(
    mode, options, movie, tmp_path, cli_env, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no --out: the default name lands in the working directory
    result = invoke(
        "edit", "video", str(movie), "a rocket", "-m", "video-tiny", *options, "--json", env=cli_env
    )
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["mode"] == mode
    assert summary["video_seconds"] == 1.5
    assert [Path(f).resolve() for f in summary["files"]] == [(tmp_path / "pan-edited.mp4").resolve()]
    assert probe(tmp_path / "pan-edited.mp4")["video"]["count"] == 12
