"""scripts/video-curriculum and scripts/keep-checkpoints, run by bash in a scratch git repository.

What runs is real: bash, git, both scripts. The trainer is stood in for by a shell script that writes what
`bundled train` leaves in its runs folder (a checkpoint with its state.json, metrics.jsonl, then model/):
these tests are about the orchestration, and the Trainer's own resume is tested in
tests/diffusion/test_training.py.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

# Writes one checkpoint, metrics and the network for the stage, as `bundled train video --stage base` does
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
    (repo / "scripts").mkdir(parents=True)
    for name in ("video-curriculum", "keep-checkpoints"):
        shutil.copy2(ROOT / "scripts" / name, repo / "scripts" / name)
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
    subprocess.run(["bash", "scripts/video-curriculum"], cwd=repo, env=environment, check=True,
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


def test_keep_commits_each_phases_networks_and_untracks_its_checkpoints(repo):
    curriculum(repo, KEEP="1")
    subjects = git(repo, "log", "--format=%s").splitlines()
    phases = [s for s in subjects if s.startswith("Video curriculum:")]
    assert len(phases) == 4
    tracked = git(repo, "ls-files", "runs").split()
    assert "runs/curriculum/video-warm/base/model/config.json" in tracked
    assert {"runs/curriculum/video-photos/base/model/config.json",
            "runs/curriculum/video/base/metrics.jsonl"} <= set(tracked)  # fmt: skip
    assert not [path for path in tracked if "/checkpoints/" in path]
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def test_keep_leaves_a_phase_uncommitted_when_other_work_is_staged(repo):
    (repo / "notes.txt").write_text("work in progress\n")
    git(repo, "add", "notes.txt")
    curriculum(repo, KEEP="1")
    assert "Video curriculum:" not in git(repo, "log", "--format=%s")
    assert git(repo, "diff", "--cached", "--name-only").split() == ["notes.txt"]  # still staged, alone


def test_keep_checkpoints_commits_the_newest_checkpoint_amends_it_and_stops_on_sigterm(repo):
    run = repo / "runs" / "r" / "base"

    def checkpoint(step: int) -> None:
        folder = run / "checkpoints" / f"step-{step:08d}"
        folder.mkdir(parents=True)
        (folder / "state.json").write_text(f'{{"step": {step}}}')
        with open(run / "metrics.jsonl", "a") as f:
            f.write(f'{{"step": {step}}}\n')

    def tracked() -> list[str]:
        return [p for p in git(repo, "ls-files", "runs").split() if "/checkpoints/" in p]

    def wait_for(condition, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "keep-checkpoints did not commit in time"
            time.sleep(0.1)

    checkpoint(1)
    (run / "checkpoints" / "step-00000009").mkdir()  # torn: no state.json, never kept
    loop = subprocess.Popen(["bash", "scripts/keep-checkpoints", "runs/r", "1"], cwd=repo, env=GIT_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: tracked() == ["runs/r/base/checkpoints/step-00000001/state.json"])
        checkpoint(2)
        wait_for(lambda: tracked() == ["runs/r/base/checkpoints/step-00000002/state.json"])
        subjects = git(repo, "log", "--format=%s").splitlines()
        assert len(subjects) == 2  # the second checkpoint amended the first one's commit
        assert subjects[0].startswith("Checkpoint: newest of runs/r")
        started = time.monotonic()
        loop.send_signal(signal.SIGTERM)
        loop.wait(timeout=10)
        assert time.monotonic() - started < 5  # between commits, not after its sleep
    finally:
        loop.kill()
    assert not (repo / ".git" / "index.lock").exists()
