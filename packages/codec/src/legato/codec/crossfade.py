"""Long audio through a fixed-size window: split into overlapping windows, join back with crossfades.

The crossfade is equal-power, corrected for correlation. The fade-in gain is ``a = sin(pi/2 * t)`` and the
fade-out gain ``b`` solves ``a^2 + b^2 + 2 r a b = 1``, where ``r`` (clipped to [0, 1]) is the
correlation of the two overlapping segments. For unrelated material (``r = 0``) this is the classic
``sin``/``cos`` equal-power fade, so the level does not dip at the join. For identical material (``r = 1``)
it is ``b = 1 - a``, so joining unchanged windows gives the input back, with no +3 dB bump that a plain
equal-power fade would add.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from legato.codec.errors import CodecError


def _check_overlap(window: int, overlap: int) -> None:
    if not (isinstance(window, int) and window > 0):
        raise CodecError(f"window={window!r} must be a positive number of samples")
    if not (isinstance(overlap, int) and 0 <= overlap < window):
        raise CodecError(
            f"overlap={overlap!r} must lie in [0, window={window}); a quarter of the window is usual"
        )


def num_windows(length: int, window: int, overlap: int) -> int:
    """How many windows of ``window`` samples, overlapping by ``overlap``, cover ``length`` samples."""
    _check_overlap(window, overlap)
    hop = window - overlap
    return max(1, math.ceil((length - overlap) / hop))


def split_windows(audio: Tensor, window: int, overlap: int) -> Tensor:
    """``(..., N)`` -> ``(..., K, window)`` windows every ``window - overlap`` samples (zero-padded at the end)."""
    length = audio.shape[-1]
    count = num_windows(length, window, overlap)
    hop = window - overlap
    padded = torch.nn.functional.pad(audio, (0, overlap + count * hop - length))
    return padded.unfold(-1, window, hop)


def crossfade(tail: Tensor, head: Tensor) -> Tensor:
    """Blend the end of one clip (``tail``) into the start of the next (``head``); both ``(..., overlap)``."""
    if tail.shape != head.shape:
        raise CodecError(f"crossfade needs equal shapes, got {tuple(tail.shape)} and {tuple(head.shape)}")
    n = tail.shape[-1]
    t = (torch.arange(n, dtype=tail.dtype, device=tail.device) + 0.5) / n
    fade_in = torch.sin(0.5 * torch.pi * t)
    dot = (tail * head).sum(-1, keepdim=True)
    norms = tail.norm(dim=-1, keepdim=True) * head.norm(dim=-1, keepdim=True)
    r = torch.where(norms > 0, dot / norms.clamp_min(1e-30), torch.zeros_like(dot)).clamp(0.0, 1.0)
    fade_out = -r * fade_in + torch.sqrt((1 - fade_in**2 * (1 - r**2)).clamp_min(0))
    return fade_out * tail + fade_in * head


def crossfade_concat(clips: Sequence[Tensor], overlap: int) -> Tensor:
    """Concatenate ``(..., N_i)`` clips along time, crossfading ``overlap`` samples at each join."""
    if not clips:
        raise CodecError("crossfade_concat needs at least one clip")
    if overlap < 0 or any(c.shape[-1] < overlap for c in clips):
        raise CodecError(
            f"overlap={overlap} must be >= 0 and no longer than any clip "
            f"(lengths {[c.shape[-1] for c in clips]})"
        )
    pieces, carry = [], clips[0]
    for clip in clips[1:]:
        if overlap:
            pieces.append(carry[..., : carry.shape[-1] - overlap])
            pieces.append(crossfade(carry[..., carry.shape[-1] - overlap :], clip[..., :overlap]))
            carry = clip[..., overlap:]
        else:
            pieces.append(carry)
            carry = clip
    pieces.append(carry)
    return torch.cat(pieces, dim=-1)


def join_windows(windows: Tensor, overlap: int, length: int | None = None) -> Tensor:
    """``(..., K, window)`` -> ``(..., N)``: the inverse of `split_windows`, cut to ``length`` if given."""
    _check_overlap(windows.shape[-1], overlap)
    joined = crossfade_concat(list(windows.unbind(dim=-2)), overlap)
    return joined if length is None else joined[..., :length]
