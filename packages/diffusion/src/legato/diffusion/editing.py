"""Editing built on the one loop: DDIM inversion, null-text inversion and DiffEdit masks.

- `invert`: run the deterministic DDIM trajectory backwards (data -> noise) through `sample` with diffusers'
  ``DDIMInverseScheduler``; sampling forwards from the result with DDIM rebuilds the input, or edits it when
  a new prompt is given.
- `null_text_inversion` (Mokady et al. 2022): per-step optimisation of the unconditional embedding, so that
  the inversion stays faithful under classifier-free guidance.
- `diffedit_mask` (Couairon et al. 2022): where the predictions for a source and a target prompt differ,
  as an inpainting mask for `sample`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DDIMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.sampling import Step, sample
from legato.diffusion.schedulers import inverse_of, private_copy
from legato.diffusion.tensors import check_sample, randn


def invert(
    denoiser: nn.Module,
    scheduler: SchedulerMixin,
    x0: Tensor,
    *,
    steps: int = 50,
    cond: Conditioning | None = None,
    strength: float = 1.0,
    trajectory: list[Tensor] | None = None,
    schedule=None,
) -> Tensor:
    """The DDIM latent of ``x0``: noise from which DDIM sampling (``steps`` steps) rebuilds ``x0`` (for a
    flow-matching model, the flow ODE run upwards: Euler sampling rebuilds it).

    ``strength < 1`` stops partway (the latent at that point of the schedule, for SDEdit-style edits).
    ``trajectory``, if given, receives ``x0`` and every intermediate latent, noisiest last. ``schedule``: the
    model family's `legato.diffusion.schedulers.Timesteps` (LTX's), as for `sample`.
    """
    inverse = inverse_of(scheduler, denoiser.output_type)
    if trajectory is not None:
        trajectory.append(x0)

    def keep(step: Step) -> None:
        if trajectory is not None:
            trajectory.append(step.sample)

    return sample(
        denoiser, inverse, x0, steps=steps, cond=cond, stop=strength, callback=keep, schedule=schedule
    )


def null_text_inversion(
    denoiser: nn.Module,
    scheduler: SchedulerMixin,
    x0: Tensor,
    *,
    cond: Conditioning,
    uncond: Conditioning,
    scale: float = 7.5,
    steps: int = 50,
    inner_steps: int = 10,
    lr: float = 1e-2,
    tolerance: float = 1e-5,
) -> tuple[Tensor, dict[int, Conditioning]]:
    """Invert ``x0`` so that guided DDIM sampling at ``scale`` rebuilds it.

    1. Invert with the conditional model alone (scale 1): the pivot trajectory ``z*_0 .. z*_T``.
    2. Walk it back from ``z_T``; at each step optimise the unconditional embedding (every float field of
       ``uncond``, starting from the previous step's) for ``inner_steps`` Adam steps so that the guided DDIM
       step lands on the pivot, then take that step.

    Returns ``(z_T, per_step_uncond)``: sample with
    ``ClassifierFreeGuidance(denoiser, per_step_uncond, scale)`` and a DDIM scheduler of ``steps`` steps from
    ``z_T`` to rebuild ``x0``, or with a new ``cond`` to edit it.
    """
    check_sample(x0, "x0")
    pivots: list[Tensor] = []
    z_t = invert(denoiser, scheduler, x0, steps=steps, cond=cond, trajectory=pivots)
    ddim = private_copy(scheduler, denoiser.output_type, DDIMScheduler)
    ddim.set_timesteps(steps, device=x0.device)
    batch = x0.shape[0]
    current = uncond.map(lambda v: v.detach().clone())
    per_step: dict[int, Conditioning] = {}
    z = z_t
    for i, t in enumerate(ddim.timesteps):
        target = pivots[-(i + 2)]
        t_b = t.expand(batch)
        with torch.no_grad():
            cond_out = denoiser(z, t_b, cond)
        params = {
            k: v.clone().requires_grad_(True) for k, v in current.tensors().items() if v.is_floating_point()
        }
        optimizer = torch.optim.Adam(params.values(), lr=lr * (1.0 - i / (2 * steps)))  # decay as the paper
        for _ in range(inner_steps):
            trial = current.replace(**params)
            guided = _guide(denoiser(z, t_b, trial), cond_out, scale)
            loss = torch.nn.functional.mse_loss(ddim.step(guided, t, z).prev_sample, target)
            if loss.item() < tolerance:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        current = current.replace(**{k: v.detach() for k, v in params.items()})
        per_step[int(t)] = current
        with torch.no_grad():
            z = ddim.step(_guide(denoiser(z, t_b, current), cond_out, scale), t, z).prev_sample
    return z_t, per_step


def _guide(uncond_out: Tensor, cond_out: Tensor, scale: float) -> Tensor:
    return uncond_out + scale * (cond_out - uncond_out)


def diffedit_mask(
    denoiser: nn.Module,
    scheduler: SchedulerMixin,
    x0: Tensor,
    *,
    source: Conditioning,
    target: Conditioning,
    generator: Sequence[torch.Generator],
    strength: float = 0.5,
    repeats: int = 10,
    threshold: float = 0.5,
) -> Tensor:
    """A ``(B, 1, ...)`` mask, 1 where the edit from ``source`` to ``target`` should change ``x0``.

    Noise ``x0`` to ``strength`` of the schedule ``repeats`` times, average ``|D(x, target) - D(x, source)|``
    over channels and repeats, scale each item to [0, 1] and threshold (Couairon et al. 2022, Sec. 3.1).
    Edit with ``sample(..., init=x0, strength=strength, mask=mask, known=x0, cond=target)``.
    """
    check_sample(x0, "x0")
    if not 0 < strength <= 1 or repeats < 1 or not 0 < threshold < 1:
        raise DiffusionError(
            f"strength={strength}, repeats={repeats}, threshold={threshold}: need 0 < strength <= 1, "
            "repeats >= 1 and 0 < threshold < 1"
        )
    sched = private_copy(scheduler, denoiser.output_type)
    sched.set_timesteps(1000)
    t = sched.timesteps[min(len(sched.timesteps) - 1, int(len(sched.timesteps) * (1 - strength)))]
    t_b = t.expand(x0.shape[0]).to(x0.device)
    both = source.cat(target)
    diff = torch.zeros_like(x0[:, :1])
    with torch.no_grad():
        for _ in range(repeats):
            x_t = sched.add_noise(x0, randn(x0.shape, generator, device=x0.device, dtype=x0.dtype), t_b)
            out_source, out_target = denoiser(torch.cat([x_t, x_t]), torch.cat([t_b, t_b]), both).chunk(2)
            diff += (out_target - out_source).abs().mean(dim=1, keepdim=True)
    flat = diff.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    scaled = (flat - lo[:, None]) / (hi - lo).clamp_min(1e-12)[:, None]
    return (scaled.view_as(diff) > threshold).to(x0.dtype)
