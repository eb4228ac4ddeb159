"""Noise-level experts (eDiffi, Balaji et al. 2022; ERNIE-ViLG 2.0's mixture of denoising experts).

K denoisers, each trained on one range of timesteps (``TrainConfig(timestep_range=...)``, typically all
fine-tuned from one shared model), and `NoiseLevelExperts`, a composite denoiser that routes each item to
the expert of its timestep. It is a denoiser like any other: the sampling loop runs it unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError


def expert_ranges(boundaries: Sequence[float], num_train_timesteps: int = 1000) -> list[tuple[float, float]]:
    """The timestep range of each expert for ascending ``boundaries``: ``[0, b0 - 1], [b0, b1 - 1], ...``."""
    edges = [0.0, *map(float, boundaries), float(num_train_timesteps)]
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise DiffusionError(
            f"boundaries={list(boundaries)} must be ascending inside (0, {num_train_timesteps})"
        )
    return [(lo, hi - 1) for lo, hi in itertools.pairwise(edges)]


class NoiseLevelExperts(nn.Module):
    """Route each item to ``experts[k]`` where ``boundaries[k-1] <= t < boundaries[k]`` (low noise first).

    Args:
        experts: K denoisers with the same ``output_type``.
        boundaries: K-1 ascending timesteps between them.
    """

    def __init__(self, experts: Sequence[nn.Module], boundaries: Sequence[float]) -> None:
        super().__init__()
        if len(experts) != len(boundaries) + 1 or len(experts) < 2:
            raise DiffusionError(
                f"{len(experts)} experts need {len(experts) - 1} boundaries, got {len(boundaries)}"
            )
        kinds = {e.output_type for e in experts}
        if len(kinds) != 1:
            raise DiffusionError(f"experts disagree on their output type: {sorted(kinds)}")
        expert_ranges(boundaries)  # validates the order
        self.experts = nn.ModuleList(experts)
        self.register_buffer("boundaries", torch.tensor([float(b) for b in boundaries]), persistent=False)
        self.output_type: str = kinds.pop()

    def route(self, t: Tensor) -> Tensor:
        """The expert index of each timestep."""
        return torch.bucketize(t.float(), self.boundaries.to(t.device), right=True)

    def forward(self, x: Tensor, t: Tensor, cond: Conditioning | None = None) -> Tensor:
        cond = cond or Conditioning()
        index = self.route(t)
        first = int(index[0])
        if bool((index == first).all()):  # the usual case while sampling: one timestep for the batch
            return self.experts[first](x, t, cond)
        out = torch.empty_like(x)
        for k in index.unique().tolist():
            rows = index == k
            out[rows] = self.experts[k](x[rows], t[rows], cond.map(lambda v, rows=rows: v[rows])).to(
                out.dtype
            )
        return out
