"""Diffusers pipeline folders as cascade steps, one builder per family, each sampling as diffusers' own pipeline:

- ``StableDiffusionPipeline`` (Riffusion, SD 1.x/2.x fine-tunes): a latent base stage with its own CLIP text
  encoder, then a `Decode` step (its VAE);
- ``StableDiffusionUpscalePipeline`` (the x4 upscaler): a super-resolution stage on the previous pixels
  (`LatentUpscale`), then its x4 `Decode`;
- ``TextToVideoSDPipeline`` (ModelScope T2V, Zeroscope): a latent video base stage, decoded frame by frame;
- ``VideoToVideoSDPipeline`` (Zeroscope XL): an `Encode` step (the previous frames resized and encoded),
  a stage that refines them from a strength (`LatentRefine`), then its `Decode`;
- ``WanPipeline`` (Wan 2.1 text-to-video): a flow-matching video base stage (``WanTransformer3DModel``, its
  UMT5 encoder, UniPC on flow sigmas), then its 3D causal VAE's `Decode` (4x in time, 8x in space);
- ``LTXPipeline`` (LTX-Video): a flow-matching video stage (``LTXVideoTransformer3DModel`` on packed tokens,
  its T5 encoder and attention mask, FlowMatchEuler with the pipeline's shift), then its VAE's `Decode`; after
  ``LTXLatentUpsamplePipeline`` (a `LatentUpsample` step, latents at twice the size) a second LTX folder is
  the refining pass of LTX's multi-scale recipe;
- ``StableAudioPipeline`` (Stable Audio Open): a v-prediction DiT base stage over ``AutoencoderOobleck`` latents,
  its T5 states projected and followed by the seconds' tokens, then its `Decode` (stereo audio).

`legato.pipelines.checkpoints` chains folders into a cascade (``from_diffusers``) and writes model folders.
Nothing is downloaded: a hub id that is not a local folder is refused with what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legato.cascade.decode import Decode, Encode, LatentUpsample
from legato.cascade.stage import Stage
from legato.cascade.text import TextEncoder, TextSettings
from legato.cascade.weights import eager_load, own_storage, require_safetensors
from legato.diffusion import (
    Denoiser,
    DiffusionError,
    LatentRefine,
    LatentSpace,
    LatentUpscale,
    scheduler_config,
    scheduler_from_config,
)
from legato.diffusion.schedulers import Timesteps

BASES = (
    "StableDiffusionPipeline",
    "TextToVideoSDPipeline",
    "WanPipeline",
    "LTXPipeline",
    "StableAudioPipeline",
)
LATER = (
    "StableDiffusionUpscalePipeline",
    "VideoToVideoSDPipeline",
    "LTXLatentUpsamplePipeline",
    "LTXPipeline",
)
FAMILIES = (*BASES, *LATER[:-1])
LATENT_INPUTS = ("LTXLatentUpsamplePipeline", "LTXPipeline")  # later stages that take latents, not pixels
# diffusers' own defaults per family: (steps, guidance)
DEFAULTS = {"StableDiffusionPipeline": (50, 7.5), "StableDiffusionUpscalePipeline": (75, 9.0),
            "TextToVideoSDPipeline": (50, 9.0), "VideoToVideoSDPipeline": (50, 15.0),
            "WanPipeline": (50, 5.0), "LTXPipeline": (50, 3.0), "StableAudioPipeline": (100, 7.0)}  # fmt: skip


def model_index(folder: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """A diffusers pipeline folder and its ``model_index.json``; a hub id is refused (no network here)."""
    path = Path(folder).expanduser()
    index = path / "model_index.json"
    if not index.is_file():
        if not path.exists() and str(folder).count("/") == 1:
            raise FileNotFoundError(
                f"{folder!r} looks like a Hugging Face hub id, but Legato never downloads: on a machine with "
                f"network run `huggingface-cli download {folder} --local-dir DIR` (or "
                "DiffusionPipeline.from_pretrained(id).save_pretrained(DIR)), then import DIR"
            )
        raise FileNotFoundError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
    config = json.loads(index.read_text())
    family = config.get("_class_name")
    if family not in FAMILIES:
        raise ValueError(f"{path} holds a {family}; Legato imports {', '.join(FAMILIES)}")
    return path.resolve(), config


def _component(folder: Path, name: str, cls: type) -> Any:
    require_safetensors(folder / name)
    model = cls.from_pretrained(folder / name, local_files_only=True, use_safetensors=True, **eager_load(cls))
    own_storage(model)  # as a loaded cascade's: the same rounding here as in a Ray actor's unpickled copy
    return model.eval()


def _text(folder: Path, settings: TextSettings | None = None) -> TextEncoder:
    return TextEncoder.from_pretrained(
        folder / "text_encoder", folder / "tokenizer", settings or TextSettings()
    )


@dataclass(frozen=True)
class ImportSettings:
    """How imported stages sample and run (one for the whole cascade).

    ``size``, ``frames``: the base stage's output in pixels (default: its UNet's sample size) and frames;
    ``refine_size``: the frames' size for a ``VideoToVideoSDPipeline`` stage (Zeroscope XL: 576x1024;
    default: twice the previous stage's), refined from ``strength``; ``noise_level``: the x4 upscaler's."""

    size: tuple[int, int] | None = None
    frames: int | None = None  # the family's default: 16 (ModelScope, Zeroscope), 81 (Wan)
    noise_level: int = 20
    refine_size: tuple[int, int] | None = None
    strength: float = 0.6
    seconds: float | None = None  # Stable Audio's seconds_total (default: its whole window)
    dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = 4


def family_stages(
    folder: str | os.PathLike[str],
    *,
    name: str,
    previous: tuple[int, ...] | None,
    steps: int | None = None,
    guidance: float | None = None,
    settings: ImportSettings = ImportSettings(),
) -> list[Stage | Decode | Encode]:
    """The steps of one diffusers folder: a sampling stage named ``name``, its ``name-decode`` step and, for
    a video-to-video folder, its ``name-encode`` step before it. ``previous``: the per-item output shape of
    the stages before it (None: it is the first)."""
    path, index = model_index(folder)
    family = index["_class_name"]
    if family not in (BASES if previous is None else LATER):
        raise ValueError(
            f"{path} ({family}) cannot be {'the first' if previous is None else 'a later'} stage: a cascade "
            f"starts with one of {', '.join(BASES)}, and one of {', '.join(LATER)} follows one"
        )
    where = dict(batch_size=settings.batch_size, device=settings.device, dtype=settings.dtype)
    if family == "LTXLatentUpsamplePipeline":
        return [_ltx_upsample(path, name, previous, where).to(settings.device)]
    default_steps, default_guidance = DEFAULTS[family]
    common = dict(steps=steps or default_steps, guidance_scale=default_guidance if guidance is None else guidance,
                  null="prompt", **where)  # fmt: skip
    build = {"WanPipeline": _wan, "LTXPipeline": _ltx, "StableAudioPipeline": _stable_audio}.get(
        family, _stable_diffusion
    )
    before, stage, latents = build(path, family, name, previous, common, settings)
    return [
        *before,
        stage.to(settings.device),
        Decode(f"{name}-decode", latents, **where).to(settings.device),
    ]


def _scheduler(path: Path):
    return scheduler_from_config((path / "scheduler" / "scheduler_config.json").read_text())


def _stable_diffusion(path: Path, family: str, name: str, previous, common: dict, settings: ImportSettings):
    """The Stable Diffusion family's UNet stages: a base, the x4 upscaler, a video-to-video refiner."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNet3DConditionModel

    video = family in ("TextToVideoSDPipeline", "VideoToVideoSDPipeline")
    unet = _component(path, "unet", UNet3DConditionModel if video else UNet2DConditionModel)
    latents = LatentSpace(_component(path, "vae", AutoencoderKL))
    scheduler = _scheduler(path)
    common = dict(common, text=_text(path))
    denoiser = Denoiser(unet, scheduler.config.get("prediction_type", "epsilon"))
    before: list[Encode] = []
    if family == "StableDiffusionUpscalePipeline":
        low_res = scheduler_from_config((path / "low_res_scheduler" / "scheduler_config.json").read_text())
        sr = LatentUpscale(latents.channels, scheduler_config(low_res), settings.noise_level)
        stage = Stage(name, denoiser, scheduler, sr=sr, **common)
    elif family == "VideoToVideoSDPipeline":
        if len(previous) != 4:
            raise ValueError(f"{path} ({family}) refines videos; the stages before it make {previous}")
        size = settings.refine_size or (2 * previous[-2], 2 * previous[-1])
        where = {k: common[k] for k in ("batch_size", "device", "dtype")}
        before = [Encode(f"{name}-encode", latents, size=tuple(size), **where).to(settings.device)]
        stage = Stage(name, denoiser, scheduler, sr=LatentRefine(settings.strength), **common)
    else:
        height, width = settings.size or (unet.config.sample_size * latents.space,) * 2
        shape = _latent_shape(
            latents, unet.config.in_channels, height, width, (settings.frames or 16) if video else None
        )
        stage = Stage(name, denoiser, scheduler, shape=shape, **common)
    return before, stage, latents


def _latent_shape(latents: LatentSpace, channels: int, height: int, width: int, frames: int | None):
    """A base stage's sample shape for outputs of ``height`` x ``width`` pixels (and ``frames`` frames)."""
    factor = latents.space * (
        2 if type(latents.vae).__name__ == "AutoencoderKLWan" else 1
    )  # Wan's 2x2 patches
    if height % factor or width % factor:
        raise ValueError(f"size={height}x{width} must divide by {factor} (the VAE's factor, times any patch)")
    shape = (channels, height // latents.space, width // latents.space)
    if frames is None:
        return shape
    try:
        return (shape[0], latents.latent_frames(frames), *shape[1:])
    except DiffusionError as err:
        raise ValueError(f"frames={frames}: {err}") from None


def _ltx(path: Path, family: str, name: str, previous, common: dict, settings: ImportSettings):
    """LTX-Video (``LTXPipeline``): a flow-matching video stage over its 3D VAE (8x in time, 32x in space), its
    T5 encoder's attention mask handed to the transformer, the pipeline's sigmas and resolution-dependent shift.
    First, a base pass; after a stage that makes its latents (the latent upsampler), a refining pass that
    noises them to ``strength`` and denoises from there (`LatentRefine`)."""
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

    transformer = _component(path, "transformer", LTXVideoTransformer3DModel)
    latents = LatentSpace(_component(path, "vae", AutoencoderKLLTXVideo))
    text = _text(path, TextSettings(max_tokens=128, encoder_mask=False, network_mask=True))
    config = transformer.config
    rule = Timesteps("linspace", (config.patch_size_t, config.patch_size, config.patch_size))
    denoiser = Denoiser(transformer, "flow_prediction")
    scheduler = _scheduler(path)
    if previous is not None:
        _takes_video_latents(path, "refines", latents, previous)
        sr = LatentRefine(settings.strength)
        return [], Stage(name, denoiser, scheduler, sr=sr, text=text, timesteps=rule, **common), latents
    height, width = settings.size or (512, 704)
    shape = _latent_shape(latents, config.in_channels, height, width, settings.frames or 161)
    stage = Stage(name, denoiser, scheduler, shape=shape, text=text, timesteps=rule, **common)
    return [], stage, latents


def _takes_video_latents(path: Path, does: str, latents: LatentSpace, previous: tuple[int, ...]) -> None:
    """Refuse a folder that works on ``latents``' video latents after stages that make something else."""
    if len(previous) != 4 or previous[0] != latents.channels:
        raise ValueError(f"{path} {does} {latents.channels}-channel video latents; the stages before it make "
                         f"{previous}")  # fmt: skip


def _ltx_upsample(path: Path, name: str, previous, where: dict) -> LatentUpsample:
    """LTX-Video's latent upsampler (``LTXLatentUpsamplePipeline``) as a step on the previous stage's latents."""
    from diffusers import AutoencoderKLLTXVideo
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    upsampler = _component(path, "latent_upsampler", LTXLatentUpsamplerModel)
    latents = LatentSpace(_component(path, "vae", AutoencoderKLLTXVideo))
    _takes_video_latents(path, "upsamples", latents, previous)
    return LatentUpsample(name, latents, upsampler=upsampler, **where)


def _stable_audio(path: Path, family: str, name: str, previous, common: dict, settings: ImportSettings):
    """Stable Audio Open (``StableAudioPipeline``): a v-prediction DiT over ``AutoencoderOobleck`` latents
    ``(C, L)``, conditioned on its T5 encoder's projected states and the start and total seconds; the decoder
    makes stereo 44.1 kHz audio directly (no spectrogram), ``hop * L`` samples: its whole window."""
    from diffusers import AutoencoderOobleck, StableAudioDiTModel

    transformer = _component(path, "transformer", StableAudioDiTModel)
    latents = LatentSpace(_component(path, "vae", AutoencoderOobleck))
    window = transformer.config.sample_size * latents.hop / latents.vae.config.sampling_rate
    seconds = window if settings.seconds is None else float(settings.seconds)
    if not 0 < seconds <= window + 1e-9:
        raise ValueError(f"seconds={seconds:g} must lie in (0, {window:g}], the model's window")
    require_safetensors(path / "projection_model")
    text = TextEncoder.from_pretrained(path / "text_encoder", path / "tokenizer",
                                       TextSettings(encoder_mask=True, seconds=(0.0, seconds)),
                                       path / "projection_model")  # fmt: skip
    scheduler = _scheduler(path)
    denoiser = Denoiser(transformer, scheduler.config.get("prediction_type", "v_prediction"))
    shape = (transformer.config.in_channels, transformer.config.sample_size)
    return [], Stage(name, denoiser, scheduler, shape=shape, text=text, **common), latents


def _wan(path: Path, family: str, name: str, previous, common: dict, settings: ImportSettings):
    """Wan 2.1 text-to-video (``WanPipeline``): a flow-matching video base stage over its 3D causal VAE."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    if (path / "transformer_2").is_dir():
        raise ValueError(
            f"{path} has a transformer_2 (Wan 2.2's two experts); Legato imports Wan 2.1 folders"
        )
    transformer = _component(path, "transformer", WanTransformer3DModel)
    latents = LatentSpace(_component(path, "vae", AutoencoderKLWan))
    text = _text(path, TextSettings(max_tokens=512, clean=True, encoder_mask=True, zero_padding=True))
    height, width = settings.size or (480, 832)
    shape = _latent_shape(latents, transformer.config.in_channels, height, width, settings.frames or 81)
    stage = Stage(name, Denoiser(transformer, "flow_prediction"), _scheduler(path), shape=shape, text=text,
                  **common)  # fmt: skip
    return [], stage, latents
