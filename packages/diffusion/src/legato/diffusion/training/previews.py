"""Sample grids written during training: a quick look at what the model makes, step by step."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import torch
from einops import rearrange
from PIL import Image
from torch import Tensor


def save_grid(images: Tensor, path: Path) -> Path:
    """Write ``(B, C, H, W)`` images in [-1, 1] as one PNG grid (atomically). 1 or 3 channels show as they are;
    other counts show their first channel. Videos ``(B, C, T, H, W)`` show their first frame."""
    if images.ndim == 5:
        images = images[:, :, 0]
    if images.shape[1] not in (1, 3):
        images = images[:, :1]
    batch = images.shape[0]
    cols = math.ceil(math.sqrt(batch))
    rows = math.ceil(batch / cols)
    padded = torch.cat([images, images.new_full((rows * cols - batch, *images.shape[1:]), -1.0)])
    grid = rearrange(padded, "(r c) ch h w -> (r h) (c w) ch", r=rows, c=cols)
    pixels = ((grid.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["save_grid"]
