"""Rank-agnostic tensor helpers: everything broadcasts through `append_dims` (k-diffusion's idiom)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from legato.diffusion.errors import DiffusionError


def append_dims(x: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims so that a per-item ``(B,)`` tensor broadcasts against ``(B, ...)``."""
    missing = ndim - x.ndim
    if missing < 0:
        raise DiffusionError(f"cannot broadcast a tensor of rank {x.ndim} to rank {ndim}")
    return x[(...,) + (None,) * missing]


def batch_timesteps(timestep: Tensor | float, batch: int, device: torch.device) -> Tensor:
    """A scalar or ``(B,)`` timestep as a ``(B,)`` tensor on ``device`` (what networks embed per item)."""
    t = torch.as_tensor(timestep, device=device)
    return t.expand(batch) if t.ndim == 0 else t


def check_sample(x: Tensor, name: str, *, like: Tensor | None = None) -> None:
    """Raise `DiffusionError` unless ``x`` is a finite float tensor ``(B, C, ...)`` matching ``like``."""
    if not isinstance(x, Tensor):
        raise DiffusionError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 3:
        raise DiffusionError(
            f"{name} has shape {tuple(x.shape)}; samples are (B, C, H, W) images or (B, C, T, H, W) videos"
        )
    if not x.is_floating_point():
        raise DiffusionError(f"{name} has dtype {x.dtype}; pass a float tensor")
    if like is not None:
        if x.shape != like.shape:
            raise DiffusionError(f"{name} has shape {tuple(x.shape)} but the noise is {tuple(like.shape)}")
        if x.device != like.device:
            raise DiffusionError(
                f"{name} is on {x.device} but the noise is on {like.device}; move it with .to()"
            )
    if not bool(torch.isfinite(x).all()):
        raise DiffusionError(f"{name} holds NaN/Inf values; clean it (e.g. torch.nan_to_num) before sampling")


def generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per item, so an item's randomness does not depend on the batch it is in."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def randn(
    shape: Sequence[int],
    generator: torch.Generator | Sequence[torch.Generator],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``(B, ...)`` standard normal noise, item ``b`` drawn from ``generator[b]`` (on the generator's device);
    one generator draws the whole batch."""
    if isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)
    if len(generator) != shape[0]:
        raise DiffusionError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per item")
    items = [torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=dtype) for g in generator]
    return torch.stack(items).to(device)


def check_frame_correlation(correlation: float) -> float:
    """``correlation`` if it is a valid correlation between noise frames, else a `DiffusionError`."""
    if isinstance(correlation, bool) or not (isinstance(correlation, (int, float)) and 0 <= correlation < 1):
        raise DiffusionError(
            f"frame_correlation={correlation!r} must lie in [0, 1): 0 is independent frames, 0.5 is PYoCo's "
            "mixed noise with alpha=1"
        )
    return float(correlation)


def correlate_frames(noise: Tensor, correlation: float, dim: int = 2) -> Tensor:
    """Standard normal ``noise`` made correlated ``correlation`` between any two frames along ``dim`` (the
    ``T`` of ``(B, C, T, H, W)``), each frame still standard normal: the mixed noise of "Preserve Your Own
    Correlation" (Ge et al. 2023), a shared part plus an independent part per frame.

    It is a fixed linear map of independent noise, ``a z + b sum_t z_t`` with ``a^2 = 1 - c`` and
    ``T b^2 + 2 a b = c``, so seeded noise stays seeded and ``correlation=0`` returns ``noise`` itself.
    A model trained on such noise must be sampled from it (`Stage.frame_correlation`)."""
    if check_frame_correlation(correlation) == 0:
        return noise
    frames = noise.shape[dim]
    a = math.sqrt(1 - correlation)
    b = (math.sqrt(1 - correlation + frames * correlation) - a) / frames
    return a * noise + b * noise.sum(dim, keepdim=True)
