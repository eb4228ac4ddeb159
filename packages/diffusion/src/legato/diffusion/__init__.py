"""legato.diffusion: the image diffusion core that every audio and video stage samples through.

The main flow::

    network = UNet2DConditionModel(...)                  # or DiT(...), or legato.video's UNet3D
    denoiser = Denoiser(network, "v_prediction")         # or EDMDenoiser(network, VPSchedule...)
    guided = ClassifierFreeGuidance(denoiser, uncond, scale=5.0)
    noise = randn((B, C, H, W), generators(seeds))
    x = sample(guided, make_scheduler("dpm++", config), noise, steps=25, cond=Conditioning(text=emb))

Editing is options of `sample` (``init``/``strength``, ``mask``/``known``) plus `invert`,
`null_text_inversion` and `diffedit_mask`. Training is `legato.diffusion.training` (one `Trainer`),
distillation `legato.diffusion.distill`, noise-level experts `NoiseLevelExperts`; cascades' super-resolution
stages are `SuperResolution` (space and time factors, `NoiseAugmentation` of the low-res input).
"""

from legato.diffusion.augmentation import NoiseAugmentation
from legato.diffusion.conditioning import Conditioning
from legato.diffusion.denoisers import PREDICTION_TYPES, Denoiser, EDMDenoiser, VPSchedule
from legato.diffusion.editing import diffedit_mask, invert, null_text_inversion
from legato.diffusion.errors import DiffusionError, SamplingCancelled
from legato.diffusion.experts import NoiseLevelExperts, expert_ranges
from legato.diffusion.guidance import ClassifierFreeGuidance
from legato.diffusion.latents import LatentRefine, LatentSpace, LatentUpscale
from legato.diffusion.metrics import frechet_distance
from legato.diffusion.models import DiT, forward_network, register_network
from legato.diffusion.sampling import Step, sample
from legato.diffusion.schedulers import (
    SCHEDULERS,
    convert_scheduler,
    make_scheduler,
    scheduler_config,
    scheduler_from_config,
)
from legato.diffusion.superres import SuperResolution, Upsampler
from legato.diffusion.tensors import append_dims, correlate_frames, generators, randn

__all__ = [
    "PREDICTION_TYPES",
    "SCHEDULERS",
    "ClassifierFreeGuidance",
    "Conditioning",
    "Denoiser",
    "DiT",
    "DiffusionError",
    "EDMDenoiser",
    "LatentRefine",
    "LatentSpace",
    "LatentUpscale",
    "NoiseAugmentation",
    "NoiseLevelExperts",
    "SamplingCancelled",
    "Step",
    "SuperResolution",
    "Upsampler",
    "VPSchedule",
    "append_dims",
    "convert_scheduler",
    "correlate_frames",
    "diffedit_mask",
    "expert_ranges",
    "forward_network",
    "frechet_distance",
    "generators",
    "invert",
    "make_scheduler",
    "null_text_inversion",
    "randn",
    "register_network",
    "sample",
    "scheduler_config",
    "scheduler_from_config",
]
