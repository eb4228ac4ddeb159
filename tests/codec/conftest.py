import pytest
import torch

from legato.codec import SMALL
from legato.codec.testing import harmonic_notes


@pytest.fixture(scope="session")
def melody() -> torch.Tensor:
    """Two seconds of mono music-like audio at the small preset's rate, ``(1, N)``."""
    return harmonic_notes(2.0, SMALL.sample_rate, seed=1)[None]


@pytest.fixture(scope="session")
def clips() -> torch.Tensor:
    """A batch of four different 3 s clips, ``(4, 1, N)``."""
    return torch.stack([harmonic_notes(3.0, SMALL.sample_rate, seed=s)[None] for s in range(4)])
