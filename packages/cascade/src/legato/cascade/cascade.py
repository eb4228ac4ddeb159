"""`Cascade`: an ordered tuple of stages; `Item`: one unit of work; `LocalExecutor`.

Executors (this one, and the Ray ones in legato.pipelines) share one contract: ``run(cascade, items,
start=, stop=, inputs=, progress=)`` returns one output per item, in the items' order, and an item's output
depends only on the item (its seed and conditioning) and on the stages' batch sizes, never on which executor
or worker ran it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from legato.cascade.decode import Decode, Encode, LatentUpsample
from legato.cascade.stage import Stage, time_axis
from legato.diffusion import Conditioning, make_scheduler
from legato.diffusion.errors import DiffusionError

Progress = Callable[[str, int, int], None]  # (stage name, items finished at that stage, items in the run)


@dataclass(frozen=True)
class Item:
    """One unit of work: an id (file names, manifests), a seed, and unbatched conditioning (e.g. a prompt's
    text embedding ``(L, D)``).

    ``prefix`` continues earlier output: the known beginning of this item's final output along its time
    axis (`Cascade.time_axis`: ``(C, H, P)`` of a mel spectrogram, ``(C, P, H, W)`` of a video). Every stage
    keeps it (each at its own resolution, see `Cascade.prefix_at`) and generates the rest: windowed
    continuation by outpainting. ``fade`` is the fraction of the prefix, at its end, that crossfades into
    the new content rather than being kept exactly (0: all kept; 1: the crossfade spans the whole prefix):
    a hard edge where the continuation disagrees with the prefix is heard as a click. ``realign``: the
    super-resolution stages make again the prefix's positions past its last base-stage position instead of
    keeping them (`Cascade.prefix_at`): those were interpolated towards a base frame that this window makes
    anew, so kept they would lead into it from the old one. ``prompt`` and ``negative`` are the text, for
    stages that encode it with their own text encoder (`Stage.text`: imported checkpoints).
    """

    id: str
    seed: int
    cond: Conditioning = field(default_factory=Conditioning)
    prefix: Tensor | None = None
    fade: float = 0.0
    realign: bool = False
    prompt: str | None = None
    negative: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fade <= 1.0:
            raise DiffusionError(
                f"item {self.id!r}: fade={self.fade!r} is a fraction of the prefix; give a value in [0, 1]"
            )


@dataclass(frozen=True, eq=False)
class Cascade:
    """Stages in order (a base stage first, then super-resolution stages). Executors return the last
    stage's samples; turning them into audio or frames is the pipeline's step (`legato.pipelines`). A latent
    stage is followed by a `Decode` step (its autoencoder's decoder), which executors place like a stage.

    ``metadata`` is JSON-able information that travels with the cascade's files (what a pipeline needs to
    decode its samples: spectrogram parameters, frame rate, text encoder); the cascade does not read it.
    """

    stages: tuple[Stage | Decode | Encode | LatentUpsample, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stages:
            raise DiffusionError("a Cascade needs at least one Stage")
        if not self.stages[0].is_base:
            raise DiffusionError(f"the first stage {self.stages[0].name!r} must be a base stage (shape=...)")
        for stage in self.stages[1:]:
            if stage.is_base:
                raise DiffusionError(f"stage {stage.name!r} after the first must be a super-resolution stage")
        for i, stage in enumerate(self.stages):
            if isinstance(stage, (Decode, Encode, LatentUpsample)):
                channels = self.output_shape(i - 1)[0] if i else None
                decode = not isinstance(stage, Encode)  # takes latents
                wanted = stage.latents.channels if decode else stage.latents.pixel_channels
                if channels != wanted:
                    raise DiffusionError(
                        f"step {stage.name!r} {'decodes' if decode else 'encodes'} {wanted}-channel "
                        f"{'latents' if decode else 'pixels'}, but "
                        f"{'nothing comes before it' if not i else f'the stage before it makes {channels} channels'}"
                    )
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise DiffusionError(f"stage names must be unique, got {names}")

    def span(self, start: int | str = 0, stop: int | str | None = None) -> range:
        """Stage indices from ``start`` up to, not including, ``stop`` (indices or stage names)."""
        index = {s.name: i for i, s in enumerate(self.stages)}
        lo = index[start] if isinstance(start, str) else start
        hi = len(self.stages) if stop is None else index[stop] if isinstance(stop, str) else stop
        if not 0 <= lo < hi <= len(self.stages):
            raise DiffusionError(
                f"start={start!r}, stop={stop!r} select no stages of {[s.name for s in self.stages]}"
            )
        return range(lo, hi)

    def output_shape(self, index: int | None = None) -> tuple[int, ...]:
        """The per-item output shape of stage ``index`` (default: the last), e.g. ``(1, 64, 256)``."""
        shape = (1, *self.stages[0].shape)
        for stage in self.stages[1 : len(self.stages) if index is None else index + 1]:
            shape = stage.sr.high_shape(shape, stage.frames)
        return shape[1:]

    @property
    def sampled(self) -> list[int]:
        """The indices of the stages that sample (every one but the `Decode` steps)."""
        return [i for i, s in enumerate(self.stages) if isinstance(s, Stage)]

    @property
    def time_axis(self) -> int:
        """The time axis of an item's output (`legato.cascade.stage.time_axis`)."""
        return time_axis(len(self.stages[0].shape))

    def factors(self, index: int = 0) -> tuple[int | None, ...]:
        """Per axis of an item, how much larger the final output is than stage ``index``'s: ``(1, S, S)``
        for images, ``(1, T, S, S)`` for videos (``S``, ``T``: the later stages' space and time factors)."""
        later = self.stages[index + 1 :]
        # an `Encode` step's resize has no whole factor: the spatial ones are None past it
        space = None if any(s.sr.space is None for s in later) else math.prod(s.sr.space for s in later)
        if self.time_axis == -1:
            return (1, space, space)
        return (1, math.prod(s.sr.time for s in later), space, space)

    def downsample(self, index: int, x: Tensor) -> Tensor:
        """Final outputs ``(B, C, ...)`` brought to stage ``index``'s resolution: downsampled through the
        super-resolution stages after it (training data for each stage, prefixes of continuations)."""
        for stage in reversed(self.stages[index + 1 :]):
            x = stage.sr.downsample(x)
        return x

    def prefix_at(self, index: int, prefix: Tensor, realign: bool = False) -> Tensor:
        """A prefix of the final output (``P`` positions along `time_axis`) at stage ``index``'s resolution
        (``P`` must divide by the later stages' time factor). ``realign`` (`Item.realign`) leaves out its
        last ``g - 1`` positions, ``g`` the time factor from the base stage to this one: the ones after the
        prefix's last base-stage position."""
        factor = self.factors(index)[self.time_axis]
        length = prefix.shape[self.time_axis]
        # a causal video autoencoder (Wan's, LTX's) makes 1 + factor * k frames: its first latent frame is one frame
        causal = any(isinstance(s, Decode) and s.latents.is_video for s in self.stages[index + 1 :])
        if (length - 1 if causal else length) % factor:
            raise DiffusionError(
                f"a prefix of {length} positions does not divide by x{factor}, the factor of the stages after "
                f"{self.stages[index].name!r}; make the overlap a multiple of it"
                + (" plus 1 (the causal autoencoder's first frame)" if causal else "")
            )
        out = self.downsample(index, prefix[None].contiguous())[0]  # one memory layout: one result
        past = self.factors(0)[self.time_axis] // factor - 1
        if realign and past:
            out = out.narrow(self.time_axis, 0, out.shape[self.time_axis] - past).contiguous()
        return out

    def with_sampling(
        self,
        steps: Sequence[int] | None = None,
        guidance: float | None = None,
        scheduler: str | None = None,
        compile: str | None = None,
    ) -> Cascade:
        """This cascade sampled otherwise: ``steps`` per stage, ``guidance`` on the base stage, every stage's
        scheduler replaced by the named one of `legato.diffusion.SCHEDULERS` on the same training schedule
        (``"dpm++"`` reaches DDIM's accuracy in about half the steps), every stage's networks compiled in the
        ``compile`` mode (`Stage.compile`). None keeps the cascade's own setting.

        A distilled stage (a ``-fast`` model's base) was trained for DDIM's trailing grid at its step count;
        another scheduler or step count runs it off the grid it learned.
        """
        stages = list(self.stages)
        sampled = self.sampled
        if steps is not None:
            if len(steps) != len(sampled) or any(isinstance(n, bool) or int(n) != n or n < 1 for n in steps):
                raise DiffusionError(
                    f"steps={list(steps)} must be {len(sampled)} positive integers, one per stage "
                    f"{[stages[i].name for i in sampled]}"
                )
            for i, n in zip(sampled, steps, strict=True):
                stages[i] = replace(stages[i], steps=int(n))
        if guidance is not None:
            stages[0] = replace(stages[0], guidance_scale=float(guidance))
        if scheduler is not None:  # make_scheduler refuses an unknown name
            for i in sampled:
                stages[i] = replace(
                    stages[i], scheduler=make_scheduler(scheduler, stages[i].scheduler.config)
                )
        if compile is not None:
            stages = [
                replace(stages[i], compile=compile) if i in sampled else s for i, s in enumerate(stages)
            ]
        return replace(self, stages=tuple(stages))

    def with_vae(self, *, tiling: bool | None = None, slicing: bool | None = None) -> Cascade:
        """This cascade with its autoencoder steps (`Decode`, `Encode`) working in tiles and/or one image or
        frame at a time (`LatentSpace`): the decode of a size that would not fit in memory. Slicing gives the
        same pixels, tiling pixels a little off near the seams. None keeps each step's setting."""
        steps = [i for i, s in enumerate(self.stages) if isinstance(s, (Decode, Encode))]
        if not steps and (tiling or slicing):
            raise DiffusionError(
                "this cascade has no autoencoder (it samples pixels): VAE tiling and slicing (--vae-tiling, "
                "--vae-slicing) are for latent models (`legato models import`); leave them off"
            )
        memory = {"tiling": tiling, "slicing": slicing}
        return replace(self, stages=tuple(
            replace(s, latents=s.latents.with_memory(**memory)) if i in steps else s for i, s in enumerate(self.stages)
        ))  # fmt: skip

    def save_pretrained(self, path: str | Path, weights_dtype: str | None = None) -> Path:
        """Write the cascade to a folder: ``cascade.json`` and one diffusers-layout folder per stage
        (``weights_dtype="float16"``: weights stored in half precision, loaded back in each stage's dtype)."""
        from legato.cascade.pretrained import save_cascade

        return save_cascade(self, path, weights_dtype)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | None = None) -> Cascade:
        """Load a folder written by `save_pretrained` (``device`` overrides every stage's)."""
        from legato.cascade.pretrained import load_cascade

        return load_cascade(path, device=device)


def batches(count: int, size: int) -> list[range]:
    """Consecutive positions ``0..count`` cut into ranges of ``size`` (the last may be short)."""
    return [range(i, min(i + size, count)) for i in range(0, count, size)]


def check_run(cascade: Cascade, items: Sequence[Item], span: range, inputs: Sequence[Tensor] | None) -> None:
    """Validate a run's arguments (shared by every executor)."""
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise DiffusionError("item ids must be unique within a run")
    first = cascade.stages[span.start]
    if first.is_base and inputs is not None:
        raise DiffusionError(f"the run starts at base stage {first.name!r}: it takes no inputs")
    if not first.is_base and (inputs is None or len(inputs) != len(items)):
        raise DiffusionError(
            f"the run starts at super-resolution stage {first.name!r}: pass inputs=, one tensor per item"
        )
    shapes = {None if item.prefix is None else tuple(item.prefix.shape) for item in items}
    if len(shapes) > 1:
        raise DiffusionError(
            f"the items' prefixes differ in shape ({sorted(map(str, shapes))}); run continuations of one "
            "window length and overlap together"
        )


def run_batch(cascade: Cascade, index: int, items: Sequence[Item], inputs: Tensor | None,
              keep: bool = False) -> Tensor:  # fmt: skip
    """Stage ``index`` on one batch of items (what every executor's worker calls). ``inputs`` are made
    contiguous, as a transfer between workers makes them: kernels round differently on other layouts. The
    outputs are float32 on the CPU, or with ``keep`` on the stage's device."""
    inputs = None if inputs is None else inputs.contiguous()
    cond = Conditioning.stack([item.cond for item in items])
    prefixes = [
        None if item.prefix is None else cascade.prefix_at(index, item.prefix, item.realign) for item in items
    ]
    fades = [item.fade for item in items]
    stage = cascade.stages[index]
    seeds = [item.seed for item in items]
    if getattr(stage, "text", None) is None:
        return stage.run(inputs, cond, seeds, index, prefixes, fades, keep=keep)
    return stage.run(inputs, cond, seeds, index, prefixes, fades, keep=keep,
                     prompts=[item.prompt for item in items], negatives=[item.negative for item in items])  # fmt: skip


class Executor(Protocol):
    def run(
        self,
        cascade: Cascade,
        items: Sequence[Item],
        *,
        start: int | str = 0,
        stop: int | str | None = None,
        inputs: Sequence[Tensor] | None = None,
        progress: Progress | None = None,
    ) -> list[Tensor]: ...


class LocalExecutor:
    """Runs a cascade in this process, stage after stage, each in batches of its own ``batch_size``. A stage's
    outputs stay on its device when the next stage runs there (no round trip through the CPU between two GPU
    stages); the last stage's come back float32 on the CPU."""

    def run(
        self,
        cascade: Cascade,
        items: Sequence[Item],
        *,
        start: int | str = 0,
        stop: int | str | None = None,
        inputs: Sequence[Tensor] | None = None,
        progress: Progress | None = None,
    ) -> list[Tensor]:
        span = cascade.span(start, stop)
        check_run(cascade, items, span, inputs)
        current: list[Tensor] | None = list(inputs) if inputs is not None else None
        for index in span:
            stage = cascade.stages[index]
            after = cascade.stages[index + 1] if index + 1 < span.stop else None
            keep = after is not None and after.device == stage.device
            outputs: list[Tensor] = []
            for positions in batches(len(items), stage.batch_size):
                x = torch.stack([current[p] for p in positions]) if current is not None else None
                outputs += list(run_batch(cascade, index, [items[p] for p in positions], x, keep))
                if progress is not None:
                    progress(stage.name, len(outputs), len(items))
            current = outputs
        return current
