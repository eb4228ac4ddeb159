"""Camera moves over a still image: real-looking video made from a photo (pans and zooms, Ken Burns style).

Every frame is a view of the photo through a square window whose centre moves linearly from ``start`` to
``end`` while its size goes from ``view[0]`` to ``view[1]`` (fractions of the photo's shorter side). The
photo is first shrunk, antialiased, so that the widest view samples it about one photo pixel per output
pixel; bilinear sampling does the rest, so the clip has no aliasing and moves by sub-pixel amounts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from legato.video.io import VideoError


def camera_move(
    image: Tensor,
    frames: int,
    size: int,
    *,
    start: tuple[float, float] = (0.0, 0.0),
    end: tuple[float, float] = (0.0, 0.0),
    view: tuple[float, float] = (1.0, 1.0),
) -> Tensor:
    """A ``(C, frames, size, size)`` clip of ``image`` ``(C, H, W)`` (values kept as given).

    ``start``/``end``: window centres in ``[-1, 1]`` image coordinates (x, y); the window is kept inside
    the image. ``view``: window size at the first and last frame, as a fraction in ``(0, 1]`` of the
    shorter side (``(1.0, 0.5)`` zooms in by 2x).
    """
    if image.ndim != 3 or not image.is_floating_point():
        raise VideoError(f"image must be a float (C, H, W) tensor, got {image.dtype} {tuple(image.shape)}")
    if frames < 1 or size < 1:
        raise VideoError(f"frames={frames} and size={size} must be >= 1")
    if not all(0 < v <= 1 for v in view):
        raise VideoError(f"view={view}: window sizes are fractions of the shorter side in (0, 1]")
    _, h, w = image.shape
    short = min(h, w)
    scale = min(1.0, size / (max(view) * short))
    if scale < 1.0:
        image = F.interpolate(
            image[None],
            size=(max(1, round(h * scale)), max(1, round(w * scale))),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0]
        _, h, w = image.shape
    s = (
        torch.linspace(0, 1, frames, dtype=torch.float64)
        if frames > 1
        else torch.zeros(1, dtype=torch.float64)
    )
    side = view[0] + (view[1] - view[0]) * s  # window side / shorter side
    half_x, half_y = side * min(h, w) / w, side * min(h, w) / h  # half-extent in [-1, 1] units
    cx = (start[0] + (end[0] - start[0]) * s).clamp(-1, 1) * (1 - half_x)
    cy = (start[1] + (end[1] - start[1]) * s).clamp(-1, 1) * (1 - half_y)
    theta = torch.zeros(frames, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = half_x, cx
    theta[:, 1, 1], theta[:, 1, 2] = half_y, cy
    grid = F.affine_grid(theta.to(image.dtype), [frames, image.shape[0], size, size], align_corners=False)
    clip = F.grid_sample(
        image[None].expand(frames, -1, -1, -1),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return clip.transpose(0, 1).contiguous()


def random_camera_moves(
    images: list[Tensor],
    count: int,
    frames: int,
    size: int,
    generator: torch.Generator,
    *,
    max_shift: float = 0.5,
    zoom: float = 1.5,
) -> Tensor:
    """``(count, C, frames, size, size)`` clips: each a random photo from ``images``, a random pan of up to
    ``max_shift`` (in [-1, 1] units) and a random zoom in or out of up to ``zoom``x."""
    if not images:
        raise VideoError("random_camera_moves needs at least one image")
    clips = []
    for _ in range(count):
        u = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
        image = images[min(int(u[0] * len(images)), len(images) - 1)]
        start = (2 * u[1] - 1, 2 * u[2] - 1)
        angle = 2 * math.pi * u[3]
        shift = max_shift * u[4]
        end = (start[0] + shift * math.cos(angle), start[1] + shift * math.sin(angle))
        big = 0.35 + 0.4 * u[5]
        small = big / (1 + (zoom - 1) * u[6])
        view = (big, small) if u[6] > 0.5 else (small, big)
        clips.append(camera_move(image, frames, size, start=start, end=end, view=view))
    return torch.stack(clips)
