"""Deterministic music-like test signals, for tests, benchmarks and smoke runs without audio files.

`harmonic_notes` plays a random melody of harmonic tones (six partials, decaying envelopes) over a quiet
noise floor: it has the pitched, sparse spectrum of real music, which pure sines or white noise lack.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def harmonic_notes(seconds: float, sample_rate: int, seed: int = 0, *, peak: float = 0.5) -> Tensor:
    """A ``(N,)`` float32 melody of ``seconds`` at ``sample_rate``, peak-normalised to ``peak``."""
    gen = torch.Generator().manual_seed(seed)
    n = round(seconds * sample_rate)
    out = torch.zeros(n, dtype=torch.float64)
    note = [0.125, 0.25, 0.5][int(torch.randint(3, (1,), generator=gen))]
    start = 0.0
    while start < seconds:
        f0 = 110.0 * 2 ** (int(torch.randint(36, (1,), generator=gen)) / 12)  # A2 .. G#5
        s = int(start * sample_rate)
        e = min(n, int((start + note * int(torch.randint(1, 3, (1,), generator=gen))) * sample_rate))
        t = torch.arange(e - s, dtype=torch.float64) / sample_rate
        decay = 2.0 + 4.0 * float(torch.rand((), generator=gen))
        envelope = torch.exp(-decay * t) * torch.clamp(t / 0.01, max=1.0)
        tone = torch.zeros_like(t)
        for k in range(6):
            if f0 * (k + 1) < sample_rate / 2:
                phase = 2 * math.pi * float(torch.rand((), generator=gen))
                tone += 0.6**k * torch.sin(2 * math.pi * f0 * (k + 1) * t + phase)
        out[s:e] += envelope * tone
        start += note
    out += 0.005 * torch.randn(n, generator=gen, dtype=torch.float64)
    return (peak * out / out.abs().max()).float()
