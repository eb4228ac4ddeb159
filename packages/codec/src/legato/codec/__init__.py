"""legato.codec: audio <-> mel spectrogram <-> image form, inversion to audio, and audio files.

The main flow::

    waveform, sr = read_audio("song.flac", sample_rate=SMALL.sample_rate, channels=1)   # (C, N)
    codec = MelCodec(SMALL)                          # or MelCodec(PRESETS["riffusion"])
    unit = codec.to_unit(codec.mel(waveform))        # (C, n_mels, frames) in [0, 1]: what models see
    save_mel_image("song.png", unit, SMALL)          # PNG that carries its params
    audio = codec.audio(codec.from_unit(unit), n_iter=32)   # NNLS + fast Griffin-Lim
    write_audio("out.mp3", audio, SMALL.sample_rate)

Long audio goes through a fixed model window with `split_windows` / `join_windows`; `metrics` scores
reconstructions. Every failure on bad input is a `CodecError`.
"""

from legato.codec.atomic import atomic_output
from legato.codec.audio_io import AUDIO_FORMATS, AudioFormat, mux_audio, read_audio, write_audio
from legato.codec.crossfade import crossfade, crossfade_concat, join_windows, num_windows, split_windows
from legato.codec.errors import CodecError
from legato.codec.image import MelImage, load_mel_image, save_mel_image
from legato.codec.inversion import griffin_lim, mel_to_linear
from legato.codec.mel import MelCodec
from legato.codec.metrics import log_spectral_distance, snr, spectral_convergence
from legato.codec.params import PRESETS, RIFFUSION, SMALL, SpectrogramParams
from legato.codec.phase import check_phase, pghi_phase
from legato.codec.riffusion import load_riffusion_image, save_riffusion_image

__all__ = [
    "AUDIO_FORMATS",
    "PRESETS",
    "RIFFUSION",
    "SMALL",
    "AudioFormat",
    "CodecError",
    "MelCodec",
    "MelImage",
    "SpectrogramParams",
    "atomic_output",
    "check_phase",
    "crossfade",
    "crossfade_concat",
    "griffin_lim",
    "join_windows",
    "load_mel_image",
    "load_riffusion_image",
    "log_spectral_distance",
    "mel_to_linear",
    "mux_audio",
    "num_windows",
    "pghi_phase",
    "read_audio",
    "save_mel_image",
    "save_riffusion_image",
    "snr",
    "spectral_convergence",
    "split_windows",
    "write_audio",
]
