"""``legato edit music``: the command gives what `MusicPipeline`'s edits give, as files."""

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
                    "--seed", "3", "-o", str(out[0]), "-o", str(out[1]), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["mode"] == "inpainting"
    assert summary["files"] == [str(p) for p in out]
    audio = probe(out[0])["audio"]
    assert audio["rate"] == 16_000
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
    assert abs(audio["count"] - 32_000) < 256
