"""Building and training cascades: the networks of each stage, and one `Trainer` run per stage.

::

    cascade = music_cascade(SMALL, window=256, text_dim=384)          # base 32x128 mel -> SR x2 -> 64x256
    cascade = train_cascade(cascade, mels, text, "runs/music", steps=(4000, 2000))
    MusicPipeline(cascade, SMALL, TextEncoder()).save_pretrained("models/music-default")

Every stage trains on the same real samples at its own resolution (`Cascade.downsample`): the base stage
on downsampled samples, each super-resolution stage on (downsampled, full) pairs with noise-conditioning
augmentation. Training resumes from each stage's checkpoints, so an interrupted run continues exactly.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from torch import Tensor

from legato.cascade import Cascade, Stage
from legato.codec import SpectrogramParams
from legato.diffusion import Denoiser, NoiseAugmentation, SuperResolution, VPSchedule
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer
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


def stage_items(cascade: Cascade, index: int, samples: Tensor, text: Tensor) -> TensorItems:
    """Stage ``index``'s training items from final-resolution ``samples`` and their text embeddings: the
    base stage's downsampled samples, or a super-resolution stage's (downsampled, full) pairs."""
    stage = cascade.stages[index]
    x = cascade.downsample(index, samples)
    return TensorItems(x, text=text) if stage.is_base else stage.sr.items(x, text=text)


def stage_trainer(
    stage: Stage, items: TensorItems, config: TrainConfig, out_dir: Path, device: str
) -> Trainer:
    """The `Trainer` of one stage (module-level, so Ray Train workers can build it from a partial)."""
    return Trainer(stage.denoiser.network, VPSchedule.from_scheduler(stage.scheduler), stage_objective(stage),
                   items, config, out_dir, device=device)  # fmt: skip


def stage_objective(stage: Stage) -> Objective:
    """What a stage's network is trained on, read off the stage so that training and sampling agree: its
    denoiser's parameterisation, a super-resolution stage's noise augmentation, a base stage's noise
    correlation between frames."""
    return Objective(
        stage.denoiser.output_type,
        augmentation=None if stage.is_base else stage.sr.augmentation,
        frame_correlation=stage.frame_correlation,
    )


def train_cascade(
    cascade: Cascade,
    samples: Tensor,
    text: Tensor,
    out_dir: str | Path,
    *,
    steps: Sequence[int],
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    cond_dropout: float = 0.1,
    ema_decay: float = 0.995,
    checkpoint_every: int = 500,
    device: str = "cpu",
    progress: bool = False,
    workers: int = 1,
) -> Cascade:
    """Train every stage on ``samples`` ``(N, C, ...)`` in [-1, 1] at the cascade's output resolution and
    their prompts' embeddings ``text`` ``(N, L, D)``; stage ``i`` trains ``steps[i]`` steps in
    ``out_dir/<stage name>`` (resuming from its checkpoints); ``steps[i] == 0`` keeps that stage as it is.
    Returns the cascade with the EMA networks.

    ``workers > 1`` trains each stage data-parallel on that many Ray Train workers (`legato.pipelines.train`;
    the caller has started or joined a Ray cluster, and ``out_dir`` is on storage every worker reaches);
    ``batch_size`` is then per worker, and a resume needs the same number of workers."""
    if len(steps) != len(cascade.stages):
        raise ValueError(
            f"steps={list(steps)} gives {len(steps)} step counts for {len(cascade.stages)} stages"
        )
    if min(steps) < 0 or max(steps) < 1:
        raise ValueError(f"steps={list(steps)}: give whole numbers >= 0 (0 keeps a stage), at least one > 0")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}; give a whole number of training workers, at least 1")
    trained = []
    for index, stage in enumerate(cascade.stages):
        if steps[index] == 0:
            trained.append(stage)
            continue
        config = TrainConfig(
            steps=steps[index], batch_size=batch_size, learning_rate=learning_rate, cond_dropout=cond_dropout,
            ema_decay=ema_decay, lr_schedule="cosine", warmup_steps=min(100, steps[index] // 10),
            checkpoint_every=checkpoint_every, log_every=50, progress=progress and workers == 1, seed=index,
        )  # fmt: skip
        items = stage_items(cascade, index, samples, text)
        build = functools.partial(stage_trainer, stage, items, config, Path(out_dir) / stage.name, device)
        if workers == 1:
            trainer = build()
            trainer.fit()
            network = trainer.trained_network().cpu()
        else:
            from legato.diffusion.training import checkpoint as ckpt
            from legato.pipelines.train import train_on_ray

            result = train_on_ray(build, Path(out_dir) / stage.name, num_workers=workers,
                                  use_gpu=device.startswith("cuda"))  # fmt: skip
            network = copy.deepcopy(stage.denoiser.network).cpu().eval()
            ckpt.load_network_weights(network, result.model)
        trained.append(replace(stage, denoiser=Denoiser(network, stage.denoiser.output_type), device="cpu"))
    return replace(cascade, stages=tuple(trained))
