"""Riffusion's spectrogram images: read and write its convention, so riffusion-model-v1's images become audio
and Legato's images feed Riffusion's tools.

Riffusion's convention (``riffusion.util.image_util`` and ``SpectrogramImageConverter``; the test builds its
images with the ``riffusion`` package itself): an RGB PNG, louder = darker (``255 - 255 u``, truncated to
uint8, the same value in R, G and B for mono), the lowest band at the bottom, where ``u = (S / max) ** power``
is the unit value of Legato's power-compressed presets (`legato.codec.RIFFUSION`). Its parameters and the
spectrogram's ``max`` ride in EXIF tags 11000-11080. Reading takes the R channel, as Riffusion does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from legato.codec.errors import CodecError
from legato.codec.image import MelImage, write_png
from legato.codec.params import RIFFUSION, SpectrogramParams

# Riffusion's EXIF tags (riffusion.spectrogram_params.SpectrogramParams.ExifTags)
SAMPLE_RATE, STEREO, STEP_SIZE_MS, WINDOW_MS, PADDED_MS = 11000, 11005, 11010, 11020, 11030
NUM_FREQUENCIES, MIN_FREQUENCY, MAX_FREQUENCY, POWER, MAX_VALUE = 11040, 11050, 11060, 11070, 11080
DEFAULT_MAX_VALUE = 30e6  # what Riffusion decodes with when an image carries no max (a model's output)


def unit_from_pixels(pixels: Tensor | np.ndarray) -> Tensor:
    """Riffusion-convention pixels -> Legato's unit mel ``(1, n_mels, frames)`` (row 0 the lowest band).

    ``pixels``: uint8 ``(H, W, 3)`` (a PNG's), or a float ``(3, H, W)`` image in [-1, 1] (a model's output,
    before quantisation)."""
    if isinstance(pixels, np.ndarray):
        if pixels.dtype != np.uint8 or pixels.ndim != 3:
            raise CodecError(f"expected uint8 (H, W, 3) pixels, got {pixels.dtype} {pixels.shape}")
        red = torch.from_numpy(pixels[:, :, 0].astype(np.float32)) / 255.0
    else:
        if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
            raise CodecError(f"expected a (3, H, W) image, got shape {tuple(pixels.shape)}")
        red = ((pixels[0].float() + 1) / 2).clamp(0, 1)
    return (1.0 - red).flip(0)[None].contiguous()


def riffusion_pixels(unit: Tensor) -> Tensor:
    """Legato's unit mel ``(1, n_mels, frames)`` -> the ``(3, H, W)`` image in [-1, 1] a Riffusion model makes
    and edits (unquantised; the inverse of `unit_from_pixels` on such an image)."""
    if unit.ndim != 3 or unit.shape[0] != 1:
        raise CodecError(f"expected a mono unit mel (1, n_mels, frames), got shape {tuple(unit.shape)}")
    red = (1.0 - unit[0].float().clamp(0, 1)).flip(0)
    return (red * 2 - 1)[None].repeat(3, 1, 1)


def pixels_from_unit(unit: Tensor) -> np.ndarray:
    """Legato's unit mel ``(1, n_mels, frames)`` or ``(n_mels, frames)`` -> Riffusion's uint8 ``(H, W, 3)``:
    ``255 - 255 u`` truncated, as ``image_from_spectrogram`` computes it (float32), lowest band at the bottom."""
    data = unit.detach().cpu().float().numpy()
    data = data[0] if data.ndim == 3 else data
    if data.ndim != 2:
        raise CodecError(f"expected a mono unit mel (1, n_mels, frames), got shape {tuple(unit.shape)}")
    gray = (np.float32(255) - data * np.float32(255)).astype(np.uint8)[::-1]
    return np.repeat(gray[:, :, None], 3, axis=2)


def exif_params(params: SpectrogramParams) -> dict[int, object]:
    """Riffusion's EXIF tags for ``params`` (a power-compressed preset with per-image max, like RIFFUSION)."""
    if params.compression != "power" or params.reference is not None:
        raise CodecError("Riffusion's images need power-compressed params with a per-image max (RIFFUSION)")
    ms = lambda n: round(n / params.sample_rate * 1000)  # noqa: E731
    return {SAMPLE_RATE: params.sample_rate, STEREO: False, STEP_SIZE_MS: ms(params.hop_length),
            WINDOW_MS: ms(params.win_length), PADDED_MS: ms(params.n_fft), NUM_FREQUENCIES: params.n_mels,
            MIN_FREQUENCY: int(params.f_min), MAX_FREQUENCY: int(params.f_max), POWER: float(params.exponent)}  # fmt: skip


def params_from_exif(exif: dict[int, object]) -> SpectrogramParams:
    """The `SpectrogramParams` an image's Riffusion EXIF tags describe (RIFFUSION where it has none)."""
    if SAMPLE_RATE not in exif:
        return RIFFUSION
    if exif.get(STEREO):
        raise CodecError("a stereo Riffusion image (G and B channels); Legato reads mono Riffusion images")
    rate = int(exif[SAMPLE_RATE])
    samples = lambda tag: int(float(exif[tag]) / 1000.0 * rate)  # noqa: E731 (Riffusion's int() rounding)
    return RIFFUSION.replace(sample_rate=rate, hop_length=samples(STEP_SIZE_MS), win_length=samples(WINDOW_MS),
                             n_fft=samples(PADDED_MS), n_mels=int(exif[NUM_FREQUENCIES]),
                             f_min=float(exif[MIN_FREQUENCY]), f_max=float(exif[MAX_FREQUENCY]),
                             exponent=float(exif[POWER]))  # fmt: skip


def save_riffusion_image(
    path: str | os.PathLike[str],
    unit: Tensor,
    params: SpectrogramParams = RIFFUSION,
    *,
    max_value: float | None = None,
) -> Path:
    """Write a unit mel as Riffusion writes a spectrogram image (atomically): RGB, inverted, its params and
    ``max_value`` (the spectrogram's max, `MelCodec.reference`) in EXIF."""
    dst = Path(path)
    if unit.shape[-2] != params.n_mels:
        raise CodecError(f"{dst}: unit has {unit.shape[-2]} bands, the params {params.n_mels}")
    image = Image.fromarray(pixels_from_unit(unit), mode="RGB")
    exif = image.getexif()
    exif.update(exif_params(params))
    if max_value is not None:
        exif[MAX_VALUE] = float(max_value)
    return write_png(dst, image, exif=exif)


def load_riffusion_image(path: str | os.PathLike[str]) -> MelImage:
    """Read an image in Riffusion's convention (a riffusion-model-v1 output, or one its converter wrote)."""
    src = Path(path)
    try:
        with Image.open(src) as image:
            exif = dict(image.getexif())
            pixels = np.asarray(image.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
        raise CodecError(f"{src}: not a readable image ({err})") from err
    params = params_from_exif(exif)
    if pixels.shape[0] != params.n_mels:
        raise CodecError(f"{src}: {pixels.shape[0]} rows, but its params have {params.n_mels} mel bands")
    reference = torch.tensor([float(exif.get(MAX_VALUE, DEFAULT_MAX_VALUE))], dtype=torch.float64)
    return MelImage(unit=unit_from_pixels(pixels), params=params, reference=reference, bits=8)


def is_riffusion_image(path: str | os.PathLike[str]) -> bool:
    """Whether an image carries Riffusion's EXIF tags."""
    try:
        with Image.open(path) as image:
            return SAMPLE_RATE in image.getexif()
    except (OSError, UnidentifiedImageError):
        return False
