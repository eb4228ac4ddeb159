"""`Decode`, `Encode` and `LatentUpsample`: the cascade steps around a latent stage's samples.

A latent diffusion model's decoder is a network of its own, often the one that runs out of memory beside the
denoiser (a video's frames decoded at full size). As a step of the cascade, like a stage, every executor
places it where a stage goes: in turn in this process (`LocalExecutor`), or on its own actors, CPUs or GPU
(the Ray executors). Its ``sr`` is the `LatentSpace`, whose geometry (``space``, ``high_shape``, and
``downsample``: encoding) is what the cascade walks, so a continuation's prefix is encoded on its way back to
the latent stage.

`Encode` is the other direction, before a latent stage that refines pixels made by the stages before it
(``VideoToVideoSDPipeline``: Zeroscope XL over Zeroscope 576w's frames): the frames are resized to the
refining stage's size and encoded, on the step's own worker.

`LatentUpsample` goes from latents to latents at twice the size (LTX-Video's latent upsampler), between a
base pass and a refining pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from einops import rearrange
from torch import Tensor, nn

from legato.cascade.stage import DTYPES, handed, prefix_weight, time_axis
from legato.diffusion import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.latents import LatentSpace


@dataclass(frozen=True, eq=False)
class _LatentStep:
    """What `Decode` and `Encode` share: an autoencoder, where it runs, and how many items per call."""

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

    def to(self, device: str):
        self.latents.to(torch.device(device), DTYPES[self.dtype])
        return replace(self, device=device)

    def output_shape(self, inputs: Tensor) -> tuple[int, ...]:
        return self.sr.high_shape(tuple(inputs.shape))[1:]

    def _without_prefixes(self, inputs: Tensor | None, prefixes, what: str) -> Tensor:
        """``inputs``, checked: given, and no continuation's prefix to pass back through a step whose geometry
        refuses it (`downsample` says why)."""
        if inputs is None:
            raise DiffusionError(f"step {self.name!r} {what}: give them")
        if prefixes is not None and any(p is not None for p in prefixes):
            self.downsample(inputs)  # refuses, with why
        return inputs


@dataclass(frozen=True, eq=False)
class Decode(_LatentStep):
    """Latents -> pixels in [-1, 1] with ``latents`` (a `LatentSpace`), ``batch_size`` items per call.

    The prefix of a continuation (pixels) is put back exactly where it was kept, faded as the stages fade
    it, so what was already delivered is not changed by the encode-decode round trip."""

    @property
    def sr(self) -> LatentSpace:
        """The geometry the cascade walks through (see the module's docstring)."""
        return self.latents

    def run(
        self,
        inputs: Tensor | None,
        cond: Conditioning,
        seeds: Sequence[int],
        index: int,
        prefixes: Sequence[Tensor | None] | None = None,
        fades: Sequence[float] | None = None,
        keep: bool = False,
    ) -> Tensor:
        if inputs is None:
            raise DiffusionError(f"step {self.name!r} decodes the previous stage's latents: give them")
        with torch.inference_mode():
            out = self.latents.decode(inputs.to(self.device)).float().clamp(-1, 1)
        if prefixes is not None and any(p is not None for p in prefixes):
            out = _keep_prefixes(out, prefixes, fades)
        return handed(out, keep)


@dataclass(frozen=True, eq=False)
class Encode(_LatentStep):
    """Pixels in [-1, 1] -> latents: each image or frame resized to ``size`` (height, width) by ``resize``
    (a ``torch.nn.functional.interpolate`` mode), then encoded to the posterior's mode.

    Its geometry has no whole factor (Zeroscope's 320x576 -> 576x1024 is neither), so what walks back through
    it (a continuation's prefix, an edit's mask) is refused: continue or edit the stages before it."""

    size: tuple[int, int] = (0, 0)
    resize: str = "bicubic"

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            len(self.size) != 2
            or any(int(n) != n or n % self.latents.space for n in self.size)
            or min(self.size) < 1
        ):
            raise DiffusionError(
                f"step {self.name!r}: size={self.size!r} must be (height, width) in pixels, each dividing by "
                f"{self.latents.space} (the autoencoder's factor)"
            )
        if self.resize not in ("nearest", "bilinear", "bicubic", "area", "nearest-exact"):
            raise DiffusionError(
                f"step {self.name!r}: resize={self.resize!r}; use bicubic, bilinear or nearest"
            )

    @property
    def sr(self) -> Encode:
        return self

    space = None  # no whole factor: see the class docstring
    time = 1

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]:
        b, _, *mid, _, _ = low_shape
        s = self.latents.space
        return (b, self.latents.channels, *mid, self.size[0] // s, self.size[1] // s)

    def downsample(self, x: Tensor) -> Tensor:
        raise DiffusionError(
            f"step {self.name!r} resizes and encodes: a continuation or an edit cannot pass back through it; "
            "continue or edit the stages before it"
        )

    def resized(self, pixels: Tensor) -> Tensor:
        """``(B, C, [T,] H, W)`` pixels resized to ``size``, frame by frame, clamped to [-1, 1]."""
        video = pixels.ndim == 5
        frames = rearrange(pixels, "b c t h w -> (b t) c h w") if video else pixels
        kw = {} if self.resize in ("nearest", "area", "nearest-exact") else {"align_corners": False}
        out = nn.functional.interpolate(frames.float(), size=tuple(self.size), mode=self.resize, **kw)
        out = out.clamp(-1, 1)
        return rearrange(out, "(b t) c h w -> b c t h w", b=pixels.shape[0]) if video else out

    def run(
        self,
        inputs: Tensor | None,
        cond: Conditioning,
        seeds: Sequence[int],
        index: int,
        prefixes: Sequence[Tensor | None] | None = None,
        fades: Sequence[float] | None = None,
        keep: bool = False,
    ) -> Tensor:
        inputs = self._without_prefixes(inputs, prefixes, "encodes the previous stage's pixels")
        with torch.inference_mode():
            return handed(self.latents.encode(self.resized(inputs).to(self.device)).float(), keep)


@dataclass(frozen=True, eq=False)
class LatentUpsample(_LatentStep):
    """Latents -> latents at twice the size, by a latent upsampler network (``LTXLatentUpsamplePipeline``: LTX-
    Video's multi-scale recipe upsamples the base pass's latents before a refining pass at the high size).

    As diffusers' pipeline does it: the latents are denormalised by ``latents``' statistics (the VAE the
    upsampler was trained with), upsampled, and normalised again. No randomness: like a decode, a step."""

    upsampler: nn.Module | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.upsampler is None or not hasattr(self.upsampler, "config"):
            raise DiffusionError(
                f"step {self.name!r}: upsampler= must be a diffusers LTXLatentUpsamplerModel"
            )

    @property
    def sr(self) -> LatentUpsample:
        return self

    @property
    def space(self) -> int:
        return 2 if self.upsampler.config.get("spatial_upsample", True) else 1

    @property
    def time(self) -> int:
        return 2 if self.upsampler.config.get("temporal_upsample", False) else 1

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]:
        b, c, t, h, w = low_shape
        return (b, c, t * self.time, h * self.space, w * self.space)

    def downsample(self, x: Tensor) -> Tensor:
        raise DiffusionError(
            f"step {self.name!r} upsamples latents: a continuation or an edit cannot pass back through it; "
            "continue or edit the stages before it"
        )

    def to(self, device: str):
        self.upsampler.to(torch.device(device), DTYPES[self.dtype])
        return super().to(device)

    def run(
        self,
        inputs: Tensor | None,
        cond: Conditioning,
        seeds: Sequence[int],
        index: int,
        prefixes: Sequence[Tensor | None] | None = None,
        fades: Sequence[float] | None = None,
        keep: bool = False,
    ) -> Tensor:
        inputs = self._without_prefixes(inputs, prefixes, "upsamples the previous stage's latents")
        dtype = DTYPES[self.dtype]
        with torch.inference_mode():
            raw = self.latents.denormalise(inputs.to(self.device, torch.float32))
            up = self.upsampler(raw.to(dtype))
            return handed(self.latents.normalise(up.float()).float(), keep).contiguous()


def _keep_prefixes(out: Tensor, prefixes: Sequence[Tensor | None], fades: Sequence[float] | None) -> Tensor:
    """``out`` with each item's prefix (along its time axis) put back, the last ``fade`` of it ramping into
    the decoded pixels as `Stage.outpainting` ramps it."""
    axis = time_axis(out.ndim - 1)
    out = out.clone()
    for b, prefix in enumerate(prefixes):
        if prefix is None:
            continue
        kept = prefix.shape[axis]
        weight = prefix_weight(out.shape[axis], kept, fades[b] if fades is not None else 0.0)
        view = [1] * (out.ndim - 1)
        view[axis] = -1
        w = weight.view(view).to(out.device)
        head = out[b].narrow(axis, 0, kept)
        prefix = prefix.to(out.device, torch.float32)
        head.copy_(prefix + w.narrow(axis, 0, kept) * (head - prefix))
    return out
