"""Latent diffusion (Rombach et al. 2022): an autoencoder's latent space, and the x4 upscaler's conditioning.

`LatentSpace` wraps a diffusers autoencoder (``AutoencoderKL``: Stable Diffusion's, Riffusion's, the x4
upscaler's, ModelScope's) with its ``scaling_factor`` and ``shift_factor``: pixels in [-1, 1] ``(B, C, H, W)``,
or videos ``(B, C, T, H, W)`` encoded and decoded frame by frame as diffusers' video pipelines do. Stages sample
in its latents; `legato.cascade.Decode` is the cascade step that turns them back into pixels, so an executor
can put the decoder on its own worker.

`LatentUpscale` is how ``StableDiffusionUpscalePipeline`` (the SD x4 upscaler) conditions on its input: the
low-res pixels, noised by its own low-res scheduler to ``noise_level``, concatenated to the latents at the
same size, with the level as the UNet's class label; its VAE then decodes x4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.sampling import sample
from legato.diffusion.schedulers import scheduler_from_config
from legato.diffusion.tensors import check_sample, randn


class LatentSpace(nn.Module):
    """An autoencoder's latent space: ``encode`` pixels -> scaled latents, ``decode`` latents -> pixels.

    Args:
        vae: a diffusers autoencoder with ``encode(x).latent_dist`` and ``decode(z).sample``.
        tiling: decode (and encode) in overlapping tiles (``vae.enable_tiling()``): large images within a
            small memory, at the cost of slightly different pixels near tile seams.
        slicing: decode one image (one frame of a video) at a time (``vae.enable_slicing()``): memory of one
            frame instead of the batch's, the same pixels.
    """

    def __init__(self, vae: nn.Module, *, tiling: bool = False, slicing: bool = False) -> None:
        super().__init__()
        config = vae.config
        for key in ("latent_channels", "block_out_channels", "scaling_factor"):
            if key not in config:
                raise DiffusionError(
                    f"{type(vae).__name__} has no config.{key}; pass a diffusers AutoencoderKL"
                )
        self.vae = vae
        self.tiling, self.slicing = bool(tiling), bool(slicing)
        if tiling:
            vae.enable_tiling()
        if slicing:
            vae.enable_slicing()

    # -- geometry (what `legato.cascade.Cascade` walks through, like a SuperResolution's) ----------------------

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        return float(self.vae.config.get("shift_factor") or 0.0)

    @property
    def channels(self) -> int:
        """Latent channels."""
        return int(self.vae.config.latent_channels)

    @property
    def pixel_channels(self) -> int:
        return int(self.vae.config.out_channels)

    @property
    def space(self) -> int:
        """Pixels per latent along each side: 8 for Stable Diffusion's VAE, 4 for the x4 upscaler's."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    time = 1  # frames are encoded one by one

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]:
        """Decoded shape of latents of shape ``low_shape`` ``(B, C, [T,] h, w)``."""
        b, _, *mid, h, w = low_shape
        return (b, self.pixel_channels, *mid, h * self.space, w * self.space)

    def downsample(self, pixels: Tensor) -> Tensor:
        """Pixels -> latents (the mode of the posterior): a prefix of a continuation at latent resolution."""
        return self.encode(pixels)

    # -- encode / decode ---------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode(
        self, pixels: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None = None
    ) -> Tensor:
        """Pixels in [-1, 1] -> scaled latents. With ``generator`` (one, or one per item) the latents are a draw
        from the encoder's posterior, as diffusers' img2img pipelines take them; without, its mode."""
        check_sample(pixels, "pixels")
        video = pixels.ndim == 5
        frames = rearrange(pixels, "b c t h w -> (b t) c h w") if video else pixels
        frames = frames.to(self.device, self.dtype)
        if isinstance(generator, Sequence) and not isinstance(generator, torch.Generator):
            per = frames.shape[0] // len(generator)
            rows = [
                self.vae.encode(frames[i : i + 1]).latent_dist.sample(generator[i // per])
                for i in range(frames.shape[0])
            ]
            latents = torch.cat(rows)
        else:
            dist = self.vae.encode(frames).latent_dist
            latents = dist.mode() if generator is None else dist.sample(generator)
        latents = (latents - self.shift_factor) * self.scaling_factor
        # contiguous: what a Ray transfer gives the next stage, so that it computes on the same layout here
        out = rearrange(latents, "(b t) c h w -> b c t h w", b=pixels.shape[0]) if video else latents
        return out.contiguous()

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents -> pixels (nominally in [-1, 1]; not clamped)."""
        check_sample(latents, "latents")
        if latents.shape[1] != self.channels:
            raise DiffusionError(
                f"latents of shape {tuple(latents.shape)} have {latents.shape[1]} channels; this autoencoder's "
                f"have {self.channels}"
            )
        video = latents.ndim == 5
        frames = rearrange(latents, "b c t h w -> (b t) c h w") if video else latents
        frames = frames.to(self.device, self.dtype) / self.scaling_factor + self.shift_factor
        pixels = self.vae.decode(frames).sample
        out = rearrange(pixels, "(b t) c h w -> b c t h w", b=latents.shape[0]) if video else pixels
        return out.contiguous()


@dataclass(frozen=True)
class LatentUpscale:
    """The SD x4 upscaler's conditioning (``StableDiffusionUpscalePipeline``), as a cascade stage's ``sr``.

    The stage's input is the previous stage's pixels ``(B, 3, h, w)`` in [-1, 1]; it samples latents
    ``(B, channels, h, w)`` with the pixels, noised to ``noise_level`` by ``low_res_scheduler`` (a DDPM
    scheduler's config as JSON, the folder's ``low_res_scheduler/``), concatenated on the channel axis and the
    level as the UNet's class label. Its `LatentSpace` (the next step of the cascade) decodes them to
    ``(B, 3, space * h, space * w)``.
    """

    channels: int
    low_res_scheduler: str
    noise_level: int = 20

    space = 1  # latents at the input's size: the upscaling is the decoder's
    time = 1

    def __post_init__(self) -> None:
        levels = scheduler_from_config(self.low_res_scheduler).config.num_train_timesteps
        if not 0 <= int(self.noise_level) < levels:
            raise DiffusionError(
                f"noise_level={self.noise_level!r} must lie in [0, {levels}); the x4 upscaler's default is 20"
            )

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]:
        b, _, h, w = low_shape
        return (b, self.channels, h, w)

    def downsample(self, x: Tensor) -> Tensor:
        raise DiffusionError(
            "a continuation's prefix cannot pass back through the x4 upscaler; continue the base stage alone"
        )

    def generate(
        self,
        denoiser: nn.Module,
        scheduler,
        low: Tensor,
        *,
        steps: int,
        generator: torch.Generator | list[torch.Generator],
        cond: Conditioning | None = None,
        frames: int | None = None,
        mask: Tensor | None = None,
        known: Tensor | None = None,
        reconstruction: float = 0.0,
    ) -> Tensor:
        """Latents for the low-res pixels ``low`` ``(B, 3, h, w)``; the pixels' noise is drawn first, then the
        latents' (the order of ``StableDiffusionUpscalePipeline``)."""
        if low.ndim != 4:
            raise DiffusionError(f"the x4 upscaler takes images (B, 3, h, w), got shape {tuple(low.shape)}")
        if mask is not None:
            raise DiffusionError(
                "the x4 upscaler keeps no part of its output; inpaint the base stage instead"
            )
        batch = low.shape[0]
        level = torch.full((batch,), int(self.noise_level), dtype=torch.long, device=low.device)
        noise = randn(tuple(low.shape), generator, device=low.device).to(low.dtype)
        noised = scheduler_from_config(self.low_res_scheduler).add_noise(low, noise, level)
        latents = randn(self.high_shape(tuple(low.shape)), generator, device=low.device).to(low.dtype)
        full = (cond or Conditioning()).replace(low_res=noised, noise_level=level)
        return sample(denoiser, scheduler, latents, steps=steps, cond=full, generator=generator)


@dataclass(frozen=True)
class LatentRefine:
    """img2img as a cascade stage's ``sr`` (``VideoToVideoSDPipeline``: Zeroscope XL over Zeroscope 576w): the
    stage's input is latents (the previous pixels resized and encoded by an `legato.cascade.Encode` step),
    noised to ``strength`` of the schedule and denoised from there, as diffusers' video-to-video and
    img2img pipelines do; the output has the input's shape.

    A video's noise is drawn frame-major per item (``(T, C, h, w)``, then moved to ``(C, T, h, w)``), the
    layout ``VideoToVideoSDPipeline`` draws it in.
    """

    strength: float = 0.6

    space = 1
    time = 1

    def __post_init__(self) -> None:
        if not 0.0 < float(self.strength) < 1.0:
            raise DiffusionError(
                f"strength={self.strength!r} must lie in (0, 1): 0 keeps the input, 1 ignores it (a base stage)"
            )

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]:
        return tuple(low_shape)

    def downsample(self, x: Tensor) -> Tensor:
        return x

    def generate(
        self,
        denoiser: nn.Module,
        scheduler,
        low: Tensor,
        *,
        steps: int,
        generator: torch.Generator | list[torch.Generator],
        cond: Conditioning | None = None,
        frames: int | None = None,
        mask: Tensor | None = None,
        known: Tensor | None = None,
        reconstruction: float = 0.0,
    ) -> Tensor:
        """The refined latents of ``low`` ``(B, C, [T,] h, w)``."""
        if low.ndim == 5:
            b, c, t, h, w = low.shape
            noise = randn((b, t, c, h, w), generator, device=low.device).permute(0, 2, 1, 3, 4)
        else:
            noise = randn(tuple(low.shape), generator, device=low.device)
        noise = noise.to(low.dtype).contiguous()
        return sample(denoiser, scheduler, noise, steps=steps, cond=cond, generator=generator, init=low,
                      strength=float(self.strength), mask=mask, known=known, reconstruction=reconstruction)  # fmt: skip
