"""The bundled models' datasets: real corpus tunes rendered to audio, real photos made into clips."""

import numpy as np
import pytest
import torch

from legato.codec import SMALL
from legato.recipes.datasets import Dataset, load, save
from legato.recipes.datasets.music import INSTRUMENTS, STYLES, build_music, render
from legato.recipes.datasets.video import (
    MORE_SUBJECTS,
    MOTIONS,
    OPPOSITE,
    SUBJECTS,
    build_video,
    clip,
    photo,
    time_reversed,
)


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


def test_more_photos_are_training_only_every_motion_on_photos_the_verifier_never_sees():
    data = build_video(frames=8, size=16, clips_per_pair=1, seed=0)
    more = build_video(frames=8, size=16, clips_per_pair=1, seed=0, more_photos=True)
    assert more["attributes"]["subject"] == [*SUBJECTS, *MORE_SUBJECTS]
    assert more["attributes"]["subject"][: len(SUBJECTS)] == data["attributes"]["subject"]
    assert not more["held_out"].any()
    pairs = set(zip(more["subject"].tolist(), more["motion"].tolist(), strict=True))
    assert pairs == {(len(SUBJECTS) + s, m) for s in range(len(MORE_SUBJECTS)) for m in range(len(MOTIONS))}
    assert not set(more["captions"]) & set(data["captions"])
    assert (
        "slow zoom into a cameraman" in more["captions"] or "fast zoom into a cameraman" in more["captions"]
    )
    # real, different photos: no clip of the more photos repeats one of the verifier's photos' clips
    assert (
        np.abs(more["video"][:, None].astype(int) - data["video"][None].astype(int)).mean((2, 3, 4, 5)).min()
        > 5
    )
    assert "more_photos" not in data  # the verifier's dataset is built as before


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


@pytest.mark.parametrize("motion", sorted(OPPOSITE))
def test_a_clip_played_backwards_is_its_opposite_motion(motion):
    image = photo("astronaut")
    forwards = clip(image, motion, "slow", 8, 32, np.random.default_rng(7))
    opposite = clip(image, OPPOSITE[motion], "slow", 8, 32, np.random.default_rng(7))
    assert (forwards.flip(1) - opposite).abs().max() < 1e-4
    assert (forwards - opposite).abs().max() > 0.1


def test_time_reversed_clips_never_add_a_held_out_pair(tmp_path):
    built = build_video(frames=8, size=16, clips_per_pair=3, seed=0)
    save(built, tmp_path / "video", "all-MiniLM-L6-v2")
    data = load(tmp_path / "video")
    train, held = data.split(held_out=False), data.split(held_out=True)
    twins = time_reversed(train)
    # a pan or zoom has a twin where the training split has its opposite motion at its speed: never where
    # that pair is the photo's held-out one
    rows = [(s, MOTIONS[m], v) for s, m, v, h in
            zip(built["subject"], built["motion"], built["speed"], built["held_out"], strict=True) if not h]  # fmt: skip
    expected = sum(m in OPPOSITE and (s, OPPOSITE[m], v) in rows for s, m, v in rows)
    assert len(twins.captions) == expected > 0
    assert set(twins.captions) <= set(train.captions)
    assert not set(twins.captions) & set(held.captions)
    for k in range(len(twins.captions)):  # each twin: its caption's embedding and labels, reversed frames
        own = train.captions.index(twins.captions[k])
        assert torch.equal(twins.text[k], train.text[own])
        assert twins.labels["motion"][k] == train.labels["motion"][own]
        assert twins.labels["subject"][k] == train.labels["subject"][own]
        source = [i for i, x in enumerate(train.samples) if torch.equal(x, twins.samples[k].flip(1))]
        assert len(source) == 1
        assert OPPOSITE[MOTIONS[train.labels["motion"][source[0]]]] == MOTIONS[twins.labels["motion"][k]]
    joined = train + twins
    assert joined.samples.shape[0] == train.samples.shape[0] + twins.samples.shape[0]
    assert joined.captions[-1] == twins.captions[-1]
    with pytest.raises(ValueError, match="cannot join samples"):
        train + Dataset(train.samples[:, :, :4], train.text, train.captions, train.labels, train.held_out, {})
    # a subset keeps each row's sample, text, caption and labels together, in the order asked
    rows = [5, 0, len(joined.captions) - 1]
    picked = joined.subset(rows)
    assert picked.captions == [joined.captions[i] for i in rows]
    for k, i in enumerate(rows):
        assert torch.equal(picked.samples[k], joined.samples[i])
        assert torch.equal(picked.text[k], joined.text[i])
        assert all(picked.labels[name][k] == joined.labels[name][i] for name in joined.labels)
    assert torch.equal(data.subset(torch.arange(len(data.captions))[~data.held_out]).samples, train.samples)


def test_the_recipes_steps_run_as_legato_commands(tmp_path):
    """`legato recipes dataset` builds what `load` reads; `legato recipes verifier` trains and saves a verifier
    on it; bad input is refused in one line, before any work."""
    from ..cli import invoke

    folder = tmp_path / "video"
    built = invoke("recipes", "dataset", "video", str(folder), "--small", "--seed", "2")
    assert built.code == 0, built.stderr
    data = load(folder)
    assert data.samples.shape[1:] == (3, 16, 64, 64)
    assert f"{len(data.held_out)} items ({int(data.held_out.sum())} held out)" in built.stdout
    trained = invoke("recipes", "verifier", "video", "--data", str(folder), "--out", str(tmp_path / "v"),
                     "--epochs", "1")  # fmt: skip
    assert trained.code == 0, trained.stderr
    assert "held-out real accuracy" in trained.stdout
    assert "motion" in trained.stdout
    assert (tmp_path / "v" / "diffusion_pytorch_model.safetensors").is_file()
    refused = invoke("recipes", "dataset", "music", str(tmp_path / "m"), "--more-photos")
    assert refused.code == 2
    assert "--more-photos builds video clips" in refused.stderr
    assert not (tmp_path / "m").exists()
