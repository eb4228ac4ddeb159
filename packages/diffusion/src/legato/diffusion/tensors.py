"""Rank-agnostic tensor helpers: everything broadcasts through `append_dims` (k-diffusion's idiom)."""

from __future__ import annotations

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
