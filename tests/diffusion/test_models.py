"""The shared model contract on every 2-D denoising network, and DiT specifics."""

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel

from legato.diffusion import Conditioning, DiT

from .conftest import tiny_text_unet, tiny_unet


def image_inputs(channels: int, size: int = 16, **cond):
    def make(batch: int):
        gen = torch.Generator().manual_seed(batch)
        x = torch.randn(batch, channels, size, size, generator=gen)
        t = torch.randint(0, 1000, (batch,), generator=gen)
        fields = {k: v(batch, gen) for k, v in cond.items()}
        return x, t, Conditioning(**fields)

    return make


def text(b, g):
    return torch.randn(b, 4, 32, generator=g)


def pooled(b, g):
    return torch.randn(b, 24, generator=g)


def labels(b, g):
    return torch.randint(0, 5, (b,), generator=g)


def low_res(b, g):
    return torch.randn(b, 2, 16, 16, generator=g)


def noise_level(b, g):
    return torch.randint(0, 250, (b,), generator=g)


CASES = {
    "unet2d": (lambda: tiny_unet(), image_inputs(2), 2),
    "unet2d-labels": (lambda: tiny_unet(num_class_embeds=6), image_inputs(2, labels=labels), 2),
    "unet2d-text": (lambda: tiny_text_unet(), image_inputs(1, text=text), 1),
    "unet2d-text-pooled-lowres": (
        lambda: tiny_text_unet(
            in_channels=3, class_embed_type="projection", projection_class_embeddings_input_dim=24
        ),
        image_inputs(1, text=text, pooled=pooled, low_res=low_res),
        1,
    ),
    "unet2d-text-sr-noise-level": (
        lambda: tiny_text_unet(in_channels=3, class_embed_type="timestep"),
        image_inputs(1, text=text, low_res=low_res, noise_level=noise_level),
        1,
    ),
    "dit": (lambda: DiT(in_channels=2, hidden_size=32, depth=2, num_heads=2), image_inputs(2), 2),
    "dit-all": (
        lambda: DiT(
            in_channels=1,
            cond_channels=2,
            hidden_size=32,
            depth=2,
            num_heads=2,
            num_classes=5,
            pooled_dim=24,
            cross_attention_dim=32,
            noise_level_conditioning=True,
        ),
        image_inputs(1, text=text, pooled=pooled, labels=labels, low_res=low_res, noise_level=noise_level),
        1,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_contract(case, model_contract, tmp_path):
    make, inputs, out_channels = CASES[case]
    model_contract(make, inputs, out_channels, tmp_path)


def test_plain_diffusers_loads_the_unet_we_saved(tmp_path):
    torch.manual_seed(0)
    tiny_text_unet().save_pretrained(tmp_path)
    assert isinstance(UNet2DConditionModel.from_pretrained(tmp_path), UNet2DConditionModel)
    tiny_unet().save_pretrained(tmp_path / "plain")
    assert isinstance(UNet2DModel.from_pretrained(tmp_path / "plain"), UNet2DModel)


def test_noise_level_changes_the_prediction_and_is_refused_where_unsupported():
    from legato.diffusion import DiffusionError, forward_network

    torch.manual_seed(0)
    sr = tiny_text_unet(in_channels=3, class_embed_type="timestep").eval()
    x, t, cond = image_inputs(1, text=text, low_res=low_res)(2)
    with torch.no_grad():
        low = forward_network(sr, x, t, cond.replace(noise_level=torch.tensor([0, 0])))
        high = forward_network(sr, x, t, cond.replace(noise_level=torch.tensor([200, 200])))
    assert not torch.allclose(low, high)
    with pytest.raises(DiffusionError, match="class_embed_type='timestep'"):
        forward_network(tiny_text_unet(), x[:, :1], t, Conditioning(text=cond.text, noise_level=t))


def test_dit_takes_other_sizes_and_starts_at_zero():
    dit = DiT(in_channels=2, hidden_size=32, depth=2, num_heads=2)
    out = dit(torch.randn(1, 2, 8, 24), torch.tensor([10])).sample
    assert out.shape == (1, 2, 8, 24)
    assert torch.equal(out, torch.zeros_like(out))  # adaLN-Zero: the output layer starts at zero
    with pytest.raises(ValueError, match="multiple of patch_size=2"):
        dit(torch.randn(1, 2, 7, 8), torch.tensor([10]))
