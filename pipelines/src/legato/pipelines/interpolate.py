"""Riffs between prompts and seeds (Riffusion's interpolation), as one continuous track.

Step ``k`` of ``steps`` (``t = k / (steps - 1)``) is generated from the text embedding ``lerp(a, b, t)`` and
the base stage's starting noise ``slerp(noise(seed_a), noise(seed_b), t)``: spherical, so every step's noise
keeps the norm of a Gaussian sample (a linear mix at t = 0.5 would be ~0.7 of it and sample blurred, Song
et al. 2021, DDIM sec. 5.4). ``noise(seed)`` is exactly the noise the base stage draws for that seed, so the
first and last steps are the two prompts' ordinary clips. With ``strength`` set, each step after the first
is instead img2img of the previous step's base mel at that strength (Riffusion's app), so neighbours share
more. The super-resolution stages add detail to every step, and the steps' mel images are joined by the
codec's crossfade over ``overlap`` and inverted as one track (so the phase runs on across the joins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from legato.cascade import Item
from legato.codec import crossfade_concat
from legato.diffusion import Conditioning
from legato.pipelines.outputs import AudioClip

if TYPE_CHECKING:
    from legato.pipelines.music import MusicPipeline


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation of two tensors (as flat vectors); falls back to lerp when they are parallel."""
    if t in (0, 1):
        return a if t == 0 else b
    fa, fb = a.flatten().double(), b.flatten().double()
    cos = torch.dot(fa, fb) / (fa.norm() * fb.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if float(omega.sin().abs()) < 1e-6:
        return torch.lerp(a, b, t)
    wa, wb = torch.sin((1 - t) * omega) / omega.sin(), torch.sin(t * omega) / omega.sin()
    return (wa * a.double() + wb * b.double()).to(a.dtype)


@dataclass(frozen=True)
class Interpolation:
    """The stitched ``track`` and each step's own ``clips`` (with the step's blend in their prompts)."""

    track: AudioClip
    clips: list[AudioClip]
    ts: list[float]


def interpolate(
    pipe: MusicPipeline,
    prompts: str | Sequence[str],
    seeds: int | Sequence[int] = (0, 1),
    *,
    steps: int = 4,
    strength: float | None = None,
    overlap: float | None = None,
) -> Interpolation:
    """``steps`` clips from ``prompts[0]``/``seeds[0]`` to ``prompts[1]``/``seeds[1]`` (a single prompt or
    seed is used at both ends), stitched into one track; see the module for the method."""
    pa, pb = (prompts, prompts) if isinstance(prompts, str) else tuple(prompts)
    sa, sb = (seeds, seeds) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps={steps!r}: an interpolation needs at least 2 steps (its two ends)")
    if strength is not None and not 0 < strength <= 1:
        raise ValueError(f"strength={strength!r} must lie in (0, 1]; 0.5 keeps half of the previous step")
    base = pipe.cascade.stages[0]
    if pipe.text is None:  # an imported checkpoint: the base stage's own encoder, its "" as the null
        both = base.encode(Conditioning(), [pa, pb], None, 2)
        text, null = both.text, both.negative[:1]
    else:
        text = torch.cat([pipe.text([pa]), pipe.text([pb])])  # one at a time: as an ordinary call pads them
        null = None

    def noise(seed: int) -> Tensor:
        return base.starting_noise(base.generators([seed], 0))

    def mix(t: float) -> Tensor:  # exact at the ends (lerp's a + t (b - a) is not b at t = 1)
        return text[0] if t == 0 else text[1] if t == 1 else torch.lerp(text[0], text[1], t)

    def seed(t: float) -> int:  # of the sampler's and the SR stages' own noise: the nearer end's
        return sa if t < 0.5 else sb

    na, nb = noise(sa), noise(sb)
    ts = [k / (steps - 1) for k in range(steps)]
    lows = []
    for k, t in enumerate(ts):
        cond = Conditioning(text=mix(t)[None], negative=null)
        edit = {} if strength is None or k == 0 else {"init": lows[-1][None], "strength": strength}
        lows.append(base.run(None, cond, [seed(t)], 0, noise=slerp(na, nb, t), **edit)[0])
    # later stages with their own encoders read the nearer end's prompt
    items = [Item(f"{k:04d}", seed(t), Conditioning(text=mix(t)), prompt=pa if t < 0.5 else pb)
             for k, t in enumerate(ts)]  # fmt: skip
    mels = (
        pipe.executor.run(pipe.cascade, items, start=1, inputs=lows) if len(pipe.cascade.stages) > 1 else lows
    )
    names = [pa if t == 0 else pb if t == 1 else f"{pa} -> {pb} at {t:.2f}" for t in ts]
    clips = [pipe.clip(m, name, seed(t)) for m, name, t in zip(mels, names, ts, strict=True)]
    keep = pipe.overlap_frames(overlap)
    track = pipe.clip(crossfade_concat(list(mels), keep), f"{pa} -> {pb}", sa)
    return Interpolation(track, clips, ts)
