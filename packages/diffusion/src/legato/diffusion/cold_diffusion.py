"""Cold Diffusion (Bansal et al. 2022): a deterministic degradation in place of Gaussian noise.

- A degradation ``D(x0, t)`` (`blur`, `mask`) for integer severities ``t`` in ``[0, T]``, ``D(x0, 0) = x0``.
- `ColdScheduler`, a diffusers-compatible scheduler: ``add_noise`` degrades and ``step`` takes the paper's
  improved sampling step (Algorithm 2), ``x_{s-1} = x_s - D(x0_hat, s) + D(x0_hat, s-1)``, or the naive one
  (Algorithm 1), ``x_{s-1} = D(x0_hat, s-1)``. The one sampling loop runs it unchanged: pass the degraded
  sample as ``noise`` (``init_noise_sigma`` is 1).
- `ColdObjective`: the network restores ``x0`` from ``D(x0, t)`` (L1 loss, as the paper), for the one `Trainer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.denoisers import Denoiser, VPSchedule
from legato.diffusion.errors import DiffusionError
from legato.diffusion.models.forward import forward_network


def blur(x0: Tensor, t: Tensor, steps: int, sigma_max: float) -> Tensor:
    """Gaussian blur of the last two (spatial) dims with std ``sigma_max * t / steps``, per item."""
    out = x0.clone()
    for level in t.unique().tolist():
        if level <= 0:
            continue
        rows = t == level
        sigma = sigma_max * level / steps
        radius = max(1, math.ceil(3 * sigma))
        grid = torch.arange(-radius, radius + 1, dtype=x0.dtype, device=x0.device)
        kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
        kernel = kernel / kernel.sum()
        x = x0[rows]
        lead, (h, w) = x.shape[:-2], x.shape[-2:]
        flat = x.reshape(-1, 1, h, w)
        flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
        flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
        out[rows] = flat.reshape(*lead, h, w)
    return out


def mask(x0: Tensor, t: Tensor, steps: int, seed: int, fill: float = 0.0) -> Tensor:
    """Set the first ``t / steps`` of the pixels, in a fixed random order (``seed``), to ``fill``."""
    h, w = x0.shape[-2:]
    order = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed)).to(x0.device)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(h * w, device=x0.device)
    cutoff = torch.ceil(t.to(x0.device).float() / steps * h * w)  # (B,)
    hidden = rank.view(1, h, w) < cutoff.view(-1, 1, 1)  # (B, H, W)
    hidden = hidden.view(x0.shape[0], *([1] * (x0.ndim - 3)), h, w)
    return torch.where(hidden, torch.full_like(x0, fill), x0)


class ColdScheduler(SchedulerMixin, ConfigMixin):
    """A diffusers-style scheduler for a deterministic degradation (``degradation="blur"`` or ``"mask"``)."""

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 20,
        degradation: str = "blur",
        blur_sigma_max: float = 3.0,
        mask_seed: int = 0,
        algorithm: str = "improved",
        prediction_type: str = "sample",
    ) -> None:
        if degradation not in ("blur", "mask"):
            raise DiffusionError(f"degradation={degradation!r}; use 'blur' or 'mask'")
        if algorithm not in ("improved", "naive"):
            raise DiffusionError(
                f"algorithm={algorithm!r}; use 'improved' (the paper's Algorithm 2) or 'naive'"
            )
        if prediction_type != "sample":
            raise DiffusionError(
                f"cold diffusion restores x0: the denoiser must predict 'sample', not {prediction_type!r}"
            )
        self.init_noise_sigma = 1.0
        self.timesteps = torch.arange(num_train_timesteps, 0, -1)

    def degrade(self, x0: Tensor, t: Tensor) -> Tensor:
        cfg = self.config
        t = t.to(x0.device).long().expand(x0.shape[0]) if t.ndim == 0 else t.to(x0.device).long()
        if cfg.degradation == "blur":
            return blur(x0, t, cfg.num_train_timesteps, cfg.blur_sigma_max)
        return mask(x0, t, cfg.num_train_timesteps, cfg.mask_seed)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        total = self.config.num_train_timesteps
        if not 1 <= num_inference_steps <= total:
            raise DiffusionError(f"cold diffusion takes 1..{total} steps, got {num_inference_steps}")
        grid = torch.linspace(total, 1, num_inference_steps).round().long().unique_consecutive()
        self.timesteps = grid.to(device)
        self.num_inference_steps = len(grid)

    def scale_model_input(self, sample: Tensor, timestep: Tensor | int | None = None) -> Tensor:
        return sample

    def _previous(self, timestep: Tensor) -> Tensor:
        later = self.timesteps[self.timesteps < timestep]
        return later[0] if len(later) else torch.zeros_like(timestep)

    def step(
        self, model_output: Tensor, timestep: Tensor, sample: Tensor, return_dict: bool = True
    ) -> SchedulerOutput | tuple[Tensor]:
        t = torch.as_tensor(timestep, device=sample.device)
        prev = self._previous(t.to(self.timesteps.device)).to(sample.device)
        if self.config.algorithm == "naive":
            out = self.degrade(model_output, prev)
        else:
            out = sample - self.degrade(model_output, t) + self.degrade(model_output, prev)
        return SchedulerOutput(prev_sample=out) if return_dict else (out,)

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """Degrade to ``timesteps`` (``noise`` is unused: the degradation is deterministic)."""
        return self.degrade(original_samples, timesteps)


@dataclass(frozen=True)
class ColdObjective:
    """Train a network to restore ``x0`` from ``D(x0, t)``, ``t`` uniform in ``[1, T]`` (L1, as the paper)."""

    scheduler: ColdScheduler
    prediction_type = "sample"

    def denoiser(self, network: nn.Module, schedule: VPSchedule) -> nn.Module:
        return Denoiser(network, "sample")

    def loss(
        self,
        network: nn.Module,
        schedule: VPSchedule,
        x0: Tensor,
        cond: Conditioning,
        generator: torch.Generator,
        *,
        timestep_range: tuple[float, float] | None = None,
    ) -> Tensor:
        total = self.scheduler.config.num_train_timesteps
        t = torch.randint(1, total + 1, (x0.shape[0],), generator=generator, device=generator.device).to(
            x0.device
        )
        restored = forward_network(network, self.scheduler.degrade(x0, t), t, cond)
        return (restored.float() - x0.float()).abs().flatten(1).mean(1)
