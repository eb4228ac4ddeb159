"""Time windows of a cascade's output: any length from a fixed-length cascade, for music and video alike.

A cascade makes items of one length along its time axis (`Cascade.time_axis`: a mel spectrogram's frames,
a video's frames). Longer output is made window by window: window ``k`` is generated with the last
``keep`` positions of window ``k - 1`` as a prefix that every stage keeps (outpainting), so each join is
the model continuing what came before (`continue_windows`). Edits of long input cut it into overlapping
windows (`split`) and join the results with crossfades (`join`).

A cascade that ends in a decoder of whole signals (Wan's and LTX's 3D causal VAEs: the first latent frame
makes one frame, every later one ``time`` frames; Stable Audio's Oobleck: ``hop`` samples per latent frame)
continues in its latent space instead (`continue_latents`): the windows' latents are joined, and the whole
latent signal is decoded once, so the decoder sees each join as one more latent frame of a single video or
track.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from legato.cascade import Cascade, Decode, Executor, Item, Progress
from legato.codec import crossfade_concat


def window_seed(seed: int, window: int) -> int:
    """The seed of window ``window`` of a long item (window 0 keeps the item's own seed)."""
    return int(seed) if window == 0 else (int(seed) * 1_000_033 + 104_729 * window) % (2**63 - 1)


def overlap_positions(cascade: Cascade, overlap: int | None) -> int:
    """``overlap`` positions along the time axis (default: a quarter window), rounded down to a multiple of
    the stages' time factor (at least one)."""
    window = cascade.output_shape()[cascade.time_axis]
    factor = cascade.factors()[cascade.time_axis]
    positions = window // 4 if overlap is None else overlap
    positions = max(factor, positions // factor * factor)
    if positions >= window:
        raise ValueError(
            f"an overlap of {positions} positions is not shorter than the {window}-position window; use "
            "about a quarter of the window"
        )
    return positions


def available_memory() -> int | None:
    """Bytes of memory this machine has free now (None where the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_output_size(cascade: Cascade, count: int, total: int, *, limit: int | None = None) -> None:
    """Refuse ``count`` outputs of ``total`` positions each whose float32 samples alone would take more than
    half of ``limit`` (default: the free memory), before any work: an absurd duration, frame count or
    batch is a clear error, not the machine swapping or a killed process."""
    shape = list(cascade.output_shape())
    shape[cascade.time_axis] = total
    need = 4 * count * math.prod(shape)
    limit = available_memory() if limit is None else limit
    if limit is not None and need > limit // 2:
        unit = "duration" if cascade.time_axis == -1 else "frames"
        raise ValueError(
            f"{count} item(s) of {total} positions ({unit}) need {need / 2**30:.1f} GiB for their samples alone, "
            f"more than half of the {limit / 2**30:.1f} GiB free; ask for a shorter {unit} or fewer items per call"
        )


def continue_windows(
    executor: Executor,
    cascade: Cascade,
    items: Sequence[Item],
    total: int,
    keep: int,
    progress: Progress | None = None,
    fade: float = 0.0,
    trim: int = 0,
    realign: bool = False,
) -> list[Tensor]:
    """One output per item, ``total`` positions long along the time axis: the first window from the items
    as given, each later one from ``window_seed(item.seed, k)`` continuing the last ``keep`` positions, of
    which the last ``fade`` (a fraction) crossfade into the new window (`Item.fade`): each new window
    replaces the ``keep`` positions it continues, which it kept exactly where it did not crossfade.

    ``trim`` positions at the end of every window but the last are dropped before the next one continues
    (`aligned_trim`); with ``realign`` (`Item.realign`) the super-resolution stages make the prefix's
    positions past its last base-stage position again."""
    check_output_size(cascade, len(items), total)
    if not 0.0 <= fade <= 1.0:  # before any window runs (the items of later windows would refuse it too late)
        raise ValueError(f"fade={fade!r} is the fraction of the overlap that crossfades; give one in [0, 1]")
    axis, window = cascade.time_axis, cascade.output_shape()[cascade.time_axis]
    if not 0 <= trim < window - keep:
        raise ValueError(f"trim={trim!r} must leave a window ({window}) longer than its overlap ({keep})")
    outs, k = executor.run(cascade, items, progress=progress), 0
    while outs[0].shape[axis] < total:
        k += 1
        outs = [o.narrow(axis, 0, o.shape[axis] - trim) for o in outs]
        batch = [
            replace(
                item,
                seed=window_seed(item.seed, k),
                fade=fade,
                realign=realign,
                prefix=out.narrow(axis, -keep, keep).contiguous(),
            )
            for item, out in zip(items, outs, strict=True)
        ]
        new = executor.run(cascade, batch, progress=progress)
        outs = [
            torch.cat([o.narrow(axis, 0, o.shape[axis] - keep), n], dim=axis)
            for o, n in zip(outs, new, strict=True)
        ]
    return [o.narrow(axis, 0, min(total, o.shape[axis])) for o in outs]


def aligned_trim(cascade: Cascade) -> int:
    """What `continue_windows` drops from the end of a video window before the next continues it: the
    temporal super-resolution factor ``F`` (0 without one). A window's last ``F - 1`` frames lie past the
    base stage's last frame, so they are held rather than moved, and the base frame before them is the one
    the next window's base stage would otherwise re-make; dropping ``F`` leaves a prefix whose every
    ``F``-th frame, the ones the base stage continues, is a frame the base stage made."""
    factor = cascade.factors()[cascade.time_axis]
    return factor if factor > 1 else 0


def split(x: Tensor, window: int, keep: int, axis: int, value: float) -> Tensor:
    """``x`` cut along ``axis`` into windows of ``window`` positions overlapping by ``keep``, stacked on a new
    first axis; the last window is padded with ``value``."""
    x = x.movedim(axis, -1)
    hop = window - keep
    count = max(1, math.ceil((x.shape[-1] - keep) / hop))
    x = torch.nn.functional.pad(x, (0, keep + count * hop - x.shape[-1]), value=value)
    return torch.stack([x[..., k * hop : k * hop + window] for k in range(count)]).movedim(-1, axis)


def join(windows: Sequence[Tensor], keep: int, axis: int, length: int) -> Tensor:
    """The inverse of `split`: windows joined along ``axis`` by crossfades of ``keep`` positions, cut to
    ``length``."""
    joined = crossfade_concat([w.movedim(axis, -1) for w in windows], keep)[..., :length]
    return joined.movedim(-1, axis)


def pool(mask: Tensor, factors: Sequence[int]) -> Tensor:
    """A ``(B, ...)`` mask brought down by ``factors`` per item axis (`Cascade.factors`): a low-res position
    is on where any position it covers is on. Axes of size 1 (broadcast) stay."""
    for axis, factor in enumerate(factors, start=1):
        if factor > 1 and mask.shape[axis] > 1:
            mask = mask.unflatten(axis, (mask.shape[axis] // factor, factor)).amax(axis + 1)
    return mask


def whole_decoder(cascade: Cascade) -> Decode | None:
    """The cascade's last step where it decodes whole signals along time: a video autoencoder's `Decode`
    (Wan, LTX: time compressed) or an audio autoencoder's (Stable Audio)."""
    last = cascade.stages[-1]
    whole = isinstance(last, Decode) and (last.latents.is_video or last.latents.is_audio)
    return last if whole else None


def continue_latents(
    executor: Executor,
    cascade: Cascade,
    items: Sequence[Item],
    total: int,
    progress: Progress | None = None,
    overlap: int | None = None,
    fade: float = 0.0,
) -> list[Tensor]:
    """`continue_windows` in the latent space of a cascade that ends in a whole-signal decoder
    (`whole_decoder`): the stages before it make the latent frames that decode to ``total`` frames (or audio
    samples) window by window, each later window continuing the last ``overlap`` latent frames (default: a
    quarter window) of the one before, the last ``fade`` of them crossfading; the joined latents are decoded
    once and cut to ``total``."""
    decoder = whole_decoder(cascade)
    if decoder is None:
        raise ValueError(
            "continue_latents needs a cascade that ends in a video or audio autoencoder's Decode"
        )
    space = decoder.latents
    latent = replace(cascade, stages=cascade.stages[:-1])
    needed = space.covering(total)
    axis, keep = cascade.time_axis, overlap_positions(latent, overlap)
    check_output_size(cascade, len(items), space.frames(needed))
    if needed == latent.output_shape()[axis]:  # one window: the cascade as it is, the decode streamed on
        frames = executor.run(cascade, items, progress=progress)
    else:
        latents = continue_windows(executor, latent, items, needed, keep, progress, fade=fade)
        frames = executor.run(
            cascade, items, start=len(cascade.stages) - 1, inputs=latents, progress=progress
        )
    return [f.narrow(axis, 0, min(total, f.shape[axis])) for f in frames]
