"""diffusers' own pipelines are the oracle: same network, scheduler and starting noise, same output.

Tolerance: 1e-5 of the output's scale (``1e-5 * max(1, max|expected|)``). The unconditional pipelines agree
to a few 1e-7 on [-1, 1] images: the same float32 ops in the same order. The guided loops run the
conditional/unconditional halves in the other order and reach latents of magnitude ~100 with an untrained
network; measured differences there stay below 1e-6 of that magnitude.
"""

import pytest
import torch
from diffusers import (
    DDIMPipeline,
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
)
from diffusers.utils.torch_utils import randn_tensor

from legato.diffusion import ClassifierFreeGuidance, Conditioning, Denoiser, sample

from .conftest import tiny_text_unet, tiny_unet

ATOL = 1e-5


def to_image(x: torch.Tensor):
    """What DDPMPipeline/DDIMPipeline return for output_type="np"."""
    return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def test_matches_ddpm_pipeline():
    torch.manual_seed(0)
    unet = tiny_unet().eval()
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    expected = DDPMPipeline(unet, scheduler)(
        batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=20, output_type="np"
    ).images
    gen = torch.Generator().manual_seed(3)
    noise = randn_tensor((2, 2, 16, 16), generator=gen)  # the pipeline's first draw; its steps draw the rest
    ours = sample(Denoiser(unet), scheduler, noise, steps=20, generator=gen)
    assert abs(to_image(ours) - expected).max() <= ATOL


def close(ours: torch.Tensor, expected: torch.Tensor) -> bool:
    return bool((ours - expected).abs().max() <= ATOL * max(1.0, float(expected.abs().max())))


def test_matches_ddim_pipeline():
    torch.manual_seed(0)
    unet = tiny_unet().eval()
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    expected = DDIMPipeline(unet, scheduler)(
        batch_size=2,
        generator=torch.Generator().manual_seed(4),
        eta=0.0,
        num_inference_steps=15,
        output_type="np",
    ).images
    noise = randn_tensor((2, 2, 16, 16), generator=torch.Generator().manual_seed(4))
    ours = sample(Denoiser(unet), scheduler, noise, steps=15)
    assert abs(to_image(ours) - expected).max() <= ATOL


@pytest.mark.parametrize(
    "scheduler",
    [
        # steps_offset=1: StableDiffusionPipeline rewrites any other value (with a warning) on construction.
        DDIMScheduler(num_train_timesteps=1000, clip_sample=False, steps_offset=1),
        EulerDiscreteScheduler(num_train_timesteps=1000, steps_offset=1),
        DPMSolverMultistepScheduler(num_train_timesteps=1000, algorithm_type="dpmsolver++", steps_offset=1),
    ],
    ids=["ddim", "euler", "dpm++"],
)
@pytest.mark.parametrize("rescale", [0.0, 0.7])
def test_conditional_unet_with_guidance_matches_diffusers_loop(scheduler, rescale):
    # StableDiffusionPipeline is diffusers' denoising loop for a text-conditioned UNet2DConditionModel; with
    # precomputed prompt embeddings and output_type="latent" it needs neither a VAE nor a text encoder.
    torch.manual_seed(0)
    unet = tiny_text_unet().eval()
    text = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(5))
    empty = torch.zeros(2, 4, 32)
    pipe = StableDiffusionPipeline(
        vae=None, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        prompt_embeds=text, negative_prompt_embeds=empty, height=128, width=128,  # latents 16x16 (x8)
        num_inference_steps=12, guidance_scale=3.0, guidance_rescale=rescale,
        output_type="latent", generator=torch.Generator().manual_seed(6),
    ).images  # fmt: skip

    noise = randn_tensor((2, 1, 16, 16), generator=torch.Generator().manual_seed(6))
    guided = ClassifierFreeGuidance(Denoiser(unet), Conditioning(text=empty), scale=3.0, rescale=rescale)
    ours = sample(guided, scheduler, noise, steps=12, cond=Conditioning(text=text))
    assert ours.shape == expected.shape
    assert close(ours, expected)
