"""Long audio through fixed windows: split, join, crossfade."""

import pytest
import torch

from legato.codec import CodecError, crossfade, crossfade_concat, join_windows, num_windows, split_windows
from legato.codec.testing import harmonic_notes


@pytest.mark.parametrize(
    ("length", "window", "overlap"), [(10_000, 2048, 512), (2048, 2048, 512), (5, 64, 16)]
)
def test_join_of_unchanged_windows_reproduces_the_input(length, window, overlap):
    x = torch.stack([harmonic_notes(length / 16_000, 16_000, seed=s) for s in (1, 2)])[:, None]  # (2, 1, N)
    windows = split_windows(x, window, overlap)
    assert windows.shape == (2, 1, num_windows(length, window, overlap), window)
    assert torch.allclose(join_windows(windows, overlap, length), x, atol=1e-6)


def test_equal_power_for_unrelated_material():
    # Independent noise in the two clips: the join keeps the power of either side (no dip, no bump).
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 4096, generator=gen), torch.randn(64, 4096, generator=gen)
    mixed = crossfade(a, b)
    power = mixed.pow(2).mean(0)  # per-sample power over 64 trials
    mid = power[1024:3072].mean()
    assert float(mid) == pytest.approx(1.0, abs=0.05)


def test_concat_lengths_and_continuity():
    clips = [torch.ones(1, 1000) * v for v in (0.2, 0.2, 0.2)]
    out = crossfade_concat(clips, overlap=100)
    assert out.shape == (1, 2800)
    assert torch.allclose(out, torch.full_like(out, 0.2), atol=1e-6)  # identical material: no bump


def test_bad_overlaps():
    with pytest.raises(CodecError, match="overlap=64"):
        split_windows(torch.zeros(100), 64, 64)
    with pytest.raises(CodecError, match="no longer than any clip"):
        crossfade_concat([torch.zeros(10), torch.zeros(3)], overlap=5)
