"""The diffusers schedulers the sampling loop runs, by name, and private per-call copies of them."""

from __future__ import annotations

import inspect
import json
from typing import Any

import diffusers
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

# name -> (class, defaults). "heun" is the EDM paper's deterministic Heun sampler: Karras sigmas over the whole
# schedule ("linspace" spacing starts at its noisiest step; a "leading" spacing carried over from a DDPM/DDIM
# config would start lower, and the sampler would converge to a wrong answer).
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {"use_karras_sigmas": True, "timestep_spacing": "linspace"}),
}


def convert_scheduler(
    cls: type[SchedulerMixin], config: dict[str, Any] | None, **overrides: Any
) -> SchedulerMixin:
    """A ``cls`` scheduler with every setting of ``config`` (another scheduler's ``.config``) that ``cls``
    takes, the training noise schedule above all, and ``overrides`` applied last.

    ``cls.from_config`` alone is not enough: diffusers drops every key that the source scheduler left at its
    own default (``_use_default_values``), so ``HeunDiscreteScheduler.from_config(DDPMScheduler().config)``
    takes Heun's betas (0.00085-0.012), not DDPM's (0.0001-0.02), and samples the model on a schedule it was
    not trained on, while the same scheduler saved and loaded (its config written out in full) would not.
    Here a config means its values, however it was made. For the same reason ``overrides`` go in as keyword
    arguments: merged into the dict, an override of a key the source left at its default would be dropped.
    """
    config = {k: v for k, v in (dict(config) if config else {}).items() if k != "_use_default_values"}
    return cls.from_config(config, **overrides)


def scheduler_config(scheduler: SchedulerMixin) -> str:
    """``scheduler`` as JSON, its class and every setting, in the form diffusers saves
    (``scheduler_config.json``): equal strings sample alike, and `scheduler_from_config` rebuilds it in
    another process (a serving replica)."""
    config = {k: v for k, v in scheduler.config.items() if k != "_use_default_values"}
    return json.dumps({"_class_name": type(scheduler).__name__, **config}, sort_keys=True)


def scheduler_from_config(config: dict[str, Any] | str) -> SchedulerMixin:
    """The scheduler a saved config names (``_class_name``) with every setting of it, from a dict or JSON."""
    config = json.loads(config) if isinstance(config, str) else dict(config)
    name = config.pop("_class_name", None)
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise DiffusionError(f"unknown scheduler class {name!r}; save the scheduler with diffusers")
    return convert_scheduler(cls, config)


def make_scheduler(name: str, config: dict[str, Any] | None = None, **overrides: Any) -> SchedulerMixin:
    """A diffusers scheduler by Legato name, with the settings of ``config`` (another scheduler's ``.config``:
    the training schedule and any setting the class shares, see `convert_scheduler`) or diffusers' defaults,
    then the name's own defaults (heun: Karras sigmas) and ``overrides``."""
    if name not in SCHEDULERS:
        raise DiffusionError(f"unknown scheduler {name!r}; use one of {sorted(SCHEDULERS)}")
    cls, defaults = SCHEDULERS[name]
    return convert_scheduler(cls, config, **defaults, **overrides)


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
    return convert_scheduler(cls, scheduler.config, prediction_type=prediction_type)


def inverse_of(scheduler: SchedulerMixin, prediction_type: str) -> SchedulerMixin:
    """The DDIM inverse scheduler (data -> noise) for ``scheduler``'s training schedule."""
    return private_copy(scheduler, prediction_type, DDIMInverseScheduler)


def step_accepts_generator(scheduler: SchedulerMixin) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters
