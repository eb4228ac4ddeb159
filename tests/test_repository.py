"""What git may track: source, docs, small fixtures and the shipped weights under models/, never training state.

Checkpoints, optimizer state and run folders belong on the machine (or the storage) that trains: every clone
pays for a file committed once, even after it is untracked. A long run that must survive a lost machine keeps
its checkpoints outside git (docs/training.md, Checkpoints and resume).
"""

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".npz", ".gguf"}
# What a Trainer checkpoint holds besides the network: optimizer, scheduler, EMA and RNG state.
TRAINING_STATE = {"state.safetensors", "state.json", "optimizer.pt", "optimizer.bin", "scheduler.pt"}


def problems(paths: list[str]) -> list[str]:
    """Why each tracked path should not be tracked (none: all is well)."""
    found = []
    for path in paths:
        parts = PurePosixPath(path)
        if parts.parts[0] == "runs":
            found.append(f"{path}: runs/ holds training runs (git-ignored); untrack it")
        elif parts.name in TRAINING_STATE or "checkpoints" in parts.parts:
            found.append(f"{path}: training state (a checkpoint); keep it outside git")
        elif parts.suffix in WEIGHTS and parts.parts[0] != "models":
            found.append(f"{path}: weights or arrays outside models/; build them in a test fixture instead")
    return found


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_git_tracks_no_runs_checkpoints_or_weights_outside_models():
    paths = tracked()
    assert "README.md" in paths
    assert problems(paths) == []


def test_the_check_names_each_kind_of_training_state():
    found = problems([
        "runs/curriculum/video/base/metrics.jsonl",
        "models/video-default/base/diffusion_pytorch_model.safetensors",
        "models/x/checkpoints/step-00000100/model/config.json",
        "somewhere/step-1/state.safetensors",
        "tests/fixtures/tiny.safetensors",
        "docs/architecture.md",
    ])  # fmt: skip
    assert [line.split(":")[0] for line in found] == [
        "runs/curriculum/video/base/metrics.jsonl",
        "models/x/checkpoints/step-00000100/model/config.json",
        "somewhere/step-1/state.safetensors",
        "tests/fixtures/tiny.safetensors",
    ]
