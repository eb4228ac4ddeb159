"""Mastering a generated clip for listeners: output rate, stereo, loudness and true peak.

- `resample`: any rate to any rate (torchaudio's windowed-sinc resampler, on the input's device).
- `stereo`: mid/side from one mono inversion. The mono signal is the mid; the side is a decorrelated copy of
  it: the same STFT magnitudes re-phased by a few Griffin-Lim iterations from a seeded random phase, so it
  has the music's spectrum and rhythm but not its waveform. ``L = M + w S``, ``R = M - w S``: the image
  widens with ``width`` (0 is mono) and ``L + R = 2M`` exactly, so a mono fold-down is the original clip
  (no comb filtering, unlike a Haas delay). Our mel models are mono; a stereo model would need stereo
  training data, which the SoundFont renders do not have.
- `integrated_loudness`: ITU-R BS.1770-4 / EBU R128 integrated loudness (K-weighting, 400 ms blocks, the
  -70 LUFS absolute and -10 LU relative gates), by ``pyloudnorm`` (a tested implementation of the standard).
- `true_peak`: BS.1770-4 Annex 2 true peak, from a 4x oversampled signal, in dBTP.
- `master`: resample, widen, then normalise to a target loudness (default -14 LUFS, the streaming norm) with
  a look-ahead true-peak limiter (default ceiling -1 dBTP); returns the audio and what it measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import Tensor

from legato.codec.errors import CodecError
from legato.codec.inversion import griffin_lim

OVERSAMPLE = 4  # BS.1770-4 Annex 2: 4x oversampling for true peak at 48 kHz and below


def resample(audio: Tensor, rate: int, target: int) -> Tensor:
    """``(..., N)`` at ``rate`` -> ``(..., M)`` at ``target`` Hz (returned unchanged where they are equal)."""
    for name, value in (("rate", rate), ("target", target)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1_000 <= value <= 384_000:
            raise CodecError(f"{name}={value!r} is not a sample rate; pass an integer in [1000, 384000] Hz")
    return audio if rate == target else torchaudio.functional.resample(audio, rate, target)


def stereo(mono: Tensor, rate: int, *, width: float = 0.5, seed: int = 0, n_iter: int = 16) -> Tensor:
    """``(N,)`` or ``(1, N)`` mono -> ``(2, N)`` stereo by mid/side with a decorrelated side (see the module)."""
    if not 0 <= width <= 1:
        raise CodecError(f"width={width!r} must lie in [0, 1] (0: mono, 1: widest)")
    mid = mono.reshape(-1, mono.shape[-1])
    if mid.shape[0] != 1:
        raise CodecError(f"stereo() takes mono audio (N,) or (1, N), got {tuple(mono.shape)}")
    n_fft = 1 << max(8, round(math.log2(rate * 0.064)))  # ~64 ms frames at any rate
    hop = n_fft // 4
    window = torch.hann_window(n_fft, device=mid.device, dtype=mid.dtype)
    magnitude = torch.stft(mid, n_fft, hop, window=window, return_complex=True).abs()
    gen = torch.Generator(device=mid.device).manual_seed(int(seed))
    side = griffin_lim(magnitude, window=window, n_fft=n_fft, hop_length=hop, n_iter=n_iter,
                       length=mid.shape[-1], generator=gen)  # fmt: skip
    return torch.cat([mid + width * side, mid - width * side])


def integrated_loudness(audio: Tensor, rate: int) -> float:
    """BS.1770-4 integrated loudness of ``(C, N)`` audio in LUFS (``-inf`` for silence)."""
    import pyloudnorm

    if audio.shape[-1] < int(0.4 * rate):
        raise CodecError(
            f"{audio.shape[-1]} samples at {rate} Hz is shorter than one 400 ms loudness block; "
            "measure clips of at least 0.4 s"
        )
    data = audio.reshape(-1, audio.shape[-1]).double().cpu().numpy().T
    return float(pyloudnorm.Meter(rate).integrated_loudness(data))


def true_peak(audio: Tensor, rate: int) -> float:
    """BS.1770-4 true peak of ``(C, N)`` audio in dBTP (peak of the 4x oversampled signal)."""
    up = torchaudio.functional.resample(audio.double(), rate, rate * OVERSAMPLE)
    peak = float(torch.maximum(up.abs().max(), audio.double().abs().max()))
    return 20 * math.log10(max(peak, 1e-12))


def limit(audio: Tensor, rate: int, ceiling_db: float, *, lookahead: float = 0.005) -> Tensor:
    """Look-ahead true-peak limiter: a gain curve that is at most ``ceiling / true peak`` around every
    over-the-ceiling peak (a minimum filter ``lookahead`` wide each side) and smooth (a moving average
    half as wide, which keeps it under the needed gain at each peak). Channels share one gain."""
    ceiling = 10 ** (ceiling_db / 20)
    n = audio.shape[-1]
    up = torchaudio.functional.resample(audio, rate, rate * OVERSAMPLE)[..., : n * OVERSAMPLE]
    up = torch.nn.functional.pad(up, (0, n * OVERSAMPLE - up.shape[-1]))
    peak = torch.maximum(up.abs().reshape(-1, n, OVERSAMPLE).amax(dim=(0, 2)), audio.abs().amax(dim=0))
    gain = (ceiling / peak.clamp_min(1e-12)).clamp(max=1.0)
    reach = max(1, int(lookahead * rate))
    gain = -torch.nn.functional.max_pool1d(-gain[None, None], 2 * reach + 1, 1, reach)
    half = max(1, reach // 2)
    padded = torch.nn.functional.pad(gain, (half, half), mode="replicate")
    gain = torch.nn.functional.avg_pool1d(padded, 2 * half + 1, 1)[0, 0, :n]
    return audio * gain


@dataclass(frozen=True)
class Mastering:
    """How `master` finishes a clip. ``sample_rate=None`` keeps the model's rate, ``channels`` 1 or 2,
    ``loudness=None`` skips loudness normalisation (the true-peak ceiling still applies)."""

    sample_rate: int | None = 44_100
    channels: int = 2
    width: float = 0.5
    loudness: float | None = -14.0
    true_peak: float = -1.0

    def __post_init__(self) -> None:
        if self.channels not in (1, 2):
            raise CodecError(f"Mastering.channels={self.channels!r}: use 1 (mono) or 2 (stereo)")
        if self.loudness is not None and not -70 < self.loudness < 0:
            raise CodecError(
                f"Mastering.loudness={self.loudness!r} LUFS: use a level in (-70, 0); -14 is usual"
            )
        if not -20 <= self.true_peak <= 0:
            raise CodecError(
                f"Mastering.true_peak={self.true_peak!r} dBTP: use a ceiling in [-20, 0]; -1 is usual"
            )


def master(audio: Tensor, rate: int, how: Mastering, *, seed: int = 0) -> tuple[Tensor, int, dict]:
    """Finish ``(1, N)`` mono (or ``(2, N)`` stereo: a model's own, Stable Audio's) audio at ``rate`` as ``how``
    says. Returns ``(audio (C, M), rate, measured)`` where ``measured`` holds ``loudness_lufs`` and
    ``true_peak_dbtp`` of the result. Stereo input keeps its own image (folded to mono for ``channels=1``)."""
    out_rate = how.sample_rate or rate
    two = audio.ndim == 2 and audio.shape[0] == 2
    x = resample((audio if two else audio.reshape(1, -1)).float(), rate, out_rate)
    if two and how.channels == 1:
        x = x.mean(dim=0, keepdim=True)
    elif how.channels == 2 and not two:
        x = stereo(x, out_rate, width=how.width, seed=seed)
    ceiling = how.true_peak - 0.1  # margin for the resampler's estimate of inter-sample peaks
    if how.loudness is not None and x.abs().max() > 0:
        level = integrated_loudness(x, out_rate)
        gain_db = how.loudness - level if math.isfinite(level) else 0.0
        for _ in range(6):  # the limiter lowers loudness: raise the gain until the result is on target
            y = limit(x * 10 ** (gain_db / 20), out_rate, ceiling)
            level = integrated_loudness(y, out_rate)
            if not math.isfinite(level) or abs(level - how.loudness) <= 0.1:
                break
            gain_db += how.loudness - level
        x = y
    else:
        x = limit(x, out_rate, ceiling)
    measured = {"loudness_lufs": round(integrated_loudness(x, out_rate), 2),
                "true_peak_dbtp": round(true_peak(x, out_rate), 2)}  # fmt: skip
    return x.clamp(-1, 1), out_rate, measured


DEFAULT_MASTERING = Mastering()  # what pipelines finish music with unless told otherwise (None: raw output)
