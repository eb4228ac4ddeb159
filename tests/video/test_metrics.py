"""`horizontal_drift`: the measured sliding of real camera pans, with no trained model in the loop."""

import numpy as np
import pytest
import skimage.data
import torch

from legato.video import VideoError, camera_move, horizontal_drift


@pytest.fixture(scope="module")
def coffee() -> torch.Tensor:
    return torch.from_numpy(np.asarray(skimage.data.coffee(), dtype=np.float32) / 255).permute(2, 0, 1)


def test_a_pan_drifts_its_way_at_its_speed_and_a_still_layout_does_not(coffee):
    # A 200-pixel window (half the 400-pixel short side) over the 600-pixel-wide photo: its centre ranges
    # over 400 px, so -0.1 to 0.1 moves it 40 px right, shown at 32 px: the content slides 6.4 px left over
    # 7 frame pairs, 0.914 px a frame (twice that at twice the travel).
    for travel, expected in ((0.1, 0.914), (0.2, 1.829)):
        pan = camera_move(coffee, 8, 32, start=(-travel, 0.0), end=(travel, 0.0), view=(0.5, 0.5))[None]
        drift = horizontal_drift(pan)
        assert drift.shape == (1,)
        assert drift.item() == pytest.approx(-expected, rel=0.1)
        assert horizontal_drift(pan.flip(2)).item() == pytest.approx(expected, rel=0.1)
    still = pan[:, :, :1].expand(-1, -1, 8, -1, -1)
    boiling = still + 0.1 * torch.randn(still.shape, generator=torch.Generator().manual_seed(0))
    assert horizontal_drift(torch.cat([still, boiling])).abs().max() < 0.05


def test_drift_names_the_shapes_it_needs(coffee):
    with pytest.raises(VideoError, match=r"needs \(B, C, T >= 2, H, W\)"):
        horizontal_drift(torch.zeros(1, 3, 1, 32, 32))
    with pytest.raises(VideoError, match="max_shift=16 must lie in"):
        horizontal_drift(torch.zeros(1, 3, 4, 32, 32), max_shift=16)
