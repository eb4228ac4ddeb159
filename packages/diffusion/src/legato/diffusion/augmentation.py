"""Noise-conditioning augmentation for super-resolution stages (Ho et al. 2021, "Cascaded Diffusion Models",
Sec. 4.1; Saharia et al. 2022, "Imagen", Sec. 2.5).

A super-resolution model conditioned on a perfect low-res input learns to trust it, then breaks on the
artefacts of a generated one. So the low-res input is noised by the forward process to a level the model is
told (``Conditioning.noise_level``): training draws the level at random per item, sampling uses one fixed,
configurable level, so that a cascade can trade fidelity to the low-res input for robustness to its errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.denoisers import VPSchedule
from legato.diffusion.errors import DiffusionError
from legato.diffusion.tensors import append_dims, randn


@dataclass(frozen=True)
class NoiseAugmentation:
    """Noise ``Conditioning.low_res`` to a timestep of the model's schedule and set ``noise_level`` to it.

    Args:
        max_level: training draws levels uniformly from ``[0, max_level]`` (timesteps).
        sample_level: the fixed level used when sampling (``0`` keeps the low-res input clean but still
            tells the model the level, which it was trained on).
    """

    max_level: int = 250
    sample_level: int = 100

    def __post_init__(self) -> None:
        if not 0 <= self.sample_level <= self.max_level:
            raise DiffusionError(
                f"sample_level={self.sample_level} must lie in [0, max_level={self.max_level}]: a level the "
                "model saw in training"
            )

    def train(self, cond: Conditioning, schedule: VPSchedule, generator: torch.Generator) -> Conditioning:
        """Random levels per item (for `Objective.loss`); randomness only from ``generator``."""
        low = self._low_res(cond, schedule)
        u = torch.rand(low.shape[0], generator=generator, device=generator.device)
        levels = (u * (self.max_level + 1)).floor().clamp_max(self.max_level).to(low.device)
        return self._noised(cond, low, levels, schedule, generator)

    def sample(
        self,
        cond: Conditioning,
        schedule: VPSchedule,
        generator: torch.Generator | Sequence[torch.Generator],
    ) -> Conditioning:
        """The fixed ``sample_level`` for every item, noised once before the sampling loop; with one generator
        per item, an item's noise does not depend on its batch."""
        low = self._low_res(cond, schedule)
        levels = torch.full((low.shape[0],), float(self.sample_level), device=low.device)
        return self._noised(cond, low, levels, schedule, generator)

    def _low_res(self, cond: Conditioning, schedule: VPSchedule) -> torch.Tensor:
        if cond.low_res is None:
            raise DiffusionError(
                "noise augmentation needs Conditioning(low_res=...): the upsampled low-res input"
            )
        if self.max_level >= schedule.log_snr.numel():
            raise DiffusionError(
                f"max_level={self.max_level} is beyond the schedule's {schedule.log_snr.numel()} timesteps"
            )
        return cond.low_res

    @staticmethod
    def _noised(
        cond: Conditioning,
        low: torch.Tensor,
        levels: torch.Tensor,
        schedule: VPSchedule,
        generator: torch.Generator | Sequence[torch.Generator],
    ) -> Conditioning:
        noise = randn(low.shape, generator, device=low.device, dtype=low.dtype)
        alpha, sigma = (append_dims(v.to(low), low.ndim) for v in schedule.alpha_sigma(levels))
        # Level 0 keeps the input exactly: a model told "clean" must be able to trust it.
        noisy = torch.where(append_dims(levels > 0, low.ndim), alpha * low + sigma * noise, low)
        return cond.replace(low_res=noisy, noise_level=levels)
