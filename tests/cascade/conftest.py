"""Tiny cascades for the executor tests: a base image stage and a x2 super-resolution stage."""

from dataclasses import replace

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from legato.cascade import Cascade, Item, Stage
from legato.diffusion import Conditioning, Denoiser, NoiseAugmentation, SuperResolution

TEXT = 16


def unet(in_channels: int, noise_level: bool) -> UNet2DConditionModel:
    torch.manual_seed(in_channels)
    return UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT, attention_head_dim=1, norm_num_groups=4,
        class_embed_type="timestep" if noise_level else None,
    ).eval()  # fmt: skip


def tiny_cascade(base_batch: int = 3, sr_batch: int = 2, guidance: float = 3.0) -> Cascade:
    base = Stage("base", Denoiser(unet(1, False)), DDIMScheduler(), steps=4, shape=(1, 8, 8),
                 guidance_scale=guidance, batch_size=base_batch)  # fmt: skip
    sr = Stage("sr", Denoiser(unet(2, True), "sample"), DDIMScheduler(), steps=3,
               sr=SuperResolution(space=2, augmentation=NoiseAugmentation(100, 20)), batch_size=sr_batch)  # fmt: skip
    return Cascade((base, sr))


def tiny_items(count: int = 5) -> list[Item]:
    gen = torch.Generator().manual_seed(0)
    return [
        Item(f"item-{i}", 100 + i, Conditioning(text=torch.randn(4, TEXT, generator=gen)))
        for i in range(count)
    ]


@pytest.fixture
def cascade() -> Cascade:
    return tiny_cascade()


def with_batches(cascade: Cascade, *sizes: int) -> Cascade:
    return replace(
        cascade, stages=tuple(replace(s, batch_size=b) for s, b in zip(cascade.stages, sizes, strict=True))
    )
