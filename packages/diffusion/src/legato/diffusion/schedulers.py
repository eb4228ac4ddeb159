"""The diffusers schedulers the sampling loop runs, by name, and private per-call copies of them."""

from __future__ import annotations

import inspect
from typing import Any

from diffusers import (
    DDIMInverseScheduler,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from legato.diffusion.errors import DiffusionError

# name -> (class, defaults). "heun" uses Karras sigmas: the EDM paper's deterministic Heun sampler.
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {"use_karras_sigmas": True}),
}


def make_scheduler(name: str, config: dict[str, Any] | None = None, **overrides: Any) -> SchedulerMixin:
    """A diffusers scheduler by Legato name, from a training schedule's ``config`` (another scheduler's
    ``.config``) or diffusers' defaults, with ``overrides`` applied last."""
    if name not in SCHEDULERS:
        raise DiffusionError(f"unknown scheduler {name!r}; use one of {sorted(SCHEDULERS)}")
    cls, defaults = SCHEDULERS[name]
    return cls.from_config({**(dict(config) if config else {}), **defaults, **overrides})


def private_copy(scheduler: SchedulerMixin, prediction_type: str, cls: type | None = None) -> SchedulerMixin:
    """A fresh scheduler with ``scheduler``'s config and the given prediction type.

    Schedulers keep per-run state (timesteps, step index, solver history), so each sampling call works on
    its own copy: concurrent calls sharing a scheduler object cannot interfere.
    """
    if not isinstance(scheduler, SchedulerMixin):
        raise DiffusionError(f"scheduler must be a diffusers scheduler, got {type(scheduler).__name__}")
    cls = cls or type(scheduler)
    if "prediction_type" not in inspect.signature(cls.__init__).parameters:
        raise DiffusionError(f"{cls.__name__} cannot take prediction_type; use one of {sorted(SCHEDULERS)}")
    return cls.from_config(scheduler.config, prediction_type=prediction_type)


def inverse_of(scheduler: SchedulerMixin, prediction_type: str) -> SchedulerMixin:
    """The DDIM inverse scheduler (data -> noise) for ``scheduler``'s training schedule."""
    return private_copy(scheduler, prediction_type, DDIMInverseScheduler)


def step_accepts_generator(scheduler: SchedulerMixin) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters
