"""Tiny random-weight checkpoints of the diffusion-transformer families, in the layouts of the real ones.

Each builder writes what ``DiffusionPipeline.save_pretrained`` writes for the real folder (``model_index.json`` and
one folder per component, safetensors) with the same classes and config keys at tiny widths, and a T5 tokenizer
(a Unigram vocabulary of letters, digits and punctuation, with and without the word-start mark ``▁``, and a few
whole words) made here: nothing is downloaded. Every VAE keeps the real one's compression, so the real rules about
sizes and frame counts hold. `write_all_dit` writes all of them.

- `wan`: ``WanPipeline`` (Wan-AI/Wan2.1-T2V-1.3B-Diffusers): ``WanTransformer3DModel`` (patches 1x2x2),
  ``AutoencoderKLWan`` (4x in time, 8x in space, the real latent statistics), ``UMT5EncoderModel``, UniPC with
  flow sigmas and ``flow_shift=3``. Run at 32x32, 9 frames (latents 16x3x4x4).
- `ltx`: ``LTXPipeline`` (Lightricks/LTX-Video 0.9.1 layout): ``LTXVideoTransformer3DModel`` (patch 1),
  ``AutoencoderKLLTXVideo`` (8x in time, 32x in space: patch 4 and three halvings; timestep-conditioned decoder),
  ``T5EncoderModel``, ``FlowMatchEulerDiscreteScheduler`` with LTX's dynamic shifting and ``shift_terminal``.
  Run at 64x64, 9 frames (latents 8x2x2x2, packed to 8 tokens of 8).
- `ltx_upsampler`: ``LTXLatentUpsamplePipeline`` (Lightricks/ltxv-spatial-upscaler-0.9.7 layout): the 2x spatial
  ``LTXLatentUpsamplerModel`` and the VAE; with the same ``seed`` its VAE is `ltx`'s, weight for weight.
- `stable_audio`: ``StableAudioPipeline`` (stabilityai/stable-audio-open-1.0): ``StableAudioDiTModel`` over 16
  latent frames, ``AutoencoderOobleck`` (stereo, 44.1 kHz, hop 2*4*4*8*8 = 2048: 0.743 s at most),
  ``T5EncoderModel``, ``StableAudioProjectionModel`` (seconds 0..512), ``CosineDPMSolverMultistepScheduler``.
  Run with ``audio_end_in_s`` up to 0.74 (e.g. 0.5).
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

# the T5 encoders' d_model = Wan's text_dim = LTX's caption_channels = Stable Audio's conditioning dim
WIDTH = 32
WORDS = ("a", "an", "the", "of", "and", "in", "on", "with", "cat", "dog", "man", "woman", "sound", "music", "video",
         "drum", "piano", "rain", "walking", "playing", "low", "quality", "blurry", "hammer", "wood")  # fmt: skip
# stabilityai/stable-audio-open-1.0's scheduler/scheduler_config.json (all the class's keys, its defaults)
COSINE_DPM = dict(sigma_min=0.3, sigma_max=500, sigma_data=1.0, sigma_schedule="exponential", num_train_timesteps=1000,
                  solver_order=2, prediction_type="v_prediction", rho=7.0, solver_type="midpoint",
                  lower_order_final=True, euler_at_final=False, final_sigmas_type="zero")  # fmt: skip


def t5_tokenizer(model_max_length: int = 128):
    """A ``T5TokenizerFast`` (Unigram; ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2; ``</s>`` appended) over a vocabulary
    made here: every letter, digit and punctuation mark alone and after ``▁``, and a few whole words. (In
    transformers 5 that class is ``T5Tokenizer``, the name the folders record; no sentinel ``<extra_id_*>``.)"""
    from transformers import T5TokenizerFast

    symbols = string.ascii_letters + string.digits + string.punctuation
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0), *(("▁" + w, -1.0) for w in WORDS),
              *(("▁" + s, -3.0) for s in symbols), *((s, -4.0) for s in symbols)]  # fmt: skip
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


def t5_encoder(vocab_size: int, *, umt5: bool = False, gated: bool = True):
    """A 2-layer ``T5EncoderModel`` (``UMT5EncoderModel`` for ``umt5``) of width `WIDTH`: gated GELU like
    t5-v1_1-xxl / umt5-xxl, or ReLU like t5-base (``gated=False``)."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config_cls, model_cls = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_cls(
        vocab_size=vocab_size, d_model=WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
        feed_forward_proj="gated-gelu" if gated else "relu", tie_word_embeddings=not gated,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    return model_cls(config).eval()


def wan(folder: str | Path, *, seed: int = 5, heads: int = 2, head_dim: int = 16, layers: int = 2) -> Path:
    """A tiny ``WanPipeline`` folder (Wan 2.1 T2V; no ``transformer_2``, ``boundary_ratio`` None). Heights and widths
    are multiples of 16, frames 4k+1; prompts are padded to ``max_sequence_length`` (512). ``heads``,
    ``head_dim`` and ``layers`` size the transformer (benchmarks/imported.py widens it)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    torch.manual_seed(seed)
    tok = t5_tokenizer(512)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim, in_channels=16, out_channels=16,
        text_dim=WIDTH, freq_dim=256, ffn_dim=2 * heads * head_dim, num_layers=layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6, rope_max_seq_len=1024,
    ).eval()  # fmt: skip
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True]).eval()  # fmt: skip
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)  # fmt: skip
    pipe = WanPipeline(tokenizer=tok, text_encoder=t5_encoder(len(tok), umt5=True), vae=vae, scheduler=scheduler,
                       transformer=transformer)  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def ltx_vae(latent_channels: int = 8):
    """``AutoencoderKLLTXVideo`` in the 0.9.1 layout: patch 4 then three halvings of time and space (32x, 8x), a
    decoder with residual depth-to-space upsampling, noise injection and timestep conditioning. Its per-channel
    latent statistics are made non-trivial, so that (de)normalising shows."""
    from diffusers import AutoencoderKLLTXVideo

    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(8, 16, 32, 32),
        decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False), decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(True, True, True, False), upsample_residual=(True, True, True), upsample_factor=(2, 2, 2),
        timestep_conditioning=True, patch_size=4, patch_size_t=1, scaling_factor=1.0, encoder_causal=True,
        decoder_causal=False,
    ).eval()  # fmt: skip
    vae.latents_mean.copy_(0.1 * torch.randn(latent_channels))
    vae.latents_std.copy_(1.0 + 0.5 * torch.rand(latent_channels))
    return vae


def ltx(folder: str | Path, *, seed: int = 6, heads: int = 2, head_dim: int = 16, layers: int = 2) -> Path:
    """A tiny ``LTXPipeline`` folder. Heights and widths are multiples of 32, frames 8k+1; the transformer sees
    ``(frames-1)/8+1`` x ``h/32`` x ``w/32`` tokens; prompts are padded to ``max_sequence_length`` (128).
    ``heads``, ``head_dim`` and ``layers`` size the transformer."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

    torch.manual_seed(seed)
    vae = ltx_vae()  # first, so that `ltx_upsampler` with the same seed gets the same weights
    tok = t5_tokenizer(128)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=heads,
        attention_head_dim=head_dim, cross_attention_dim=heads * head_dim, num_layers=layers,
        activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads",
        norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=WIDTH, attention_bias=True,
        attention_out_bias=True,
    ).eval()  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
        base_image_seq_len=1024, max_image_seq_len=4096, invert_sigmas=False, shift_terminal=0.1,
    )  # fmt: skip
    pipe = LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=t5_encoder(len(tok)), tokenizer=tok,
                       transformer=transformer)  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def ltx_upsampler(folder: str | Path, *, seed: int = 6) -> Path:
    """A tiny ``LTXLatentUpsamplePipeline`` folder: ``latent_upsampler`` (2x in space; GroupNorm(32) needs
    ``mid_channels`` a multiple of 32) and ``vae`` (the `ltx` VAE's config; its weights too with the same
    ``seed``). Takes `ltx`'s latents unpacked to ``[B, 8, F, H, W]``."""
    from diffusers import LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    torch.manual_seed(seed)
    vae = ltx_vae()
    upsampler = LTXLatentUpsamplerModel(in_channels=vae.config.latent_channels, mid_channels=32,
                                        num_blocks_per_stage=1, dims=3, spatial_upsample=True,
                                        temporal_upsample=False).eval()  # fmt: skip
    pipe = LTXLatentUpsamplePipeline(vae=vae, latent_upsampler=upsampler)
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def stable_audio(
    folder: str | Path,
    *,
    seed: int = 7,
    heads: int = 2,
    head_dim: int = 16,
    layers: int = 2,
    latents: int = 16,
) -> Path:
    """A tiny ``StableAudioPipeline`` folder: 16 latent frames of 8 channels, 2048 samples each (0.743 s of stereo
    at 44.1 kHz; ``latents`` sets the window); the prompt is padded to the tokenizer's ``model_max_length`` (128, as
    stable-audio-tools' T5). ``heads``, ``head_dim`` and ``layers`` size the DiT. Its scheduler,
    ``CosineDPMSolverMultistepScheduler``, draws its noise with ``torchsde``."""
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
    )
    from diffusers.pipelines.stable_audio import StableAudioProjectionModel

    torch.manual_seed(seed)
    tok = t5_tokenizer(128)
    vae = AutoencoderOobleck(encoder_hidden_size=16, downsampling_ratios=[2, 4, 4, 8, 8],
                             channel_multiples=[1, 2, 2, 4, 4], decoder_channels=8, decoder_input_channels=8,
                             audio_channels=2, sampling_rate=44100).eval()  # fmt: skip
    transformer = StableAudioDiTModel(
        sample_size=latents, in_channels=8, num_layers=layers, attention_head_dim=head_dim, num_attention_heads=heads,
        num_key_value_attention_heads=1, out_channels=8, cross_attention_dim=heads * head_dim, time_proj_dim=32,
        global_states_input_dim=2 * WIDTH, cross_attention_input_dim=WIDTH,
    ).eval()  # fmt: skip
    projection = StableAudioProjectionModel(text_encoder_dim=WIDTH, conditioning_dim=WIDTH, min_value=0,
                                            max_value=512).eval()  # fmt: skip
    pipe = StableAudioPipeline(vae=vae, text_encoder=t5_encoder(len(tok), gated=False), projection_model=projection,
                               tokenizer=tok, transformer=transformer,
                               scheduler=CosineDPMSolverMultistepScheduler(**COSINE_DPM))  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def write_all_dit(out: str | Path) -> dict[str, Path]:
    """Every tiny diffusion-transformer checkpoint into ``out/<family>``."""
    out = Path(out)
    return {
        "wan": wan(out / "wan"),
        "ltx": ltx(out / "ltx"),
        "ltx-upsampler": ltx_upsampler(out / "ltx-upsampler"),
        "stable-audio": stable_audio(out / "stable-audio"),
    }
