"""The Fréchet distance between two sets of embeddings: the quality figure of a generative model.

FID (Heusel et al. 2017) and FVD compare Gaussians fitted to a feature extractor's embeddings of generated and
real samples. Legato's verifiers (music and video) and `legato.video.video_frechet_distance` all measure with
this one function; only the embedding differs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from legato.diffusion.errors import DiffusionError


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to embeddings ``a`` ``(N, D)`` and ``b`` ``(M, D)``:
    ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2)``, in float64 through symmetric
    eigendecompositions (stable where a covariance is singular, as it is when N <= D)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise DiffusionError(
            f"frechet_distance takes (N >= 2, D) embeddings of equal D, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_a = _sqrtm(cov_a)
    cross = _sqrtm(root_a @ cov_b @ root_a)
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a + cov_b - 2 * cross))


def _sqrtm(matrix: Tensor) -> Tensor:
    """The symmetric positive semi-definite square root (negative eigenvalues from rounding clamped to 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T
