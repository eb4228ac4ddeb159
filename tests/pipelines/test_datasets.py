"""The bundled models' datasets: real corpus tunes rendered to audio, real photos made into clips."""

import numpy as np
import pytest
import torch

from legato.codec import SMALL
from legato.pipelines.datasets import load, save
from legato.pipelines.datasets.music import INSTRUMENTS, STYLES, build_music, render
from legato.pipelines.datasets.video import MOTIONS, SUBJECTS, build_video, clip, photo


def test_rendered_note_sounds_at_its_pitch():
    # A4 (MIDI 69) held for a second on each instrument: the spectrum's strongest partial is 440 Hz or an
    # octave of it (the SoundFont's real samples, not a sine we made).
    sr = 16_000
    for program in INSTRUMENTS.values():
        audio = render([(0.0, 2.0, 69)], program, 120.0, sr, 1.0)
        spectrum = np.abs(np.fft.rfft(audio[2000:14000] * np.hanning(12000)))
        peak = np.fft.rfftfreq(12000, 1 / sr)[spectrum.argmax()]
        octaves = np.log2(peak / 440.0)
        assert abs(octaves - round(octaves)) < 0.03, (program, peak)
        assert np.sqrt(np.mean(audio**2)) > 1e-3


@pytest.fixture(scope="module")
def music():
    return build_music(SMALL, window=256, per_style=3, renders=1, held_out=0.34, seed=3)


def test_music_dataset_is_real_reproducible_and_split_by_piece(music):
    assert music["mel"].shape[1:] == (64, 256)
    assert music["mel"].dtype == np.uint8
    assert set(music["style"].tolist()) == set(range(len(STYLES)))  # every style: chorales and fiddle tunes
    captions = [music["captions"][i] for i in music["caption"]]
    for style, instrument, tempo, caption in zip(music["style"], music["instrument"], music["tempo"], captions,
                                                 strict=True):  # fmt: skip
        assert caption.startswith(f"a {STYLES[style]} on {list(INSTRUMENTS)[instrument]}, ")
        assert f"{music['attributes']['tempo'][tempo]} tempo, in " in caption
        assert caption.endswith(("major", "minor"))
    held = {p for p, h in zip(music["piece"], music["held_out"], strict=True) if h}
    kept = {p for p, h in zip(music["piece"], music["held_out"], strict=True) if not h}
    assert held
    assert kept
    assert not held & kept
    again = build_music(SMALL, window=256, per_style=3, renders=1, held_out=0.34, seed=3)
    assert np.array_equal(again["mel"], music["mel"])
    assert again["captions"] == music["captions"]


def test_dataset_folder_round_trip(music, tmp_path):
    save(music, tmp_path / "music", "all-MiniLM-L6-v2")
    data = load(tmp_path / "music")
    assert data.samples.shape == (len(music["mel"]), 1, 64, 256)
    assert data.samples.min() >= -1
    assert data.samples.max() <= 1
    assert data.text.shape == (len(music["mel"]), 16, 384)
    first = data.captions.index(music["captions"][1])
    assert torch.equal(data.text[first], data.text[data.captions.index(music["captions"][1])])
    assert data.split(held_out=True).samples.shape[0] == int(music["held_out"].sum())
    save(music, tmp_path / "music", None)  # keeps the embeddings of the same captions
    with pytest.raises(ValueError, match="no text embeddings of these captions"):
        save({**music, "captions": ["other"]}, tmp_path / "music", None)


def test_video_split_holds_out_pairs_not_photos_or_motions():
    data = build_video(frames=8, size=32, clips_per_pair=1, seed=0)
    assert data["video"].shape[1:] == (3, 8, 32, 32)
    train = {
        (s, m) for s, m, h in zip(data["subject"], data["motion"], data["held_out"], strict=True) if not h
    }
    held = {(s, m) for s, m, h in zip(data["subject"], data["motion"], data["held_out"], strict=True) if h}
    assert not train & held
    assert len(held) == len(SUBJECTS)
    assert {s for s, _ in train} == set(range(len(SUBJECTS)))
    assert {m for _, m in train} == set(range(len(MOTIONS)))


def _shift(a: torch.Tensor, b: torch.Tensor) -> int:
    """The horizontal shift d (pixels) for which ``a[x + d]`` best matches ``b[x]``."""
    errors = {
        d: float((a[..., :, 8 + d : a.shape[-1] - 8 + d] - b[..., :, 8:-8]).abs().mean())
        for d in range(-8, 9)
    }
    return min(errors, key=errors.get)


def test_clips_move_as_their_captions_say():
    image = photo("coffee")
    rng = np.random.default_rng(0)
    left = clip(image, "pan left", "fast", 8, 64, rng)
    right = clip(image, "pan right", "fast", 8, 64, rng)
    # a camera panning right shows the content moving left: what was at x is at x - d in the next frame
    assert _shift(right[:, 4], right[:, 3]) < 0 < _shift(left[:, 4], left[:, 3])
    ball = clip(image, "ball", "fast", 8, 64, rng)
    red = (ball[0] > 0.75) & (ball[1] < 0.25) & (ball[2] < 0.25)  # (T, H, W) pixels of the red ball
    xs = [float(torch.nonzero(red[t])[:, 1].float().mean()) for t in (2, 5) if red[t].any()]
    assert len(xs) == 2
    assert abs(xs[1] - xs[0]) > 3
