"""The Vocoder model: shapes, save/load through safetensors, parameter checks, and its loss."""

import pytest
import torch

from legato.codec import RIFFUSION, SMALL, CodecError, MelCodec
from legato.codec.inversion import Bands
from legato.codec.testing import harmonic_notes
from legato.codec.vocoder import Vocoder, spectral_loss


def tiny() -> Vocoder:
    torch.manual_seed(0)
    return Vocoder(SMALL.to_dict(), dim=32, hidden=64, layers=2).eval()


def test_shapes_and_save_load(tmp_path) -> None:
    vocoder = tiny()
    unit = torch.rand(2, 3, SMALL.n_mels, 40)
    with torch.no_grad():
        audio = vocoder(unit)
        assert audio.shape == (2, 3, 39 * SMALL.hop_length)
        assert vocoder(unit[0, 0], length=10_000).shape == (10_000,)
    vocoder.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    loaded = Vocoder.from_pretrained(tmp_path, low_cpu_mem_usage=False).eval()
    with torch.no_grad():
        assert torch.equal(loaded(unit), audio)
    assert loaded.params == SMALL


def test_refuses_other_spectrograms_and_bad_input() -> None:
    vocoder = tiny()
    with pytest.raises(CodecError, match="Griffin-Lim"):
        vocoder.check_params(SMALL.replace(n_mels=80))
    with pytest.raises(CodecError, match=r"\(\.\.\., 64, frames\)"):
        vocoder(torch.rand(1, 80, 10))
    with pytest.raises(CodecError, match="NaN"):
        vocoder(torch.full((1, 64, 10), float("nan")))


def test_spectral_loss_is_zero_for_the_reference_and_learns() -> None:
    audio = torch.stack([harmonic_notes(1.0, SMALL.sample_rate, seed=s) for s in range(4)])
    assert torch.allclose(spectral_loss(audio, audio), torch.zeros(4), atol=1e-6)
    codec, vocoder = MelCodec(SMALL), tiny().train()
    unit = codec.to_unit(codec.mel(audio))
    opt = torch.optim.Adam(vocoder.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = spectral_loss(audio, vocoder(unit, length=audio.shape[-1], refine=0)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("preset", ["small", "riffusion"])
def test_mel_consistency_brings_the_audio_to_the_mel_it_was_asked_for(preset) -> None:
    """Each round moves the output's own mel towards the image's (even for an untrained network), and the
    bands at the image's floor are left alone. A RIFFUSION vocoder (its own 1,764-point STFT, images with no
    loudness) runs its rounds in the mel's 17,640-point STFT, at the level the image's EXIF gives."""
    params = SMALL if preset == "small" else RIFFUSION.replace(n_mels=128)
    audio = torch.stack([harmonic_notes(0.5, params.sample_rate, seed=s) for s in range(2)])
    codec = MelCodec(params)
    torch.manual_seed(0)
    if preset == "small":
        vocoder = Vocoder(params.to_dict(), dim=32, hidden=64, layers=2).eval()
    else:
        vocoder = Vocoder(params.to_dict(), dim=32, hidden=64, layers=2, n_fft=1764, level=1.0).eval()
    mel = codec.mel(audio)
    level = codec.reference(mel) if params.reference is None else None
    unit = (codec.to_unit(mel) * 255).round() / 255
    errors = []
    with torch.no_grad():
        for rounds in (0, 1, 4):
            out = vocoder(unit, length=audio.shape[-1], refine=rounds, level=level)
            got = codec.to_unit(codec.mel(out), level)
            errors.append(float((got - unit)[unit > 1.5 / 255].abs().mean()))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.5 * errors[0], errors


def test_bands_are_the_filterbank_products() -> None:
    """`Bands` keeps a filterbank's non-zeros only; its two products equal the dense ones."""
    for params in (SMALL, RIFFUSION):
        fb = MelCodec(params).fb
        bands = Bands(fb)
        assert bands.index.shape[0] <= 2  # triangular filters overlap their neighbours only
        linear, ratio = torch.rand(2, fb.shape[0], 5), torch.rand(2, fb.shape[1], 5)
        torch.testing.assert_close(bands.mel(linear), (linear.transpose(-1, -2) @ fb).transpose(-1, -2))
        total = fb.sum(-1, keepdim=True)
        dense = torch.where(total > 1e-8, (fb @ ratio) / total.clamp_min(1e-8), torch.ones_like(ratio[:, :1]))
        torch.testing.assert_close(bands.spread(ratio), dense)
