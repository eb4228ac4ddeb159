"""The image form on disk: a mel spectrogram as a grayscale PNG that carries its own `SpectrogramParams`.

Layout: mel bands run bottom (lowest) to top (highest), time left to right, brighter is louder. A
multi-channel spectrogram ``(C, n_mels, frames)`` stacks its channels top to bottom (channel 0 on top).
The PNG's text chunks hold the params as JSON, the per-channel reference level and the bit depth, so the
image alone is enough to get audio back.

Quantisation: a unit value ``u`` is stored as ``round(u * (2**bits - 1))``, so the error is at most
``0.5 / (2**bits - 1)`` in unit terms: 1/510 at 8 bits, 1/131070 at 16 bits. With the "db" compression that
is ``dynamic_range_db / 510`` decibels (0.157 dB for an 80 dB range) at 8 bits.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin, UnidentifiedImageError
from torch import Tensor

from legato.codec.atomic import atomic_output, write_failure
from legato.codec.errors import CodecError
from legato.codec.params import SpectrogramParams

_KEY_PARAMS = "legato:spectrogram_params"
_KEY_REFERENCE = "legato:reference"
_KEY_CHANNELS = "legato:channels"
_KEY_BITS = "legato:bits"


@dataclass(frozen=True)
class MelImage:
    """A decoded spectrogram image: ``unit`` ``(C, n_mels, frames)`` in [0, 1], its params and reference.

    ``reference`` is ``(C,)``, or None where the params fix it.
    """

    unit: Tensor
    params: SpectrogramParams
    reference: Tensor | None
    bits: int


def save_mel_image(
    path: str | os.PathLike[str],
    unit: Tensor,
    params: SpectrogramParams,
    *,
    reference: Tensor | float | None = None,
    bits: int = 8,
) -> Path:
    """Write ``unit`` (``(n_mels, frames)`` or ``(C, n_mels, frames)``, values in [0, 1]) as a PNG, atomically.

    ``reference`` is required when ``params.reference`` is None (per-item levels): pass ``codec.reference(mel)``.
    """
    dst = Path(path)
    if bits not in (8, 16):
        raise CodecError(f"{dst}: bits={bits!r}; a mel image is 8- or 16-bit grayscale")
    if unit.ndim == 2:
        unit = unit[None]
    if unit.ndim != 3 or unit.shape[1] != params.n_mels:
        raise CodecError(
            f"{dst}: unit has shape {tuple(unit.shape)}; expected (n_mels={params.n_mels}, frames) or "
            f"(C, {params.n_mels}, frames)"
        )
    data = unit.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(data).all()) or bool((data < 0).any()) or bool((data > 1).any()):
        raise CodecError(f"{dst}: unit values must be finite and in [0, 1]; pass codec.to_unit(mel)")
    channels = data.shape[0]
    if params.reference is None:
        if reference is None:
            raise CodecError(
                f"{dst}: these params use per-item reference levels; pass reference=codec.reference(mel)"
            )
        ref = torch.as_tensor(reference, dtype=torch.float64).reshape(-1)
        if ref.numel() == 1:
            ref = ref.expand(channels)
        if ref.numel() != channels or not bool(torch.isfinite(ref).all()) or not bool((ref > 0).all()):
            raise CodecError(
                f"{dst}: reference must hold {channels} positive finite value(s), got {reference!r}"
            )
        ref_text = json.dumps([float(r) for r in ref])
    else:
        ref_text = "null"

    top = float(2**bits - 1)
    levels = np.rint(data.numpy() * top)
    pixels = np.concatenate(
        [np.flipud(c) for c in levels], axis=0
    )  # low bands at the bottom, channels stacked
    image = Image.fromarray(pixels.astype(np.uint8 if bits == 8 else np.uint16))
    info = PngImagePlugin.PngInfo()
    info.add_text(_KEY_PARAMS, params.to_json())
    info.add_text(_KEY_REFERENCE, ref_text)
    info.add_text(_KEY_CHANNELS, str(channels))
    info.add_text(_KEY_BITS, str(bits))
    return write_png(dst, image, pnginfo=info)


def write_png(dst: Path, image: Image.Image, **save: object) -> Path:
    """``image`` written to ``dst`` as a PNG, atomically (``save``: PIL's options, e.g. ``pnginfo``, ``exif``);
    a failed write names the file and the fix."""
    try:
        with atomic_output(dst) as tmp:
            image.save(tmp, format="PNG", **save)
    except OSError as err:
        raise write_failure(dst, err) or err from err
    return dst


def load_mel_image(path: str | os.PathLike[str]) -> MelImage:
    """Read a PNG written by `save_mel_image` back into a `MelImage`."""
    src = Path(path)
    if not src.is_file():
        raise CodecError(f"{src}: no such file")
    try:
        with Image.open(src) as image:
            image.load()
            text = dict(image.text) if hasattr(image, "text") else {}
            pixels = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise CodecError(f"{src}: not a readable PNG ({err})") from err
    missing = [k for k in (_KEY_PARAMS, _KEY_REFERENCE, _KEY_CHANNELS, _KEY_BITS) if k not in text]
    if missing:
        from legato.codec.riffusion import is_riffusion_image, load_riffusion_image

        if is_riffusion_image(src):  # Riffusion's convention: its params in EXIF
            return load_riffusion_image(src)
        raise CodecError(
            f"{src}: has no Legato spectrogram metadata ({', '.join(missing)} missing); "
            "only images written by save_mel_image carry the params needed to get audio back. An image in "
            "Riffusion's convention without its EXIF tags (a riffusion-model-v1 output) reads with "
            "legato.codec.load_riffusion_image"
        )
    params = SpectrogramParams.from_json(text[_KEY_PARAMS])
    try:
        channels, bits = int(text[_KEY_CHANNELS]), int(text[_KEY_BITS])
        ref_values = json.loads(text[_KEY_REFERENCE])
    except ValueError as err:
        raise CodecError(f"{src}: its Legato metadata is damaged ({err})") from err
    if pixels.ndim != 2 or pixels.shape[0] != channels * params.n_mels:
        raise CodecError(
            f"{src}: image of shape {pixels.shape} does not hold {channels} x {params.n_mels} mel rows"
        )
    unit = torch.from_numpy(pixels.astype(np.float32) / float(2**bits - 1))
    unit = unit.reshape(channels, params.n_mels, -1).flip(-2).contiguous()
    reference = None if ref_values is None else torch.tensor(ref_values, dtype=torch.float64)
    return MelImage(unit=unit, params=params, reference=reference, bits=bits)
