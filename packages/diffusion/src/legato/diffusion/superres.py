"""Super-resolution in space and time (Cascaded Diffusion Models, Ho et al. 2021; Imagen Video, Ho et al. 2022,
Sec. 2.2-2.3), for ``(B, C, H, W)`` images (mel spectrograms) and ``(B, C, T, H, W)`` videos.

A super-resolution stage is the same network as a base stage (e.g. legato.video's ``UNet3D``), built with
``cond_channels=sr.cond_channels(C)`` and noise-level conditioning: the low-res video, upsampled to the target size (bilinear in space, linear
frame interpolation in time), is concatenated on the channel axis, after noise-conditioning augmentation
(`legato.diffusion.NoiseAugmentation`). The model learns what that upsampling misses; the upsampling itself is
the baseline it has to beat.

Frames and factors: a ``(B, C, T, H, W)`` video at ``time=2`` keeps frames ``0, 2, 4, ...`` (``ceil(T / 2)``
of them); upsampling puts each kept frame back at its index and interpolates the ones between, holding the
last kept frame for a trailing odd one. ``space=s`` divides ``H`` and ``W`` by ``s`` (antialiased).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from legato.diffusion.augmentation import NoiseAugmentation
from legato.diffusion.conditioning import Conditioning
from legato.diffusion.denoisers import VPSchedule
from legato.diffusion.errors import DiffusionError
from legato.diffusion.sampling import sample
from legato.diffusion.schedulers import Timesteps
from legato.diffusion.tensors import check_sample, randn
from legato.diffusion.training.data import TensorItems


def resize(x: Tensor, size: tuple[int, int], *, antialias: bool = True) -> Tensor:
    """Bilinear resize of ``(B, C, H, W)`` images, or of every frame of ``(B, C, T, H, W)``, to ``size``."""
    if x.ndim == 4:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    b = x.shape[0]
    frames = rearrange(x, "b c t h w -> (b t) c h w")
    out = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return rearrange(out, "(b t) c h w -> b c t h w", b=b)


def interpolate_frames(video: Tensor, factor: int, frames: int | None = None) -> Tensor:
    """Linear frame interpolation of ``(B, C, T, H, W)``: frame ``j`` of the output is frame ``j / factor`` of
    the input, blended between its neighbours (the last input frame is held). ``frames`` defaults to
    ``T * factor``."""
    frames = frames if frames is not None else video.shape[2] * factor
    position = torch.arange(frames, device=video.device, dtype=torch.float32) / factor
    lo = position.floor().long().clamp_max(video.shape[2] - 1)
    hi = (lo + 1).clamp_max(video.shape[2] - 1)
    w = (position - lo).clamp(0, 1).to(video.dtype)[None, None, :, None, None]
    return torch.lerp(video[:, :, lo], video[:, :, hi], w)


class Upsampler(Protocol):
    """What a super-resolution stage's ``sr`` is to its cascade: `SuperResolution` (Legato's own networks),
    `legato.diffusion.LatentUpscale` (the x4 upscaler), `legato.diffusion.LatentRefine` (video-to-video).
    ``space``/``time`` are its whole factors (``space`` None where it has none), ``high_shape`` its output's
    shape, ``downsample`` what brings an output back to its input (continuations, edits), ``generate`` the
    sampling."""

    space: int | None
    time: int

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]: ...

    def downsample(self, x: Tensor) -> Tensor: ...

    def generate(self, denoiser: nn.Module, scheduler, low: Tensor, *, steps: int, generator,
                 cond: Conditioning | None = None, frames: int | None = None, mask: Tensor | None = None,
                 known: Tensor | None = None, reconstruction: float = 0.0,
                 schedule: Timesteps | None = None) -> Tensor: ...  # fmt: skip


@dataclass(frozen=True)
class SuperResolution:
    """A super-resolution task: ``space`` (x1, x2, x4, ...) and ``time`` (x1, x2, ...) factors, with the
    noise augmentation of the low-res input.

    ``time > 1`` needs videos. `downsample` makes the low-res input from high-res truth (for training pairs
    and evaluation), `upsample` is the model's conditioning and the bilinear/trilinear baseline, `items`
    makes training pairs, `generate` samples the high-res output through the one loop. With ``residual_scale`` (the default)
    the model generates ``(high - upsampled) / residual_scale``, the detail the upsampling misses, at about
    unit scale: a model that has learnt nothing yet returns the baseline, not noise.
    """

    space: int = 1
    time: int = 1
    augmentation: NoiseAugmentation = field(default_factory=NoiseAugmentation)
    residual_scale: float | None = 0.2

    def __post_init__(self) -> None:
        for name, value in (("space", self.space), ("time", self.time)):
            if not isinstance(value, int) or value < 1:
                raise DiffusionError(f"{name}={value!r}: super-resolution factors are integers >= 1")
        if self.residual_scale is not None and not self.residual_scale > 0:
            raise DiffusionError(f"residual_scale={self.residual_scale!r} must be positive, or None")
        if self.space == self.time == 1:
            raise DiffusionError("space=1 and time=1 is not super-resolution: set space=2 or 4, or time=2")

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]:
        """The output's ``(B, C, H, W)`` or ``(B, C, T, H, W)`` for a low-res input of ``low_shape``."""
        *lead, h, w = low_shape
        if len(lead) == 3:
            b, c, t = lead
            lead = [b, c, frames or t * self.time]
        return (*lead, h * self.space, w * self.space)

    def downsample(self, x: Tensor) -> Tensor:
        """High-res -> low-res: every ``time``-th frame (videos), antialiased bilinear ``/ space``."""
        self._check(x)
        h, w = x.shape[-2:]
        if h % self.space or w % self.space:
            raise DiffusionError(f"frames of {h}x{w} do not divide by space={self.space}; crop to a multiple")
        low = x[:, :, :: self.time] if x.ndim == 5 else x
        if self.space > 1:
            low = resize(low, (h // self.space, w // self.space))
        return low

    def upsample(self, low: Tensor, frames: int | None = None) -> Tensor:
        """Low-res -> the target size: linear frame interpolation (videos), then bilinear in space. ``frames``
        sets a video's output length (default ``T * time``; ``2T - 1`` ends on the last kept frame)."""
        self._check(low)
        out = interpolate_frames(low, self.time, frames) if self.time > 1 else low
        if self.space > 1:
            out = resize(out, (low.shape[-2] * self.space, low.shape[-1] * self.space), antialias=False)
        return out

    def items(self, samples: Tensor, **cond: Tensor) -> TensorItems:
        """Training items from high-res ``(N, C, H, W)`` images or ``(N, C, T, H, W)`` clips: target = the
        sample (or its residual), ``low_res`` = its downsampled-then-upsampled twin (noised per batch by an
        `Objective` built with this augmentation)."""
        frames = samples.shape[2] if samples.ndim == 5 else None
        upsampled = self.upsample(self.downsample(samples), frames=frames)
        return TensorItems(self.to_target(samples, upsampled), low_res=self.model_input(upsampled), **cond)

    def cond_channels(self, channels: int) -> int:
        """``cond_channels`` of the network for ``channels``-channel samples: the upsampled sample, plus for
        temporal SR a channel that is 1 on the frames that were kept."""
        return channels + (self.time > 1)

    def model_input(self, upsampled: Tensor) -> Tensor:
        """The conditioning channels for an upsampled video: itself, and for temporal SR the kept-frame
        indicator (without it the model cannot tell a kept frame from an interpolated one: its temporal
        layers see only relative positions)."""
        if self.time == 1:
            return upsampled
        b, _, t, h, w = upsampled.shape
        kept = torch.zeros(b, 1, t, h, w, device=upsampled.device, dtype=upsampled.dtype)
        kept[:, :, :: self.time] = 1
        return torch.cat([upsampled, kept], dim=1)

    def to_target(self, video: Tensor, upsampled: Tensor) -> Tensor:
        """What the model generates for high-res ``video``: the video itself, or with ``residual_scale`` its
        difference from the upsampled low-res input, divided by the scale."""
        return video if self.residual_scale is None else (video - upsampled) / self.residual_scale

    def from_target(self, target: Tensor, upsampled: Tensor) -> Tensor:
        """The inverse of `to_target`."""
        return target if self.residual_scale is None else upsampled + self.residual_scale * target

    def generate(
        self,
        denoiser: nn.Module,
        scheduler,
        low: Tensor,
        *,
        steps: int,
        generator: torch.Generator | list[torch.Generator],
        cond: Conditioning | None = None,
        frames: int | None = None,
        mask: Tensor | None = None,
        known: Tensor | None = None,
        reconstruction: float = 0.0,
        schedule: Timesteps | None = None,
    ) -> Tensor:
        """Sample the high-res version of ``low`` (``(B, C, H, W)`` or ``(B, C, T, H, W)``, in ``[-1, 1]``)
        with ``denoiser`` (guided or not) and ``scheduler``; ``frames`` sets a video's output length.

        ``mask``/``known`` (high-res, as for `sample`: 1 where to generate, 0 where to keep ``known``) pin
        part of the output, e.g. the overlap with the previous window of a continuation."""
        shape = self.high_shape(tuple(low.shape), frames)
        noise = randn(shape, generator, device=low.device).to(low.dtype)
        vp = VPSchedule.from_scheduler(scheduler).to(low.device)
        upsampled = self.upsample(low, shape[2] if low.ndim == 5 else None)
        full = self.augmentation.sample(
            (cond or Conditioning()).replace(low_res=self.model_input(upsampled)), vp, generator
        )
        pinned_by_caller = None
        if known is not None:
            if mask is None:
                raise DiffusionError("known= needs mask= (1 where to generate, 0 where to keep known)")
            pinned_by_caller = (mask, known.to(low))
            known = self.to_target(known.to(low), upsampled)
        if self.space == 1 and low.ndim == 5:
            # Pure temporal SR: the kept frames are known exactly; generate only the frames between them.
            kept = torch.ones(1, 1, shape[2], 1, 1, device=low.device, dtype=low.dtype)
            kept[:, :, :: self.time] = 0
            pinned = self.to_target(upsampled, upsampled)
            if mask is None:
                mask, known = kept, pinned
            else:  # keep what either keeps; the caller's known wins where it keeps
                known = pinned + (1 - mask) * (known - pinned)
                mask = mask * kept
        out = sample(denoiser, scheduler, noise, steps=steps, cond=full, generator=generator, mask=mask, known=known,
                     reconstruction=reconstruction if pinned_by_caller is not None else 0.0,
                     schedule=schedule)  # fmt: skip
        out = self.from_target(out, upsampled)
        if pinned_by_caller is not None:  # exactly the caller's values where kept (no residual round trip)
            keep_mask, kept = pinned_by_caller
            out = kept + keep_mask * (out - kept)
        return out

    def _check(self, x: Tensor) -> None:
        check_sample(x, "super-resolution input")
        if x.ndim not in (4, 5) or (x.ndim == 4 and self.time > 1):
            raise DiffusionError(
                f"expected a (B, C, T, H, W) video{'' if self.time > 1 else ' or a (B, C, H, W) image'} for "
                f"space={self.space}, time={self.time}; got shape {tuple(x.shape)}"
            )
