"""What the recipes' tests share: the shipped models folder, and small real datasets built in a fixture."""

from pathlib import Path

from legato.recipes.datasets import save
from legato.recipes.datasets.video import build_video

MODELS = Path(__file__).resolve().parents[2] / "models"


def small_video(folder: Path, seed: int) -> Path:
    """A saved video dataset of one clip per (photo, motion) pair, captions embedded."""
    return save(build_video(frames=16, size=64, clips_per_pair=1, seed=seed), folder, "all-MiniLM-L6-v2")
