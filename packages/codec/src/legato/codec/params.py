"""`SpectrogramParams`: everything that fixes how audio becomes a mel "image" and back.

A frozen dataclass, serialisable to JSON (it travels inside PNG metadata and model configs), validated on
construction so that a bad value fails where it was written rather than deep inside an STFT.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from legato.codec.errors import CodecError

Window = Literal["hann", "hamming", "blackman"]
MelScale = Literal["htk", "slaney"]
Compression = Literal["db", "power"]

_MAX_N_FFT = 1 << 16  # 65536 samples: beyond this an STFT frame is over a second long at 44.1 kHz
_MAX_SAMPLE_RATE = 384_000


@dataclass(frozen=True)
class SpectrogramParams:
    """How audio maps to a mel spectrogram and to its unit-range image form.

    STFT: ``n_fft``-point frames of ``win_length`` samples (``window``), every ``hop_length`` samples,
    centred (frame ``k`` is centred on sample ``k * hop_length``). Magnitudes are raised to ``power``
    (1: amplitude, 2: power) and mapped onto ``n_mels`` bands between ``f_min`` and ``f_max`` on the
    ``mel_scale``, with ``mel_norm`` ("slaney": each filter has unit area, as librosa's default).

    Image form (values in [0, 1], what diffusion models see):
      - ``compression="db"``: ``1 + (dB(mel) - dB(reference)) / dynamic_range_db``, clipped to [0, 1],
        where dB is amplitude decibels (``20 / power * log10``): the top ``dynamic_range_db`` below the
        reference are kept.
      - ``compression="power"``: ``(mel / reference) ** exponent``, clipped (Riffusion's power curve).
      ``reference=None`` uses each item's own maximum (Riffusion's choice; the value then travels with the
      item, e.g. in the PNG metadata); a number fixes it for all items (what models trained on absolute
      levels want).
    """

    sample_rate: int = 16_000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    window: Window = "hann"
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = 8_000.0
    mel_scale: MelScale = "slaney"
    mel_norm: Literal["slaney"] | None = "slaney"
    power: float = 2.0
    compression: Compression = "db"
    reference: float | None = 1.0
    dynamic_range_db: float = 80.0
    exponent: float = 0.25

    def __post_init__(self) -> None:
        def bad(name: str, rule: str, fix: str) -> CodecError:
            return CodecError(f"SpectrogramParams.{name}={getattr(self, name)!r}: {rule}; {fix}")

        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise bad(name, "must be a positive integer", "pass e.g. the value of a preset in PRESETS")
        if self.sample_rate > _MAX_SAMPLE_RATE:
            raise bad(
                "sample_rate", f"is above {_MAX_SAMPLE_RATE} Hz", "use an audio rate such as 16000 or 44100"
            )
        if self.n_fft > _MAX_N_FFT:
            raise bad("n_fft", f"is above {_MAX_N_FFT}", "use a frame of at most a second or so")
        if self.win_length > self.n_fft:
            raise bad("win_length", f"is longer than n_fft={self.n_fft}", "set win_length <= n_fft")
        if self.hop_length > self.win_length:
            raise bad(
                "hop_length",
                f"is longer than win_length={self.win_length}, so samples between frames are never seen",
                "set hop_length <= win_length (a quarter of it is usual)",
            )
        if self.n_mels > 4096:
            raise bad("n_mels", "is above 4096", "use at most a few hundred mel bands")
        nyquist = self.sample_rate / 2
        f_max = self.f_max if self.f_max is not None else nyquist
        if not (math.isfinite(self.f_min) and self.f_min >= 0):
            raise bad("f_min", "must be a finite frequency >= 0 Hz", "use 0.0 or a low cut such as 20.0")
        if not (math.isfinite(f_max) and self.f_min < f_max <= nyquist):
            raise bad(
                "f_max",
                f"must lie in (f_min={self.f_min}, sample_rate/2={nyquist}]",
                "lower it to at most half the sample rate, or pass None for sample_rate/2",
            )
        if self.window not in ("hann", "hamming", "blackman"):
            raise bad("window", "is not one of 'hann', 'hamming', 'blackman'", "pick one of those")
        if self.mel_scale not in ("htk", "slaney"):
            raise bad("mel_scale", "is not 'htk' or 'slaney'", "pick one of those")
        if self.mel_norm not in (None, "slaney"):
            raise bad("mel_norm", "is not None or 'slaney'", "pick one of those")
        if self.power not in (1.0, 2.0):
            raise bad("power", "must be 1.0 (amplitude) or 2.0 (power)", "pick one of those")
        if self.compression not in ("db", "power"):
            raise bad("compression", "is not 'db' or 'power'", "pick one of those")
        if self.reference is not None and not (math.isfinite(self.reference) and self.reference > 0):
            raise bad("reference", "must be a positive finite number or None", "use None for per-item maxima")
        if not (math.isfinite(self.dynamic_range_db) and 1 <= self.dynamic_range_db <= 200):
            raise bad("dynamic_range_db", "must lie in [1, 200] dB", "80.0 is usual")
        if not (math.isfinite(self.exponent) and 0 < self.exponent <= 1):
            raise bad("exponent", "must lie in (0, 1]", "Riffusion uses 0.25")

    # -- derived sizes -------------------------------------------------------------------------------

    @property
    def n_freqs(self) -> int:
        """Number of linear-frequency STFT bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT over ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def num_samples(self, num_frames: int) -> int:
        """Samples covered by ``num_frames`` frames (the inverse of `num_frames` up to one hop)."""
        return (num_frames - 1) * self.hop_length

    def seconds(self, num_frames: int) -> float:
        return num_frames * self.hop_length / self.sample_rate

    def replace(self, **changes: Any) -> SpectrogramParams:
        """A copy with some fields changed (validated like any construction)."""
        return dataclasses.replace(self, **changes)

    # -- serialisation -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrogramParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CodecError(
                f"SpectrogramParams got unknown field(s) {unknown}; known fields are {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> SpectrogramParams:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CodecError(
                f"SpectrogramParams JSON does not parse ({err}); pass the text of to_json()"
            ) from err
        if not isinstance(data, dict):
            raise CodecError(f"SpectrogramParams JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)


RIFFUSION = SpectrogramParams(
    # Riffusion's published parameters: 44.1 kHz, 10 ms hop, 100 ms window padded to 400 ms, 512 HTK mel
    # bands up to 10 kHz without filter normalisation, amplitude mel, power-curve 0.25 per-image max.
    # 512 frames * 10 ms = 5.12 s per 512x512 image.
    sample_rate=44_100,
    n_fft=17_640,
    hop_length=441,
    win_length=4_410,
    window="hann",
    n_mels=512,
    f_min=0.0,
    f_max=10_000.0,
    mel_scale="htk",
    mel_norm=None,
    power=1.0,
    compression="power",
    reference=None,
    exponent=0.25,
)

SMALL = SpectrogramParams(
    # The bundled models' preset: 16 kHz, 16 ms hop, 64 Slaney mel bands to 8 kHz, 80 dB range.
    # 256 frames = 4.096 s per 64x256 image: small enough to train and sample on a 2-core CPU.
    sample_rate=16_000,
    n_fft=1024,
    hop_length=256,
    win_length=1024,
    window="hann",
    n_mels=64,
    f_min=0.0,
    f_max=8_000.0,
    mel_scale="slaney",
    mel_norm="slaney",
    power=2.0,
    compression="db",
    reference=1000.0,  # above the loudest mel band of full-scale music (about 300), so 1.0 is rarely clipped
    dynamic_range_db=80.0,
)

PRESETS: dict[str, SpectrogramParams] = {"riffusion": RIFFUSION, "small": SMALL}
