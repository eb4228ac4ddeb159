"""UNet3D: a factorized space-time UNet (Ho et al. 2022, "Video Diffusion Models", Sec. 3).

Each block convolves and attends in space (every frame as an image), then in time (every pixel as a
sequence of frames). Temporal convolutions start as the identity and temporal attention's output projection
starts at zero, so a freshly built UNet3D treats each frame as its own image; ``skip_time=True`` (or a 4-D
input) skips the temporal layers altogether, for joint image-video training with images as 1-frame videos.
Temporal attention carries a learned bias per relative frame offset, clipped at ``max_frame_distance``, so a
model trained on T frames can sample more. ``pooled_text_conditioning`` adds the mean of the text's token
embeddings, through a zero-initialised MLP, to the time embedding (Saharia et al. 2022, "Imagen", Sec. 2.2):
every ResBlock, and so every temporal convolution, then sees the prompt, not only the attention levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from einops import rearrange
from torch import Tensor, nn

from legato.diffusion.tensors import batch_timesteps


@dataclass
class UNet3DOutput(BaseOutput):
    sample: Tensor


class TemporalConv(nn.Module):
    """A 3-tap convolution over frames, ``(B, C, T, H, W)``, initialised to the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[:, :, 1, 0, 0] = torch.eye(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block: spatial 3x3 conv, then the identity-initialised temporal conv."""

    def __init__(self, cin: int, cout: int, emb: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.time = TemporalConv(cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor, frames: int, skip_time: bool) -> Tensor:
        # x: (B*T, C, H, W); emb: (B*T, E)
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if not skip_time:
            h = rearrange(
                self.time(rearrange(h, "(b t) c h w -> b c t h w", t=frames)), "b c t h w -> (b t) c h w"
            )
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: int | None = None, zero_out: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)
        if zero_out:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: Tensor, context: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        h = self.norm(x)
        q = rearrange(self.to_q(h), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(
            self.to_kv(h if context is None else context), "b m (two h d) -> two b h m d", two=2, h=self.heads
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return x + self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class SpaceTimeAttention(nn.Module):
    """Spatial self-attention (+ cross-attention to text), then temporal attention with a relative bias."""

    def __init__(self, dim: int, heads: int, context_dim: int | None, max_frame_distance: int) -> None:
        super().__init__()
        self.spatial = Attention(dim, heads)
        self.cross = Attention(dim, heads, context_dim) if context_dim else None
        self.temporal = Attention(dim, heads, zero_out=True)
        self.max_distance = max_frame_distance
        self.rel_bias = nn.Embedding(2 * max_frame_distance + 1, heads)
        nn.init.zeros_(self.rel_bias.weight)

    def forward(self, x: Tensor, context: Tensor | None, frames: int, skip_time: bool) -> Tensor:
        _, _, h, w = x.shape
        tokens = rearrange(x, "bt c h w -> bt (h w) c")
        tokens = self.spatial(tokens)
        if self.cross is not None and context is not None:
            tokens = self.cross(tokens, context)
        if not skip_time:
            seq = rearrange(tokens, "(b t) n c -> (b n) t c", t=frames)
            offsets = torch.arange(frames, device=x.device)
            rel = (offsets[None] - offsets[:, None]).clamp(
                -self.max_distance, self.max_distance
            ) + self.max_distance
            bias = rearrange(self.rel_bias(rel), "i j h -> h i j")[None].to(seq.dtype)  # (1, heads, T, T)
            tokens = rearrange(self.temporal(seq, bias=bias), "(b n) t c -> (b t) n c", n=h * w)
        return rearrange(tokens, "bt (h w) c -> bt c h w", h=h)


def pooled_text(tokens: Tensor) -> Tensor:
    """The mean of ``(B, L, D)`` token embeddings over their non-zero rows (text encoders pad with zeros); the
    all-zero null prompt pools to zeros."""
    mask = (tokens != 0).any(dim=-1, keepdim=True).to(tokens.dtype)
    return (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


class UNet3D(ModelMixin, ConfigMixin):
    """Factorized space-time UNet on ``(B, C, T, H, W)`` (or ``(B, C, H, W)`` images); ``H`` and ``W`` multiples
    of ``2 ** (len(block_out_channels) - 1)``.

    Args:
        in_channels: channels of the noisy video; ``cond_channels`` extra channels concatenated to it (the
            upsampled low-res video for super-resolution stages); ``out_channels`` defaults to ``in_channels``.
        block_out_channels: channels per resolution level (each level but the last halves H and W).
        attention_levels: which levels get space-time attention.
        cross_attention_dim: > 0 adds cross-attention to ``(B, L, D)`` text embeddings.
        fps_conditioning: adds an embedding of the frame rate ``(B,)`` to the time embedding.
        noise_level_conditioning: adds an embedding of the low-res input's noise-augmentation level.
        pooled_text_conditioning: adds an MLP of the text's mean token embedding (zero-padding rows left out)
            to the time embedding; its last layer starts at zero, so it starts as a model without it.
        max_frame_distance: relative frame offsets beyond this share one attention bias.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        cond_channels: int = 0,
        out_channels: int | None = None,
        block_out_channels: tuple[int, ...] = (32, 64),
        attention_levels: tuple[bool, ...] = (False, True),
        heads: int = 4,
        norm_groups: int = 8,
        cross_attention_dim: int = 0,
        fps_conditioning: bool = False,
        noise_level_conditioning: bool = False,
        max_frame_distance: int = 16,
        pooled_text_conditioning: bool = False,
    ) -> None:
        super().__init__()
        if len(attention_levels) != len(block_out_channels):
            raise ValueError("attention_levels needs one entry per block_out_channels level")
        if pooled_text_conditioning and not cross_attention_dim:
            raise ValueError("pooled_text_conditioning=True needs cross_attention_dim > 0 (the text's width)")
        emb = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(block_out_channels[0], emb)
        self.fps_embed = TimestepEmbedding(block_out_channels[0], emb) if fps_conditioning else None
        self.noise_level_embed = (
            TimestepEmbedding(block_out_channels[0], emb) if noise_level_conditioning else None
        )
        self.text_embed = (
            nn.Sequential(nn.Linear(cross_attention_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
            if pooled_text_conditioning
            else None
        )
        if self.text_embed is not None:
            nn.init.zeros_(self.text_embed[2].weight)
            nn.init.zeros_(self.text_embed[2].bias)
        self.conv_in = nn.Conv2d(in_channels + cond_channels, block_out_channels[0], 3, padding=1)
        context = cross_attention_dim or None
        self.down, self.up, self.down_attn, self.up_attn = (
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
        )
        channels = [block_out_channels[0]]
        cin = block_out_channels[0]
        for level, (cout, attend) in enumerate(zip(block_out_channels, attention_levels, strict=True)):
            self.down.append(ResBlock(cin, cout, emb, norm_groups))
            self.down_attn.append(
                SpaceTimeAttention(cout, heads, context, max_frame_distance) if attend else nn.Identity()
            )
            channels.append(cout)
            cin = cout
            if level < len(block_out_channels) - 1:
                self.down.append(nn.Conv2d(cout, cout, 3, stride=2, padding=1))
                self.down_attn.append(nn.Identity())
                channels.append(cout)
        self.mid = ResBlock(cin, cin, emb, norm_groups)
        self.mid_attn = SpaceTimeAttention(cin, heads, context, max_frame_distance)
        for level in reversed(range(len(block_out_channels))):
            cout, attend = block_out_channels[level], attention_levels[level]
            for _ in range(2):
                self.up.append(ResBlock(cin + channels.pop(), cout, emb, norm_groups))
                self.up_attn.append(
                    SpaceTimeAttention(cout, heads, context, max_frame_distance) if attend else nn.Identity()
                )
                cin = cout
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
                self.up_attn.append(nn.Identity())
        self.norm_out = nn.GroupNorm(norm_groups, cin)
        self.conv_out = nn.Conv2d(cin, out_channels or in_channels, 3, padding=1)

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float,
        encoder_hidden_states: Tensor | None = None,
        fps: Tensor | None = None,
        noise_level: Tensor | None = None,
        skip_time: bool = False,
        return_dict: bool = True,
    ) -> UNet3DOutput | tuple[Tensor]:
        image = sample.ndim == 4
        video = sample[:, :, None] if image else sample
        b, _, frames, _, _ = video.shape
        skip_time = skip_time or image
        t = batch_timesteps(timestep, b, sample.device)
        emb = self.time_embed(self.time_proj(t).to(sample.dtype))
        for extra, embed, name in (
            (fps, self.fps_embed, "fps"),
            (noise_level, self.noise_level_embed, "noise_level"),
        ):
            if extra is not None:
                if embed is None:
                    raise ValueError(f"{name} given to a UNet3D built without {name}_conditioning=True")
                emb = emb + embed(self.time_proj(batch_timesteps(extra, b, sample.device)).to(sample.dtype))
        if self.text_embed is not None and encoder_hidden_states is not None:
            emb = emb + self.text_embed(pooled_text(encoder_hidden_states).to(emb.dtype))
        emb = emb.repeat_interleave(frames, dim=0)  # (B*T, E)
        context = (
            encoder_hidden_states.repeat_interleave(frames, dim=0)
            if encoder_hidden_states is not None
            else None
        )

        x = self.conv_in(rearrange(video, "b c t h w -> (b t) c h w"))
        skips = [x]
        for block, attn in zip(self.down, self.down_attn, strict=True):
            x = block(x, emb, frames, skip_time) if isinstance(block, ResBlock) else block(x)
            if isinstance(attn, SpaceTimeAttention):
                x = attn(x, context, frames, skip_time)
            skips.append(x)
        x = self.mid_attn(self.mid(x, emb, frames, skip_time), context, frames, skip_time)
        for block, attn in zip(self.up, self.up_attn, strict=True):
            if isinstance(block, ResBlock):
                x = block(torch.cat([x, skips.pop()], dim=1), emb, frames, skip_time)
            else:
                x = block(x)
            if isinstance(attn, SpaceTimeAttention):
                x = attn(x, context, frames, skip_time)
        out = rearrange(self.conv_out(F.silu(self.norm_out(x))), "(b t) c h w -> b c t h w", b=b)
        out = out[:, :, 0] if image else out
        return UNet3DOutput(sample=out) if return_dict else (out,)
