"""Real-looking video for the video tests: camera pans and zooms over the photos scikit-image ships."""

import pytest
import skimage.data
import torch

from legato.video.camera import random_camera_moves

TRAIN_PHOTOS = ["astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field"]
HELD_OUT_PHOTO = "chelsea"  # a cat: no photo of it, nor anything like it, is in the training set


def photo(name: str) -> torch.Tensor:
    """A scikit-image photo as ``(3, H, W)`` floats in [0, 1]."""
    return torch.tensor(getattr(skimage.data, name)(), dtype=torch.float32).permute(2, 0, 1) / 255


def camera_clips(
    count: int, frames: int, size: int, seed: int, held_out: bool, max_shift: float
) -> torch.Tensor:
    """``(count, 3, frames, size, size)`` clips in [-1, 1]: training photos, or the held-out one."""
    images = [photo(HELD_OUT_PHOTO)] if held_out else [photo(n) for n in TRAIN_PHOTOS]
    gen = torch.Generator().manual_seed(seed)
    return random_camera_moves(images, count, frames, size, gen, max_shift=max_shift) * 2 - 1


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    return photo("astronaut")
