"""`Objective`: what a denoiser is trained to predict, at which noise levels, weighted how.

Parameterisations (all on the variance-preserving form ``x_t = alpha x_0 + sigma eps`` of a `VPSchedule`):

- ``epsilon``, ``v_prediction`` (Salimans & Ho 2022: ``v = alpha eps - sigma x_0``), ``sample`` (x_0):
  timesteps uniform over the training schedule, loss on the network output;
- ``edm`` (Karras et al. 2022): VE noise levels ``s`` log-normal (``P_mean``, ``P_std``), the network
  preconditioned by `EDMDenoiser`, loss on ``x_0`` weighted by ``lambda(s) = (s^2 + sd^2) / (s sd)^2``.

Weightings for the first three: ``uniform`` and ``min_snr`` (Hang et al. 2023, Min-SNR-gamma: the x0-space
weight ``min(SNR, gamma)``, expressed per parameterisation: ``/SNR`` for epsilon, ``/(SNR + 1)`` for v).

``augmentation`` (a `NoiseAugmentation`) noises a super-resolution model's low-res input at random levels.
``frame_correlation`` trains a video model on noise correlated across frames (`correlate_frames`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

from legato.diffusion.augmentation import NoiseAugmentation
from legato.diffusion.conditioning import Conditioning
from legato.diffusion.denoisers import Denoiser, EDMDenoiser, VPSchedule
from legato.diffusion.errors import DiffusionError
from legato.diffusion.models.forward import forward_network
from legato.diffusion.tensors import append_dims, check_frame_correlation, correlate_frames

Parameterization = Literal["epsilon", "v_prediction", "sample", "edm"]


class TrainingObjective(Protocol):
    """What the `Trainer` needs of an objective: a per-item loss and the sampling adapter for the result.

    `Objective` is the standard one; `legato.diffusion.distill` provides distillation objectives.
    """

    def loss(
        self,
        network: nn.Module,
        schedule: VPSchedule,
        x0: Tensor,
        cond: Conditioning,
        generator: torch.Generator,
        *,
        timestep_range: tuple[float, float] | None = None,
    ) -> Tensor: ...

    def denoiser(self, network: nn.Module, schedule: VPSchedule) -> nn.Module: ...


Weighting = Literal["uniform", "min_snr", "edm"]


@dataclass(frozen=True)
class Objective:
    """The training target. ``weighting`` defaults to the parameterisation's natural one.

    ``frame_correlation`` (videos ``(B, C, T, H, W)`` only): the noise's correlation between frames, 0 for
    independent frames; the stage that samples the model needs the same `Stage.frame_correlation`."""

    prediction_type: Parameterization = "epsilon"
    weighting: Weighting | None = None
    min_snr_gamma: float = 5.0
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    augmentation: NoiseAugmentation | None = None
    frame_correlation: float = 0.0

    def __post_init__(self) -> None:
        check_frame_correlation(self.frame_correlation)
        if self.prediction_type not in ("epsilon", "v_prediction", "sample", "edm"):
            raise DiffusionError(
                f"prediction_type={self.prediction_type!r}; use epsilon, v_prediction, sample or edm"
            )
        weighting = self.resolved_weighting
        if (weighting == "edm") != (self.prediction_type == "edm"):
            raise DiffusionError(
                f"weighting={weighting!r} with prediction_type={self.prediction_type!r}: the edm weighting goes "
                "with (and only with) the edm parameterisation"
            )
        if weighting not in ("uniform", "min_snr", "edm"):
            raise DiffusionError(f"weighting={weighting!r}; use uniform, min_snr or edm")
        if self.min_snr_gamma <= 0 or self.sigma_data <= 0 or self.p_std <= 0:
            raise DiffusionError("min_snr_gamma, sigma_data and p_std must be positive")

    @property
    def resolved_weighting(self) -> str:
        if self.weighting is not None:
            return self.weighting
        return "edm" if self.prediction_type == "edm" else "uniform"

    def denoiser(self, network: nn.Module, schedule: VPSchedule) -> nn.Module:
        """The sampling-time adapter for a network trained with this objective."""
        if self.prediction_type == "edm":
            return EDMDenoiser(network, schedule, self.sigma_data)
        return Denoiser(network, self.prediction_type)

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
        """Per-item weighted loss ``(B,)`` for a clean batch ``x0``; randomness only from ``generator``.

        ``timestep_range`` restricts the noise levels drawn (noise-level experts train on a slice).
        """
        batch = x0.shape[0]
        if self.augmentation is not None:
            cond = self.augmentation.train(cond, schedule, generator)
        noise = draw_noise(x0, generator)
        if self.frame_correlation:
            if x0.ndim != 5:
                raise DiffusionError(
                    f"frame_correlation={self.frame_correlation} correlates the frames of videos (B, C, T, H, W); "
                    f"this batch is {tuple(x0.shape)}: set it to 0"
                )
            noise = correlate_frames(noise, self.frame_correlation)
        n_train = schedule.log_snr.numel()
        lo, hi = timestep_range if timestep_range is not None else (0.0, n_train - 1.0)
        if self.prediction_type == "edm":
            return self._edm_loss(network, schedule, x0, noise, cond, generator, (lo, hi))
        u = torch.rand(batch, generator=generator, device=generator.device).to(x0.device)
        t = (lo + u * (hi + 1 - lo)).floor().clamp(lo, hi)  # integer timesteps, uniform over [lo, hi]
        alpha, sigma = (append_dims(v.to(x0), x0.ndim) for v in schedule.alpha_sigma(t))
        x_t = alpha * x0 + sigma * noise
        out = forward_network(network, x_t, t, cond)
        target = {"epsilon": noise, "v_prediction": alpha * noise - sigma * x0, "sample": x0}[
            self.prediction_type
        ]
        per_item = (out.float() - target.float()).pow(2).flatten(1).mean(1)
        if self.resolved_weighting == "min_snr":
            snr = (alpha.flatten() / sigma.flatten()) ** 2
            clipped = snr.clamp_max(self.min_snr_gamma)
            divisor = {"epsilon": snr, "v_prediction": snr + 1, "sample": torch.ones_like(snr)}[
                self.prediction_type
            ]
            per_item = per_item * (clipped / divisor)
        return per_item

    def _edm_loss(
        self,
        network: nn.Module,
        schedule: VPSchedule,
        x0: Tensor,
        noise: Tensor,
        cond: Conditioning,
        generator: torch.Generator,
        t_range: tuple[float, float],
    ) -> Tensor:
        edm = EDMDenoiser(network, schedule, self.sigma_data)
        # Noise levels the schedule can express: sample log-normal, clamp to the timestep range's sigmas.
        s_lo, s_hi = (schedule.sigma_ve(torch.tensor(v)) for v in t_range)
        z = torch.randn(x0.shape[0], generator=generator, device=generator.device).to(x0.device)
        sigma = (self.p_mean + self.p_std * z).exp().clamp(float(s_lo), float(s_hi))
        denoised = edm.denoise_ve(x0 + append_dims(sigma, x0.ndim).to(x0) * noise, sigma.to(x0), cond)
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        return weight * (denoised.float() - x0.float()).pow(2).flatten(1).mean(1)


def draw_noise(like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard normal noise shaped like ``like``, drawn from ``generator`` (on its device), moved to ``like``'s."""
    return torch.randn(like.shape, generator=generator, device=generator.device, dtype=like.dtype).to(
        like.device
    )


def shifted_betas(alphas_cumprod: Tensor, shift: float) -> list[float]:
    """Betas of a schedule whose log-SNR is shifted by ``-2 log(shift)`` (simple diffusion, Hoogeboom et al.
    2023, Sec. 3.1): for an image ``shift`` times larger than the base resolution, the same noise level
    destroys as much signal as at the base. Pass to a diffusers scheduler as ``trained_betas``."""
    if not (math.isfinite(shift) and shift > 0):
        raise DiffusionError(f"shift={shift!r} must be a positive number (the resolution ratio, e.g. 2.0)")
    ac = alphas_cumprod.double().clamp(1e-12, 1 - 1e-12)
    log_snr = torch.log(ac / (1 - ac)) - 2 * math.log(shift)
    shifted = torch.sigmoid(log_snr)
    prev = torch.cat([torch.ones(1, dtype=shifted.dtype), shifted[:-1]])
    return (1 - shifted / prev).clamp(0, 0.999).tolist()
