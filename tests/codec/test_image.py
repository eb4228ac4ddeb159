"""The image form on disk: PNGs that carry their own params."""

import numpy as np
import pytest
import torch
from PIL import Image

from legato.codec import (
    RIFFUSION,
    SMALL,
    CodecError,
    MelCodec,
    SpectrogramParams,
    load_mel_image,
    save_mel_image,
)


@pytest.mark.parametrize("bits", [8, 16])
def test_round_trip_params_and_quantisation(tmp_path, melody, bits):
    codec = MelCodec(SMALL)
    unit = codec.to_unit(codec.mel(melody))  # (1, 64, frames)
    path = save_mel_image(tmp_path / "m.png", unit, SMALL, bits=bits)
    image = load_mel_image(path)
    assert image.params == SMALL
    assert image.bits == bits
    assert image.reference is None
    assert image.unit.shape == unit.shape
    assert float((image.unit - unit).abs().max()) <= 0.5 / (2**bits - 1) + 1e-6


def test_layout_low_bands_at_the_bottom_and_brighter_is_louder(tmp_path):
    unit = torch.zeros(1, SMALL.n_mels, 5)
    unit[0, 0] = 1.0  # lowest band loud
    path = save_mel_image(tmp_path / "low.png", unit, SMALL)
    pixels = np.asarray(Image.open(path))
    assert pixels.shape == (SMALL.n_mels, 5)
    assert (pixels[-1] == 255).all()
    assert (pixels[:-1] == 0).all()


def test_per_item_reference_and_stereo_travel_in_the_png(tmp_path):
    codec = MelCodec(RIFFUSION)
    from legato.codec.testing import harmonic_notes

    stereo = torch.stack([harmonic_notes(0.5, 44_100, seed=s) for s in (1, 2)])
    mel = codec.mel(stereo)
    ref = codec.reference(mel)
    path = save_mel_image(tmp_path / "s.png", codec.to_unit(mel, ref), RIFFUSION, reference=ref, bits=16)
    image = load_mel_image(path)
    assert image.params == RIFFUSION
    assert torch.allclose(image.reference, ref.double())  # floats travel exactly as JSON
    back = codec.from_unit(image.unit, image.reference)
    loud = mel > 1e-3 * mel.amax()
    assert torch.allclose(back[loud], mel[loud], rtol=2e-3)


def test_params_json_round_trip_is_lossless():
    odd = SpectrogramParams(sample_rate=22_050, f_max=None, f_min=31.25, reference=None, compression="power")
    assert SpectrogramParams.from_json(odd.to_json()) == odd


def test_errors(tmp_path):
    unit = torch.rand(SMALL.n_mels, 8)
    with pytest.raises(CodecError, match="bits=12"):
        save_mel_image(tmp_path / "x.png", unit, SMALL, bits=12)
    with pytest.raises(CodecError, match=r"in \[0, 1\]"):
        save_mel_image(tmp_path / "x.png", unit * 2, SMALL)
    with pytest.raises(CodecError, match="n_mels=64"):
        save_mel_image(tmp_path / "x.png", torch.rand(10, 8), SMALL)
    with pytest.raises(CodecError, match=r"reference=codec\.reference"):
        save_mel_image(tmp_path / "x.png", torch.rand(RIFFUSION.n_mels, 8), RIFFUSION)
    assert list(tmp_path.iterdir()) == []
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(plain)
    with pytest.raises(CodecError, match="no Legato spectrogram metadata"):
        load_mel_image(plain)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(CodecError, match="not a readable PNG"):
        load_mel_image(junk)
