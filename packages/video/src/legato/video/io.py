"""Video files through PyAV: mp4 (H.264, yuv420p), webm (VP9) and gif, with an optional soundtrack.

Frames are float tensors in [0, 1]: ``(T, C, H, W)`` for one video, ``(B, C, T, H, W)`` for a batch (the
layout the video models produce; map a model's [-1, 1] output with ``(x + 1) / 2``). ``C`` is 3 (RGB) or 1
(gray). A soundtrack is a ``(C, N)`` float waveform in [-1, 1] (what legato.codec produces), muxed as AAC in
mp4 and Opus in webm; on reading it is cut to the picture's duration (AAC's 1024-sample priming stays at
its start, as no edit list marks it). Writes are atomic (legato.codec's `atomic_output`); every failure is a `VideoError`
naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import Tensor

from legato.codec import atomic_output, mux_audio, read_audio
from legato.codec.atomic import write_failure


class VideoError(ValueError):
    """Bad frames, a bad file or an unsupported format; the message names the file and the fix."""


@dataclass(frozen=True)
class VideoFormat:
    container: str
    codec: str
    pix_fmt: str
    audio_codec: str | None  # None: the container takes no sound
    even_size: bool  # 4:2:0 chroma needs even width and height


VIDEO_FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat("mp4", "libx264", "yuv420p", "aac", even_size=True),
    "webm": VideoFormat("webm", "libvpx-vp9", "yuv420p", "libopus", even_size=True),
    "gif": VideoFormat("gif", "gif", "rgb8", None, even_size=False),
}
_OPUS_RATES = (48_000, 24_000, 16_000, 12_000, 8_000)
_LAYOUTS = {1: "mono", 2: "stereo"}


@dataclass(frozen=True)
class Video:
    """A decoded video: ``frames`` ``(T, 3, H, W)`` in [0, 1], its ``fps``, and the soundtrack if any."""

    frames: Tensor
    fps: float
    audio: Tensor | None = None
    sample_rate: int | None = None


def write_video(
    path: str | os.PathLike[str],
    frames: Tensor,
    fps: float | Fraction,
    *,
    audio: Tensor | None = None,
    sample_rate: int | None = None,
    format: str | None = None,
    crf: int = 18,
) -> Path | list[Path]:
    """Encode ``frames`` to ``path`` (format from the suffix or ``format=``), atomically.

    A batch ``(B, C, T, H, W)`` writes B files, ``name-000.mp4``, ``name-001.mp4``, ..., and returns their
    paths (the same soundtrack, if given, goes into each).
    """
    import av  # here, not on import: a process that writes no file needs no FFmpeg

    dst = Path(path)
    name = (format or dst.suffix.lstrip(".")).lower()
    spec = VIDEO_FORMATS.get(name)
    if spec is None:
        raise VideoError(f"{dst}: cannot write video format {name!r}; use one of {sorted(VIDEO_FORMATS)}")
    if not isinstance(frames, Tensor) or frames.ndim not in (4, 5):
        shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise VideoError(f"{dst}: frames {shape}; pass (T, C, H, W) or a batch (B, C, T, H, W)")
    if frames.ndim == 5:
        stem, suffix = dst.with_suffix(""), dst.suffix or f".{name}"
        return [
            write_video(
                Path(f"{stem}-{i:03d}{suffix}"),
                clip.transpose(0, 1),
                fps,
                audio=audio,
                sample_rate=sample_rate,
                format=name,
                crf=crf,
            )
            for i, clip in enumerate(frames)
        ]
    pixels = _to_rgb24(frames, dst, spec)
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if not 0 < rate <= 240:
        raise VideoError(f"{dst}: fps={fps!r} must lie in (0, 240]")
    sound = _check_audio(audio, sample_rate, dst, spec)
    try:
        # bitexact: no random segment id (webm) or version strings in the file, only what the frames decide
        with (
            atomic_output(dst) as tmp,
            av.open(str(tmp), "w", format=spec.container, options={"fflags": "+bitexact"}) as container,
        ):
            stream = container.add_stream(spec.codec, rate=rate)
            stream.height, stream.width = pixels.shape[1:3]
            stream.pix_fmt = spec.pix_fmt
            if spec.codec == "libx264":
                # x264's macroblock tree reads memory it did not write on these small frames: the same frames
                # gave other bytes whenever the heap was reused (tests/video/test_io.py). Off, a file is a
                # function of its frames, as a job's byte-equal resume and executors need.
                stream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
            audio_stream = None
            if sound is not None:
                wave, out_rate = sound
                audio_stream = container.add_stream(spec.audio_codec, rate=out_rate)
                audio_stream.layout = _LAYOUTS[wave.shape[0]]
            for image in pixels:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode(None))
            if audio_stream is not None:
                supported = {f.name for f in audio_stream.codec_context.codec.audio_formats}
                fmt = "fltp" if "fltp" in supported else "flt"  # AAC takes planar float, Opus packed
                mux_audio(container, audio_stream, wave, fmt, out_rate)
    except (av.FFmpegError, OSError) as err:
        raise write_failure(dst, err) or VideoError(f"{dst}: encoding {name} failed ({err})") from err
    return dst


def read_video(path: str | os.PathLike[str], *, with_audio: bool = True) -> Video:
    """Decode the first video stream (and the first audio stream, if any) of ``path``."""
    import av  # here, not on import: a process that writes no file needs no FFmpeg

    src = Path(path)
    if not src.is_file():
        raise VideoError(f"{src}: no such file")
    if src.stat().st_size == 0:
        raise VideoError(f"{src}: the file is empty (0 bytes)")
    try:
        with av.open(str(src)) as container:
            if not container.streams.video:
                raise VideoError(f"{src}: has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.guessed_rate or stream.average_rate or 0)
            images = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        audio, rate = (read_soundtrack(src) if with_audio else None) or (None, None)
    except VideoError:
        raise
    except (av.FFmpegError, ValueError) as err:  # CodecError is a ValueError
        raise VideoError(
            f"{src}: cannot be decoded as video ({err}); the file is corrupt or not a video"
        ) from err
    if not images:
        raise VideoError(f"{src}: holds a video stream with no frames")
    frames = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    if audio is not None and fps > 0:
        # Encoders pad the soundtrack to whole codec frames (and AAC adds 1024 samples of priming, which
        # PyAV's mp4 muxer does not mark): cut what runs past the picture.
        audio = audio[:, : round(len(images) / fps * rate)]
    return Video(frames=frames, fps=fps, audio=audio, sample_rate=rate)


def read_soundtrack(path: str | os.PathLike[str]) -> tuple[Tensor, int] | None:
    """The first audio stream of a video file ``(C, N)`` and its sample rate, without decoding the picture;
    None where the file has no audio."""
    import av  # here, not on import: a process that writes no file needs no FFmpeg

    src = Path(path)
    try:
        with av.open(str(src)) as container:
            has_audio = bool(container.streams.audio)
        return read_audio(src) if has_audio else None  # the codec's one audio decoder
    except (av.FFmpegError, ValueError) as err:  # CodecError is a ValueError
        raise VideoError(f"{src}: cannot be decoded as a soundtrack ({err})") from err


def _to_rgb24(frames: Tensor, dst: Path, spec: VideoFormat) -> np.ndarray:
    t, c, h, w = frames.shape
    if c not in (1, 3):
        raise VideoError(
            f"{dst}: frames have {c} channels (shape {tuple(frames.shape)}); pass 3 (RGB) or 1 (gray)"
        )
    if t == 0 or h == 0 or w == 0:
        raise VideoError(f"{dst}: frames of shape {tuple(frames.shape)} hold nothing; nothing was written")
    if spec.even_size and (h % 2 or w % 2):
        raise VideoError(
            f"{dst}: {spec.container} ({spec.codec}, {spec.pix_fmt}) needs an even width and height, got {w}x{h}; "
            "crop or pad by one pixel, or write gif"
        )
    data = frames.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(data).all()):
        raise VideoError(f"{dst}: frames hold NaN/Inf values; nothing was written")
    if c == 1:
        data = data.expand(t, 3, h, w)
    return (data.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _check_audio(
    audio: Tensor | None, sample_rate: int | None, dst: Path, spec: VideoFormat
) -> tuple[np.ndarray, int] | None:
    if audio is None:
        return None
    if spec.audio_codec is None:
        raise VideoError(f"{dst}: {spec.container} cannot carry sound; write mp4 or webm for a soundtrack")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise VideoError(f"{dst}: a soundtrack needs sample_rate= (a positive integer), got {sample_rate!r}")
    wave = audio.detach().to("cpu", torch.float32)
    wave = wave[None] if wave.ndim == 1 else wave
    if wave.ndim != 2 or wave.shape[0] not in _LAYOUTS or wave.shape[1] == 0:
        raise VideoError(f"{dst}: soundtrack of shape {tuple(audio.shape)}; pass (1 or 2, N) with N > 0")
    if not bool(torch.isfinite(wave).all()):
        raise VideoError(f"{dst}: the soundtrack holds NaN/Inf samples")
    rate = sample_rate
    if spec.audio_codec == "libopus" and rate not in _OPUS_RATES:
        wave, rate = (
            torchaudio.functional.resample(wave, rate, 48_000),
            48_000,
        )  # Opus takes 48 kHz and divisors
    return np.ascontiguousarray(wave.clamp(-1, 1).numpy()), rate
