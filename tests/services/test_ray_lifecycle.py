"""Whatever Legato starts, it stops: a `legato batch` that started its own local Ray cluster leaves no Ray
process behind when it is killed (``kill -9``) or stopped (SIGTERM: exit 130, "run it again to resume")."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from legato.pipelines.manifest import read_manifest
from legato.pipelines.ray_cluster import _started, family, session_processes

from .conftest import LEGATO


@pytest.fixture
def ray_run(tmp_path, cli_env):
    """Start ``legato batch`` on a Ray executor with a local cluster in its own short temp folder; yield the
    process, its output folder and that folder; afterwards make sure nothing of it runs on."""
    temp = Path(tempfile.mkdtemp(prefix="lr", dir="/tmp"))  # Ray's socket paths must stay short
    out = tmp_path / "out"
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({
        "kind": "music", "model": "music-tiny", "output": str(out), "executor": "ray", "cpus": 2, "chunk": 1,
        "formats": ["wav"], "items": [{"prompt": f"a jig {i}", "seed": i, "duration": 4.0} for i in range(40)],
    }))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(cli_env, RAY_TMPDIR=str(temp), RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               OMP_NUM_THREADS="1")  # fmt: skip
    proc = subprocess.Popen([str(LEGATO), "batch", str(spec)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not read_manifest(out):  # the cluster is up and the stage actors are at work
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no item in 180 s"
            time.sleep(0.2)
        # the cluster: its processes and theirs (the agents rename themselves: ray::DashboardAgent)
        cluster = {pid: _started(pid) for pid in family(session_processes(str(temp)))}
        assert len(cluster) >= 4, cluster
        yield proc, out, cluster
    finally:
        proc.kill()
        proc.communicate()
        for pid in family(session_processes(str(temp))):  # never leave them to the next test
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def left(cluster: dict[int, str], seconds: float = 30.0) -> list[int]:
    """The cluster's processes still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (alive := [p for p, t in cluster.items() if _started(p) == t]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def test_a_killed_driver_leaves_no_ray_process(ray_run):
    proc, _, cluster = ray_run
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert left(cluster) == []  # Ray's own agents outlived a killed driver before (issue 41)


def test_sigterm_stops_a_run_like_ctrl_c_and_stops_its_cluster(ray_run):
    proc, out, cluster = ray_run
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; run the same command again to resume" in err
    assert "placement by measured cost, predicted" in err  # the spec's cpus: 2, placed by the stages' costs
    assert "Traceback" not in err
    assert left(cluster) == []
    assert len(read_manifest(out)) < 40  # it stopped part-way; a re-run makes the rest
