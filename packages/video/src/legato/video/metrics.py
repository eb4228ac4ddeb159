"""Video metrics for verifiers and benchmarks: PSNR, frame-to-frame consistency, horizontal drift, and a
Fréchet distance.

The embedding is `VideoFeatures`: a fixed, randomly initialised 3-D conv net (seed 0, He-normal weights,
three stages of 3x3x3 conv + ReLU at channels 16/32/64, each halving H and W), whose per-stage channel means
and standard deviations over space and time make a 224-dim vector per clip. Random conv features are
sensitive to colour, texture, sharpness and motion statistics (Naeem et al. 2020 use random embeddings for
generative-model metrics) and need no download, which is why we chose them over I3D (what FVD uses, and
whose weights would have to be fetched). The distances are therefore comparable between runs of Legato, not
with FVD numbers in papers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor, nn

from legato.diffusion.metrics import frechet_distance
from legato.video.io import VideoError


def psnr(video: Tensor, truth: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-item peak signal-to-noise ratio in dB, ``(B,)``, of ``(B, ...)`` tensors with values spanning
    ``data_range`` (1 for [0, 1], 2 for [-1, 1])."""
    if video.shape != truth.shape:
        raise VideoError(f"psnr compares equal shapes, got {tuple(video.shape)} and {tuple(truth.shape)}")
    mse = (video.double() - truth.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


class VideoFeatures(nn.Module):
    """The fixed random embedding described in the module docstring: ``(B, 3, T, H, W)`` in [0, 1] ->
    ``(B, 224)``; with ``per_frame=True``, ``(B, T, 224)`` (each frame embedded on its own)."""

    channels = (16, 32, 64)

    def __init__(self, in_channels: int = 3, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList()
        cin = in_channels
        for cout in self.channels:
            conv = nn.Conv3d(cin, cout, 3, stride=(1, 2, 2), padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2 / (cin * 27)))
                conv.bias.zero_()
            self.convs.append(conv)
            cin = cout
        self.requires_grad_(False)

    @property
    def dim(self) -> int:
        return 2 * sum(self.channels)

    @torch.no_grad()
    def forward(self, video: Tensor, per_frame: bool = False) -> Tensor:
        if video.ndim != 5:
            raise VideoError(f"VideoFeatures takes (B, C, T, H, W) videos, got shape {tuple(video.shape)}")
        b = video.shape[0]
        x = rearrange(video, "b c t h w -> (b t) c 1 h w") if per_frame else video
        x = x.to(self.convs[0].weight) * 2 - 1
        stats = []
        for conv in self.convs:
            x = F.relu(conv(x))
            stats += [reduce(x, "n c t h w -> n c", "mean"), x.flatten(2).std(2)]
        out = torch.cat(stats, 1)
        return rearrange(out, "(b t) d -> b t d", b=b) if per_frame else out


_FEATURES: dict[int, VideoFeatures] = {}


def video_features(video: Tensor, per_frame: bool = False) -> Tensor:
    """`VideoFeatures` (the default seed-0 instance) of ``(B, C, T, H, W)`` in [0, 1]."""
    channels = video.shape[1]
    if channels not in _FEATURES:
        _FEATURES[channels] = VideoFeatures(channels)
    return _FEATURES[channels].to(video.device)(video, per_frame)


def frame_consistency(video: Tensor) -> Tensor:
    """Per-item mean cosine similarity of consecutive frames' embeddings, ``(B,)`` in [-1, 1] (1: every frame
    looks like the last; flicker and jumps lower it). The embedding-space analogue of CLIP frame
    consistency, on `VideoFeatures` of each frame."""
    if video.ndim != 5 or video.shape[2] < 2:
        raise VideoError(f"frame_consistency needs (B, C, T >= 2, H, W), got shape {tuple(video.shape)}")
    feats = video_features(video, per_frame=True).double()
    return F.cosine_similarity(feats[:, 1:], feats[:, :-1], dim=-1).mean(1)


def horizontal_drift(video: Tensor, max_shift: int | None = None) -> Tensor:
    """Per-item mean horizontal motion in pixels per frame, ``(B,)``: for each pair of consecutive frames the
    shift ``d`` (``|d| <= max_shift``, default a sixth of the width) that best aligns them, ``frame t+1 at
    x + d`` against ``frame t at x`` over the columns both hold (mean absolute difference; the best whole
    pixel, refined by the parabola through its neighbours' errors), averaged over the pairs. Positive: the
    content moves right (a camera panning left). A measured motion that needs no trained model: frames that
    change in place (flicker, texture boiling over a still layout) read 0."""
    if video.ndim != 5 or video.shape[2] < 2:
        raise VideoError(f"horizontal_drift needs (B, C, T >= 2, H, W), got shape {tuple(video.shape)}")
    width = video.shape[-1]
    m = max_shift if max_shift is not None else max(1, width // 6)
    if not 0 < m < width // 2:
        raise VideoError(f"max_shift={m} must lie in [1, {width // 2 - 1}] for {width}-pixel-wide frames")
    after, before = video[:, :, 1:].double(), video[:, :, :-1].double()
    errors = torch.stack(
        [
            (after[..., m + d : width - m + d] - before[..., m : width - m]).abs().mean((1, 3, 4))
            for d in range(-m, m + 1)
        ]
    )  # (2m + 1, B, T - 1)
    best = errors.argmin(0)  # (B, T - 1)
    # sub-pixel: the vertex of the parabola through the error at the best shift and its two neighbours
    inner = best.clamp(1, 2 * m - 1)
    left, mid, right = (errors.gather(0, (inner + k)[None])[0] for k in (-1, 0, 1))
    curve = left - 2 * mid + right
    offset = torch.where(curve > 0, (left - right) / (2 * curve).clamp_min(1e-12), torch.zeros_like(curve))
    refined = torch.where(best == inner, best + offset.clamp(-0.5, 0.5), best.double())
    return (refined - m).mean(1)


def video_frechet_distance(videos: Tensor, reference: Tensor) -> float:
    """Fréchet distance (`legato.diffusion.metrics.frechet_distance`) between two sets of ``(N, C, T, H, W)``
    clips in [0, 1] on `VideoFeatures`."""
    return frechet_distance(video_features(videos), video_features(reference))
