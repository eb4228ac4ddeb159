"""Video files through av: written, read back and checked for frames, fps, size, duration and sound."""

import math

import av
import pytest
import torch

from legato.codec.testing import harmonic_notes
from legato.video import VideoError, read_video, write_video


def moving_square(frames: int = 16, height: int = 48, width: int = 64) -> torch.Tensor:
    """``(T, 3, H, W)`` in [0, 1]: a bright square moving right over a gradient (real motion, real colour)."""
    video = torch.zeros(frames, 3, height, width)
    video[:, 0] = torch.linspace(0, 1, width)[None, None, :]
    video[:, 2] = torch.linspace(1, 0, height)[None, :, None]
    for t in range(frames):
        x = 2 + 3 * t
        video[t, :, 16:32, x : x + 12] = 1.0
    return video


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_video_with_a_soundtrack_plays_back(tmp_path, fmt):
    frames, fps, rate = moving_square(), 8, 16_000
    seconds = frames.shape[0] / fps  # 2 s
    sound = harmonic_notes(seconds, rate, seed=1)[None]
    path = write_video(tmp_path / f"clip.{fmt}", frames, fps, audio=sound, sample_rate=rate)
    assert not list(tmp_path.glob(".*.part"))

    video = read_video(path)
    assert video.frames.shape == frames.shape
    assert video.fps == pytest.approx(fps)
    # Lossy, but the picture is the picture: mean absolute error of a few percent.
    assert float((video.frames - frames).abs().mean()) < 0.03
    with av.open(str(path)) as container:
        assert container.duration / 1e6 == pytest.approx(seconds, abs=0.1)
        assert container.streams.video[0].codec_context.name == ("h264" if fmt == "mp4" else "vp9")
    assert video.audio is not None
    audio_seconds = video.audio.shape[1] / video.sample_rate
    assert audio_seconds == pytest.approx(seconds, abs=0.1)  # codec padding only


def test_gif_and_gray_frames(tmp_path):
    frames = moving_square(height=47, width=63)  # gif takes odd sizes
    path = write_video(tmp_path / "clip.gif", frames[:, :1], 10)
    video = read_video(path)
    assert video.frames.shape == (16, 3, 47, 63)
    assert video.fps == pytest.approx(10)
    assert video.audio is None
    assert torch.allclose(video.frames[:, 0], video.frames[:, 1], atol=1 / 255)  # gray stays gray


def test_a_batch_writes_one_file_per_item(tmp_path):
    batch = torch.stack([moving_square(8), moving_square(8).flip(-1)]).transpose(1, 2)  # (B, C, T, H, W)
    paths = write_video(tmp_path / "batch.mp4", batch, 4)
    assert [p.name for p in paths] == ["batch-000.mp4", "batch-001.mp4"]
    assert all(read_video(p).frames.shape == (8, 3, 48, 64) for p in paths)


@pytest.mark.parametrize(
    ("name", "frames", "kwargs", "match"),
    [
        ("x.mp4", moving_square(height=47), {}, "needs an even width and height, got 64x47"),
        ("x.avi", moving_square(), {}, "cannot write video format 'avi'"),
        ("x.mp4", moving_square()[:, :2], {}, "2 channels"),
        ("x.mp4", moving_square()[:0], {}, "hold nothing"),
        ("x.mp4", moving_square() * math.nan, {}, "NaN"),
        (
            "x.gif",
            moving_square(),
            {"audio": torch.zeros(1, 10), "sample_rate": 8000},
            "gif cannot carry sound",
        ),
        ("x.mp4", moving_square(), {"audio": torch.zeros(1, 10)}, "needs sample_rate="),
        ("x.mp4", torch.zeros(3, 4), {}, r"frames \(3, 4\)"),
    ],
)
def test_bad_writes_name_the_problem_and_leave_nothing(tmp_path, name, frames, kwargs, match):
    with pytest.raises(VideoError, match=match):
        write_video(tmp_path / name, frames, 8, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        read_video(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(VideoError, match="cannot be decoded"):
        read_video(junk)
    good = write_video(tmp_path / "good.mp4", moving_square(), 8)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(VideoError, match=str(truncated)):
        read_video(truncated)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_the_same_frames_give_the_same_file_every_time(tmp_path, fmt):
    """A file is a function of its frames: what a job's resume and the executors' equal outputs rest on.
    x264's macroblock tree once read stale memory on small frames, so an mp4 changed with the heap."""
    import numpy as np
    import skimage.data

    from legato.video import random_camera_moves

    photo = torch.tensor(skimage.data.chelsea(), dtype=torch.float32).permute(2, 0, 1) / 255
    clip = random_camera_moves([photo], 1, 16, 64, torch.Generator().manual_seed(0), max_shift=0.3)[0]
    frames = clip.transpose(0, 1).contiguous()  # (T, 3, H, W) in [0, 1]
    sound = (
        {} if fmt == "gif" else {"audio": harmonic_notes(2.0, 16_000, seed=1)[None], "sample_rate": 16_000}
    )
    written = set()
    for k in range(6):
        junk = np.random.default_rng(k).bytes(1 << 22)  # the heap the encoder allocates from changes
        written.add(write_video(tmp_path / f"{k}.{fmt}", frames, 8, **sound).read_bytes())
        del junk
    assert len(written) == 1
