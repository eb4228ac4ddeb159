"""Audio files through PyAV (FFmpeg): read anything FFmpeg decodes, write the formats in `AUDIO_FORMATS`.

Waveforms are float32 tensors ``(C, N)`` in [-1, 1]. Writes are atomic; every failure is a `CodecError`
that names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from legato.codec.atomic import atomic_output, write_failure
from legato.codec.errors import CodecError

if TYPE_CHECKING:
    import av

_CHUNK = 16_384  # samples per frame handed to the encoder (PyAV re-blocks to the codec's frame size)
_MAX_CHANNELS = 8
# FFmpeg's default layout for each channel count (av.AudioLayout takes names, not counts).
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True)
class AudioFormat:
    """How one output format is written: container, encoder, the encoder's sample format and limits."""

    container: str
    codec: str
    sample_format: str  # the encoder's input format; planar formats end in "p"
    lossless: bool
    exact_channels: int | None = None  # the encoder only takes this many channels (others are up/down-mixed)
    options: tuple[tuple[str, str], ...] = ()

    def rates(self) -> tuple[int, ...] | None:
        """Sample rates the encoder supports, or None for any."""
        import av  # here, not on import: a process that writes no file needs no FFmpeg

        return av.codec.Codec(self.codec, "w").audio_rates or None


AUDIO_FORMATS: dict[str, AudioFormat] = {
    "wav": AudioFormat("wav", "pcm_s16le", "s16", lossless=True),
    "flac": AudioFormat("flac", "flac", "s16", lossless=True),
    "mp3": AudioFormat("mp3", "libmp3lame", "fltp", lossless=False),
    # FFmpeg's own Vorbis encoder (the wheel has no libvorbis) is stereo-only and flagged experimental:
    # mono is written as two identical channels and reads back as such.
    "ogg": AudioFormat(
        "ogg", "vorbis", "fltp", lossless=False, exact_channels=2, options=(("strict", "-2"),)
    ),
    "opus": AudioFormat("ogg", "libopus", "flt", lossless=False),
    "m4a": AudioFormat("mp4", "aac", "fltp", lossless=False),
}


def read_audio(
    path: str | os.PathLike[str], *, sample_rate: int | None = None, channels: int | None = None
) -> tuple[Tensor, int]:
    """Decode the first audio stream of ``path`` into a float32 ``(C, N)`` tensor.

    Args:
        sample_rate: resample to this rate (libswresample); ``None`` keeps the file's.
        channels: mix to this many channels: 1 averages the channels, a mono source is copied to every
            channel, other changes follow FFmpeg's standard layout mixing. ``None`` keeps the file's.
    Returns:
        ``(waveform, sample_rate)``.
    """
    import av  # here, not on import: a process that writes no file needs no FFmpeg

    src = Path(path)
    _check_positive("sample_rate", sample_rate)
    _check_positive("channels", channels)
    if channels is not None and channels > _MAX_CHANNELS:
        raise CodecError(f"channels={channels} is above {_MAX_CHANNELS}; ask for 1 (mono) or 2 (stereo)")
    if not src.is_file():
        raise CodecError(f"{src}: no such file")
    if src.stat().st_size == 0:
        raise CodecError(f"{src}: the file is empty (0 bytes); it was never written or was truncated")
    try:
        with av.open(str(src), metadata_errors="ignore") as container:
            if not container.streams.audio:
                kinds = [s.type for s in container.streams] or ["none"]
                raise CodecError(f"{src}: has no audio stream (streams: {', '.join(kinds)})")
            stream = container.streams.audio[0]
            if stream.codec_context is None:  # FFmpeg has no decoder for these samples (48-bit PCM, say)
                raise CodecError(
                    f"{src}: its audio cannot be decoded (FFmpeg has no decoder for it); convert it to 16- or "
                    "24-bit PCM WAV, FLAC or MP3"
                )
            rate = sample_rate or stream.codec_context.sample_rate
            n_in = stream.codec_context.channels
            # Channel changes to or from mono are done below, explicitly; others are left to swresample.
            keep = channels is None or channels == 1 or n_in == 1
            layout = stream.layout if keep else _LAYOUTS[channels]
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = []
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples; some demuxers give unusable pts
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    except CodecError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise CodecError(
            f"{src}: cannot be decoded as audio ({err}); the file is corrupt or not audio"
        ) from err
    chunks = [c for c in chunks if c.shape[-1]]
    if not chunks:
        raise CodecError(f"{src}: holds an audio stream with no samples")
    waveform = torch.from_numpy(np.concatenate(chunks, axis=-1).astype(np.float32, copy=False))
    if channels == 1 and waveform.shape[0] > 1:
        waveform = waveform.mean(dim=0, keepdim=True)
    elif channels is not None and waveform.shape[0] == 1 and channels > 1:
        waveform = waveform.expand(channels, -1).contiguous()
    return waveform, rate


def write_audio(
    path: str | os.PathLike[str],
    waveform: Tensor,
    sample_rate: int,
    *,
    format: str | None = None,
    bit_rate: int | None = None,
) -> Path:
    """Encode a ``(C, N)`` (or ``(N,)`` mono) float waveform in [-1, 1] to ``path``, atomically.

    The format comes from ``format`` or the file suffix and must be one of `AUDIO_FORMATS`. Samples beyond
    [-1, 1] are clipped. Returns the written path.
    """
    import av  # here, not on import: a process that writes no file needs no FFmpeg

    dst = Path(path)
    name = (format or dst.suffix.lstrip(".")).lower()
    spec = AUDIO_FORMATS.get(name)
    if spec is None:
        raise CodecError(
            f"{dst}: cannot write audio format {name!r}; use one of {sorted(AUDIO_FORMATS)} "
            "(chosen by the file suffix or format=)"
        )
    data = _check_waveform(waveform, dst)
    _check_positive("sample_rate", sample_rate)
    rates = spec.rates()
    if rates is not None and sample_rate not in rates:
        raise CodecError(
            f"{dst}: {name} cannot store sample_rate={sample_rate}; it supports {sorted(rates)}. "
            "Resample first (e.g. torchaudio.functional.resample) or write wav/flac"
        )
    if spec.exact_channels is not None and data.shape[0] != spec.exact_channels:
        data = _mix(data, spec.exact_channels, dst, name)
    samples = np.ascontiguousarray(data.clamp(-1.0, 1.0).numpy())
    if spec.sample_format.startswith("s16"):
        samples = np.round(samples * 32767.0).astype(np.int16)
    n_channels = samples.shape[0]
    try:
        with atomic_output(dst) as tmp, av.open(str(tmp), "w", format=spec.container) as container:
            stream = container.add_stream(spec.codec, rate=sample_rate)
            stream.layout = _LAYOUTS[n_channels]
            if bit_rate is not None:
                stream.bit_rate = bit_rate
            if spec.options:
                stream.codec_context.options = dict(spec.options)
            mux_audio(container, stream, samples, spec.sample_format, sample_rate)
    except (av.FFmpegError, OSError) as err:
        raise write_failure(dst, err) or CodecError(f"{dst}: encoding {name} failed ({err})") from err
    return dst


def mux_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    samples: np.ndarray,
    sample_format: str,
    sample_rate: int,
) -> None:
    """Encode ``(C, N)`` samples (already of ``sample_format``'s dtype) into an open audio stream, then flush it.

    Planar formats (ending in "p") take ``(C, n)`` frames; packed ones interleave the channels. Shared by
    `write_audio` and legato.video's soundtracks.
    """
    import av  # here, not on import: a process that writes no file needs no FFmpeg

    planar = sample_format.endswith("p")
    for start in range(0, samples.shape[1], _CHUNK):
        block = samples[:, start : start + _CHUNK]
        array = block if planar else block.T.reshape(1, -1)  # packed formats interleave channels
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(array), format=sample_format, layout=stream.layout.name
        )
        frame.sample_rate = sample_rate
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise CodecError(f"{name}={value!r} must be a positive integer (or None to keep the file's)")


def _check_waveform(waveform: Tensor, dst: Path) -> Tensor:
    if not isinstance(waveform, Tensor):
        raise CodecError(f"{dst}: waveform must be a torch.Tensor (C, N), got {type(waveform).__name__}")
    data = waveform.detach().to("cpu")
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2:
        raise CodecError(f"{dst}: waveform has shape {tuple(waveform.shape)}; pass (C, N) or (N,)")
    if not data.is_floating_point():
        raise CodecError(f"{dst}: waveform has dtype {data.dtype}; pass float samples in [-1, 1]")
    c, n = data.shape
    if not 1 <= c <= _MAX_CHANNELS:
        raise CodecError(
            f"{dst}: waveform has {c} channels (shape {tuple(waveform.shape)}); pass (C, N) with "
            f"1 <= C <= {_MAX_CHANNELS} (a (N, C) array needs .T)"
        )
    if n == 0:
        raise CodecError(f"{dst}: waveform holds no samples; nothing was written")
    if not bool(torch.isfinite(data).all()):
        raise CodecError(f"{dst}: waveform holds NaN/Inf samples; nothing was written (clean it first)")
    return data.float()


def _mix(data: Tensor, channels: int, dst: Path, name: str) -> Tensor:
    """Fit ``(C, N)`` to an encoder that takes exactly ``channels``: copy mono out, or average down to mono."""
    if data.shape[0] == 1:
        return data.expand(channels, -1).contiguous()
    if channels == 1:
        return data.mean(dim=0, keepdim=True)
    raise CodecError(
        f"{dst}: {name} takes exactly {channels} channels, the waveform has {data.shape[0]}; "
        f"mix it to {channels} first or write wav/flac"
    )
