"""`Decode`: the cascade step that turns a latent stage's samples into pixels.

A latent diffusion model's decoder is a network of its own, often the one that runs out of memory beside the
denoiser (a video's frames decoded at full size). As a step of the cascade, like a stage, every executor
places it where a stage goes: in turn in this process (`LocalExecutor`), or on its own actors, CPUs or GPU
(the Ray executors). Its ``sr`` is the `LatentSpace`, whose geometry (``space``, ``high_shape``, and
``downsample``: encoding) is what the cascade walks, so a continuation's prefix is encoded on its way back to
the latent stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from legato.cascade.stage import DTYPES, time_axis
from legato.diffusion import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.latents import LatentSpace


@dataclass(frozen=True, eq=False)
class Decode:
    """Latents -> pixels in [-1, 1] with ``latents`` (a `LatentSpace`), ``batch_size`` items per call.

    The prefix of a continuation (pixels) is put back exactly where it was kept, faded as the stages fade
    it, so what was already delivered is not changed by the encode-decode round trip."""

    name: str
    latents: LatentSpace
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.latents, LatentSpace):
            raise DiffusionError(
                f"step {self.name!r}: latents must be a LatentSpace, got {type(self.latents)}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise DiffusionError(
                f"step {self.name!r}: batch_size={self.batch_size!r} must be a positive integer"
            )
        if self.dtype not in DTYPES:
            raise DiffusionError(f"step {self.name!r}: dtype={self.dtype!r}; use one of {sorted(DTYPES)}")

    is_base = False
    frames = None

    @property
    def sr(self) -> LatentSpace:
        """The geometry the cascade walks through (see the module's docstring)."""
        return self.latents

    def to(self, device: str) -> Decode:
        self.latents.to(torch.device(device), DTYPES[self.dtype])
        return replace(self, device=device)

    def output_shape(self, inputs: Tensor) -> tuple[int, ...]:
        return self.latents.high_shape(tuple(inputs.shape))[1:]

    def run(
        self,
        inputs: Tensor | None,
        cond: Conditioning,
        seeds: Sequence[int],
        index: int,
        prefixes: Sequence[Tensor | None] | None = None,
        fades: Sequence[float] | None = None,
    ) -> Tensor:
        if inputs is None:
            raise DiffusionError(f"step {self.name!r} decodes the previous stage's latents: give them")
        with torch.inference_mode():
            out = self.latents.decode(inputs.to(self.device)).float().clamp(-1, 1).cpu()
        if prefixes is not None and any(p is not None for p in prefixes):
            out = _keep_prefixes(out, prefixes, fades)
        return out


def _keep_prefixes(out: Tensor, prefixes: Sequence[Tensor | None], fades: Sequence[float] | None) -> Tensor:
    """``out`` with each item's prefix (along its time axis) put back, the last ``fade`` of it ramping into
    the decoded pixels as `Stage.outpainting` ramps it."""
    axis = time_axis(out.ndim - 1)
    out = out.clone()
    for b, prefix in enumerate(prefixes):
        if prefix is None:
            continue
        kept = prefix.shape[axis]
        weight = torch.zeros(out.shape[axis])
        faded = round(kept * (fades[b] if fades is not None else 0.0))
        if faded:
            weight[kept - faded : kept] = torch.arange(1, faded + 1) / (faded + 1)
        weight[kept:] = 1
        view = [1] * (out.ndim - 1)
        view[axis] = -1
        w = weight.view(view)
        head = out[b].narrow(axis, 0, kept)
        head.copy_(prefix.float() + w.narrow(axis, 0, kept) * (head - prefix.float()))
    return out
