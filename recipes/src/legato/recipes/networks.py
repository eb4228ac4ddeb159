"""The bundled cascades' architectures, untrained: the networks of each stage and how the stages chain.

::

    cascade = music_cascade(SMALL, window=256, text_dim=384)          # base 32x128 mel -> SR x2 -> 64x256
    cascade = video_cascade(frames=16, size=64, text_dim=384)         # 8x32x32 -> time x2 -> space x2

`legato.recipes.catalog` gives them their sizes and step counts; `legato.pipelines.training` trains them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from legato.cascade import Cascade, Stage
from legato.codec import SpectrogramParams
from legato.diffusion import Denoiser, NoiseAugmentation, SuperResolution
from legato.video import UNet3D

PREDICTION = "v_prediction"


def mel_unet(
    in_channels: int, text_dim: int, channels: Sequence[int], noise_level: bool
) -> UNet2DConditionModel:
    """A diffusers text-conditioned 2-D UNet for mel images (cross-attention at the lower levels)."""
    levels = len(channels)
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (levels - 1)
    up = ["CrossAttnUpBlock2D"] * (levels - 1) + ["UpBlock2D"]
    return UNet2DConditionModel(
        in_channels=in_channels, out_channels=1, layers_per_block=1, block_out_channels=tuple(channels),
        down_block_types=tuple(down), up_block_types=tuple(up), cross_attention_dim=text_dim,
        attention_head_dim=8, norm_num_groups=8, class_embed_type="timestep" if noise_level else None,
    ).eval()  # fmt: skip


def music_cascade(
    params: SpectrogramParams,
    *,
    window: int,
    text_dim: int,
    channels: Sequence[int] = (32, 64, 64),
    sr_channels: Sequence[int] = (32, 64),
    steps: tuple[int, int] = (25, 10),
    guidance_scale: float = 3.0,
    batch_size: tuple[int, int] = (8, 4),
    seed: int = 0,
) -> Cascade:
    """An untrained music cascade: a base stage at half the mel resolution (``n_mels / 2`` x ``window / 2``)
    and a x2 super-resolution stage to ``n_mels`` x ``window``."""
    torch.manual_seed(seed)
    base = Stage(
        "base", Denoiser(mel_unet(1, text_dim, channels, False), PREDICTION), DDIMScheduler(), steps[0],
        shape=(1, params.n_mels // 2, window // 2), guidance_scale=guidance_scale, batch_size=batch_size[0],
    )  # fmt: skip
    sr = SuperResolution(space=2, augmentation=NoiseAugmentation(max_level=250, sample_level=50))
    upscale = Stage(
        "sr", Denoiser(mel_unet(sr.cond_channels(1) + 1, text_dim, sr_channels, True), PREDICTION),
        DDIMScheduler(), steps[1], sr=sr, guidance_scale=1.0, batch_size=batch_size[1],
    )  # fmt: skip
    return Cascade((base, upscale))


def video_unet(cond_channels: int, text_dim: int, channels: Sequence[int], noise_level: bool,
               pooled_text: bool = False) -> UNet3D:  # fmt: skip
    levels = len(channels)
    return UNet3D(
        in_channels=3, cond_channels=cond_channels, block_out_channels=tuple(channels),
        attention_levels=(False,) + (True,) * (levels - 1), heads=4, norm_groups=8,
        cross_attention_dim=text_dim, noise_level_conditioning=noise_level, pooled_text_conditioning=pooled_text,
    ).eval()  # fmt: skip


def video_cascade(
    *,
    frames: int,
    size: int,
    text_dim: int,
    channels: Sequence[int] = (32, 64),
    sr_channels: Sequence[int] = (16, 32),
    steps: tuple[int, int, int] = (25, 10, 10),
    guidance_scale: float = 3.0,
    batch_size: tuple[int, int, int] = (8, 4, 4),
    seed: int = 0,
    pooled_text: bool = False,
    frame_correlation: float = 0.0,
) -> Cascade:
    """An untrained video cascade: a base stage at ``frames / 2`` frames of ``size / 2`` pixels, temporal
    x2 to ``frames``, then spatial x2 to ``size``. ``pooled_text`` gives the base stage's UNet3D the pooled
    prompt in its time embedding (`UNet3D`'s ``pooled_text_conditioning``); ``frame_correlation`` trains
    and samples the base stage on noise correlated between frames (`Stage.frame_correlation`)."""
    torch.manual_seed(seed)
    tsr = SuperResolution(time=2, augmentation=NoiseAugmentation(max_level=250, sample_level=50))
    ssr = SuperResolution(space=2, augmentation=NoiseAugmentation(max_level=250, sample_level=50))
    base = Stage(
        "base", Denoiser(video_unet(0, text_dim, channels, False, pooled_text), PREDICTION), DDIMScheduler(), steps[0],
        shape=(3, frames // 2, size // 2, size // 2), guidance_scale=guidance_scale, batch_size=batch_size[0],
        frame_correlation=frame_correlation,
    )  # fmt: skip
    temporal = Stage(
        "sr-time", Denoiser(video_unet(tsr.cond_channels(3), text_dim, sr_channels, True), PREDICTION),
        DDIMScheduler(), steps[1], sr=tsr, batch_size=batch_size[1],
    )  # fmt: skip
    spatial = Stage(
        "sr-space", Denoiser(video_unet(ssr.cond_channels(3), text_dim, sr_channels, True), PREDICTION),
        DDIMScheduler(), steps[2], sr=ssr, batch_size=batch_size[2],
    )  # fmt: skip
    return Cascade((base, temporal, spatial))
