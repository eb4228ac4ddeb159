"""The diffusers schedulers the sampling loop runs, by name, and private per-call copies of them.

Two families of training schedule exist. Variance-preserving ones (DDPM's ``alphas_cumprod``: Stable Diffusion,
ModelScope, Stable Audio's cosine, Legato's own models) run under every name of `SCHEDULERS`. Flow-matching
ones (rectified flow, ``x_t = (1 - s) x_0 + s eps``, the model predicting ``eps - x_0``: Wan, LTX-Video) run
under the names of `FLOW_SCHEDULERS`, with the folder's ``shift`` carried from one class to another
(`is_flow`, `make_scheduler`). `Timesteps` is what a family's pipeline passes to ``set_timesteps`` beyond the
step count (LTX: its own sigmas and a resolution-dependent shift).
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import diffusers
import numpy as np
from diffusers import (
    DDIMInverseScheduler,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from legato.diffusion.errors import DiffusionError

# torchsde's Brownian tree, as diffusers' CosineDPMSolver (Stable Audio's) builds it, is queried one float32 ulp
# past its ends at every step and says so; the noise it returns is right
warnings.filterwarnings("ignore", message=r"Should have t[ab][<>]=t[01]", category=UserWarning)

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
    "unipc": (UniPCMultistepScheduler, {}),
    "flow_euler": (FlowMatchEulerDiscreteScheduler, {}),
}
# the names that sample a flow-matching model, and how each takes the flow schedule's shift
FLOW_SCHEDULERS: dict[str, dict[str, Any]] = {
    "flow_euler": {},
    "unipc": {"use_flow_sigmas": True, "prediction_type": "flow_prediction"},
    "dpm++": {"use_flow_sigmas": True, "prediction_type": "flow_prediction"},
}
_FLOW_CLASSES = (FlowMatchEulerDiscreteScheduler,)
VP_SCHEDULERS = sorted(set(SCHEDULERS) - {"flow_euler"})  # the names that sample a variance-preserving model


def is_flow(scheduler: SchedulerMixin | dict[str, Any] | type) -> bool:
    """Whether a scheduler (or its class, or a saved config with ``_class_name``) is a flow-matching one: a
    ``FlowMatch*`` class, or a solver set to flow sigmas (Wan's ``UniPCMultistepScheduler``)."""
    if isinstance(scheduler, type):
        return issubclass(scheduler, _FLOW_CLASSES)
    if isinstance(scheduler, SchedulerMixin):
        return isinstance(scheduler, _FLOW_CLASSES) or bool(scheduler.config.get("use_flow_sigmas"))
    config = dict(scheduler)
    # an in-process config has no _class_name: a FlowMatch* one is known by its shift and lack of betas
    named = str(config.get("_class_name", "")).startswith("FlowMatch")
    return named or bool(config.get("use_flow_sigmas")) or ("shift" in config and "beta_start" not in config)


def _flow_settings(config: dict[str, Any], cls: type) -> dict[str, Any]:
    """A flow schedule's shift under the name ``cls`` gives it: ``shift`` (FlowMatch*) or ``flow_shift``."""
    shift = config.get("shift", config.get("flow_shift", 1.0))
    key = "shift" if issubclass(cls, _FLOW_CLASSES) else "flow_shift"
    return {key: shift}


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
    config = dict(config) if config else {}
    if is_flow(config):
        if name not in FLOW_SCHEDULERS:
            raise DiffusionError(
                f"scheduler {name!r} does not sample a flow-matching model (Wan, LTX-Video); use one of "
                f"{sorted(FLOW_SCHEDULERS)}"
            )
        # keep the schedule (its shift), not the source solver's own settings under other names
        settings = _flow_settings(config, cls)
        keep = {"num_train_timesteps", "use_dynamic_shifting", "base_shift", "max_shift", "base_image_seq_len",
                "max_image_seq_len", "shift_terminal", "time_shift_type"}  # fmt: skip
        takes = inspect.signature(cls.__init__).parameters
        config = {k: v for k, v in config.items() if k in keep and k in takes}
        return convert_scheduler(
            cls, config, **{**defaults, **FLOW_SCHEDULERS[name], **settings, **overrides}
        )
    if name not in VP_SCHEDULERS and config:
        raise DiffusionError(
            f"scheduler {name!r} samples flow-matching models; this model's schedule is variance-preserving: "
            f"use one of {VP_SCHEDULERS}"
        )
    return convert_scheduler(cls, config, **defaults, **overrides)


def private_copy(scheduler: SchedulerMixin, prediction_type: str, cls: type | None = None) -> SchedulerMixin:
    """A fresh scheduler with ``scheduler``'s config and the given prediction type.

    Schedulers keep per-run state (timesteps, step index, solver history), so each sampling call works on
    its own copy: concurrent calls sharing a scheduler object cannot interfere.
    """
    if not isinstance(scheduler, SchedulerMixin):
        raise DiffusionError(f"scheduler must be a diffusers scheduler, got {type(scheduler).__name__}")
    cls = cls or type(scheduler)
    flow = prediction_type == "flow_prediction"
    if flow != is_flow(scheduler):
        raise DiffusionError(
            f"a {prediction_type} denoiser cannot be sampled by {type(scheduler).__name__} with "
            f"{'a variance-preserving' if flow else 'a flow-matching'} schedule; use one of "
            f"{sorted(FLOW_SCHEDULERS) if flow else VP_SCHEDULERS}"
        )
    if flow and issubclass(cls, _FLOW_CLASSES):  # predicts velocity by construction: no prediction_type
        return convert_scheduler(cls, scheduler.config)
    if "prediction_type" not in inspect.signature(cls.__init__).parameters:
        raise DiffusionError(f"{cls.__name__} cannot take prediction_type; use one of {sorted(SCHEDULERS)}")
    return convert_scheduler(cls, scheduler.config, prediction_type=prediction_type)


def inverse_of(scheduler: SchedulerMixin, prediction_type: str) -> SchedulerMixin:
    """The inverse scheduler (data -> noise) for ``scheduler``'s training schedule: DDIM's, or for a
    flow-matching model the flow ODE's Euler steps run upwards (`FlowMatchInverseScheduler`)."""
    if prediction_type == "flow_prediction" and is_flow(scheduler):
        euler = make_scheduler("flow_euler", scheduler.config)
        return convert_scheduler(FlowMatchInverseScheduler, euler.config)
    return private_copy(scheduler, prediction_type, DDIMInverseScheduler)


class FlowMatchInverseScheduler(FlowMatchEulerDiscreteScheduler):
    """Flow matching's DDIM inversion: Euler steps up the sigmas ``FlowMatchEulerDiscreteScheduler`` would
    come down (0 -> 1, data -> noise), each velocity taken at the level it steps to (the model is not
    defined at sigma 0), as ``DDIMInverseScheduler`` takes its noise prediction at the next timestep."""

    def set_timesteps(self, *args: Any, **kwargs: Any) -> None:
        super().set_timesteps(*args, **kwargs)
        up = self.sigmas.flip(0)  # [0, s_n, ..., s_1 = 1]
        self.sigmas = up
        self.timesteps = (up[1:] * self.config.num_train_timesteps).to(self.timesteps.dtype)
        self._step_index, self._begin_index = None, None


def step_accepts_generator(scheduler: SchedulerMixin) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters


@dataclass(frozen=True)
class Timesteps:
    """What a model family's pipeline passes to ``set_timesteps`` besides the step count, kept with a stage.

    Args:
        sigmas: ``"scheduler"``: the scheduler's own spacing; ``"linspace"``: ``linspace(1, 1/n, n)`` for ``n``
            steps, as the LTX-Video (and Flux) pipelines pass them.
        patch: latent positions per token ``(t, h, w)``: with ``use_dynamic_shifting`` in the scheduler's config
            the shift ``mu`` grows with the sample's token count (``calculate_shift`` of the Flux and LTX
            pipelines, from the config's ``base_image_seq_len``/``max_image_seq_len``/``base_shift``/
            ``max_shift``), so the same model shifts a larger video further towards noise.
    """

    sigmas: str = "scheduler"
    patch: tuple[int, ...] = (1, 1, 1)

    def __post_init__(self) -> None:
        if self.sigmas not in ("scheduler", "linspace"):
            raise DiffusionError(f"Timesteps(sigmas={self.sigmas!r}); use 'scheduler' or 'linspace'")

    def kwargs(self, scheduler: SchedulerMixin, steps: int, shape: tuple[int, ...]) -> dict[str, Any]:
        """The keyword arguments of ``scheduler.set_timesteps(steps, ...)`` for a sample of ``shape``."""
        out: dict[str, Any] = {}
        if self.sigmas == "linspace":
            out["sigmas"] = np.linspace(1.0, 1 / steps, steps)  # numpy's values: what the pipelines pass
        config = scheduler.config
        if config.get("use_dynamic_shifting"):
            positions = shape[2:]
            patch = ((1,) * len(positions) + tuple(self.patch))[-len(positions) :]
            tokens = math.prod(n // p for n, p in zip(positions, patch, strict=True))
            base, top = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
            low, high = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
            slope = (high - low) / (top - base)
            out["mu"] = tokens * slope + (low - slope * base)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"sigmas": self.sigmas, "patch": list(self.patch)}

    @classmethod
    def from_dict(cls, spec: dict[str, Any] | None) -> Timesteps | None:
        return None if spec is None else cls(spec["sigmas"], tuple(spec["patch"]))
