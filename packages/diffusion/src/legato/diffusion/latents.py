"""Latent diffusion (Rombach et al. 2022): an autoencoder's latent space, and the x4 upscaler's conditioning.

`LatentSpace` wraps a diffusers autoencoder (image, video or audio; its latents normalised as its pipelines
do). Stages sample in its latents; `legato.cascade.Decode` is the cascade step that turns them back into
pixels, so an executor can put the decoder on its own worker.

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
from legato.diffusion.schedulers import Timesteps, scheduler_from_config
from legato.diffusion.tensors import check_sample, randn


class LatentSpace(nn.Module):
    """An autoencoder's latent space: ``encode`` pixels -> normalised latents, ``decode`` latents -> pixels.

    Three kinds of autoencoder:

    - image autoencoders (``AutoencoderKL``: Stable Diffusion's, Riffusion's, the x4 upscaler's, ModelScope's):
      ``(B, C, H, W)`` images, or ``(B, C, T, H, W)`` videos encoded and decoded frame by frame as diffusers'
      video pipelines do; latents are ``(z - shift_factor) * scaling_factor``.
    - audio autoencoders (``AutoencoderOobleck``: Stable Audio Open's): latents ``(B, C, L)`` decode to audio
      ``(B, channels, hop * L)`` as they are (no scaling).
    - video autoencoders (``AutoencoderKLWan``, ``AutoencoderKLLTXVideo``): whole ``(B, C, T, H, W)`` videos,
      compressed ``time`` times along time after a first frame of its own (causal: ``T = 1 + time * (t - 1)``)
      and ``space`` times along each side; latents are normalised per channel by the autoencoder's
      ``latents_mean``/``latents_std`` (Wan: in its config; LTX: buffers, with its ``scaling_factor``), as the
      Wan and LTX pipelines normalise them. An LTX decoder conditioned on a timestep (0.9.1 and later) is given
      the pipeline's default, 0.

    Args:
        vae: a diffusers autoencoder with ``encode(x).latent_dist`` and ``decode(z).sample``.
        tiling: decode (and encode) in overlapping tiles of the autoencoder's own size (diffusers'
            ``enable_tiling``; set the size on ``vae``): big images in small memory, pixels a little off at seams.
        slicing: decode one image (one frame of a video, one video of a batch) at a time (``enable_slicing``):
            the memory of one, the same pixels. Both are set on ``vae`` at each call: spaces sharing it may differ.
    """

    def __init__(self, vae: nn.Module, *, tiling: bool = False, slicing: bool = False) -> None:
        super().__init__()
        config = vae.config
        known = ("latent_channels", "z_dim", "decoder_input_channels")
        if not any(key in config for key in known) or not hasattr(vae, "decode"):
            raise DiffusionError(
                f"{type(vae).__name__} is not a diffusers autoencoder (no config.{'/'.join(known)}); pass an "
                "AutoencoderKL, AutoencoderKLWan, AutoencoderKLLTXVideo or AutoencoderOobleck"
            )
        self.vae = vae
        self.tiling, self.slicing = bool(tiling), bool(slicing)
        for name, on in (("tiling", self.tiling), ("slicing", self.slicing)):
            if on and not hasattr(vae, f"use_{name}"):
                raise DiffusionError(f"{type(vae).__name__} has no {name} in diffusers; leave {name} off")

    def with_memory(self, *, tiling: bool | None = None, slicing: bool | None = None) -> LatentSpace:
        """This space over the same autoencoder, decoding in tiles and/or one image at a time (None: as now)."""
        return LatentSpace(self.vae, tiling=self.tiling if tiling is None else tiling,
                           slicing=self.slicing if slicing is None else slicing)  # fmt: skip

    def _set_memory(self) -> None:
        for name in ("tiling", "slicing"):
            if hasattr(self.vae, f"use_{name}"):
                setattr(self.vae, f"use_{name}", getattr(self, name))

    # -- geometry (what `legato.cascade.Cascade` walks through, like a SuperResolution's) ----------------------

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.get("scaling_factor") or 1.0)

    @property
    def shift_factor(self) -> float:
        return float(self.vae.config.get("shift_factor") or 0.0)

    @property
    def channels(self) -> int:
        """Latent channels."""
        config = self.vae.config
        for key in ("latent_channels", "z_dim", "decoder_input_channels"):
            if key in config:
                return int(config[key])
        raise DiffusionError(f"{type(self.vae).__name__} does not say how many latent channels it has")

    @property
    def pixel_channels(self) -> int:
        """Channels of what it decodes: 3 for images and videos, 2 for stereo audio."""
        config = self.vae.config
        return int(
            config.get("audio_channels") or config.get("out_channels") or config.get("in_channels") or 3
        )

    @property
    def is_audio(self) -> bool:
        """Whether it decodes audio ``(B, channels, samples)`` (``AutoencoderOobleck``: Stable Audio's)."""
        return "audio_channels" in self.vae.config

    @property
    def hop(self) -> int:
        """Audio samples per latent frame (Stable Audio Open's: 2048)."""
        return int(getattr(self.vae, "hop_length", 1))

    @property
    def space(self) -> int:
        """Pixels per latent along each side: 8 for Stable Diffusion's and Wan's VAE, 4 for the x4 upscaler's,
        32 for LTX-Video's."""
        ratio = getattr(self.vae, "spatial_compression_ratio", None) or self.vae.config.get(
            "scale_factor_spatial"
        )
        return int(ratio) if ratio else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def time(self) -> int:
        """Frames per latent frame after the first (1: frames are encoded one by one)."""
        ratio = getattr(self.vae, "temporal_compression_ratio", None) or self.vae.config.get(
            "scale_factor_temporal"
        )
        return int(ratio or 1)

    @property
    def is_video(self) -> bool:
        """Whether the autoencoder takes whole videos (compressing time), not frames one by one."""
        return type(self.vae).__name__ != "AutoencoderKL" and not self.is_audio

    def frames(self, latent_frames: int) -> int:
        """Frames decoded from ``latent_frames`` latent frames (``1 + time * (t - 1)`` for a causal video VAE;
        audio samples, ``hop`` per latent frame, for an audio autoencoder)."""
        if self.is_audio:
            return self.hop * latent_frames
        return 1 + self.time * (latent_frames - 1) if self.is_video else latent_frames

    def covering(self, length: int) -> int:
        """The fewest latent frames that decode to at least ``length`` frames (or audio samples)."""
        if self.is_audio:
            return -(-max(length, 1) // self.hop)
        if self.is_video:
            return (max(length, 1) - 1 + self.time - 1) // self.time + 1
        return length

    def latent_frames(self, frames: int) -> int:
        """Latent frames of a video of ``frames`` frames; a video VAE takes ``1 + time * k`` of them."""
        if not self.is_video:
            return frames
        if frames < 1 or (frames - 1) % self.time:
            raise DiffusionError(
                f"frames={frames}: {type(self.vae).__name__} takes 1 + {self.time} * k frames (e.g. "
                f"{1 + self.time * max(1, (frames - 1) // self.time)})"
            )
        return (frames - 1) // self.time + 1

    def high_shape(self, low_shape: tuple[int, ...], frames: int | None = None) -> tuple[int, ...]:
        """Decoded shape of latents of shape ``low_shape`` ``(B, C, [T,] h, w)``, or ``(B, C, L)`` for audio."""
        if self.is_audio:
            return (low_shape[0], self.pixel_channels, low_shape[-1] * self.hop)
        b, _, *mid, h, w = low_shape
        mid = [self.frames(mid[0])] if mid else []
        return (b, self.pixel_channels, *mid, h * self.space, w * self.space)

    def downsample(self, pixels: Tensor) -> Tensor:
        """Pixels -> latents (the mode of the posterior): a prefix of a continuation at latent resolution."""
        return self.encode(pixels)

    # -- normalisation -----------------------------------------------------------------------------------------

    def _stats(self, ndim: int) -> tuple[Tensor, Tensor] | None:
        """The per-channel ``(mean, std)`` a video autoencoder's latents are normalised by, shaped to broadcast
        over ``ndim``-dim latents; None for an image autoencoder's (its scaling and shift factors)."""
        if not self.is_video:
            return None
        buffers = dict(self.vae.named_buffers(recurse=False))  # LTX's; Wan's are in its config
        mean = buffers.get("latents_mean", self.vae.config.get("latents_mean"))
        std = buffers.get("latents_std", self.vae.config.get("latents_std"))
        if mean is None:
            return None
        view = (1, -1, *[1] * (ndim - 2))
        mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device).view(view)
        std = torch.as_tensor(std, dtype=torch.float32, device=self.device).view(view)
        return mean, std

    def normalise(self, z: Tensor) -> Tensor:
        """The autoencoder's raw latents -> the latents a stage samples."""
        stats = self._stats(z.ndim)
        if stats is None:
            return (z - self.shift_factor) * self.scaling_factor
        mean, std = (v.to(z.dtype) for v in stats)
        return (z - mean) * self.scaling_factor / std

    def denormalise(self, latents: Tensor) -> Tensor:
        stats = self._stats(latents.ndim)
        if stats is None:
            return latents / self.scaling_factor + self.shift_factor
        mean, std = (v.to(latents.dtype) for v in stats)
        return latents * std / self.scaling_factor + mean

    # -- encode / decode ---------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def _frames(self, x: Tensor) -> Tensor:
        """What the autoencoder takes: frames ``(B*T, C, H, W)`` for an image autoencoder, else ``x``."""
        return rearrange(x, "b c t h w -> (b t) c h w") if x.ndim == 5 and not self.is_video else x

    def _unframes(self, x: Tensor, like: Tensor) -> Tensor:
        out = (
            rearrange(x, "(b t) c h w -> b c t h w", b=like.shape[0])
            if like.ndim == 5 and not self.is_video
            else x
        )
        # contiguous: what a Ray transfer gives the next stage, so that it computes on the same layout here
        return out.contiguous()

    @torch.no_grad()
    def encode(
        self, pixels: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None = None
    ) -> Tensor:
        """Pixels in [-1, 1] -> normalised latents. With ``generator`` (one, or one per item) the latents are a
        draw from the encoder's posterior, as diffusers' img2img pipelines take them; without, its mode."""
        check_sample(pixels, "pixels")
        if self.is_video and pixels.ndim != 5:
            raise DiffusionError(
                f"{type(self.vae).__name__} encodes videos (B, C, T, H, W), got shape {tuple(pixels.shape)}"
            )
        if self.is_video:
            self.latent_frames(pixels.shape[2])
        frames = self._frames(pixels).to(self.device, self.dtype)
        self._set_memory()
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
        return self._unframes(self.normalise(latents), pixels)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents -> pixels (nominally in [-1, 1]; not clamped)."""
        check_sample(latents, "latents")
        if latents.shape[1] != self.channels:
            raise DiffusionError(
                f"latents of shape {tuple(latents.shape)} have {latents.shape[1]} channels; this autoencoder's "
                f"have {self.channels}"
            )
        if self.is_video and latents.ndim != 5:
            raise DiffusionError(
                f"{type(self.vae).__name__} decodes video latents (B, C, T, h, w), got shape {tuple(latents.shape)}"
            )
        frames = self.denormalise(self._frames(latents).to(self.device, self.dtype))
        self._set_memory()
        if self.vae.config.get("timestep_conditioning"):  # LTX 0.9.1+: the pipeline's decode_timestep, 0
            temb = torch.zeros(frames.shape[0], device=frames.device, dtype=frames.dtype)
            pixels = self.vae.decode(frames, temb).sample
        else:
            pixels = self.vae.decode(frames).sample
        return self._unframes(pixels, latents)


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
        schedule: Timesteps | None = None,
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
        return sample(
            denoiser, scheduler, latents, steps=steps, cond=full, generator=generator, schedule=schedule
        )


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
        schedule: Timesteps | None = None,
    ) -> Tensor:
        """The refined latents of ``low`` ``(B, C, [T,] h, w)``."""
        if low.ndim == 5:
            b, c, t, h, w = low.shape
            noise = randn((b, t, c, h, w), generator, device=low.device).permute(0, 2, 1, 3, 4)
        else:
            noise = randn(tuple(low.shape), generator, device=low.device)
        noise = noise.to(low.dtype).contiguous()
        return sample(denoiser, scheduler, noise, steps=steps, cond=cond, generator=generator, init=low,
                      strength=float(self.strength), mask=mask, known=known, reconstruction=reconstruction,
                      schedule=schedule)  # fmt: skip
