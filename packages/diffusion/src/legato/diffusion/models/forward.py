"""`forward_network`: one call convention over the networks Legato samples and trains.

Each network family takes its conditioning differently (diffusers' UNets take ``class_labels`` for both
labels and projected pooled embeddings, the DiT has a ``pooled`` argument, video UNets take frames). A
function per family maps a `Conditioning` onto that family's forward; other packages add families with
`register_network` (legato.video registers its UNet3D). diffusers' own classes are all here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import UNet2DConditionModel, UNet2DModel, UNet3DConditionModel
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.models.dit import DiT
from legato.diffusion.models.mlp import MLP

NetworkCall = Callable[[nn.Module, Tensor, Tensor, Conditioning], Tensor]
_CALLS: dict[type, tuple[NetworkCall, tuple[int, ...]]] = {}


def register_network(cls: type, ranks: tuple[int, ...]) -> Callable[[NetworkCall], NetworkCall]:
    """Register how to call networks of class ``cls`` (and subclasses) on samples of the given ranks."""

    def deco(fn: NetworkCall) -> NetworkCall:
        _CALLS[cls] = (fn, ranks)
        return fn

    return deco


def unwrap(network: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel (or torch.compile) wrapper; the network itself otherwise.

    Wrappers are *called* (DDP syncs gradients in its forward), but looked up and configured by what they wrap.
    """
    while hasattr(network, "module") or hasattr(network, "_orig_mod"):
        network = getattr(network, "module", None) or network._orig_mod
    return network


def _lookup(network: nn.Module) -> tuple[NetworkCall, tuple[int, ...]]:
    network = unwrap(network)
    for cls in type(network).__mro__:
        if cls in _CALLS:
            return _CALLS[cls]
    known = ", ".join(sorted(c.__name__ for c in _CALLS))
    raise DiffusionError(
        f"no call convention for {type(network).__name__}; Legato samples {known}. "
        "Register one with legato.diffusion.register_network"
    )


def forward_network(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    """The raw network output for noisy sample ``x`` ``(B, C, ...)`` at timesteps ``t`` ``(B,)``."""
    fn, ranks = _lookup(network)
    if x.ndim not in ranks:
        raise DiffusionError(
            f"{type(unwrap(network)).__name__} takes samples of rank {ranks}, got shape {tuple(x.shape)}; "
            "(B, C, H, W) images go to 2-D networks, (B, C, T, H, W) videos to legato.video's UNet3D"
        )
    if cond.low_res is not None:
        if cond.low_res.shape[2:] != x.shape[2:]:
            raise DiffusionError(
                f"conditioning.low_res has size {tuple(cond.low_res.shape[2:])}, the sample {tuple(x.shape[2:])}; "
                "upsample the previous stage to the sample's size first"
            )
        x = torch.cat([x, cond.low_res.to(x.dtype)], dim=1)
    return fn(network, x, t, cond)


def _class_input(network: nn.Module, cond: Conditioning) -> Tensor | None:
    """diffusers' UNets have one ``class_labels`` slot: integer labels, a projected pooled embedding, or the
    noise-augmentation level of the low-res input (``class_embed_type="timestep"``, or the x4 upscaler's
    ``num_class_embeds`` integer levels)."""
    given = {
        k: v
        for k, v in (("labels", cond.labels), ("pooled", cond.pooled), ("noise_level", cond.noise_level))
        if v is not None
    }
    if len(given) > 1:
        raise DiffusionError(
            f"{type(network).__name__} has one class-embedding slot but got {sorted(given)}; pass one of them "
            "(a DiT takes labels, pooled and noise_level together)"
        )
    config = unwrap(network).config
    if "noise_level" in given and config.class_embed_type != "timestep" and config.num_class_embeds is None:
        raise DiffusionError(
            f"conditioning.noise_level needs a {type(network).__name__} built with class_embed_type='timestep' "
            "or num_class_embeds (the x4 upscaler's integer levels)"
        )
    return next(iter(given.values()), None)


def refuse(network: nn.Module, cond: Conditioning, *fields: str) -> None:
    """Raise if ``cond`` sets a field that ``network`` has no input for (rather than silently ignore it)."""
    for name in fields:
        if getattr(cond, name) is not None:
            raise DiffusionError(f"{type(unwrap(network)).__name__} has no input for conditioning.{name}")


@register_network(UNet2DModel, ranks=(4,))
def _unet2d(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    refuse(network, cond, "text", "guidance", "fps")
    return network(x, t, class_labels=_class_input(network, cond)).sample


@register_network(UNet2DConditionModel, ranks=(4,))
def _unet2d_condition(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    refuse(network, cond, "guidance", "fps")
    text = cond.text
    if text is None and _has_cross_attention(unwrap(network)):
        raise DiffusionError(
            "this UNet2DConditionModel has cross-attention: pass Conditioning(text=(B, L, D))"
        )
    return network(x, t, encoder_hidden_states=text, class_labels=_class_input(network, cond)).sample


@register_network(UNet3DConditionModel, ranks=(5,))
def _unet3d_condition(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    refuse(network, cond, "pooled", "labels", "guidance", "fps", "noise_level")
    if cond.text is None:
        raise DiffusionError("UNet3DConditionModel cross-attends to text: pass Conditioning(text=(B, L, D))")
    return network(x, t, encoder_hidden_states=cond.text).sample


def _diffusers_class(name: str) -> type:
    """A diffusers model class by name; a placeholder that matches nothing where this diffusers lacks it."""
    import diffusers

    return getattr(diffusers, name, type(name, (), {}))


@register_network(_diffusers_class("WanTransformer3DModel"), ranks=(5,))
def _wan(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    """Wan 2.1's transformer (``WanPipeline``): latents ``(B, C, T, h, w)``, UMT5 states, a flow timestep."""
    refuse(network, cond, "pooled", "labels", "guidance", "fps", "noise_level", "text_mask")
    if cond.text is None:
        raise DiffusionError("WanTransformer3DModel cross-attends to text: pass Conditioning(text=(B, L, D))")
    return network(hidden_states=x, timestep=t, encoder_hidden_states=cond.text, return_dict=False)[0]


@register_network(_diffusers_class("StableAudioDiTModel"), ranks=(3,))
def _stable_audio(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    """Stable Audio Open's DiT (``StableAudioPipeline``): latents ``(B, C, L)``; ``text`` the projected T5 states
    followed by the start and total seconds' tokens, ``pooled`` the two seconds' embeddings side by side
    (its ``global_hidden_states``); rotary positions over the latents and the one global token."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    refuse(network, cond, "labels", "guidance", "fps", "noise_level", "text_mask")
    if cond.text is None or cond.pooled is None:
        raise DiffusionError(
            "StableAudioDiTModel takes Conditioning(text=(B, L, D), pooled=(B, 1, 2D)): its stage's encoder makes both"
        )
    dim = unwrap(network).config.attention_head_dim // 2
    rotary = get_1d_rotary_pos_embed(dim, x.shape[2] + 1, use_real=True, repeat_interleave_real=False)
    rotary = tuple(r.to(x.device) for r in rotary)
    return network(x, t, encoder_hidden_states=cond.text, global_hidden_states=cond.pooled, rotary_embedding=rotary,
                   return_dict=False)[0]  # fmt: skip


# LTX-Video's VAE compresses 8x in time and 32x in space, in every release; its transformer's rotary positions
# are scaled by those factors over the frame rate (``rope_interpolation_scale`` of diffusers' LTXPipeline)
LTX_COMPRESSION = (8, 32)
LTX_FRAME_RATE = 25  # LTXPipeline's default; Conditioning.fps overrides it


@register_network(_diffusers_class("LTXVideoTransformer3DModel"), ranks=(5,))
def _ltx(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    """LTX-Video's transformer (``LTXPipeline``): latents ``(B, C, T, h, w)`` packed into tokens as the pipeline
    packs them, T5 states with their attention mask, a flow timestep; the output unpacked again."""
    from diffusers import LTXPipeline

    refuse(network, cond, "pooled", "labels", "guidance", "noise_level")
    if cond.text is None:
        raise DiffusionError(
            "LTXVideoTransformer3DModel cross-attends to text: pass Conditioning(text=(B, L, D))"
        )
    config = unwrap(network).config
    p, pt = config.patch_size, config.patch_size_t
    _, _, frames, height, width = x.shape
    rate = LTX_FRAME_RATE if cond.fps is None else float(cond.fps.reshape(-1)[0])
    time, space = LTX_COMPRESSION
    out = network(
        hidden_states=LTXPipeline._pack_latents(x, p, pt),
        encoder_hidden_states=cond.text,
        timestep=t,
        encoder_attention_mask=cond.text_mask,
        num_frames=frames,  # the latent sizes, as LTXPipeline passes them (its checkpoints patch 1x1x1)
        height=height,
        width=width,
        rope_interpolation_scale=(time / rate, space, space),
        return_dict=False,
    )[0]
    return LTXPipeline._unpack_latents(out, frames // pt, height // p, width // p, p, pt)


@register_network(DiT, ranks=(4,))
def _dit(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    refuse(network, cond, "guidance", "fps")
    return network(
        x,
        t,
        encoder_hidden_states=cond.text,
        class_labels=cond.labels,
        pooled=cond.pooled,
        noise_level=cond.noise_level,
    ).sample


@register_network(MLP, ranks=(4,))
def _mlp(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    if x.shape[2:] != (1, 1):
        raise DiffusionError(f"MLP takes feature vectors as (B, C, 1, 1), got {tuple(x.shape)}")
    refuse(network, cond, "text", "pooled", "noise_level", "fps")
    return network(x, t, class_labels=cond.labels, guidance=cond.guidance).sample


def _has_cross_attention(network: nn.Module) -> bool:
    kinds = [
        *network.config.down_block_types,
        *network.config.up_block_types,
        network.config.mid_block_type or "",
    ]
    return any("CrossAttn" in kind for kind in kinds)
