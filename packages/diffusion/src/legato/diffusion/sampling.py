"""`sample`: the one sampling loop, for samples of any rank and any diffusers scheduler, variance-preserving or
flow-matching (a ``"flow_prediction"`` denoiser under ``FlowMatchEulerDiscreteScheduler``, or a solver set to
flow sigmas: see `legato.diffusion.schedulers`).

Every generation and editing mode is an option of this loop, not a copy of it: img2img/SDEdit (``init`` and
``strength``), inpainting and outpainting (``mask`` and ``known``, with RePaint resampling or reconstruction
guidance), early stops
(``stop``), DDIM inversion (`legato.diffusion.editing.invert` runs this loop with the inverse scheduler),
and per-step callbacks. Guidance is a denoiser wrapper (`ClassifierFreeGuidance`), so the loop does not know it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError, SamplingCancelled
from legato.diffusion.schedulers import Timesteps, private_copy, step_accepts_generator
from legato.diffusion.tensors import check_sample, randn


@dataclass(frozen=True)
class Step:
    """What a step callback sees: the step just taken (0-based) of ``total``, its timestep and the new sample."""

    index: int
    total: int
    timestep: Tensor
    sample: Tensor


StepCallback = Callable[[Step], bool | None]


@torch.no_grad()  # not inference_mode: results may later serve as targets of a loss (null-text inversion)
def sample(
    denoiser: nn.Module,
    scheduler: SchedulerMixin,
    noise: Tensor,
    *,
    steps: int = 50,
    cond: Conditioning | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    init: Tensor | None = None,
    strength: float = 1.0,
    mask: Tensor | None = None,
    known: Tensor | None = None,
    resample: int = 1,
    reconstruction: float = 0.0,
    stop: float = 1.0,
    callback: StepCallback | None = None,
    schedule: Timesteps | None = None,
) -> Tensor:
    """Run ``scheduler`` with ``denoiser`` from ``noise`` and return the final sample.

    Args:
        denoiser: ``denoiser(x, t, cond)`` with an ``output_type`` (see `legato.diffusion.denoisers`).
        scheduler: a diffusers scheduler; its config is the training schedule. It is not modified: the loop
            works on a private copy set to the denoiser's ``output_type``.
        noise: ``(B, C, ...)`` starting noise (``(B, C, H, W)`` or ``(B, C, T, H, W)``), unit variance.
        steps: number of inference steps.
        cond: conditioning with ``B`` rows.
        generator: one generator per item (or one for the batch) for stochastic schedulers (DDPM, Euler
            ancestral); per-item generators make an item's result independent of its batch.
        init, strength: img2img / SDEdit. Start from ``init`` noised to the timestep at ``strength`` of the
            schedule and run the rest. ``strength=1`` starts from pure noise (it equals sampling without
            ``init``); smaller values keep more of ``init``.
        mask, known: inpainting. ``mask`` (broadcastable to the sample, values in [0, 1]) is 1 where to
            generate and 0 where to keep ``known``; after every step the kept region is replaced by ``known``
            noised to the next timestep (with ``noise``), and by ``known`` itself after the last step.
        resample: RePaint (Lugmayr et al. 2022) resampling: each step is taken ``resample`` times, re-noising
            in between, so that the generated region harmonises with the kept one (DDPM and DDIM only).
        reconstruction: reconstruction guidance (Ho et al. 2022, "Video Diffusion Models", eq. 7) with this
            weight ``w_r``: each step's prediction of the generated region moves down the gradient of how far
            the prediction of the kept region is from ``known``, ``x_gen -= w_r * sqrt(alpha_t) / 2 *
            grad ||known - x_kept||^2``, so the generated part is drawn to agree with what is kept instead of
            only being pasted next to it (replacement alone ignores the kept part until the last steps).
            Costs a backward pass through the denoiser per step; 0 turns it off.
        stop: fraction of the schedule to run (1 runs it all); e.g. a partial DDIM inversion.
        callback: called after every step with a `Step`; returning ``False`` raises `SamplingCancelled`.
        schedule: how the model's pipeline sets its timesteps besides the step count (`Timesteps`: LTX's
            sigmas and resolution-dependent shift); None takes the scheduler's own.
    """
    # 1. Check the inputs where they enter, so errors name the argument.
    check_sample(noise, "noise")
    batch, device = noise.shape[0], noise.device
    cond = cond if cond is not None else Conditioning()
    cond.check(batch, device)
    _check_denoiser(denoiser, device)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DiffusionError(f"steps={steps!r} must be a positive integer; 20-50 is usual")
    if not 0.0 < strength <= 1.0:
        raise DiffusionError(f"strength={strength!r} must lie in (0, 1]; 1 starts from pure noise")
    if init is None and strength != 1.0:
        raise DiffusionError(f"strength={strength!r} needs init=: the sample to start from")
    if not 0.0 < stop <= 1.0:
        raise DiffusionError(f"stop={stop!r} must lie in (0, 1]")
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise DiffusionError(f"resample={resample!r} must be an integer >= 1 (1: no RePaint resampling)")
    if not reconstruction >= 0:
        raise DiffusionError(
            f"reconstruction={reconstruction!r} must be >= 0 (0: no reconstruction guidance)"
        )
    gens = _generators(generator, batch)

    # 2. A private scheduler in the denoiser's parameterisation, and the timesteps to run.
    sched = private_copy(scheduler, denoiser.output_type)
    extra = schedule.kwargs(sched, steps, tuple(noise.shape)) if schedule is not None else {}
    if "sigmas" in extra:
        sched.set_timesteps(device=device, **extra)
    else:
        sched.set_timesteps(steps, device=device, **extra)
    timesteps = sched.timesteps
    order = sched.order
    start = 0
    if init is not None and strength < 1.0:
        check_sample(init, "init", like=noise)
        start = steps - min(int(steps * strength), steps)
        if start >= steps:
            raise DiffusionError(f"strength={strength} of steps={steps} leaves no step to run; raise either")
    end = max(start + 1, round(steps * stop))
    timesteps = timesteps[start * order : end * order]
    if start and hasattr(sched, "set_begin_index"):
        sched.set_begin_index(start * order)
    if start:
        x = _noised(sched, init, noise, timesteps[:1].expand(batch))
    else:
        x = noise * getattr(sched, "init_noise_sigma", 1.0)
    if mask is not None:
        mask = _check_mask(mask, known, noise)
    elif known is not None:
        raise DiffusionError("known= needs mask= (1 where to generate, 0 where to keep known)")
    if reconstruction and not hasattr(sched, "alphas_cumprod"):
        raise DiffusionError(
            f"reconstruction guidance needs a variance-preserving schedule; {type(sched).__name__} has none: "
            "inpaint with reconstruction=0 (replacement) under a flow-matching model"
        )
    if resample > 1 and not isinstance(sched, (DDPMScheduler, DDIMScheduler)):
        raise DiffusionError(
            f"resample={resample} (RePaint) needs a DDPM or DDIM scheduler, got {type(sched).__name__}"
        )

    # 3. The loop.
    step_kwargs = {"generator": gens} if step_accepts_generator(sched) else {}
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        t_next = timesteps[i + 1] if i + 1 < total else None
        for r in range(resample):
            model_in = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
            if reconstruction and mask is not None:
                out = _reconstruction_guided(denoiser, sched, model_in, t, cond, mask, known, reconstruction)
            else:
                out = denoiser(model_in, t.expand(batch), cond)
            x_next = sched.step(out, t, x, **step_kwargs).prev_sample
            if mask is not None:
                keep = known if t_next is None else _noised(sched, known, noise, t_next.expand(batch))
                x_next = mask * x_next + (1 - mask) * keep
            if r + 1 < resample and t_next is not None:
                x = _renoise(sched, x_next, t_from=t_next, t_to=t, generator=gens)
            else:
                x = x_next
        if callback is not None and callback(Step(i, total, t, x)) is False:
            raise SamplingCancelled(i + 1, total)
    return x


def _noised(sched: SchedulerMixin, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """``x0`` diffused to timestep ``t`` with ``noise``: ``add_noise``, or a flow scheduler's ``scale_noise``
    (``(1 - s) x0 + s noise``)."""
    if hasattr(sched, "add_noise"):
        return sched.add_noise(x0, noise, t)
    return sched.scale_noise(x0, t, noise)


def _reconstruction_guided(
    denoiser: nn.Module,
    sched: SchedulerMixin,
    z: Tensor,
    t: Tensor,
    cond: Conditioning,
    mask: Tensor,
    known: Tensor,
    weight: float,
) -> Tensor:
    """The denoiser's output at ``z`` (the model's input, variance-preserving) with its clean-sample
    prediction of the generated region (``mask``) corrected by reconstruction guidance (see `sample`)."""
    a = sched.alphas_cumprod.to(z.device)[t.long()].to(z.dtype)
    kind = denoiser.output_type
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        out = denoiser(z, t.expand(z.shape[0]), cond)
        if kind == "epsilon":
            x0 = (z - (1 - a).sqrt() * out) / a.sqrt()
        elif kind == "v_prediction":
            x0 = a.sqrt() * z - (1 - a).sqrt() * out
        elif kind == "sample":
            x0 = out
        else:
            raise DiffusionError(f"reconstruction guidance does not know output_type={kind!r}")
        error = ((1 - mask) * (x0 - known)).square().sum()
        (grad,) = torch.autograd.grad(error, z)
    shift = -weight * a.sqrt() / 2 * mask * grad  # the change of the clean-sample prediction
    scale = {"epsilon": -a.sqrt() / (1 - a).sqrt(), "v_prediction": -1 / (1 - a).sqrt(), "sample": 1.0}[kind]
    return out.detach() + scale * shift


def _renoise(
    sched: SchedulerMixin,
    x: Tensor,
    *,
    t_from: Tensor,
    t_to: Tensor,
    generator: torch.Generator | list[torch.Generator] | None,
) -> Tensor:
    """Diffuse ``x`` from timestep ``t_from`` forward to the noisier ``t_to``: ``q(x_to | x_from)``."""
    ac = sched.alphas_cumprod.to(x.device)
    ratio = ac[t_to.long()] / ac[t_from.long()]
    if isinstance(generator, list):
        z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
    else:
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return ratio.sqrt() * x + (1 - ratio).sqrt() * z


def _generators(
    generator: torch.Generator | Sequence[torch.Generator] | None, batch: int
) -> torch.Generator | list[torch.Generator] | None:
    """One generator drives the whole batch (as in diffusers); a list of one per item makes each item's
    randomness independent of the batch it is in."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    gens = list(generator)
    if len(gens) != batch:
        raise DiffusionError(f"got {len(gens)} generators for a batch of {batch}; pass one per item")
    return gens


def _check_denoiser(denoiser: nn.Module, device: torch.device) -> None:
    if not hasattr(denoiser, "output_type"):
        raise DiffusionError(
            f"{type(denoiser).__name__} is not a Legato denoiser (no output_type); wrap the network in "
            "Denoiser(network, prediction_type) or EDMDenoiser(...)"
        )
    param = next(denoiser.parameters(), None)
    if param is not None and param.device != device:
        raise DiffusionError(
            f"the denoiser is on {param.device} but the noise is on {device}; move one with .to()"
        )


def _check_mask(mask: Tensor, known: Tensor | None, noise: Tensor) -> Tensor:
    if known is None:
        raise DiffusionError("mask= needs known=: the sample whose masked-out region is kept")
    check_sample(known, "known", like=noise)
    try:
        torch.broadcast_shapes(mask.shape, noise.shape)
    except RuntimeError as err:
        raise DiffusionError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the sample {tuple(noise.shape)}; "
            "pass (B or 1, 1 or C, *spatial)"
        ) from err
    if mask.ndim != noise.ndim:
        raise DiffusionError(
            f"mask has rank {mask.ndim}, the sample {noise.ndim}; keep the (B, C, ...) layout"
        )
    if mask.device != noise.device:
        raise DiffusionError(f"mask is on {mask.device}, the noise on {noise.device}; move it with .to()")
    mask = mask.to(noise.dtype)
    if not bool(torch.isfinite(mask).all()) or bool((mask < 0).any()) or bool((mask > 1).any()):
        raise DiffusionError("mask values must lie in [0, 1] (1: generate, 0: keep known)")
    return mask
