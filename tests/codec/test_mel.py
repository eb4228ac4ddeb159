"""Mel spectrograms against librosa, batching, and the image form's curve."""

import librosa
import numpy as np
import pytest
import torch

from legato.codec import RIFFUSION, SMALL, CodecError, MelCodec
from legato.codec.testing import harmonic_notes


def librosa_mel(x: np.ndarray, p) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=x, sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length, win_length=p.win_length,
        window=p.window, center=True, pad_mode="constant", power=p.power, n_mels=p.n_mels,
        fmin=p.f_min, fmax=p.f_max, htk=p.mel_scale == "htk", norm=p.mel_norm,
    )  # fmt: skip


# Tolerance: float32 STFTs (ours) against librosa's float32 numpy pipeline agree to about 1e-6 of the
# spectrogram's peak on the small preset and 2e-5 on Riffusion's 17640-point FFT; we allow 1e-4.
@pytest.mark.parametrize("params", [SMALL, RIFFUSION], ids=["small", "riffusion"])
def test_mel_matches_librosa(params):
    x = harmonic_notes(2.0, params.sample_rate, seed=2)
    ours = MelCodec(params).mel(x).numpy()
    ref = librosa_mel(x.numpy(), params)
    assert ours.shape == ref.shape == (params.n_mels, params.num_frames(x.numel()))
    assert np.abs(ours - ref).max() <= 1e-4 * ref.max()


def test_batched_shapes_keep_leading_dims_and_items_are_independent(clips):
    codec = MelCodec(SMALL)
    mel = codec.mel(clips)  # (B, C, N) -> (B, C, n_mels, frames): the (B, C, H, W) image layout
    assert mel.shape == (4, 1, SMALL.n_mels, SMALL.num_frames(clips.shape[-1]))
    one = codec.mel(clips[2, 0])
    assert torch.allclose(mel[2, 0], one, rtol=1e-5, atol=1e-6 * float(one.max()))


def test_module_moves_with_to():
    codec = MelCodec(SMALL).to(torch.float64)
    assert codec.fb.dtype == torch.float64
    assert codec.mel(torch.zeros(1, 512, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("params", [SMALL, RIFFUSION], ids=["small", "riffusion"])
def test_unit_round_trip_inside_the_range(params):
    codec = MelCodec(params)
    mel = codec.mel(harmonic_notes(1.0, params.sample_rate, seed=3)[None])
    ref = codec.reference(mel)
    unit = codec.to_unit(mel, ref)
    assert float(unit.min()) >= 0.0
    assert float(unit.max()) <= 1.0
    back = codec.from_unit(unit, ref)
    inside = unit > 0  # values below the floor are clipped by design
    assert torch.allclose(back[inside], mel[inside], rtol=1e-3)


def test_per_item_reference_is_required_to_go_back():
    codec = MelCodec(RIFFUSION)
    with pytest.raises(CodecError, match="per-item reference"):
        codec.from_unit(torch.rand(RIFFUSION.n_mels, 10))


def test_small_preset_keeps_full_scale_music_below_the_top():
    codec = MelCodec(SMALL)
    loud = harmonic_notes(2.0, SMALL.sample_rate, seed=4, peak=1.0)
    unit = codec.to_unit(codec.mel(loud))
    assert float((unit >= 1.0).float().mean()) < 0.001


@pytest.mark.parametrize(
    ("audio", "match"),
    [
        (torch.tensor([0.0, float("nan"), 0.0]), "NaN/Inf"),
        (torch.zeros(2, 0), "no samples"),
        (torch.zeros(10, dtype=torch.int32), "dtype"),
    ],
)
def test_bad_audio_raises(audio, match):
    with pytest.raises(CodecError, match=match):
        MelCodec(SMALL).mel(audio)
