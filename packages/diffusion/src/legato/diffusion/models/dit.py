"""DiT: a diffusion transformer over image patches (Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers"), with adaLN-Zero conditioning on the noise level and a pooled embedding or class label,
optional cross-attention to text tokens, and extra input channels for low-res conditioning.
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
class DiTOutput(BaseOutput):
    sample: Tensor


def sincos_2d(dim: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Fixed 2-D sine-cosine position embedding ``(height * width, dim)`` (the DiT/MAE recipe).

    Computed for the grid at hand, so one model takes any patch grid (bucketed aspect ratios).
    """
    quarter = dim // 4
    omega = 1.0 / 10_000 ** (torch.arange(quarter, device=device, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float64),
        torch.arange(width, device=device, dtype=torch.float64),
        indexing="ij",
    )
    parts = []
    for grid in (ys.reshape(-1), xs.reshape(-1)):
        angles = grid[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    emb = torch.cat(parts, dim=1)
    return F.pad(emb, (0, dim - emb.shape[1])).to(dtype)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention with PyTorch's fused SDPA; self-attention when ``context`` is None."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(
            self.to_kv(x if context is None else context), "b m (two h d) -> two b h m d", two=2, h=self.heads
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class DiTBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated by the conditioning vector (adaLN-Zero).

    The modulation's gates start at zero, so every block starts as the identity (DiT, Sec. 3.2).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, context_dim: int | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.cross = None
        if context_dim:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross = Attention(dim, heads, context_dim)
            nn.init.zeros_(self.cross.to_out.weight)  # cross-attention also starts as a no-op
            nn.init.zeros_(self.cross.to_out.bias)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada_ln[-1].weight)
        nn.init.zeros_(self.ada_ln[-1].bias)

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada_ln(c).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        if self.cross is not None and context is not None:
            x = x + self.cross(self.norm_cross(x), context)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(ModelMixin, ConfigMixin):
    """Diffusion transformer on ``(B, C, H, W)`` samples; ``H`` and ``W`` multiples of ``patch_size``.

    Args:
        in_channels: channels of the noisy sample.
        cond_channels: extra input channels concatenated to it (low-res conditioning); 0 for none.
        out_channels: predicted channels; defaults to ``in_channels``.
        patch_size: side of the square patches that become tokens.
        hidden_size, depth, num_heads, mlp_ratio: transformer width, blocks, heads, MLP expansion.
        num_classes: > 0 adds a label embedding with one extra "null" label (index ``num_classes``) for
            classifier-free guidance.
        pooled_dim: > 0 adds a projection of a ``(B, pooled_dim)`` pooled embedding.
        cross_attention_dim: > 0 adds cross-attention to ``(B, L, cross_attention_dim)`` text tokens.
        noise_level_conditioning: adds an embedding of the low-res input's noise-augmentation level
            (``(B,)``, in timestep units), for super-resolution stages (Imagen's noise conditioning).
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        cond_channels: int = 0,
        out_channels: int | None = None,
        patch_size: int = 2,
        hidden_size: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        num_classes: int = 0,
        pooled_dim: int = 0,
        cross_attention_dim: int = 0,
        noise_level_conditioning: bool = False,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads or hidden_size % 4:
            raise ValueError(
                f"hidden_size={hidden_size} must be divisible by num_heads={num_heads} and by 4 (position embedding)"
            )
        out = out_channels or in_channels
        self.patch = patch_size
        self.embed = nn.Conv2d(in_channels + cond_channels, hidden_size, patch_size, stride=patch_size)
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, hidden_size)
        self.label_embed = nn.Embedding(num_classes + 1, hidden_size) if num_classes else None
        self.pooled_embed = nn.Linear(pooled_dim, hidden_size) if pooled_dim else None
        self.noise_level_embed = TimestepEmbedding(256, hidden_size) if noise_level_conditioning else None
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_size, num_heads, mlp_ratio, cross_attention_dim or None) for _ in range(depth)
        )
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        self.proj_out = nn.Linear(hidden_size, patch_size * patch_size * out)
        for layer in (self.ada_out[-1], self.proj_out):  # the output starts at zero (adaLN-Zero)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.xavier_uniform_(self.embed.weight.view(hidden_size, -1))

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float,
        encoder_hidden_states: Tensor | None = None,
        class_labels: Tensor | None = None,
        pooled: Tensor | None = None,
        noise_level: Tensor | None = None,
        return_dict: bool = True,
    ) -> DiTOutput | tuple[Tensor]:
        """``sample`` ``(B, in_channels + cond_channels, H, W)`` -> prediction ``(B, out_channels, H, W)``."""
        b, _, h, w = sample.shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(f"sample size {h}x{w} is not a multiple of patch_size={p}; pad or resize it")
        t = batch_timesteps(timestep, b, sample.device)
        c = self.time_embed(self.time_proj(t).to(sample.dtype))
        if self.label_embed is not None:
            if class_labels is None:
                class_labels = torch.full((b,), self.config.num_classes, device=sample.device)  # null label
            c = c + self.label_embed(class_labels)
        if self.pooled_embed is not None and pooled is not None:
            c = c + self.pooled_embed(pooled)
        if noise_level is not None:
            if self.noise_level_embed is None:
                raise ValueError("noise_level given to a DiT built without noise_level_conditioning=True")
            c = c + self.noise_level_embed(self.time_proj(noise_level).to(sample.dtype))

        x = rearrange(self.embed(sample), "b d gh gw -> b (gh gw) d")  # (B, N, D) patch tokens
        x = x + sincos_2d(x.shape[-1], h // p, w // p, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, c, encoder_hidden_states)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        x = self.proj_out(modulate(self.norm_out(x), shift, scale))
        out = rearrange(x, "b (gh gw) (p q c) -> b c (gh p) (gw q)", gh=h // p, p=p, q=p)
        return DiTOutput(sample=out) if return_dict else (out,)
