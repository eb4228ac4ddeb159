"""recipes/scripts/video-curriculum, run by bash in a scratch git repository.

What runs is real: bash, git, the script. The `legato` command is stood in for by a shell script that writes
what `legato train video` leaves in its runs folder (a checkpoint with its state.json, metrics.jsonl, then
model/): these tests are about the orchestration, and the Trainer's own resume is tested in
tests/diffusion/test_training.py.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

# Writes one checkpoint, metrics and the network for the stage, as `legato train video --stage base` does
# (the video recipe has no distillation rounds: its fast cascade samples the base at fewer steps); logs its
# arguments.
FAKE_TRAIN = r"""#!/usr/bin/env bash
echo "$*" >> "$CALLS"
runs=$(sed 's/.*--runs \([^ ]*\).*/\1/' <<<"$*")
for stage in base; do
  mkdir -p "$runs/$stage/checkpoints/step-00000002/model" "$runs/$stage/model"
  echo '{"step": 2}' > "$runs/$stage/checkpoints/step-00000002/state.json"
  echo '{}' > "$runs/$stage/checkpoints/step-00000002/model/config.json"
  echo '{"step": 2, "loss": 0.1}' > "$runs/$stage/metrics.jsonl"
  echo '{}' > "$runs/$stage/model/config.json"
done
"""


# The scripts commit: a clean CI machine may have no git identity.
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "recipes" / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "recipes" / "scripts" / "video-curriculum", repo / "recipes" / "scripts")
    (repo / ".gitignore").write_text("runs/\ndata/\n")
    (repo / "data" / "video").mkdir(parents=True)
    (repo / "data" / "video" / "arrays.npz").write_bytes(b"")
    (repo / "data" / "video-more").mkdir(parents=True)
    (repo / "data" / "video-more" / "arrays.npz").write_bytes(b"")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_TRAIN)
    fake.chmod(0o755)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "start")
    return repo


def curriculum(repo: Path, **env: str) -> list[str]:
    calls = repo.parent / "calls"
    calls.unlink(missing_ok=True)
    environment = {**GIT_ENV, "PYTHON": str(repo.parent / "fake-python"), "DEVICE": "cpu",
                   "CALLS": str(calls), **env}  # fmt: skip
    subprocess.run(["bash", "recipes/scripts/video-curriculum"], cwd=repo, env=environment, check=True,
                   capture_output=True, text=True, timeout=120)  # fmt: skip
    return calls.read_text().splitlines() if calls.exists() else []


def test_the_curriculum_runs_its_phases_in_order_each_from_the_last_and_skips_finished_ones(repo):
    calls = curriculum(repo, STEPS3="7", BATCH3="4")
    assert len(calls) == 4
    warm, pans, full, photos = calls
    assert "--runs runs/curriculum/video-warm" in warm
    assert "--init" not in warm
    assert "over an astronaut --clips-per-caption 4 --steps 2000 --batch-size 8 --no-distill" in warm
    assert "--runs runs/curriculum/video-pans --init runs/curriculum/video-warm" in pans
    assert "--runs runs/curriculum/video --init runs/curriculum/video-pans --steps 7 --batch-size 4" in full
    assert "--no-distill" in full
    assert ("--runs runs/curriculum/video-photos --init runs/curriculum/video --more-data data/video-more "
            "--steps 400 --batch-size 4 --learning-rate 1e-4") in photos  # fmt: skip
    assert "--no-distill" not in photos  # the recipe's rounds, if it has any, follow the base
    assert all("--checkpoint-every 100 --compile" in call for call in calls)
    # Run again: every phase's last network is there, so nothing trains.
    assert curriculum(repo) == []
    # An interrupted phase 4 (its checkpoints there, its network not) runs again.
    shutil.rmtree(repo / "runs" / "curriculum" / "video-photos" / "base" / "model")
    assert [c.split(" --runs ")[1].split()[0] for c in curriculum(repo)] == ["runs/curriculum/video-photos"]


def test_the_curriculum_commits_nothing(repo):
    """Training state never enters git (tests/test_repository.py): the runs stay where they were written."""
    before = git(repo, "log", "--format=%H")
    curriculum(repo)
    assert git(repo, "log", "--format=%H") == before
    assert git(repo, "status", "--porcelain") == ""  # runs/ is ignored, and nothing else changed
    assert (repo / "runs" / "curriculum" / "video-photos" / "base" / "model" / "config.json").is_file()
