"""A residual MLP denoiser for low-dimensional data: samples ``(B, C, 1, 1)`` (C features, no space)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import Tensor, nn

from legato.diffusion.tensors import batch_timesteps


@dataclass
class MLPOutput(BaseOutput):
    sample: Tensor


class MLP(ModelMixin, ConfigMixin):
    """Time-conditioned residual MLP; ``num_classes > 0`` adds a label embedding with a null label at
    index ``num_classes``, and ``guidance_conditioning`` an embedding of the guidance scale (for guided
    distillation students)."""

    @register_to_config
    def __init__(
        self,
        channels: int = 2,
        hidden: int = 128,
        depth: int = 3,
        num_classes: int = 0,
        guidance_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self.time_proj = Timesteps(64, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(64, hidden)
        self.label_embed = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.guidance_embed = TimestepEmbedding(64, hidden) if guidance_conditioning else None
        self.inp = nn.Linear(channels, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
            )
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, channels))

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor,
        class_labels: Tensor | None = None,
        guidance: Tensor | None = None,
        return_dict: bool = True,
    ) -> MLPOutput | tuple[Tensor]:
        b = sample.shape[0]
        t = batch_timesteps(timestep, b, sample.device)
        c = self.time_embed(self.time_proj(t).to(sample.dtype))
        if self.label_embed is not None:
            labels = (
                class_labels
                if class_labels is not None
                else torch.full((b,), self.config.num_classes, device=sample.device)
            )
            c = c + self.label_embed(labels)
        if (guidance is None) != (self.guidance_embed is None):
            raise ValueError(
                "guidance=(B,) goes to an MLP built with guidance_conditioning=True, and only to one"
            )
        if self.guidance_embed is not None:
            c = c + self.guidance_embed(self.time_proj(guidance * 100.0).to(sample.dtype))
        h = self.inp(sample.flatten(1)) + c
        for block in self.blocks:
            h = h + block(h)
        out = self.out(h).view_as(sample)
        return MLPOutput(sample=out) if return_dict else (out,)
