"""`Stage`: one model of a cascade and everything needed to run it on a batch of items.

A base stage samples from noise at its ``shape``; a super-resolution stage is conditioned on the previous
stage's output through a `legato.diffusion.SuperResolution` (space/time factors, noise-augmentation level).
Each item's randomness comes from a generator seeded by ``(item seed, stage index)`` (`stage_seed`), so how
items are batched, and which executor or worker runs them, cannot change what an item gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor, nn

from legato.diffusion import ClassifierFreeGuidance, Conditioning, SuperResolution, randn, sample
from legato.diffusion.errors import DiffusionError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def stage_seed(seed: int, index: int) -> int:
    """The seed of an item's generator at stage ``index``: distinct per stage, independent of batching."""
    return (int(seed) * 1_000_003 + 7_919 * (index + 1)) % (2**63 - 1)


@dataclass(frozen=True, eq=False)
class Stage:
    """One model of a cascade.

    Args:
        name: shown in progress and manifests (``"base"``, ``"sr-space"``...).
        denoiser: a Legato denoiser (``Denoiser``, ``EDMDenoiser``, a distilled student...).
        scheduler: a diffusers scheduler (its config is the training schedule); ``steps`` inference steps.
        shape: for a base stage, the per-item sample shape ``(C, H, W)`` or ``(C, T, H, W)``.
        sr: for a super-resolution stage, how it is conditioned on the previous stage's output.
        frames: a temporal SR stage's output length (default ``T * sr.time``).
        guidance_scale: classifier-free guidance on the text (null text = zeros, as the Trainer drops it);
            1 runs the conditional model alone.
        batch_size: items per forward at this stage; executors regroup items between stages.
        device, dtype: where the stage runs (``"cuda"``, ``"cpu"``; ``"float32"``, ``"bfloat16"``).
    """

    name: str
    denoiser: nn.Module
    scheduler: SchedulerMixin
    steps: int
    shape: tuple[int, ...] | None = None
    sr: SuperResolution | None = None
    frames: int | None = None
    guidance_scale: float = 1.0
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if (self.shape is None) == (self.sr is None):
            raise DiffusionError(
                f"stage {self.name!r}: give shape= for a base stage or sr= for a super-resolution stage, not "
                f"{'both' if self.shape is not None else 'neither'}"
            )
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DiffusionError(f"stage {self.name!r}: {name}={value!r} must be a positive integer")
        if self.dtype not in DTYPES:
            raise DiffusionError(f"stage {self.name!r}: dtype={self.dtype!r}; use one of {sorted(DTYPES)}")
        if self.guidance_scale < 1.0:
            raise DiffusionError(
                f"stage {self.name!r}: guidance_scale={self.guidance_scale!r}; use >= 1 (1 = no guidance)"
            )

    @property
    def is_base(self) -> bool:
        return self.sr is None

    def to(self, device: str) -> Stage:
        """This stage with its denoiser moved to ``device`` (executors call it once per worker)."""
        self.denoiser.to(torch.device(device), DTYPES[self.dtype])
        return replace(self, device=device)

    def run(self, inputs: Tensor | None, cond: Conditioning, seeds: Sequence[int], index: int) -> Tensor:
        """Outputs ``(B, ...)`` for a batch: ``inputs`` are the previous stage's outputs (None for a base
        stage), ``cond`` the batched conditioning, ``seeds`` the items' seeds, ``index`` this stage's index
        in its cascade. Returns float32 on the CPU."""
        device, dtype = torch.device(self.device), DTYPES[self.dtype]
        gens = [torch.Generator(device).manual_seed(stage_seed(s, index)) for s in seeds]
        cond = cond.map(lambda v: v.to(device, dtype) if v.is_floating_point() else v.to(device))
        denoiser = self.guided(cond)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            if self.sr is None:
                if inputs is not None:
                    raise DiffusionError(f"stage {self.name!r} is a base stage: it takes no inputs")
                noise = randn((len(seeds), *self.shape), gens, device=device)
                out = sample(denoiser, self.scheduler, noise, steps=self.steps, cond=cond, generator=gens)
            else:
                if inputs is None:
                    raise DiffusionError(
                        f"stage {self.name!r} is a super-resolution stage: give it the previous stage's outputs"
                    )
                out = self.sr.generate(denoiser, self.scheduler, inputs.to(device), steps=self.steps,
                                       generator=gens, cond=cond, frames=self.frames)  # fmt: skip
        return out.float().cpu()

    def guided(self, cond: Conditioning) -> nn.Module:
        if self.guidance_scale == 1.0:
            return self.denoiser
        if cond.text is None:
            raise DiffusionError(f"stage {self.name!r}: guidance_scale needs text conditioning (prompts)")
        pooled = None if cond.pooled is None else torch.zeros_like(cond.pooled[:1])
        null = Conditioning(text=torch.zeros_like(cond.text[:1]), pooled=pooled)
        return ClassifierFreeGuidance(self.denoiser, null, self.guidance_scale)
