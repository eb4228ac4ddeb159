"""Bad input to the loop: each case a DiffusionError that names the value and the fix."""

import pytest
import torch
from diffusers import DDIMScheduler

from legato.diffusion import (
    ClassifierFreeGuidance,
    Conditioning,
    Denoiser,
    DiffusionError,
    make_scheduler,
    sample,
)
from legato.diffusion.training import TrainConfig

from .conftest import tiny_text_unet, tiny_unet


@pytest.fixture(scope="module")
def denoiser():
    return Denoiser(tiny_unet().eval())


def noise(*shape):
    return torch.randn(*shape) if shape else torch.randn(1, 2, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise": noise(1, 2, 4, 16, 16)}, r"UNet2DModel takes samples of rank \(4,\).*UNet3D"),
        ({"noise": noise(16, 16)}, "shape \\(16, 16\\); samples are"),
        ({"noise": torch.full((1, 2, 16, 16), float("nan"))}, "noise holds NaN"),
        ({"init": noise(1, 2, 8, 8), "strength": 0.5}, r"init has shape \(1, 2, 8, 8\) but the noise is"),
        ({"init": noise(), "strength": 1.5}, r"strength=1.5 must lie in \(0, 1\]"),
        ({"init": noise(), "strength": 0.0}, r"strength=0.0 must lie in \(0, 1\]"),
        ({"strength": 0.5}, "strength=0.5 needs init="),
        ({"init": noise(), "strength": 0.01}, "leaves no step to run"),
        ({"mask": torch.ones(1, 1, 8, 8), "known": noise()}, "does not broadcast"),
        ({"mask": torch.ones(1, 1, 16, 16)}, "mask= needs known="),
        ({"known": noise()}, "known= needs mask="),
        ({"mask": torch.full((1, 1, 16, 16), 2.0), "known": noise()}, r"mask values must lie in \[0, 1\]"),
        ({"steps": 0}, "steps=0 must be a positive integer"),
        ({"resample": 2, "scheduler": make_scheduler("euler")}, "RePaint.*DDPM or DDIM"),
        ({"generator": [torch.Generator()] * 3}, "got 3 generators for a batch of 1"),
        ({"cond": Conditioning(labels=torch.zeros(3, dtype=torch.long))}, "conditioning.labels has 3 items"),
        ({"cond": Conditioning(pooled=torch.zeros(1, 8, device="meta"))}, "conditioning.pooled is on meta"),
    ],
)
def test_bad_sampling_input(denoiser, kwargs, match):
    args = {"noise": noise(), "steps": 10, "scheduler": DDIMScheduler()}
    args.update(kwargs)
    with pytest.raises(DiffusionError, match=match):
        sample(denoiser, args.pop("scheduler"), args.pop("noise"), **args)


def test_unknown_scheduler_names_the_known_ones():
    with pytest.raises(
        DiffusionError, match=r"unknown scheduler 'plms'; use one of \['ddim', 'ddpm', 'dpm\+\+'"
    ):
        make_scheduler("plms")


def test_a_raw_network_is_refused_with_the_fix():
    with pytest.raises(DiffusionError, match=r"wrap the network in Denoiser"):
        sample(tiny_unet(), DDIMScheduler(), noise(), steps=2)


def test_missing_text_and_bad_guidance():
    unet = Denoiser(tiny_text_unet())
    with pytest.raises(DiffusionError, match="has cross-attention: pass Conditioning"):
        sample(unet, DDIMScheduler(), torch.randn(1, 1, 16, 16), steps=2)
    with pytest.raises(DiffusionError, match="rescale=2"):
        ClassifierFreeGuidance(unet, Conditioning(), rescale=2)
    guided = ClassifierFreeGuidance(unet, Conditioning(text=torch.zeros(3, 4, 32)), scale=2.0)
    with pytest.raises(DiffusionError, match="uncond has 3 rows for a batch of 2"):
        sample(
            guided,
            DDIMScheduler(),
            torch.randn(2, 1, 16, 16),
            steps=2,
            cond=Conditioning(text=torch.zeros(2, 4, 32)),
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": 5.0}, r"learning_rate=5.0 must lie in \(0, 1\); 1e-4 to 1e-3 is usual"),
        ({"learning_rate": 0.0}, r"learning_rate=0.0 must lie in \(0, 1\)"),
        ({"batch_size": 0}, "batch_size=0 must be a positive integer"),
        ({"cond_dropout": 1.0}, r"cond_dropout=1.0 must lie in \[0, 1\)"),
        ({"ema_decay": 1.0}, r"ema_decay=1.0 must lie in \(0, 1\), or None"),
    ],
)
def test_a_bad_training_config_names_the_value(kwargs, match):
    with pytest.raises(DiffusionError, match=match):
        TrainConfig(steps=10, **kwargs)
