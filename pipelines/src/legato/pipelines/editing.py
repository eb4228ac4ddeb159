"""`Editing`: img2img, DDIM-inversion edits and inpainting, for any pipeline whose cascade makes windows.

One implementation serves music (mel images, time = the last axis) and video (``(C, T, H, W)`` clips, time =
``T``). Input of any length is cut into the cascade's windows along its time axis, overlapping by a quarter
window; each window's base-stage sample (the input downsampled through the super-resolution stages) is
re-sampled by the base stage with the edit's options, the super-resolution stages add detail, and the
windows are joined by crossfades. Inpainting keeps everything outside its region exactly.

A pipeline using it provides ``cascade``, ``text`` (a `TextEncoder`, or None where the stages encode prompts
with their own encoders: imported checkpoints, whose edits go through the VAE's encoder), ``executor``,
``rate`` (positions per second along the time axis), ``_load(source) -> x`` (the input as a full-resolution sample in [-1, 1])
and ``_finish(x, prompt, seed, source) -> output`` (``source`` as given: what the output carries over from
it, such as a video's soundtrack).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler
from torch import Tensor

from legato.cascade import Item
from legato.diffusion import Conditioning, convert_scheduler, invert, make_scheduler
from legato.diffusion.schedulers import is_flow
from legato.pipelines.continuation import join, overlap_positions, pool, split, window_seed
from legato.pipelines.text import prompt_items


def load_mask(mask: Tensor | str | Path, size: tuple[int, int]) -> Tensor:
    """A ``(H, W)`` 0/1 mask of ``size`` from an image file (white = 1) or a 2-D tensor in [0, 1], resized
    by nearest neighbour."""
    if not isinstance(mask, Tensor):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(mask) as image:
                mask = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
        except (OSError, UnidentifiedImageError) as err:
            raise ValueError(
                f"mask {mask}: cannot be read as an image ({err}); give a PNG, white where to regenerate"
            ) from err
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(
            f"a mask of shape {tuple(mask.shape)}; give a (H, W) image, white (1) where to regenerate"
        )
    resized = torch.nn.functional.interpolate(mask.float()[None, None], size=size, mode="nearest")[0, 0]
    return (resized >= 0.5).float()


class Editing:
    """edit / invert_edit / inpaint, for a pipeline that supplies the hooks listed in the module docstring."""

    def edit(
        self, source: Any, prompt: str, *, strength: float = 0.6, seed: int = 0, negative: str = ""
    ) -> Any:
        """img2img (SDEdit): noise the input's base-stage sample to ``strength`` of the schedule and denoise
        it towards ``prompt`` (away from ``negative``); 0 keeps the input, 1 ignores it."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength={strength!r}; give a number from 0 (keep the input) to 1 (ignore it)")
        return self._edit(source, self._load(source), prompt, seed,
                          lambda low, masks: dict(init=low, strength=strength), negative=negative)  # fmt: skip

    def invert_edit(
        self, source: Any, source_prompt: str, prompt: str, *, seed: int = 0, negative: str = ""
    ) -> Any:
        """DDIM-inversion edit: invert the input under ``source_prompt`` (unguided), then sample from that
        latent with DDIM under ``prompt``; with ``prompt == source_prompt`` and no guidance it rebuilds it."""
        base = self.cascade.stages[0]

        def latent(low: Tensor, masks: None) -> dict:
            n = low.shape[0]
            _, src, extra = self._conditions([source_prompt] * n, [0] * n, "")
            if extra:  # the stage's own encoder
                src = base.encode(src, extra["prompts"], extra["negatives"], n)
            src = src.without_negative().map(lambda v: v.to(base.device))
            noise = invert(base.denoiser, base.scheduler, low.to(base.device), steps=base.steps, cond=src,
                           schedule=base.timesteps)  # fmt: skip
            return dict(noise=noise)

        config = base.scheduler.config  # back down the path inversion went up: DDIM, or a flow model's Euler
        back = (
            make_scheduler("flow_euler", config)
            if is_flow(config)
            else convert_scheduler(DDIMScheduler, config)
        )
        ddim = replace(base, scheduler=back)
        return self._edit(source, self._load(source), prompt, seed, latent, base=ddim, negative=negative)

    def inpaint(
        self,
        source: Any,
        prompt: str,
        start: float | None = None,
        end: float | None = None,
        *,
        mask: Tensor | str | Path | None = None,
        seed: int = 0,
        negative: str = "",
    ) -> Any:
        """Regenerate a region under ``prompt`` and keep the rest exactly: the time range ``[start, end)``
        seconds, and/or ``mask``, an image over the sample's last two axes (a mel image; every video frame)
        that is white where to regenerate (a file, or a 2-D tensor in [0, 1]); both given: where both are."""
        if (start is None) != (end is None):
            raise ValueError(f"start={start}, end={end}: a time range needs both (seconds)")
        if start is None and mask is None:
            raise ValueError("inpaint needs a region: start and end (seconds), or mask (an image)")
        x = self._load(source)
        axis, length = self.cascade.time_axis, x.shape[self.cascade.time_axis]
        region = torch.ones((1,) * x.ndim)
        if start is not None:
            lo, hi = round(start * self.rate), round(end * self.rate)
            if not 0 <= lo < hi <= length:
                raise ValueError(
                    f"start={start}, end={end} s select nothing of the {length / self.rate:.2f} s input; give "
                    "0 <= start < end <= its length"
                )
            shape = [1] * x.ndim
            shape[axis] = length
            region = torch.zeros(shape)
            region.narrow(axis, lo, hi - lo).fill_(1)
        if mask is not None:
            region = region * load_mask(mask, tuple(x.shape[-2:]))
            if not region.any():
                raise ValueError(
                    "the mask (within the time range) selects nothing; paint white where to regenerate"
                )
        return self._edit(
            source, x, prompt, seed, lambda low, masks: dict(mask=masks, known=low), region=region,
            negative=negative,
        )  # fmt: skip

    def _conditions(
        self, prompts: list[str], seeds: list[int], negative: str
    ) -> tuple[list[Item], Conditioning, dict]:
        """The items of an edit's windows, the base stage's batched conditioning and the prompts it encodes
        itself (a stage with its own text encoder: ``prompts=``/``negatives=`` of `Stage.run`)."""
        items = prompt_items(self.text, prompts, seeds, 0, negative)  # window 0: the seeds as given
        cond = Conditioning.stack([item.cond for item in items])
        own = getattr(self.cascade.stages[0], "text", None) is not None
        extra = dict(prompts=prompts, negatives=[negative] * len(prompts)) if own else {}
        return items, cond, extra

    def _edit(
        self,
        source: Any,
        x: Tensor,
        prompt: str,
        seed: int,
        how,
        *,
        base=None,
        region: Tensor | None = None,
        negative: str = "",
    ) -> Any:
        """Edit ``x`` (``source`` loaded) window by window: the base stage (``base``, default the cascade's)
        re-samples each window's base-resolution sample with the options ``how(low, masks)`` returns, then
        the super-resolution stages add detail; outside ``region`` the input is kept."""
        cascade = self.cascade
        axis, window = cascade.time_axis, cascade.output_shape()[cascade.time_axis]
        keep, length = overlap_positions(cascade, None), x.shape[axis]
        windows = split(x, window, keep, axis, -1.0)
        seeds = [window_seed(seed, k) for k in range(len(windows))]
        items, cond, extra = self._conditions([prompt] * len(windows), seeds, negative)
        low = torch.stack([cascade.prefix_at(0, w) for w in windows])
        masks = None
        if region is not None:
            # a base position is generated where any of the positions it covers is in the region
            full = region.expand(
                *[length if i == region.ndim + axis else n for i, n in enumerate(region.shape)]
            )
            masks = pool(split(full, window, keep, axis, 0.0), cascade.factors())
        base = base or cascade.stages[0]
        outs = list(base.run(None, cond, seeds, 0, **how(low, masks), **extra))
        if len(cascade.stages) > 1:
            outs = self.executor.run(cascade, items, start=1, inputs=outs)
        joined = join(outs, keep, axis, length)
        if region is not None:
            joined = torch.where(region > 0, joined, x)
        return self._finish(joined, prompt, seed, source)
