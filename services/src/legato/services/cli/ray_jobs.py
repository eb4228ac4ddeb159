"""``legato job submit|status|logs|stop|list``: job specs on a Ray cluster, through Ray's Jobs API.

``submit`` validates the spec here, then submits ``python -m legato.services.cli batch SPEC --model ABS
--output ABS`` as a Ray job: the working directory (default: here) is uploaded without weights, data and
outputs (``excludes``), the models are named by absolute path (the cluster's nodes must see them, like the
output folder: one machine, or shared storage), and the job's submission id names it everywhere after.

Token authentication: ``--token`` (or ``$RAY_AUTH_TOKEN``) is sent as ``Authorization: Bearer``; without it,
``RAY_AUTH_MODE=token`` makes Ray's client find the token itself (``$RAY_AUTH_TOKEN_PATH``,
``~/.ray/auth_token``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from legato.services.cli.common import (
    EXIT_FAILED,
    JsonOption,
    emit,
    fail,
    handle_errors,
    one_line,
    out_console,
    resolve_model,
)

app = typer.Typer(help="Run job specs on a Ray cluster: submit, follow, stop, list.", no_args_is_help=True)

Address = Annotated[
    str | None,
    typer.Option(
        help="The cluster's dashboard, http://HOST:8265.",
        show_default="$RAY_API_SERVER_ADDRESS or $RAY_ADDRESS",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="RAY_AUTH_TOKEN",
        show_envvar=True,
        help="The cluster's auth token (clusters started with RAY_AUTH_MODE=token).",
    ),
]
JobId = Annotated[str, typer.Argument(help="The job's submission id.", show_default=False)]
# Never uploaded: weights, datasets, outputs and environments (gitignore patterns, from the working dir).
EXCLUDES = ["/.git", "/.venv", "/venv", "__pycache__", "/models", "/outputs", "/runs", "/data", "*.safetensors",
            "*.ckpt", "*.pt", "*.pth", "*.bin", "*.npz", "*.wav", "*.flac", "*.mp3", "*.ogg", "*.mp4", "*.webm"]  # fmt: skip
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def client(address: str | None, token: str | None):
    """A `JobSubmissionClient`; ``--address`` wins over the environment (which Ray lets override it)."""
    from ray.job_submission import JobSubmissionClient

    if address:
        for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
            os.environ.pop(var, None)
    elif not (os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")):
        fail("give --address http://HOST:8265 (the cluster's dashboard), or set RAY_API_SERVER_ADDRESS")
    from ray.exceptions import AuthenticationError

    headers = {"Authorization": f"Bearer {token}"} if token else None
    where = address or "$RAY_API_SERVER_ADDRESS / $RAY_ADDRESS"
    try:
        return JobSubmissionClient(address, headers=headers)
    except ConnectionError as err:
        fail(f"cannot reach the Ray dashboard at {where}: {one_line(err)}", EXIT_FAILED)
    except AuthenticationError:
        problem = "refused the token" if token else "needs an auth token"
        fail(
            f"the cluster at {where} {problem}: pass --token or set RAY_AUTH_TOKEN (see `legato job submit --help`)"
        )


@contextlib.contextmanager
def known_job(job_id: str) -> Iterator[None]:
    """An unknown submission id is bad input (exit 2), not a crash."""
    try:
        yield
    except RuntimeError as err:
        if "does not exist" in str(err):
            fail(f"no job {job_id!r} on this cluster; `legato job list` shows its jobs")
        raise


def info_dict(info) -> dict:
    return {
        "submission_id": info.submission_id,
        "status": str(info.status.value if hasattr(info.status, "value") else info.status),
        "message": info.message,
        "entrypoint": info.entrypoint,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "metadata": info.metadata,
    }


async def _tail(jobs, job_id: str, echo) -> None:
    async for chunk in jobs.tail_job_logs(job_id):
        echo(chunk)


def follow(jobs, job_id: str, echo) -> str:
    """Stream the job's logs to ``echo`` until it ends; returns its final status."""
    asyncio.run(_tail(jobs, job_id, echo))
    while (status := str(jobs.get_job_status(job_id).value)) not in TERMINAL:
        time.sleep(0.2)
    return status


def ship_path(value: str, kind: str | None) -> str:
    """A spec's model as an absolute path the cluster can open (an absolute path missing here is kept)."""
    if Path(value).is_absolute() and not Path(value).exists():
        return value
    return str(resolve_model(value, kind)[0])


@app.command("submit")
@handle_errors
def submit(
    spec: Annotated[
        Path, typer.Argument(help="A job spec (.yaml or .json) inside the working dir.", show_default=False)
    ],
    address: Address = None,
    token: Token = None,
    wait: Annotated[
        bool, typer.Option(help="Stream the job's logs until it ends; exit 1 unless it succeeded.")
    ] = False,
    submission_id: Annotated[
        str | None, typer.Option(help="The job's id.", show_default="legato-<kind>-<time>-<random>")
    ] = None,
    working_dir: Annotated[
        Path | None,
        typer.Option(help="Uploaded to the job (weights, data, outputs excluded).", show_default="."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="More gitignore patterns to leave out of the upload; repeatable.")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE for the job's environment; repeatable.")
    ] = None,
    num_cpus: Annotated[
        float | None, typer.Option(min=0, help="CPUs reserved for the job's driver (local executor).")
    ] = None,
    num_gpus: Annotated[
        float | None, typer.Option(min=0, help="GPUs reserved for the job's driver (local executor).")
    ] = None,
    python: Annotated[str, typer.Option(help="The cluster's Python with Legato installed.")] = "python",
    as_json: JsonOption = False,
) -> None:
    """Submit a job spec to a Ray cluster as a Ray job (resumable like `legato batch`)."""
    from legato.pipelines import JobSpec

    job = JobSpec.from_file(spec)  # a bad spec is refused here, not on the cluster
    root = (working_dir or Path.cwd()).resolve()
    if not root.is_dir():
        fail(f"--working-dir {root} is not a folder")
    try:
        relative = spec.resolve().relative_to(root)
    except ValueError:
        fail(f"{spec} is outside the working dir {root}; pass --working-dir, or move the spec into it")
    output = str(Path(job.output).expanduser().resolve())
    command = [python, "-m", "legato.services.cli", "batch", str(relative), "--model", ship_path(job.model, job.kind),
               "--output", output]  # fmt: skip
    if job.soundtrack:
        command += ["--soundtrack", ship_path(job.soundtrack, "music")]
    pairs = [item.split("=", 1) for item in env or []]
    if any(len(p) != 2 or not p[0] for p in pairs):
        fail(f"--env takes KEY=VALUE, got {env}")
    runtime_env = {
        "working_dir": str(root),
        "excludes": [*EXCLUDES, *(exclude or [])],
        "env_vars": {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            **dict(pairs),
        },
    }
    job_id = submission_id or f"legato-{job.kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    jobs = client(address, token)
    started = time.perf_counter()
    taken = (f"the cluster has a job with submission id {job_id!r} already; choose another --submission-id, or "
             f"follow that one with `legato job logs {job_id} --follow`")  # fmt: skip
    if submission_id is not None:
        with contextlib.suppress(RuntimeError):  # no such job: the id is free
            jobs.get_job_info(job_id)
            fail(taken)
    try:
        job_id = jobs.submit_job(
            entrypoint=shlex.join(command), runtime_env=runtime_env, submission_id=job_id,
            entrypoint_num_cpus=num_cpus, entrypoint_num_gpus=num_gpus,
            metadata={"legato_spec": str(relative), "legato_output": output},
        )  # fmt: skip
    except RuntimeError as err:
        if "already exists" in str(err):  # submitted by someone else between the check and here
            fail(taken)
        raise
    result = {"ok": True, "submission_id": job_id, "output": output, "entrypoint": shlex.join(command),
              "submit_seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
    if not wait:
        emit(result, as_json)
        if not as_json:
            print(f"submitted {job_id}; follow it with `legato job logs {job_id} --follow`")
        return
    if not as_json:
        print(f"submitted {job_id}; its logs follow", flush=True)
    status = follow(
        jobs, job_id, (lambda chunk: None) if as_json else (lambda chunk: print(chunk, end="", flush=True))
    )
    info = jobs.get_job_info(job_id)
    result.update(ok=status == "SUCCEEDED", status=status, message=info.message,
                  seconds=round(time.perf_counter() - started, 3))  # fmt: skip
    if as_json:
        result["logs"] = jobs.get_job_logs(job_id)
    emit(result, as_json)
    if not as_json:
        print(f"job {job_id}: {status} in {result['seconds']:.1f} s; files in {output}")
    raise typer.Exit(0 if status == "SUCCEEDED" else EXIT_FAILED)


@app.command("status")
@handle_errors
def status(job_id: JobId, address: Address = None, token: Token = None, as_json: JsonOption = False) -> None:
    """A job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED) and message."""
    jobs = client(address, token)
    with known_job(job_id):
        info = info_dict(jobs.get_job_info(job_id))
    emit({"ok": True, **info}, as_json)
    if not as_json:
        print(f"{job_id}: {info['status']}" + (f" ({info['message']})" if info["message"] else ""))


@app.command("logs")
@handle_errors
def logs(
    job_id: JobId,
    address: Address = None,
    token: Token = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the job ends.")
    ] = False,
) -> None:
    """A job's logs (its driver's stdout and stderr)."""
    jobs = client(address, token)
    with known_job(job_id):
        if follow_:
            follow(jobs, job_id, lambda chunk: print(chunk, end="", flush=True))
        else:
            print(jobs.get_job_logs(job_id), end="")


@app.command("stop")
@handle_errors
def stop(job_id: JobId, address: Address = None, token: Token = None, as_json: JsonOption = False) -> None:
    """Stop a running job (its finished items stay; submitting the spec again resumes it)."""
    jobs = client(address, token)
    with known_job(job_id):
        stopped = jobs.stop_job(job_id)
    emit({"ok": True, "submission_id": job_id, "stopped": stopped}, as_json)
    if not as_json:
        print(f"{job_id}: {'stopping' if stopped else 'was not running'}")


@app.command("list")
@handle_errors
def list_(address: Address = None, token: Token = None, as_json: JsonOption = False) -> None:
    """The cluster's jobs, newest first."""
    jobs = sorted(
        (info_dict(j) for j in client(address, token).list_jobs()),
        key=lambda j: j["start_time"] or 0,
        reverse=True,
    )
    emit({"ok": True, "jobs": jobs}, as_json)
    if as_json:
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("submission id", "status", "started", "spec or entrypoint"):
        table.add_column(column, overflow="fold")
    for j in jobs:
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["start_time"] / 1000))
            if j["start_time"]
            else ""
        )
        what = (j["metadata"] or {}).get("legato_spec") or j["entrypoint"] or ""
        table.add_row(escape(j["submission_id"] or ""), j["status"], started, escape(what))
    out_console().print(table)
