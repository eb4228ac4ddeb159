"""What the pipelines return: objects that carry their data and prompt and save themselves.

``clip.save("x.wav")`` (or ``.flac``, ``.mp3``, ``.ogg``; ``.png`` writes the mel spectrogram image),
``video.save("x.mp4")`` (or ``.webm``, ``.gif``; the soundtrack goes in where the format carries audio).
Every file is written atomically by the codec and video I/O layers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from legato.codec import SpectrogramParams, save_mel_image, save_riffusion_image, write_audio
from legato.video import write_video


@dataclass(frozen=True, eq=False)
class AudioClip:
    """A generated clip: ``audio`` ``(C, N)`` in [-1, 1] at ``sample_rate``, its ``mel`` image form
    ``(C, n_mels, frames)`` in [0, 1], the prompt and seed that made it, and where it was mastered
    (`legato.codec.master`) its measured ``loudness_lufs`` and ``true_peak_dbtp``."""

    audio: Tensor
    sample_rate: int
    mel: Tensor
    params: SpectrogramParams
    prompt: str
    seed: int
    measured: dict | None = None

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the audio (format from the suffix), or the mel image for ``.png`` (in Riffusion's convention
        for params with a per-image level, which is Riffusion's: a model's image of them has no level)."""
        if Path(path).suffix.lower() == ".png":
            if self.params.reference is None:
                return save_riffusion_image(path, self.mel, self.params)
            return save_mel_image(path, self.mel, self.params)
        return write_audio(path, self.audio, self.sample_rate)


@dataclass(frozen=True, eq=False)
class Soundtrack:
    """Audio to mux under a video: ``audio`` ``(C, N)`` in [-1, 1] at ``sample_rate`` (an edited video keeps
    its source's)."""

    audio: Tensor
    sample_rate: int


@dataclass(frozen=True, eq=False)
class VideoClip:
    """A generated video: ``frames`` ``(C, T, H, W)`` in [0, 1] at ``fps``, an optional soundtrack (an
    `AudioClip` generated for it, or the `Soundtrack` of the video it was edited from), and the prompt and
    seed that made it."""

    frames: Tensor
    fps: float
    prompt: str
    seed: int
    soundtrack: AudioClip | Soundtrack | None = None

    def save(self, path: str | os.PathLike[str]) -> Path:
        audio = self.soundtrack
        return write_video(
            path,
            self.frames.transpose(0, 1),
            self.fps,
            audio=None if audio is None else audio.audio,
            sample_rate=None if audio is None else audio.sample_rate,
        )
