"""The one-run GPU check (benchmarks/gpu_check.py), run here on the CPU at its smallest sizes: every check
runs in its own process and lands in the JSON and the markdown table, within the budget it is given."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def check(out: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--device", "cpu", "--quick", "--out", str(out), *args],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((out / "gpu-check.json").read_text())


def test_the_check_runs_its_benchmarks_and_writes_json_and_markdown(tmp_path):
    report = check(tmp_path, "--only", "sampler-bf16-compile,codec")
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status == {"sampler-bf16-compile": "skipped: compiling on a CPU takes minutes", "codec": "ok"}
    codec = report["checks"][1]
    assert "throughput ratio legato/librosa" in codec["output"]  # the benchmark's own figures, kept
    assert codec["command"].startswith("python benchmarks/codec.py --device cpu")
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| codec: mel + Griffin-Lim vs librosa | ok |" in table
    assert "throughput ratio legato/librosa" in table  # the codec's result lines, under its heading
    # a budget too small for a check: it is recorded as not run, and the run still writes its report
    short = check(tmp_path / "short", "--only", "codec", "--budget", "3")
    assert short["checks"][0]["status"] == "not run: budget spent"


def test_unknown_checks_are_refused_with_the_names_there_are(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--device", "cpu", "--out", str(tmp_path), "--only", "nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "unknown checks ['nope']" in done.stderr
    assert "cascade-ray" in done.stderr


@pytest.mark.slow  # about 5 minutes on 2 cores: every check, at its smallest sizes
def test_every_check_runs_on_the_cpu(tmp_path):
    report = check(tmp_path)
    bad = {
        c["name"]: c["status"]
        for c in report["checks"]
        if not (c["status"] == "ok" or c["status"].startswith("skipped"))
    }
    assert bad == {}, bad
