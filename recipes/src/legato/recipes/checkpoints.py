"""Tiny random-weight checkpoints in the layouts of the real ones, for tests and the docs' examples.

Each builder writes what ``DiffusionPipeline.save_pretrained`` writes for the real family (``model_index.json``
and one folder per component, safetensors) with the same classes and config keys at tiny widths, and a
``CLIPTokenizer`` whose vocabulary (the 256 byte symbols, with and without the word-end mark, and a few
merges) is made here: nothing is downloaded. `write_all` writes all of them.

- `stable_diffusion`: ``StableDiffusionPipeline`` (Riffusion, SD 1.x/2.x fine-tunes); its VAE halves three
  times, as the real one does (latents 1/8 of the pixels).
- `upscaler`: ``StableDiffusionUpscalePipeline`` (the SD x4 upscaler): a x4 VAE, 7-channel UNet with 1000
  noise-level classes, a DDPM ``low_res_scheduler``.
- `text_to_video`: ``TextToVideoSDPipeline`` (ModelScope T2V, Zeroscope): ``UNet3DConditionModel``.
- `video_to_video`: ``VideoToVideoSDPipeline`` (Zeroscope XL): the same classes, other weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

WIDTH = 32  # the text encoder's hidden size = the UNets' cross_attention_dim


def tokenizer():
    """A ``CLIPTokenizer`` over a vocabulary made here (byte-level symbols, a few merges)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    merges = ["o n", "i n", "t h", "e r", "a n"]
    vocab: dict[str, int] = {}
    for token in [*symbols, *(s + "</w>" for s in symbols), *(m.replace(" ", "") for m in merges),
                  *(m.replace(" ", "") + "</w>" for m in merges), "<|startoftext|>", "<|endoftext|>"]:  # fmt: skip
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=77)


def text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
        hidden_size=WIDTH, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=vocab_size, max_position_embeddings=77, layer_norm_eps=1e-5,
    )  # fmt: skip
    return CLIPTextModel(config).eval()


def vae(blocks: int = 4, channels: int = 8):
    """``AutoencoderKL`` halving ``blocks - 1`` times (SD's: 4 blocks, latents 1/8)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[channels] * blocks,
        down_block_types=["DownEncoderBlock2D"] * blocks, up_block_types=["UpDecoderBlock2D"] * blocks,
        layers_per_block=1, norm_num_groups=4, sample_size=64, scaling_factor=0.18215,
    ).eval()  # fmt: skip


def _ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)  # fmt: skip


def unet(sample_size: int, *, video: bool = False, in_channels: int = 4, widths=(8, 16), **config):
    """A ``UNet2DConditionModel`` (``UNet3DConditionModel`` for ``video``) with one level per width (cross-
    attention in all but the deepest), attending to the text encoder's ``WIDTH``."""
    from diffusers import UNet2DConditionModel, UNet3DConditionModel

    d, n = ("3D" if video else "2D"), len(widths)
    cls = UNet3DConditionModel if video else UNet2DConditionModel
    return cls(
        sample_size=sample_size, in_channels=in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=tuple(widths), down_block_types=(f"CrossAttnDownBlock{d}",) * (n - 1) + (f"DownBlock{d}",),
        up_block_types=(f"UpBlock{d}",) + (f"CrossAttnUpBlock{d}",) * (n - 1), cross_attention_dim=WIDTH,
        attention_head_dim=4 if video else 2, norm_num_groups=4, **config,
    ).eval()  # fmt: skip


def stable_diffusion(folder: str | Path, *, seed: int = 0, sample_size: int = 8, widths=(8, 16)) -> Path:
    """A tiny ``StableDiffusionPipeline`` folder (latents ``sample_size`` square, pixels 8x that; the UNet's
    ``widths``, one level each)."""
    from diffusers import StableDiffusionPipeline

    torch.manual_seed(seed)
    tok = tokenizer()
    pipe = StableDiffusionPipeline(vae=vae(), text_encoder=text_encoder(len(tok)), tokenizer=tok,
                                   unet=unet(sample_size, widths=widths), scheduler=_ddim(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def upscaler(folder: str | Path, *, seed: int = 1) -> Path:
    """A tiny ``StableDiffusionUpscalePipeline`` folder: a x4 VAE, the UNet taking latents + noised pixels."""
    from diffusers import DDPMScheduler, StableDiffusionUpscalePipeline

    torch.manual_seed(seed)
    tok = tokenizer()
    network = unet(16, in_channels=7, num_class_embeds=1000)
    autoencoder = vae(blocks=3)
    autoencoder.register_to_config(scaling_factor=0.08333)
    low_res = DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02, num_train_timesteps=1000
    )
    scheduler = _ddim()
    scheduler.register_to_config(
        beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02, prediction_type="v_prediction"
    )
    pipe = StableDiffusionUpscalePipeline(vae=autoencoder, text_encoder=text_encoder(len(tok)), tokenizer=tok, unet=network,
                                          low_res_scheduler=low_res, scheduler=_rebuilt(scheduler), max_noise_level=350)  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def text_to_video(folder: str | Path, *, seed: int = 2, sample_size: int = 8) -> Path:
    """A tiny ``TextToVideoSDPipeline`` folder (ModelScope / Zeroscope layout)."""
    from diffusers import TextToVideoSDPipeline

    return _video(TextToVideoSDPipeline, folder, seed, sample_size)


def video_to_video(folder: str | Path, *, seed: int = 3, sample_size: int = 12) -> Path:
    """A tiny ``VideoToVideoSDPipeline`` folder (Zeroscope XL's layout: the text-to-video classes)."""
    from diffusers import VideoToVideoSDPipeline

    return _video(VideoToVideoSDPipeline, folder, seed, sample_size)


def _video(cls, folder: str | Path, seed: int, sample_size: int) -> Path:
    torch.manual_seed(seed)
    tok = tokenizer()
    pipe = cls(vae=vae(), text_encoder=text_encoder(len(tok)), tokenizer=tok, unet=unet(sample_size, video=True),
               scheduler=_ddim())  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def _rebuilt(scheduler):
    """A scheduler rebuilt from its config (so registered changes reach its tensors)."""
    return type(scheduler).from_config(scheduler.config)


def write_all(out: str | Path) -> dict[str, Path]:
    """Every tiny checkpoint into ``out/<family>``."""
    out = Path(out)
    return {
        "stable-diffusion": stable_diffusion(out / "stable-diffusion"),
        "upscaler": upscaler(out / "upscaler"),
        "text-to-video": text_to_video(out / "text-to-video"),
        "video-to-video": video_to_video(out / "video-to-video"),
    }
