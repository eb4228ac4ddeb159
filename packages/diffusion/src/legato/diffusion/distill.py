"""Distillation as training objectives, so the one `Trainer` runs it (EMA, checkpoints, exact resume).

- `ProgressiveDistillation` (Salimans & Ho 2022, Algorithm 2): a student that takes one DDIM step where the
  teacher takes two, so N -> N/2 steps per round; each round's student is the next round's teacher.
  Timesteps follow diffusers' DDIM "trailing" spacing, on which the N/2-step grid is every other step of
  the N-step grid, so the student samples with ``DDIMScheduler(timestep_spacing="trailing")`` at N/2 steps.
- `GuidedDistillation` (Meng et al. 2023, stage 1): a student that takes the guidance scale ``w`` as an
  input (``Conditioning.guidance``) learns the teacher's classifier-free-guided prediction in one forward.
  Stage 2 is `ProgressiveDistillation` with that student as teacher and ``guidance_range`` set, so ``w``
  is drawn per item and passed to both.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler
from torch import Tensor, nn

from legato.diffusion.augmentation import NoiseAugmentation
from legato.diffusion.conditioning import Conditioning
from legato.diffusion.denoisers import Denoiser, VPSchedule
from legato.diffusion.errors import DiffusionError
from legato.diffusion.guidance import ClassifierFreeGuidance
from legato.diffusion.models.forward import forward_network
from legato.diffusion.schedulers import convert_scheduler
from legato.diffusion.tensors import append_dims
from legato.diffusion.training.objective import draw_noise


def trailing_timesteps(steps: int, num_train_timesteps: int = 1000) -> Tensor:
    """diffusers' DDIM "trailing" timesteps for ``steps`` steps, noisiest first, then -1 for "clean"."""
    grid = torch.round(torch.arange(num_train_timesteps, 0, -num_train_timesteps / steps)) - 1
    return torch.cat([grid, torch.tensor([-1.0])])


def student_scheduler(config: dict | None = None) -> DDIMScheduler:
    """The scheduler a progressively distilled student samples with (trailing spacing, final alpha 1)."""
    return convert_scheduler(
        DDIMScheduler,
        config,
        timestep_spacing="trailing",
        set_alpha_to_one=True,
        clip_sample=False,
        steps_offset=0,
    )


def x0_from(output: Tensor, output_type: str, z: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """A denoiser output of any type as the x_0 estimate, given ``z = alpha x0 + sigma eps``."""
    if output_type == "sample":
        return output
    if output_type == "epsilon":
        return (z - sigma * output) / alpha
    if output_type == "v_prediction":
        return alpha * z - sigma * output
    raise DiffusionError(f"unknown output type {output_type!r}")


def _alpha_sigma(schedule: VPSchedule, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """alpha, sigma at timesteps ``t`` (``-1``: clean, alpha 1 and sigma 0), broadcast like ``like``."""
    alpha, sigma = schedule.alpha_sigma(t.clamp_min(0))
    clean = t < 0
    alpha = torch.where(clean, torch.ones_like(alpha), alpha)
    sigma = torch.where(clean, torch.zeros_like(sigma), sigma)
    return append_dims(alpha.to(like), like.ndim), append_dims(sigma.to(like), like.ndim)


@dataclass(frozen=True)
class _GuidanceRange:
    low: float
    high: float

    def draw(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        u = torch.rand(batch, generator=generator, device=generator.device).to(device)
        return self.low + (self.high - self.low) * u


class ProgressiveDistillation:
    """Objective of one round: the student matches ``teacher_steps`` teacher DDIM steps in half as many.

    Args:
        teacher: the teacher *denoiser* (any output type; `ClassifierFreeGuidance` for a guided teacher).
        teacher_steps: N, even; the student learns N/2.
        guidance_range: ``(w_min, w_max)`` to draw ``Conditioning.guidance`` per item for a guidance-conditioned
            teacher and student (guided distillation, stage 2).
        augmentation: a super-resolution stage's noise augmentation: the low-res conditioning is noised per
            item as in its training, and teacher and student both see it.
    The student is a v-prediction network; the loss is in x_0 space with the paper's truncated-SNR weight
    ``max(SNR, 1)``.
    """

    prediction_type = "v_prediction"

    def __init__(
        self,
        teacher: nn.Module,
        teacher_steps: int,
        guidance_range: tuple[float, float] | None = None,
        augmentation: NoiseAugmentation | None = None,
    ) -> None:
        if teacher_steps < 2 or teacher_steps % 2:
            raise DiffusionError(f"teacher_steps={teacher_steps} must be an even number >= 2")
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_steps = teacher_steps
        self.guidance = _GuidanceRange(*guidance_range) if guidance_range else None
        self.augmentation = augmentation

    def denoiser(self, network: nn.Module, schedule: VPSchedule) -> nn.Module:
        return Denoiser(network, "v_prediction")

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
        batch, device = x0.shape[0], x0.device
        teacher_grid = trailing_timesteps(self.teacher_steps, schedule.log_snr.numel()).to(device)
        student_steps = self.teacher_steps // 2
        j = torch.randint(0, student_steps, (batch,), generator=generator, device=generator.device).to(device)
        t, t_mid, t_end = teacher_grid[2 * j], teacher_grid[2 * j + 1], teacher_grid[2 * j + 2]
        if self.guidance is not None:
            cond = cond.replace(guidance=self.guidance.draw(batch, generator, device))
        if self.augmentation is not None:
            cond = self.augmentation.train(cond, schedule, generator)
        noise = draw_noise(x0, generator)
        a_t, s_t = _alpha_sigma(schedule, t, x0)
        z = a_t * x0 + s_t * noise
        with torch.no_grad():  # two deterministic DDIM steps of the teacher: t -> t_mid -> t_end
            z_mid = self._teacher_step(schedule, z, t, t_mid, cond)
            z_end = self._teacher_step(schedule, z_mid, t_mid, t_end, cond)
            a_end, s_end = _alpha_sigma(schedule, t_end, x0)
            ratio = s_end / s_t
            target = (z_end - ratio * z) / (a_end - ratio * a_t)  # the x0 one student step must predict
        v = forward_network(network, z, t, cond)
        predicted = a_t * z - s_t * v
        weight = (a_t.flatten() ** 2 / s_t.flatten() ** 2).clamp_min(1.0)  # truncated SNR
        return weight * (predicted.float() - target.float()).pow(2).flatten(1).mean(1)

    def _teacher_step(
        self, schedule: VPSchedule, z: Tensor, t: Tensor, t_next: Tensor, cond: Conditioning
    ) -> Tensor:
        a, s = _alpha_sigma(schedule, t, z)
        a_next, s_next = _alpha_sigma(schedule, t_next, z)
        x0 = x0_from(self.teacher(z, t, cond), self.teacher.output_type, z, a, s)
        eps = (z - a * x0) / s
        return a_next * x0 + s_next * eps


class GuidedDistillation:
    """Objective of guided distillation stage 1: the student, given ``w``, predicts what the teacher's
    classifier-free guidance at scale ``w`` predicts, in one forward instead of two.

    Timesteps are uniform; ``w`` is drawn uniformly in ``guidance_range`` per item. The student has the
    teacher's parameterisation (``teacher.output_type``); the loss is on that output.
    """

    def __init__(self, teacher: nn.Module, uncond: Conditioning, guidance_range: tuple[float, float]) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.uncond = uncond
        self.guidance = _GuidanceRange(*guidance_range)
        self.prediction_type = teacher.output_type

    def denoiser(self, network: nn.Module, schedule: VPSchedule) -> nn.Module:
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
        batch, device = x0.shape[0], x0.device
        n = schedule.log_snr.numel()
        t = torch.randint(0, n, (batch,), generator=generator, device=generator.device).to(device).float()
        w = self.guidance.draw(batch, generator, device)
        noise = draw_noise(x0, generator)
        alpha, sigma = (append_dims(v.to(x0), x0.ndim) for v in schedule.alpha_sigma(t))
        z = alpha * x0 + sigma * noise
        with torch.no_grad():
            target = ClassifierFreeGuidance(self.teacher, self.uncond, scale=w)(z, t, cond)
        out = forward_network(network, z, t, cond.replace(guidance=w))
        return (out.float() - target.float()).pow(2).flatten(1).mean(1)


def student_from(teacher_network: nn.Module) -> nn.Module:
    """A student initialised from the teacher's weights (the paper's initialisation)."""
    return copy.deepcopy(teacher_network).train().requires_grad_(True)
