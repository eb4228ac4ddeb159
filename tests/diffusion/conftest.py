"""Tiny networks and a tiny *trained* text-conditioned model for the diffusion tests."""

from dataclasses import dataclass

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel, UNet2DModel

from legato.diffusion import Conditioning, Denoiser


def tiny_unet(**overrides) -> UNet2DModel:
    config = dict(
        sample_size=16, in_channels=2, out_channels=2, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8, attention_head_dim=16,
    )  # fmt: skip
    return UNet2DModel(**{**config, **overrides})


def tiny_text_unet(**overrides) -> UNet2DConditionModel:
    # Attention only at the 8x8 level, one head: diffusers' legacy attention_head_dim is the head *count*,
    # and many 2-dim heads at full resolution made CPU training 10x slower.
    config = dict(
        sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=1, norm_num_groups=8,
    )  # fmt: skip
    return UNet2DConditionModel(**{**config, **overrides})


def bars(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, 1, 16, 16)`` images in [-1, 1] of one bar each, horizontal (label 0) or vertical (label 1)."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    pos = torch.randint(3, 13, (n,), generator=generator)
    width = torch.randint(2, 4, (n,), generator=generator)
    idx = torch.arange(16)
    band = ((idx[None] >= pos[:, None]) & (idx[None] < (pos + width)[:, None])).float()  # (n, 16)
    horizontal = band[:, :, None].expand(n, 16, 16)
    vertical = band[:, None, :].expand(n, 16, 16)
    images = torch.where(labels[:, None, None] == 0, horizontal, vertical)
    return images[:, None] * 2 - 1, labels


def orientation(images: torch.Tensor) -> torch.Tensor:
    """0 where an image varies more across rows (a horizontal bar), 1 where more across columns."""
    row_var = images[:, 0].mean(2).var(1)
    col_var = images[:, 0].mean(1).var(1)
    return (col_var > row_var).long()


@dataclass(frozen=True)
class TrainedBars:
    denoiser: Denoiser
    prompts: torch.Tensor  # (2, 4, 32): one fixed "prompt embedding" per label

    def cond(self, labels: torch.Tensor) -> Conditioning:
        return Conditioning(text=self.prompts[labels])

    def uncond(self, batch: int = 1) -> Conditioning:
        return Conditioning(text=torch.zeros(batch, *self.prompts.shape[1:]))


@pytest.fixture(scope="session")
def trained_bars() -> TrainedBars:
    """A 0.25M-parameter text-conditioned UNet trained for 400 steps (about 25 s on 2 cores) with 10% prompt
    dropout: it draws the bar its prompt asks for and has a usable unconditional branch."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = tiny_text_unet()
    prompts = torch.randn(2, 4, 32, generator=gen)
    schedule = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(400):
        x0, labels = bars(32, gen)
        text = prompts[labels].clone()
        text[torch.rand(32, generator=gen) < 0.1] = 0.0
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (32,), generator=gen)
        pred = net(schedule.add_noise(x0, noise, t), t, encoder_hidden_states=text).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return TrainedBars(Denoiser(net.eval(), "epsilon"), prompts)
