"""Mastering: BS.1770 loudness against the EBU test signal, true peak, the limiter, stereo, resampling."""

import math

import pytest
import torch

from legato.codec import CodecError
from legato.codec.master import Mastering, integrated_loudness, master, resample, stereo, true_peak
from legato.codec.testing import harmonic_notes


def sine(freq: float, seconds: float, rate: int, amplitude: float, phase: float = 0.0) -> torch.Tensor:
    t = torch.arange(round(seconds * rate), dtype=torch.float64) / rate
    return (amplitude * torch.sin(2 * math.pi * freq * t + phase)).float()


def test_loudness_of_the_ebu_reference_signal() -> None:
    # EBU Tech 3341, test 1: a 1 kHz sine at -23 dBFS in both channels of a stereo signal reads -23.0 LUFS.
    tone = sine(1000.0, 20.0, 48_000, 10 ** (-23 / 20))
    assert integrated_loudness(torch.stack([tone, tone]), 48_000) == pytest.approx(-23.0, abs=0.1)


def test_true_peak_finds_the_peak_between_samples() -> None:
    # fs/4 at 45 degrees: every sample is at 0.707 of the sine's peak (-3 dB), the true peak is 1.0 (0 dBTP).
    tone = sine(12_000.0, 1.0, 48_000, 1.0, phase=math.pi / 4)[None]
    assert 20 * math.log10(float(tone.abs().max())) == pytest.approx(-3.01, abs=0.05)
    assert true_peak(tone, 48_000) == pytest.approx(0.0, abs=0.3)


def test_twenty_clips_land_on_target_loudness_under_the_ceiling() -> None:
    gen = torch.Generator().manual_seed(0)
    for seed in range(20):
        level = float(torch.empty(()).uniform_(0.02, 1.0, generator=gen))  # quiet to clipping-hot inputs
        clip = harmonic_notes(3.0, 16_000, seed=seed, peak=level)[None]
        out, rate, measured = master(clip, 16_000, Mastering(), seed=seed)
        assert rate == 44_100
        assert out.shape[0] == 2
        assert abs(integrated_loudness(out, rate) + 14.0) <= 0.5, (seed, measured)
        assert true_peak(out, rate) <= -1.0, (seed, measured)
        assert measured["loudness_lufs"] == pytest.approx(integrated_loudness(out, rate), abs=0.01)


def test_stereo_folds_back_to_the_mono_clip() -> None:
    mono = harmonic_notes(2.0, 16_000, seed=1)[None]
    wide = stereo(mono, 16_000, width=0.5, seed=3)
    assert torch.allclose(wide.sum(0) / 2, mono[0], atol=1e-6)  # L + R = 2M: no comb filter in mono
    corr = torch.corrcoef(wide)[0, 1]
    assert 0.2 < float(corr) < 0.99  # decorrelated, not two unrelated signals
    assert torch.equal(stereo(mono, 16_000, width=0.0)[0], mono[0])
    assert torch.equal(wide, stereo(mono, 16_000, width=0.5, seed=3))


def test_resample_keeps_pitch() -> None:
    tone = sine(1000.0, 1.0, 16_000, 0.5)
    up = resample(tone, 16_000, 44_100)
    assert up.shape[-1] == 44_100
    spectrum = torch.fft.rfft(up * torch.hann_window(up.shape[-1])).abs()
    assert int(spectrum.argmax()) == 1000  # bin k is k Hz for a 1 s signal


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": 3}, "channels=3"),
        ({"loudness": 5.0}, "loudness=5.0"),
        ({"true_peak": 2.0}, "true_peak=2.0"),
    ],
)
def test_bad_mastering_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        Mastering(**kwargs)


def test_bad_rates_and_short_clips_are_refused() -> None:
    with pytest.raises(CodecError, match="target=0"):
        resample(torch.zeros(100), 16_000, 0)
    with pytest.raises(CodecError, match="400 ms"):
        integrated_loudness(torch.zeros(1, 100), 16_000)
