"""Riffusion's image convention, checked against the riffusion package itself (installed --no-deps by
scripts/setup): its ``image_from_spectrogram`` and EXIF tags build the image, as its converter does."""

import numpy as np
import pytest
import torch
from PIL import Image

from legato.codec import (
    RIFFUSION,
    CodecError,
    MelCodec,
    load_mel_image,
    load_riffusion_image,
    save_riffusion_image,
)

image_util = pytest.importorskip(
    "riffusion.util.image_util", reason="scripts/setup installs riffusion --no-deps"
)
from riffusion.spectrogram_params import SpectrogramParams as RiffusionParams  # noqa: E402


def _audio(seconds=2.0, rate=44_100):
    t = torch.arange(int(seconds * rate)) / rate
    gen = torch.Generator().manual_seed(0)
    sweep = torch.sin(2 * np.pi * 300 * t * (1 + 0.5 * t))
    return (0.3 * torch.sin(2 * np.pi * 440 * t) + 0.2 * sweep + 0.01 * torch.randn(t.shape, generator=gen))[
        None
    ]


def _riffusion_png(path, spectrogram):
    """What SpectrogramImageConverter.spectrogram_image_from_audio writes for this spectrogram."""
    image = image_util.image_from_spectrogram(spectrogram, power=0.25)
    tags = RiffusionParams().to_exif()
    tags[RiffusionParams.ExifTags.MAX_VALUE.value] = float(np.max(spectrogram))
    exif = image.getexif()
    exif.update(tags.items())
    image.save(path, exif=exif)
    return image


def test_legato_reads_riffusion_images_and_writes_the_same_ones(tmp_path):
    codec = MelCodec(RIFFUSION)
    mel = codec.mel(_audio())
    spectrogram = mel.numpy().astype(np.float32)
    theirs = _riffusion_png(tmp_path / "riffusion.png", spectrogram)
    # the convention: RGB, louder = darker, lowest band at the bottom
    pixels = np.asarray(theirs)
    assert pixels.shape == (512, mel.shape[-1], 3)
    assert (pixels[..., 0] == pixels[..., 2]).all()
    loudest = np.unravel_index(np.argmax(spectrogram[0]), spectrogram[0].shape)
    assert pixels[511 - loudest[0], loudest[1], 0] == 0

    read = load_mel_image(tmp_path / "riffusion.png")  # Legato's reader recognises Riffusion's EXIF
    assert read.params == RIFFUSION
    assert float(read.reference[0]) == pytest.approx(float(spectrogram.max()))
    unit = codec.to_unit(mel)
    assert (read.unit - unit).abs().max() <= 1 / 255 + 1e-6  # uint8 truncation: under one level
    back = codec.from_unit(read.unit, read.reference)
    assert (back - mel).abs().max() / mel.max() < 0.03  # the power curve widens a level near silence

    save_riffusion_image(tmp_path / "legato.png", unit, max_value=float(spectrogram.max()))
    with Image.open(tmp_path / "legato.png") as ours:
        assert ours.mode == "RGB"
        assert np.array_equal(np.asarray(ours), pixels)
        assert {k: v for k, v in ours.getexif().items()} == {k: v for k, v in theirs.getexif().items()}
    # and Riffusion's reader reads Legato's image back to the spectrogram
    again = image_util.spectrogram_from_image(
        Image.open(tmp_path / "legato.png"), max_value=float(spectrogram.max())
    )
    assert np.abs(again - spectrogram).max() / spectrogram.max() < 0.03


def test_model_output_pixels_and_images_without_exif(tmp_path):
    unit = torch.rand(1, 512, 64)
    save_riffusion_image(tmp_path / "plain.png", unit)
    read = load_riffusion_image(tmp_path / "plain.png")  # no max value: Riffusion's default 30e6
    assert float(read.reference[0]) == 30e6
    assert (read.unit - unit).abs().max() <= 1 / 255 + 1e-6
    Image.fromarray(np.zeros((512, 8, 3), np.uint8)).save(tmp_path / "bare.png")
    with pytest.raises(CodecError, match="load_riffusion_image"):
        load_mel_image(tmp_path / "bare.png")
