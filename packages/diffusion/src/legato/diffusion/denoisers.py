"""Denoisers: a network plus how it was trained, behind one call ``denoiser(x, t, cond)``.

k-diffusion's idea with diffusers' vocabulary. Each adapter declares ``output_type``: the diffusers
``prediction_type`` its output is in ("epsilon", "v_prediction", "sample", or "flow_prediction": a rectified
flow's velocity ``eps - x_0``). The sampling loop configures the scheduler to match, so no sampler branches on
how a model was trained.

Inputs are in the form the diffusers schedulers hand to a model after ``scale_model_input``: variance-preserving,
``x_t = alpha_t x_0 + sigma_t eps`` at a (possibly fractional) timestep ``t`` of the training schedule; for a
flow model ``x_t = (1 - s) x_0 + s eps`` at ``t = 1000 s``.
"""

from __future__ import annotations

from typing import Literal

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.models.forward import forward_network
from legato.diffusion.tensors import append_dims

PredictionType = Literal["epsilon", "v_prediction", "sample", "flow_prediction"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction", "sample", "flow_prediction")


class Denoiser(nn.Module):
    """A network trained to predict noise ("epsilon"), velocity ("v_prediction"), the clean sample ("sample") or
    a rectified flow's velocity ("flow_prediction")."""

    def __init__(self, network: nn.Module, prediction_type: PredictionType = "epsilon") -> None:
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise DiffusionError(f"prediction_type={prediction_type!r}; use one of {PREDICTION_TYPES}")
        self.network = network
        self.output_type: str = prediction_type

    def forward(self, x: Tensor, t: Tensor, cond: Conditioning | None = None) -> Tensor:
        return forward_network(self.network, x, t, cond or Conditioning())


class VPSchedule(nn.Module):
    """A variance-preserving noise schedule as a function of (fractional) timestep: ``alpha_t``, ``sigma_t``.

    Built from a diffusers scheduler's ``alphas_cumprod``; fractional timesteps interpolate log-SNR linearly.
    """

    def __init__(self, alphas_cumprod: Tensor) -> None:
        super().__init__()
        ac = alphas_cumprod.double().clamp(1e-12, 1 - 1e-12)
        self.register_buffer("log_snr", torch.log(ac / (1 - ac)).float(), persistent=False)

    @classmethod
    def from_scheduler(cls, scheduler: SchedulerMixin) -> VPSchedule:
        if not hasattr(scheduler, "alphas_cumprod"):
            raise DiffusionError(
                f"{type(scheduler).__name__} has no alphas_cumprod; pass a DDPM-family scheduler"
            )
        return cls(torch.as_tensor(scheduler.alphas_cumprod))

    def log_snr_at(self, t: Tensor) -> Tensor:
        t = t.to(self.log_snr.device, torch.float32).clamp(0, self.log_snr.numel() - 1)
        lo = t.floor().long()
        hi = (lo + 1).clamp_max(self.log_snr.numel() - 1)
        frac = t - lo
        return torch.lerp(self.log_snr[lo], self.log_snr[hi], frac)

    def timestep_of(self, sigma_ve: Tensor) -> Tensor:
        """The fractional timestep whose ``sigma_t / alpha_t`` is ``sigma_ve``: the inverse of `log_snr_at`."""
        target = (
            -2.0 * sigma_ve.to(self.log_snr.device, torch.float32).log()
        ).neg()  # -log SNR, increasing in t
        ascending = -self.log_snr
        hi = torch.searchsorted(ascending, target.contiguous()).clamp(1, ascending.numel() - 1)
        lo = hi - 1
        frac = (target - ascending[lo]) / (ascending[hi] - ascending[lo])
        return (lo + frac.clamp(0, 1)).to(sigma_ve.device)

    def sigma_ve(self, t: Tensor) -> Tensor:
        """``sigma_t / alpha_t``: the variance-exploding noise level at timestep ``t``."""
        return (-0.5 * self.log_snr_at(t)).exp()

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        log_snr = self.log_snr_at(t)
        return torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()


class EDMDenoiser(nn.Module):
    """Karras et al. 2022 ("Elucidating the Design Space...", Table 1) preconditioning around a network ``F``.

    ``D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x; c_noise(s))`` in the variance-exploding form
    ``x = x_0 + s eps``, where ``s = sigma_t / alpha_t``. The adapter converts the loop's VP input to that form
    and returns the ``x_0`` estimate (``output_type = "sample"``). ``c_noise = 250 ln s``: the paper's
    ``ln(s) / 4`` scaled to the 0-1000 range that diffusers' sinusoidal timestep embeddings expect.
    """

    output_type = "sample"

    def __init__(self, network: nn.Module, schedule: VPSchedule, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.network = network
        self.schedule = schedule
        self.sigma_data = sigma_data

    def precondition(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)`` for VE noise levels ``sigma`` ``(B,)``."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        return c_skip, c_out, c_in, 250.0 * sigma.log()

    def denoise_ve(self, x_ve: Tensor, sigma: Tensor, cond: Conditioning) -> Tensor:
        """``D(x; sigma)`` on a VE-form sample, the form EDM training works in."""
        c_skip, c_out, c_in, c_noise = (append_dims(c, x_ve.ndim) for c in self.precondition(sigma))
        out = forward_network(self.network, c_in * x_ve, c_noise.reshape(-1), cond)
        return c_skip * x_ve + c_out * out

    def forward(self, x: Tensor, t: Tensor, cond: Conditioning | None = None) -> Tensor:
        alpha, sigma = self.schedule.alpha_sigma(t.to(x.device))
        alpha, sigma = alpha.to(x), sigma.to(x)
        x_ve = x / append_dims(alpha, x.ndim)
        return self.denoise_ve(x_ve, sigma / alpha, cond or Conditioning())
