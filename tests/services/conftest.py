"""Fixtures of the `legato` command's tests: tiny model folders, the command run as a user runs it, and a
real Ray head (loopback only, token auth on, its own temp dir and ports) for the job round trip."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..cli import BIN, LEGATO, Result, assert_clean_error, invoke, legato

__all__ = ["BIN", "LEGATO", "Result", "assert_clean_error", "invoke", "legato"]


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """A models folder with untrained tiny cascades: ``music-tiny`` (32 mels x 64 frames = 1.02 s windows)
    and ``video-tiny`` (8 frames of 16x16 at 8 fps). Untrained is enough: the CLI's job is the files."""
    import torch

    from legato.codec import SMALL
    from legato.pipelines import MusicPipeline, TextEncoder, VideoPipeline
    from legato.recipes.networks import music_cascade, video_cascade

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    text = TextEncoder()
    params = SMALL.replace(n_mels=32)
    music = music_cascade(params, window=64, text_dim=text.dim, channels=(8, 16), sr_channels=(8, 16),
                          steps=(2, 2), batch_size=(4, 4))  # fmt: skip
    MusicPipeline(music, params, text).save_pretrained(root / "music-tiny")
    video = video_cascade(frames=8, size=16, text_dim=text.dim, channels=(8, 16), sr_channels=(8, 16),
                          steps=(2, 1, 1), batch_size=(2, 2, 2))  # fmt: skip
    VideoPipeline(video, 8.0, text).save_pretrained(root / "video-tiny")
    (root / "music-tiny" / "README.md").write_text("# music-tiny\n\nAn untrained music cascade for tests.\n")
    return root


@pytest.fixture
def cli_env(models) -> dict:
    """Environment for `legato`: model names resolve in the tiny models folder."""
    return {"LEGATO_MODELS": str(models)}


# --- a Ray head ---------------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass(frozen=True)
class Head:
    address: str  # the dashboard, for the Jobs API
    gcs: str  # the cluster, for drivers (ray.init)
    token: str
    temp_dir: Path
    start_seconds: float


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """``ray start --head`` on loopback with token auth, in its own session; stopped by killing that
    session's process group (``ray stop`` would stop every Ray process on the machine, other users' too)."""
    gcs, dashboard, client, agent = free_ports(4)
    token = secrets.token_hex(16)
    temp = tmp_path_factory.mktemp("rayhead")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")  # fmt: skip
    command = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
               "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
               "--num-cpus", "2", "--temp-dir", str(temp), "--disable-usage-stats", "--include-dashboard", "true"]  # fmt: skip
    started = time.perf_counter()
    with open(temp / "head.log", "w") as log:
        head = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        while True:
            if head.poll() is not None:
                pytest.fail(f"ray start exited: {(temp / 'head.log').read_text()[-2000:]}")
            request = urllib.request.Request(
                f"{address}/api/version", headers={"Authorization": f"Bearer {token}"}
            )
            try:
                urllib.request.urlopen(request, timeout=2).read()
                break
            except OSError:
                if time.perf_counter() - started > 90:
                    pytest.fail("the Ray head's dashboard did not answer in 90 s")
                time.sleep(0.5)
        yield Head(address, f"127.0.0.1:{gcs}", token, temp, time.perf_counter() - started)
    finally:  # SIGTERM lets Ray tidy up; SIGKILL then ends whatever of the group is left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
