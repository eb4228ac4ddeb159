"""Audio files through av: every format written, read back and compared with what went in."""

import av
import pytest
import torch

from legato.codec import AUDIO_FORMATS, CodecError, read_audio, write_audio
from legato.codec.testing import harmonic_notes


def aligned_correlation(a: torch.Tensor, b: torch.Tensor, max_lag: int = 4096) -> float:
    """Best correlation of two 1-D signals over lags up to ``max_lag`` (codec priming delays the output)."""
    a = a - a.mean()
    best = -1.0
    for lag in range(0, max_lag + 1, 1):
        n = min(a.numel(), b.numel() - lag)
        x, y = a[:n], b[lag : lag + n]
        c = float((x * y).sum() / (x.norm() * y.norm() + 1e-12))
        if c > best:
            best = c
            if best > 0.999:
                break
    return best


# (format, rate, channels): lossy codecs at rates they support
CASES = [
    ("wav", 16_000, 1),
    ("wav", 44_100, 2),
    ("flac", 22_050, 2),
    ("mp3", 44_100, 2),
    ("mp3", 16_000, 1),
    ("ogg", 44_100, 2),
    ("opus", 48_000, 1),
    ("m4a", 44_100, 2),
]


@pytest.mark.parametrize(("fmt", "rate", "channels"), CASES)
def test_write_then_read_round_trip(tmp_path, fmt, rate, channels):
    seconds = 1.5
    mono = harmonic_notes(seconds, rate, seed=3)
    wave = torch.stack([mono * (1.0 - 0.3 * c) for c in range(channels)])
    path = write_audio(tmp_path / f"clip.{fmt}", wave, rate)
    assert path.exists()
    assert not list(tmp_path.glob(".*.part")), "a temporary file was left behind"

    back, back_rate = read_audio(path)
    assert back_rate == rate
    assert back.dtype == torch.float32
    assert back.shape[0] == channels
    spec = AUDIO_FORMATS[fmt]
    if spec.lossless:
        assert back.shape[1] == wave.shape[1]
        assert torch.allclose(back, wave, atol=1.5 / 32767)  # 16-bit quantisation
    else:
        # Lossy codecs add encoder delay and pad the last frame: at most a few codec frames.
        assert abs(back.shape[1] - wave.shape[1]) <= 4096
        for c in range(channels):
            assert aligned_correlation(wave[c], back[c]) > 0.95

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.sample_rate == rate
        assert stream.codec_context.channels == channels


def test_ogg_vorbis_stores_mono_as_two_identical_channels(tmp_path):
    mono = harmonic_notes(1.0, 44_100, seed=4)[None]
    back, _ = read_audio(write_audio(tmp_path / "m.ogg", mono, 44_100))
    assert back.shape[0] == 2
    assert torch.allclose(back[0], back[1], atol=1e-4)
    down, _ = read_audio(tmp_path / "m.ogg", channels=1)
    assert aligned_correlation(mono[0], down[0]) > 0.95


def test_read_resamples_and_mixes(tmp_path):
    rate = 44_100
    left = harmonic_notes(2.0, rate, seed=5)
    right = harmonic_notes(2.0, rate, seed=6)
    path = write_audio(tmp_path / "s.flac", torch.stack([left, right]), rate)

    mono, sr = read_audio(path, sample_rate=16_000, channels=1)
    assert sr == 16_000
    assert mono.shape == (1, 32_000)
    # Downmixing to mono averages the channels; compare against our own resample of the average.
    import torchaudio

    expected = torchaudio.functional.resample((left + right)[None] / 2, rate, 16_000)
    assert aligned_correlation(expected[0], mono[0], max_lag=64) > 0.99

    up, _ = read_audio(write_audio(tmp_path / "m.wav", left[None], rate), channels=2)
    assert up.shape[0] == 2
    assert torch.equal(up[0], up[1])


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "keep.wav"
    write_audio(path, harmonic_notes(0.5, 16_000)[None], 16_000)
    before = path.read_bytes()
    with pytest.raises(CodecError, match="NaN"):
        write_audio(path, torch.full((1, 800), float("nan")), 16_000)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


def test_write_creates_parent_folders(tmp_path):
    path = write_audio(tmp_path / "a" / "b" / "x.flac", torch.zeros(1, 100), 16_000)
    assert read_audio(path)[0].shape == (1, 100)


def pcm_wav(bits: int, samples: int = 96, rate: int = 16_000) -> bytes:
    """A mono PCM WAV file of ``bits`` per sample, silence, built by hand (no writer makes the odd widths)."""
    import struct

    data = bytes(samples * bits // 8)
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * bits // 8, bits // 8, bits)
    return (
        struct.pack("<4sI4s", b"RIFF", 36 + len(data), b"WAVE")
        + fmt
        + struct.pack("<4sI", b"data", len(data))
        + data
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 20), "cannot be decoded"),
        (lambda p: p.write_bytes(bytes(range(256)) * 64), "cannot be decoded"),
        (
            lambda p: p.write_bytes(pcm_wav(bits=48)),
            "cannot be decoded",
        ),  # a format FFmpeg has no decoder for
    ],
    ids=["zero-length", "corrupt-header", "random-bytes", "48-bit-pcm"],
)
def test_bad_files_raise_codec_error_naming_the_file(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(CodecError, match=match) as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_truncated_file_is_an_error_or_reads_what_is_there(tmp_path):
    path = write_audio(tmp_path / "t.mp3", harmonic_notes(2.0, 44_100)[None], 44_100)
    data = path.read_bytes()
    path.write_bytes(data[:200])  # header only: no complete frame
    with pytest.raises(CodecError, match=str(path)):
        read_audio(path)


def test_missing_file_and_video_without_audio(tmp_path):
    with pytest.raises(CodecError, match="no such file"):
        read_audio(tmp_path / "nope.wav")
    video = tmp_path / "v.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(
                torch.zeros(32, 32, 3, dtype=torch.uint8).numpy(), format="rgb24"
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(CodecError, match="no audio stream"):
        read_audio(video)


@pytest.mark.parametrize(
    ("wave", "kwargs", "match"),
    [
        (torch.zeros(1, 100), {"format": "aiff"}, "cannot write audio format 'aiff'"),
        (torch.zeros(100, 2), {}, "100 channels"),
        (torch.zeros(1, 0), {}, "no samples"),
        (torch.zeros(1, 100, dtype=torch.int16), {}, "dtype"),
        (torch.tensor([[0.0, float("inf")]]), {}, "NaN/Inf"),
    ],
)
def test_bad_writes_raise_and_write_nothing(tmp_path, wave, kwargs, match):
    with pytest.raises(CodecError, match=match):
        write_audio(tmp_path / "x.wav", wave, 16_000, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_rate_names_the_supported_ones(tmp_path):
    with pytest.raises(CodecError, match=r"mp3 cannot store sample_rate=96000; it supports \[.*44100"):
        write_audio(tmp_path / "x.mp3", torch.zeros(1, 100), 96_000)


def test_bad_read_arguments(tmp_path):
    path = write_audio(tmp_path / "x.wav", torch.zeros(1, 100), 16_000)
    with pytest.raises(CodecError, match="sample_rate=0"):
        read_audio(path, sample_rate=0)
    with pytest.raises(CodecError, match="channels=64"):
        read_audio(path, channels=64)
