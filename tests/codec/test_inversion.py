"""Mel -> audio: NNLS + fast Griffin-Lim, measured by spectral convergence."""

import pytest
import torch

from legato.codec import RIFFUSION, SMALL, MelCodec, log_spectral_distance, snr, spectral_convergence
from legato.codec.testing import harmonic_notes

# Measured on harmonic_notes(3 s, seed=1), NNLS 32 steps, Griffin-Lim momentum 0.99, zero initial phase:
#   small     (64 mels):  GL-8 -8.5 dB, GL-32 -8.6 dB, GL-128 -8.5 dB  (the 64-band mel is the bottleneck)
#   riffusion (512 mels): GL-8 -7.7 dB, GL-32 -15.9 dB, GL-128 -18.5 dB
# Thresholds sit 1 dB above those figures.
CASES = [(SMALL, 32, -7.6), (RIFFUSION, 32, -14.9), (RIFFUSION, 128, -17.5)]


@pytest.mark.parametrize(
    ("params", "n_iter", "limit_db"), CASES, ids=["small-32", "riffusion-32", "riffusion-128"]
)
def test_griffin_lim_round_trip_converges(params, n_iter, limit_db):
    codec = MelCodec(params)
    x = harmonic_notes(3.0, params.sample_rate, seed=1)[None]
    y = codec.audio(codec.mel(x), n_iter=n_iter, length=x.shape[-1])
    assert y.shape == x.shape
    sc = float(spectral_convergence(x, y, params.n_fft, params.hop_length))
    assert sc < limit_db


def test_more_iterations_never_hurt_on_riffusion():
    codec = MelCodec(RIFFUSION)
    x = harmonic_notes(2.0, RIFFUSION.sample_rate, seed=2)[None]
    mel = codec.mel(x)
    scores = [
        float(spectral_convergence(x, codec.audio(mel, n_iter=n, length=x.shape[-1]), 17_640, 441))
        for n in (4, 16, 64)
    ]
    assert scores[0] > scores[1] > scores[2]


def test_8bit_image_costs_little(melody):
    codec = MelCodec(SMALL)
    mel = codec.mel(melody)
    unit8 = torch.round(codec.to_unit(mel) * 255) / 255
    y = codec.audio(codec.from_unit(unit8), length=melody.shape[-1])
    y_full = codec.audio(mel, length=melody.shape[-1])
    loss = float(spectral_convergence(melody, y)) - float(spectral_convergence(melody, y_full))
    assert loss < 1.0  # measured 0.1-0.7 dB


def test_empty_mel_bands_invert_without_crashing():
    # 128 bands on a 256-point FFT leaves 13 bands with no FFT bin: the normal equations are singular.
    params = SMALL.replace(n_fft=256, win_length=256, hop_length=64, n_mels=128)
    with pytest.warns(UserWarning, match="all zero values"):
        codec = MelCodec(params)
    assert int((codec.fb.sum(0) == 0).sum()) > 0
    x = harmonic_notes(1.0, params.sample_rate, seed=3)[None]
    y = codec.audio(codec.mel(x), length=x.shape[-1])
    assert bool(torch.isfinite(y).all())
    assert float(spectral_convergence(x, y, 256, 64)) < -10.0


def test_batch_equals_items_and_seeded_phase_is_deterministic(clips):
    codec = MelCodec(SMALL)
    mel = codec.mel(clips)
    batch = codec.audio(mel, n_iter=8)
    single = codec.audio(mel[1], n_iter=8)
    assert torch.allclose(batch[1], single, atol=1e-5)
    a = codec.audio(mel, n_iter=4, generator=torch.Generator().manual_seed(7))
    b = codec.audio(mel, n_iter=4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_metrics_on_known_signals(melody):
    assert float(snr(melody, melody * 0.9)) == pytest.approx(20.0, abs=1e-4)  # error = 0.1 x signal
    assert float(spectral_convergence(melody, melody * 0.9)) == pytest.approx(-20.0, abs=1e-4)
    assert float(log_spectral_distance(melody, melody)) == 0.0
    # Halving the amplitude is -6.02 dB in every bin (with the floor out of the way).
    assert float(log_spectral_distance(melody, melody * 0.5, floor_db=-400)) == pytest.approx(6.02, abs=0.01)
    assert float(log_spectral_distance(melody, melody * 0.5)) < 6.03  # the floor only ever lowers it
