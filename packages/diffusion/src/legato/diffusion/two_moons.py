"""A 2-D toy distribution and a distance to it, to measure claims about training and sampling exactly.

Samples are ``(N, 2, 1, 1)`` (two features, no space), what `legato.diffusion.models.MLP` denoises.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def two_moons(n: int, seed: int, noise: float = 0.05) -> Tensor:
    """``n`` points of two interleaved half circles, scaled to about unit variance; label = which moon."""
    return two_moons_labelled(n, seed, noise)[0]


def two_moons_labelled(n: int, seed: int, noise: float = 0.05) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    angle = torch.rand(n, generator=gen) * math.pi
    x = torch.where(labels == 0, angle.cos(), 1 - angle.cos())
    y = torch.where(labels == 0, angle.sin(), 0.5 - angle.sin())
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.6
    points = points + noise * torch.randn(n, 2, generator=gen)
    return points[:, :, None, None], labels


def sliced_wasserstein(a: Tensor, b: Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance between two point sets ``(N, D, ...)`` and ``(M, D, ...)``.

    The mean over ``projections`` random directions of the 1-D Wasserstein distance of the projections
    (computed from quantiles, so N and M may differ). Deterministic for a given ``seed``.
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(a.shape[1], projections, generator=gen, dtype=torch.float64)
    directions /= directions.norm(dim=0, keepdim=True)
    qs = torch.linspace(0, 1, 512, dtype=torch.float64)
    pa = torch.quantile(a @ directions, qs, dim=0)
    pb = torch.quantile(b @ directions, qs, dim=0)
    return float((pa - pb).abs().mean())
