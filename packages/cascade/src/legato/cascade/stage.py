"""`Stage`: one model of a cascade and everything needed to run it on a batch of items.

A base stage samples from noise at its ``shape``; a super-resolution stage is conditioned on the previous
stage's output through a `legato.diffusion.SuperResolution` (space/time factors, noise-augmentation level).
Each item's randomness comes from a generator seeded by ``(item seed, stage index)`` (`stage_seed`), so how
items are batched, and which executor or worker runs them, cannot change what an item gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from diffusers import DDPMScheduler, EulerAncestralDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor, nn

from legato.diffusion import (
    ClassifierFreeGuidance,
    Conditioning,
    Upsampler,
    correlate_frames,
    randn,
    sample,
)
from legato.diffusion.errors import DiffusionError
from legato.diffusion.schedulers import Timesteps
from legato.diffusion.tensors import check_frame_correlation

NULLS = ("zeros", "prompt")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_networks(denoiser: nn.Module, mode: str) -> None:
    """Compile, in place and once per process, the networks ``denoiser`` calls (each `Denoiser`'s and
    `EDMDenoiser`'s ``network``, an expert's too): ``nn.Module.compile`` keeps their weights and state dicts."""
    for module in denoiser.modules():
        network = getattr(module, "network", None)
        if isinstance(network, nn.Module) and getattr(network, "_compiled_call_impl", None) is None:
            network.compile(mode=mode, dynamic=False)


def handed(out: Tensor, keep: bool) -> Tensor:
    """A step's float32 outputs as it hands them on: left on its device with ``keep``, else on the CPU."""
    return out if keep else out.cpu()


def time_axis(item_ndim: int) -> int:
    """The time axis of an item with ``item_ndim`` dims: the last of a ``(C, L)`` audio latent or a
    ``(C, H, W)`` image (a mel spectrogram's frames), ``T`` of a ``(C, T, H, W)`` video; negative, so it also
    indexes batches."""
    return -1 if item_ndim in (2, 3) else -3


def prefix_weight(length: int, kept: int, fade: float) -> Tensor:
    """``(length,)``: 0 where a prefix of ``kept`` positions is kept, 1 where new content goes, and over the
    prefix's last ``round(kept * fade)`` positions a ramp ``k / (F + 1)`` (``k = 1..F``) between them: what
    every stage and `Decode` step blends a continuation's prefix with."""
    weight = torch.ones(length)
    weight[:kept] = 0
    faded = round(kept * fade)
    if faded:
        weight[kept - faded : kept] = torch.arange(1, faded + 1) / (faded + 1)
    return weight


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
        guidance_scale: classifier-free guidance on the text (the null is `Conditioning.null`: zeros, as the
            Trainer drops it);
            1 runs the conditional model alone.
        text: the stage's own text encoder (an imported checkpoint's `legato.cascade.text.TextEncoder`): the stage encodes
            its items' prompts and negative prompts itself, on its device; None takes the items' embeddings.
        null: what the unconditional branch of guidance is when no negative prompt is given: ``"zeros"``
            (Legato's own models, trained with zeroed conditions) or ``"prompt"`` (imported checkpoints,
            trained with the empty prompt: the pipeline encodes ``""`` into ``Conditioning.negative``).
        guidance_input: the denoiser takes the scale as an input (``Conditioning.guidance``: a student of
            guided distillation) and runs one forward per step instead of two.
        resample: RePaint resampling (each step taken this many times) when part of the output is kept
            (continuations, inpainting), so that the new part harmonises with the kept one.
        reconstruction: reconstruction guidance's weight when part of the output is kept (base stages; see
            `legato.diffusion.sample`): the new part is steered to agree with the kept one.
        batch_size: items per forward at this stage; executors regroup items between stages.
        frame_correlation: a video base stage's starting noise is correlated this much between frames
            (`legato.diffusion.correlate_frames`): set it to the ``Objective.frame_correlation`` the network
            was trained with; 0, independent frames, for every other network.
        timesteps: how the model's own pipeline sets its scheduler's timesteps besides the step count
            (`legato.diffusion.schedulers.Timesteps`: LTX-Video's sigmas and resolution-dependent shift).
        device, dtype: where the stage runs (``"cuda"``, ``"cpu"``; ``"float32"``, ``"bfloat16"``).
        compile: a ``torch.compile`` mode for the stage's networks, compiled in each process on first use with
            static shapes (a graph per batch shape; ``"reduce-overhead"`` adds CUDA graphs on a GPU); None runs
            them eagerly. Compiled outputs equal the eager ones within rounding, not byte for byte.
    """

    name: str
    denoiser: nn.Module
    scheduler: SchedulerMixin
    steps: int
    shape: tuple[int, ...] | None = None
    sr: Upsampler | None = None
    frames: int | None = None
    guidance_scale: float = 1.0
    guidance_input: bool = False
    null: str = "zeros"
    text: Any = None
    resample: int = 1
    reconstruction: float = 0.0
    batch_size: int = 8
    frame_correlation: float = 0.0
    timesteps: Timesteps | None = None
    device: str = "cpu"
    dtype: str = "float32"
    compile: str | None = None

    def __post_init__(self) -> None:
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise DiffusionError(
                f"stage {self.name!r}: compile={self.compile!r}; use one of {COMPILE_MODES} or None"
            )
        if check_frame_correlation(self.frame_correlation) and (self.shape is None or len(self.shape) != 4):
            raise DiffusionError(
                f"stage {self.name!r}: frame_correlation={self.frame_correlation} correlates the starting "
                "noise of a video base stage (shape (C, T, H, W)); set it to 0 here"
            )
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
        if self.null not in NULLS:
            raise DiffusionError(f"stage {self.name!r}: null={self.null!r}; use one of {NULLS}")
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
        if self.text is not None:
            self.text.to(torch.device(device), DTYPES[self.dtype])
        return replace(self, device=device)

    def output_shape(self, inputs: Tensor | None) -> tuple[int, ...]:
        """The per-item output shape for a batch of ``inputs`` (None for a base stage)."""
        if self.sr is None:
            return tuple(self.shape)
        return self.sr.high_shape(tuple(inputs.shape), self.frames)[1:]

    def run(
        self,
        inputs: Tensor | None,
        cond: Conditioning,
        seeds: Sequence[int],
        index: int,
        prefixes: Sequence[Tensor | None] | None = None,
        fades: Sequence[float] | None = None,
        *,
        noise: Tensor | None = None,
        init: Tensor | None = None,
        strength: float = 1.0,
        mask: Tensor | None = None,
        known: Tensor | None = None,
        prompts: Sequence[str] | None = None,
        negatives: Sequence[str] | None = None,
        keep: bool = False,
    ) -> Tensor:
        """Outputs ``(B, ...)`` for a batch: ``inputs`` are the previous stage's outputs (None for a base
        stage), ``cond`` the batched conditioning, ``seeds`` the items' seeds, ``index`` this stage's index
        in its cascade (float32 on the CPU; ``keep``: float32 left on the stage's device, for a next stage
        there, as `legato.cascade.LocalExecutor` passes them). ``prefixes`` (one per item, or None) are known beginnings of the items' outputs along
        the time axis (the last of ``(C, H, W)`` images, ``T`` of ``(C, T, H, W)`` videos), which the stage
        keeps and continues (outpainting); ``fades`` (one per item, default 0) the fraction of each prefix,
        at its end, that crossfades into the new content instead of being kept exactly (`Item.fade`).

        ``prompts`` and ``negatives`` (one per item) are what a stage with its own ``text`` encoder encodes
        (without them, it takes ``cond``'s embeddings as they are: an interpolation's mixed ones).

        Editing, for base stages: ``noise`` replaces the seeded starting noise (e.g. a DDIM-inverted latent),
        ``init``/``strength`` run img2img, ``mask``/``known`` inpaint (see `legato.diffusion.sample`)."""
        if self.sr is None and inputs is not None:
            raise DiffusionError(f"stage {self.name!r} is a base stage: it takes no inputs")
        if self.sr is not None and inputs is None:
            raise DiffusionError(
                f"stage {self.name!r} is a super-resolution stage: give it the previous stage's outputs"
            )
        device, dtype = torch.device(self.device), DTYPES[self.dtype]
        gens = self.generators(seeds, index)
        if self.text is not None and (prompts is not None or cond.text is None):
            cond = self.encode(cond, prompts, negatives, len(seeds))
        cond = cond.map(lambda v: v.to(device, dtype) if v.is_floating_point() else v.to(device))
        if self.sr is not None and (noise is not None or init is not None or mask is not None):
            raise DiffusionError(f"stage {self.name!r}: noise=, init= and mask= edit base stages only")
        if mask is None:
            mask, known = self.outpainting((len(seeds), *self.output_shape(inputs)), prefixes, device, fades)
        elif known is None:
            raise DiffusionError(f"stage {self.name!r}: mask= needs known=, the sample to keep")
        else:
            mask, known = mask.to(device), known.to(device)
        if self.frame_correlation and isinstance(
            self.scheduler, (DDPMScheduler, EulerAncestralDiscreteScheduler)
        ):
            raise DiffusionError(
                f"stage {self.name!r}: {type(self.scheduler).__name__} draws independent noise at every step, "
                f"which a model trained on noise correlated across frames (frame_correlation="
                f"{self.frame_correlation}) has not seen; sample it with ddim, dpm++, euler or heun"
            )
        if self.compile is not None:
            compile_networks(self.denoiser, self.compile)
        denoiser, cond = self.guided(cond, len(seeds))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            if self.sr is None:
                noise = self.starting_noise(gens) if noise is None else noise.to(device)
                out = sample(denoiser, self.scheduler, noise, steps=self.steps, cond=cond, generator=gens,
                             init=None if init is None else init.to(device), strength=strength,
                             mask=mask, known=known, resample=self.resample if mask is not None else 1,
                             reconstruction=self.reconstruction, schedule=self.timesteps)  # fmt: skip
            else:
                out = self.sr.generate(denoiser, self.scheduler, inputs.to(device), steps=self.steps,
                                       generator=gens, cond=cond, frames=self.frames, mask=mask, known=known,
                                       reconstruction=self.reconstruction, schedule=self.timesteps)  # fmt: skip
        return handed(out.float(), keep)

    def encode(
        self, cond: Conditioning, prompts: Sequence[str] | None, negatives: Sequence[str] | None, batch: int
    ) -> Conditioning:
        """``cond`` with this stage's encoding of the prompts and negative prompts (empty: ``""``)."""
        if prompts is None or len(prompts) != batch or any(p is None for p in prompts):
            raise DiffusionError(
                f"stage {self.name!r} encodes its items' prompts with its own text encoder: give each Item a prompt"
            )
        negatives = list(negatives) if negatives is not None else [""] * batch
        with torch.inference_mode():
            encoded = self.text.conditioning(list(prompts), negatives)
        return cond.replace(**encoded.tensors())

    def generators(self, seeds: Sequence[int], index: int) -> list[torch.Generator]:
        """Each item's generator at stage ``index`` on this stage's device; a base stage's starting noise is
        `starting_noise` of them."""
        return [torch.Generator(torch.device(self.device)).manual_seed(stage_seed(s, index)) for s in seeds]

    def starting_noise(self, generators: Sequence[torch.Generator]) -> Tensor:
        """A base stage's starting noise ``(B, *shape)``: the first draw from each item's generator, correlated
        across frames by ``frame_correlation``. ``starting_noise(generators(seeds, index))`` rebuilds what
        `run` starts from, e.g. to interpolate between two seeds' noise."""
        noise = randn((len(generators), *self.shape), generators, device=torch.device(self.device))
        return correlate_frames(noise, self.frame_correlation)

    def outpainting(
        self,
        shape: tuple[int, ...],
        prefixes: Sequence[Tensor | None] | None,
        device: torch.device,
        fades: Sequence[float] | None = None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """``(mask, known)`` for `sample` that keep each item's prefix, or ``(None, None)`` without any.
        ``shape`` is the batch's ``(B, C, H, W)`` or ``(B, C, T, H, W)``; prefixes run along its time axis.
        Over the last ``fade`` of a prefix the mask ramps from kept to generated (``k / (F + 1)`` for
        ``k = 1..F``): every step blends the two there, and the last step leaves a crossfade from the prefix
        into the new content, so the join has no edge where the model's continuation disagrees with it."""
        if prefixes is None or all(p is None for p in prefixes):
            return None, None
        axis = time_axis(len(shape) - 1)
        length = shape[axis]
        mask_shape = [1] * len(shape)
        mask_shape[0], mask_shape[axis] = shape[0], length
        mask = torch.ones(mask_shape, device=device)
        known = torch.zeros(shape, device=device)
        for b, prefix in enumerate(prefixes):
            if prefix is None:
                continue
            fits = list(shape[1:])
            fits[axis] = prefix.shape[axis] if prefix.ndim == len(fits) else -1
            if list(prefix.shape) != fits or not 0 < prefix.shape[axis] < length:
                raise DiffusionError(
                    f"stage {self.name!r}: a prefix of shape {tuple(prefix.shape)} does not fit outputs of "
                    f"shape {shape[1:]}; give the same shape with 0 < P < {length} positions along its time axis"
                )
            kept = prefix.shape[axis]
            known[b].narrow(axis, 0, kept).copy_(prefix)
            view = [1] * (mask.ndim - 1)
            view[axis] = length
            weight = prefix_weight(length, kept, fades[b] if fades is not None else 0.0)
            mask[b].copy_(weight.to(device, mask.dtype).view(view))
        return mask, known

    def guided(self, cond: Conditioning, batch: int) -> tuple[nn.Module, Conditioning]:
        """The denoiser to sample with, and the conditioning to give it."""
        given = cond.without_negative()
        if self.guidance_input:
            scale = torch.full((batch,), self.guidance_scale, device=torch.device(self.device))
            return self.denoiser, given.replace(guidance=scale)
        if self.guidance_scale == 1.0:
            return self.denoiser, given
        if cond.text is None:
            raise DiffusionError(f"stage {self.name!r}: guidance_scale needs text conditioning (prompts)")
        if self.null == "prompt" and cond.negative is None:
            raise DiffusionError(
                f"stage {self.name!r} guides with the text encoder's embedding of the empty or negative prompt: "
                "give each item Conditioning(negative=...) (the pipelines do)"
            )
        return ClassifierFreeGuidance(self.denoiser, cond.null(), self.guidance_scale), given
