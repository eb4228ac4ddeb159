"""Phase from STFT magnitude alone: phase-gradient integration (PGHI, Průša, Balazs & Søndergaard 2017).

For a Gaussian window the STFT's log-magnitude and phase are tied by the Cauchy-Riemann equations, so the
phase's derivatives follow from the magnitude's: along time the instantaneous frequency, along frequency
the local group delay. Integrating them gives a phase in one pass, with no iteration, and a far better
start for Griffin-Lim than zero or random phase (measured in benchmarks/vocoder.py). Windows other than a
Gaussian are treated as the Gaussian of the same shape (Průša's fitted constants).

The paper integrates over one heap of all coefficients, largest first. Here each frame is split into
regions around its spectral peaks (between local minima); a peak's phase comes from the previous frame by
the instantaneous frequency and every other bin of its region from the peak by the group delay. That is
the heap's path for partials that go on from frame to frame, is batched, and costs a few tensor operations
per frame.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# lambda = GAMMA * win_length^2 (samples^2): the Gaussian that best fits each window (ltfat's pghi)
GAMMA = {"hann": 0.25645, "hamming": 0.29794, "blackman": 0.17954}


PHASES = ("zero", "pghi")  # where Griffin-Lim starts (`MelCodec.audio`): zero phase, or `pghi_phase`


def check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r} is not a Griffin-Lim start; use one of {PHASES}")


def _centred_difference(x: Tensor, dim: int) -> Tensor:
    """Centred differences along ``dim``, one-sided at the ends (`torch.gradient`; zeros for one sample)."""
    return torch.gradient(x, dim=dim)[0] if x.shape[dim] > 1 else torch.zeros_like(x)


def _peak_of_region(level: Tensor) -> Tensor:
    """``(N, F)`` -> for each bin, the index of the largest bin of its region (regions end at local minima;
    ties go to the lowest bin, so the result is deterministic)."""
    n, f = level.shape
    valley = torch.zeros_like(level, dtype=torch.bool)
    valley[:, 1:-1] = (level[:, 1:-1] <= level[:, :-2]) & (level[:, 1:-1] < level[:, 2:])
    region = torch.cumsum(valley, dim=1) + torch.arange(n, device=level.device)[:, None] * (f + 1)
    region = region.flatten()
    top = level.new_full((n * (f + 1),), -math.inf).scatter_reduce(0, region, level.flatten(), "amax")
    bins = torch.arange(f, device=level.device).expand(n, f).flatten()
    candidate = torch.where(level.flatten() == top[region], bins, f)
    first = torch.full_like(top, f, dtype=torch.long).scatter_reduce(0, region, candidate, "amin")
    return first[region].view(n, f)


def pghi_phase(
    magnitude: Tensor,
    *,
    win_length: int,
    hop_length: int,
    n_fft: int,
    window: str = "hann",
    floor_db: float = -100.0,
) -> Tensor:
    """Phase for ``magnitude`` ``(..., n_freqs, frames)`` (``n_freqs = n_fft // 2 + 1``), in ``torch.stft``'s
    convention (``center=True``, the window centred in the frame): ``torch.polar(magnitude, phase)`` is a
    spectrum to invert or to start Griffin-Lim from.

    ``floor_db``: levels below the item's peak by more than this are raised to it before differentiation,
    so the derivatives of near-silence (where phase does not matter) stay bounded.
    """
    if window not in GAMMA:
        raise ValueError(f"window={window!r} has no fitted Gaussian; use one of {sorted(GAMMA)}")
    if magnitude.shape[-2] != n_fft // 2 + 1:
        raise ValueError(
            f"magnitude has {magnitude.shape[-2]} frequency bins; n_fft={n_fft} needs {n_fft // 2 + 1}"
        )
    batch_shape, (n_freqs, frames) = magnitude.shape[:-2], magnitude.shape[-2:]
    work = magnitude.dtype if magnitude.dtype == torch.float64 else torch.float32
    mag = magnitude.reshape(-1, n_freqs, frames).transpose(-1, -2).to(work)  # (B, T, F)
    log = mag.clamp_min(1e-30).log()
    log = torch.maximum(log, log.amax(dim=(-2, -1), keepdim=True) + floor_db / 20 * math.log(10))
    gamma = GAMMA[window] * win_length**2
    a, m = hop_length, n_fft
    bins = torch.arange(n_freqs, dtype=mag.dtype, device=mag.device)
    # phase advance from one frame to the next (instantaneous frequency times the hop), per bin
    along_time = 2 * math.pi * a / m * bins + (a * m / gamma) * _centred_difference(log, -1)
    # phase step from one bin to the next (minus the group delay), per frame; summed from bin 0
    along_freq = -(gamma / (a * m)) * _centred_difference(log, -2)
    within = torch.nn.functional.pad(
        torch.cumsum((along_freq[..., 1:] + along_freq[..., :-1]) / 2, -1), (1, 0)
    )
    peak = _peak_of_region(log.flatten(0, 1)).view_as(log)
    phase = torch.empty_like(log)
    phase[:, 0] = within[:, 0]
    for t in range(1, frames):
        carried = phase[:, t - 1] + (along_time[:, t - 1] + along_time[:, t]) / 2 - within[:, t]
        phase[:, t] = torch.remainder(torch.gather(carried, -1, peak[:, t]) + within[:, t], 2 * math.pi)
    # Phases above are relative to each window's centre; torch.stft's frames start that far earlier.
    centre = (n_fft - win_length) // 2 + win_length // 2
    phase = torch.remainder(phase + 2 * math.pi * centre / m * bins, 2 * math.pi)
    return phase.transpose(-1, -2).reshape(*batch_shape, n_freqs, frames).to(magnitude.dtype)
