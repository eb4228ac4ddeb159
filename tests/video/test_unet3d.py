"""UNet3D: the shared model contract, identity start, more frames than trained, and the one sampling loop."""

import pytest
import torch
from diffusers import DDIMScheduler, UNet3DConditionModel

from legato.diffusion import Conditioning, Denoiser, DiffusionError, generators, randn, sample
from legato.video import UNet3D
from legato.video.models.unet3d import pooled_text


def small(**overrides) -> UNet3D:
    config = dict(
        in_channels=3, block_out_channels=(16, 32), attention_levels=(False, True), heads=2, norm_groups=8
    )
    return UNet3D(**{**config, **overrides})


def video_inputs(frames: int = 4, size: int = 8, channels: int = 3, **fields):
    def make(batch: int):
        gen = torch.Generator().manual_seed(batch)
        x = torch.randn(batch, channels, frames, size, size, generator=gen)
        t = torch.randint(0, 1000, (batch,), generator=gen)
        return x, t, Conditioning(**{k: f(batch, gen) for k, f in fields.items()})

    return make


def image_inputs(batch: int):
    gen = torch.Generator().manual_seed(batch)
    return (
        torch.randn(batch, 3, 8, 8, generator=gen),
        torch.randint(0, 1000, (batch,), generator=gen),
        Conditioning(),
    )


CASES = {
    "video": (lambda: small(), video_inputs(), 3),
    "video-text-fps-sr": (
        lambda: small(
            cond_channels=3, cross_attention_dim=24, fps_conditioning=True, noise_level_conditioning=True
        ),
        video_inputs(
            text=lambda b, g: torch.randn(b, 5, 24, generator=g),
            fps=lambda b, g: torch.full((b,), 8.0),
            low_res=lambda b, g: torch.randn(b, 3, 4, 8, 8, generator=g),
            noise_level=lambda b, g: torch.randint(0, 250, (b,), generator=g),
        ),
        3,
    ),
    "image-skip-time": (lambda: small(), image_inputs, 3),
    "video-pooled-text": (
        lambda: small(cross_attention_dim=24, pooled_text_conditioning=True),
        video_inputs(text=lambda b, g: torch.randn(b, 5, 24, generator=g)),
        3,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_contract(case, model_contract, tmp_path):
    make, inputs, out_channels = CASES[case]
    model_contract(make, inputs, out_channels, tmp_path)


def test_a_fresh_model_treats_each_frame_as_an_image():
    # Temporal convs start as the identity and temporal attention's output at zero (Ho et al. 2022).
    torch.manual_seed(0)
    net = small().eval()
    x, t, _ = video_inputs()(2)
    with torch.no_grad():
        joint = net(x, t).sample
        per_frame = net(x, t, skip_time=True).sample
        frame_2 = net(x[:, :, 2], t).sample  # a 4-D image through the skip-time path
    assert torch.allclose(joint, per_frame, atol=1e-5)
    assert torch.allclose(joint[:, :, 2], frame_2, atol=1e-5)


def test_pooled_text_starts_as_the_model_without_it_and_then_reads_the_prompt():
    torch.manual_seed(0)
    plain = small(cross_attention_dim=24).eval()
    pooled = small(cross_attention_dim=24, pooled_text_conditioning=True).eval()
    missing, unexpected = pooled.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected
    assert sorted(missing) == [f"text_embed.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")]
    x, t, _ = video_inputs()(2)
    text = torch.randn(2, 5, 24)
    with torch.no_grad():
        assert torch.equal(pooled(x, t, text).sample, plain(x, t, text).sample)
        torch.nn.init.normal_(pooled.text_embed[2].weight, std=0.1)
        changed = pooled(x, t, text).sample
    assert not torch.allclose(changed, plain(x, t, text).sample, atol=1e-4)


def test_pooled_text_leaves_the_zero_padding_out():
    text = torch.zeros(2, 6, 4)
    text[0, :2] = torch.tensor([[1.0, 2, 3, 4], [3, 2, 1, 0]])
    assert torch.equal(pooled_text(text), torch.tensor([[2.0, 2, 2, 2], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="cross_attention_dim"):
        small(pooled_text_conditioning=True)


def test_trained_on_four_frames_samples_eight():
    torch.manual_seed(0)
    net = small()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, t, _ = video_inputs(frames=4)(2)
    for _ in range(3):  # a few steps so that temporal layers are no longer the identity
        loss = torch.nn.functional.mse_loss(net(x, t).sample, torch.randn_like(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    noise = randn((1, 3, 8, 8, 8), generators([3]))
    out = sample(Denoiser(net.eval()), DDIMScheduler(), noise, steps=4)
    assert out.shape == (1, 3, 8, 8, 8)
    assert bool(torch.isfinite(out).all())


def test_diffusers_unet3d_condition_model_samples_as_a_legato_video_denoiser():
    torch.manual_seed(0)
    zeroscope_like = UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=16, attention_head_dim=8, norm_num_groups=16,
    ).eval()  # fmt: skip
    text = torch.randn(2, 3, 16)
    noise = randn((2, 4, 3, 8, 8), generators([1, 2]))
    out = sample(Denoiser(zeroscope_like), DDIMScheduler(), noise, steps=3, cond=Conditioning(text=text))
    assert out.shape == (2, 4, 3, 8, 8)
    assert bool(torch.isfinite(out).all())


def test_fields_a_network_cannot_take_are_refused():
    with pytest.raises(DiffusionError, match=r"no input for conditioning\.labels"):
        sample(Denoiser(small()), DDIMScheduler(), torch.randn(1, 3, 2, 8, 8), steps=2,
               cond=Conditioning(labels=torch.zeros(1, dtype=torch.long)))  # fmt: skip
    with pytest.raises(ValueError, match="fps_conditioning=True"):
        small()(torch.randn(1, 3, 2, 8, 8), torch.tensor([1]), fps=torch.tensor([8.0]))


@pytest.mark.parametrize("name", ["ddim", "euler", "dpm++"])
def test_frame_conditioning_and_per_frame_inpainting_are_options_of_the_one_loop(name):
    # Extend a clip: keep its first 2 frames, generate the other 4. Inpaint: a region in some frames only.
    from legato.diffusion import make_scheduler

    torch.manual_seed(0)
    denoiser = Denoiser(small().eval())
    known = torch.rand(2, 3, 6, 8, 8) * 2 - 1
    noise = randn(known.shape, generators([1, 2]))
    first_frames = torch.ones(1, 1, 6, 1, 1)
    first_frames[:, :, :2] = 0  # 0: keep, 1: generate
    out = sample(denoiser, make_scheduler(name), noise, steps=4, mask=first_frames, known=known)
    assert torch.equal(out[:, :, :2], known[:, :, :2])
    assert not torch.allclose(out[:, :, 2:], known[:, :, 2:], atol=1e-2)

    region = torch.zeros(2, 1, 6, 8, 8)
    region[:, :, 3:, 2:6, 2:6] = 1  # a square in the last three frames
    out = sample(denoiser, make_scheduler(name), noise, steps=4, mask=region, known=known)
    assert torch.equal(out[region.expand_as(out) == 0], known[region.expand_as(known) == 0])
