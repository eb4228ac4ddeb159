"""``legato job``: a job spec submitted to a real Ray head (token auth on), run there, its logs streamed back,
its files written; the upload leaves weights and outputs out; status, logs, list and stop answer."""

import os
import time
from pathlib import Path

import pytest
import yaml

from legato.pipelines.job_spec import item_id

from .conftest import assert_clean_error, legato
from .test_generate import probe


@pytest.fixture
def project(tmp_path):
    """A working dir as users have one: a spec beside weights and old outputs that must not be uploaded."""
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "models" / "weights.safetensors").write_bytes(os.urandom(2 << 20))
    (root / "outputs").mkdir()
    (root / "outputs" / "old.wav").write_bytes(os.urandom(1 << 20))
    spec = {"kind": "music", "model": "music-tiny", "output": "outputs/jigs", "formats": ["wav", "png"],
            "items": [{"prompt": "a jig", "seed": 0, "id": "jig"}, {"prompt": "a drone", "seed": 1, "duration": 1.5}]}  # fmt: skip
    (root / "job.yaml").write_text(yaml.safe_dump(spec))
    return root


def test_a_job_round_trip_through_a_ray_head(ray_head, project, cli_env):
    auth = ["--address", ray_head.address, "--token", ray_head.token]
    started = time.perf_counter()
    result = legato("job", "submit", "job.yaml", *auth, "--wait", "--submission-id", "legato-test-1",
                    cwd=project, env=cli_env)  # fmt: skip
    seconds = time.perf_counter() - started
    assert result.code == 0, result.stdout + result.stderr
    assert "2 written, 0 already there, 0 failed" in result.stdout  # the job's own summary, streamed back
    assert "job legato-test-1: SUCCEEDED" in result.stdout
    out = project / "outputs" / "jigs"
    assert probe(out / "jig.wav")["audio"]["count"] == round(63 * 256 * 44_100 / 16_000)  # mastered
    drone = item_id("a drone", 1, 1.5)
    assert probe(out / f"{drone}.wav")["audio"]["count"] == 66_150  # 1.5 s at 44.1 kHz
    assert probe(out / f"{drone}.png")["video"]["size"] == (32, 94)
    # what was uploaded: the spec, not the weights nor the old outputs
    (package,) = [p for p in (ray_head.temp_dir / "session_latest/runtime_resources/working_dir_files").iterdir()
                  if p.is_dir()]  # fmt: skip
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*")) == ["job.yaml"]
    status = legato("job", "status", "legato-test-1", *auth, "--json")
    assert status.code == 0, status.stderr
    info = status.json()
    assert info["status"] == "SUCCEEDED"
    assert info["metadata"]["legato_output"] == str(out)
    logs = legato("job", "logs", "legato-test-1", *auth)
    assert "2 written" in logs.stdout
    again = legato(
        "job", "submit", "job.yaml", *auth, "--submission-id", "legato-test-1", cwd=project, env=cli_env
    )
    assert_clean_error(again, 2, "'legato-test-1' already", "another --submission-id")
    listed = legato("job", "list", *auth, "--json")
    assert "legato-test-1" in [j["submission_id"] for j in listed.json()["jobs"]]
    stop = legato("job", "stop", "legato-test-1", *auth, "--json")
    assert stop.json()["stopped"] is False  # it had finished
    assert_clean_error(legato("job", "status", "no-such-job", *auth), 2, "no job 'no-such-job'")
    print(f"\njob round trip: head up in {ray_head.start_seconds:.1f} s; submit --wait {seconds:.1f} s "
          f"(upload, driver start, 2 items, logs)")  # fmt: skip


def test_a_cluster_with_token_auth_refuses_a_missing_or_wrong_token(ray_head):
    assert_clean_error(legato("job", "list", "--address", ray_head.address), 2, "needs an auth token")
    wrong = legato("job", "list", "--address", ray_head.address, "--token", "wrong")
    assert_clean_error(wrong, 2, "refused the token")
    # the token can come from the environment, as Ray's own tools take it
    assert (
        legato("job", "list", "--address", ray_head.address, env={"RAY_AUTH_TOKEN": ray_head.token}).code == 0
    )


@pytest.mark.slow
def test_a_failing_job_exits_1_and_a_resubmission_resumes(ray_head, project, cli_env):
    auth = ["--address", ray_head.address, "--token", ray_head.token]
    spec = yaml.safe_load((project / "job.yaml").read_text())
    (project / "bad.yaml").write_text(yaml.safe_dump({**spec, "model": "/nonexistent/music-model"}))
    failed = legato("job", "submit", "bad.yaml", *auth, "--wait", cwd=project, env=cli_env)
    assert failed.code == 1
    assert "no model '/nonexistent/music-model'" in failed.stdout  # the driver's error, in the streamed logs
    assert ": FAILED" in failed.stdout
    first = legato("job", "submit", "job.yaml", *auth, "--wait", "--json", cwd=project, env=cli_env)
    assert first.code == 0, first.stdout
    (
        project / "outputs" / "jigs" / f"{item_id('a drone', 1, 1.5)}.wav"
    ).unlink()  # as if the job had died before it
    again = legato("job", "submit", "job.yaml", *auth, "--wait", "--json", cwd=project, env=cli_env)
    assert again.code == 0
    assert "1 written, 1 already there" in again.json()["logs"]


@pytest.mark.slow
def test_generate_on_the_cluster_with_the_ray_executor_gives_the_local_files(ray_head, tmp_path, cli_env):
    args = ["generate", "music", "a jig", "a drone", "-m", "music-tiny", "-f", "wav", "--json"]
    local = legato(*args, "-o", str(tmp_path / "local"), env=cli_env)
    assert local.code == 0, local.stderr
    # a loopback-only head: the driver must not swap 127.0.0.1 for the host address (RAY-NOTES.md)
    auth = {
        **cli_env,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": ray_head.token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    remote = legato(
        *args, "-o", str(tmp_path / "ray"), "--executor", "ray", "--address", ray_head.gcs, env=auth
    )
    assert remote.code == 0, remote.stderr
    for a, b in zip(local.json()["items"], remote.json()["items"], strict=True):
        assert Path(a["files"][0]).read_bytes() == Path(b["files"][0]).read_bytes()  # same seeds, same bytes
