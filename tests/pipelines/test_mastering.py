"""Mastered output of the bundled music model: 44.1 kHz stereo at -14 LUFS under -1 dBTP, through av."""

from pathlib import Path

import pytest
import torch

from legato.codec import read_audio
from legato.codec.master import Mastering, integrated_loudness, true_peak
from legato.pipelines.music import MusicPipeline
from legato.recipes.datasets.music import INSTRUMENTS, STYLES, TEMPI

MODELS = Path(__file__).resolve().parents[2] / "models"


def prompts(count: int) -> list[str]:
    return [
        f"a {STYLES[i % 4]} on {list(INSTRUMENTS)[(i // 4) % 4]}, {list(TEMPI)[i % 3]} tempo, in D major"
        for i in range(count)
    ]


def check(clips, tmp_path: Path) -> list[tuple[float, float]]:
    measured = []
    for k, clip in enumerate(clips):
        assert clip.sample_rate == 44_100
        assert clip.audio.shape[0] == 2
        written, rate = read_audio(clip.save(tmp_path / f"{k}.wav"), channels=2)
        level, peak = integrated_loudness(written, rate), true_peak(written, rate)
        measured.append((level, peak))
        assert abs(level + 14.0) <= 0.5, (k, level)
        assert peak <= -1.0 + 0.05, (k, peak)  # 16-bit rounding of the file adds up to ~0.01 dB
        assert clip.measured["loudness_lufs"] == pytest.approx(level, abs=0.05)
    return measured


def test_mastered_clips_through_av(tmp_path: Path) -> None:
    pipe = MusicPipeline.from_pretrained(MODELS / "music-fast", mastering=Mastering())
    check(pipe(prompts(2), seeds=[0, 1]), tmp_path)


@pytest.mark.slow
def test_twenty_generated_clips(tmp_path: Path) -> None:
    pipe = MusicPipeline.from_pretrained(MODELS / "music-fast", mastering=Mastering())
    measured = torch.tensor(check(pipe(prompts(20), seeds=list(range(20))), tmp_path))
    print(f"20 clips: loudness {measured[:, 0].min():.2f} .. {measured[:, 0].max():.2f} LUFS, "
          f"true peak max {measured[:, 1].max():.2f} dBTP")  # fmt: skip
