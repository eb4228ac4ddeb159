"""The `legato` command run as a user runs it (the installed console script in a subprocess) and, for the many
small cases, in this process (typer's runner): what every member's command-line tests share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
LEGATO = BIN / "legato"


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def legato(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> Result:
    """Run ``legato ARGS`` in a subprocess (the installed console script), with a wide terminal."""
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    base.update(COLUMNS="200", OMP_NUM_THREADS="1", RAY_AUTH_MODE="disabled")
    done = subprocess.run(
        [str(LEGATO), *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    return Result(done.returncode, done.stdout, done.stderr)


def assert_clean_error(result: Result, code: int, *words: str) -> None:
    """A failed command: the exit code, one ``error:`` line on stderr naming ``words``, no traceback."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


def invoke(*args: str, env: dict | None = None) -> Result:
    """Run ``legato ARGS`` in this process (typer's runner): the same app, without paying for a new
    interpreter and torch import; used for the many small cases, `legato` above for the real thing."""
    from typer.testing import CliRunner

    from legato.services.cli import app

    clean = {
        "COLUMNS": "200",
        "RAY_ADDRESS": None,
        "RAY_API_SERVER_ADDRESS": None,
        "RAY_AUTH_MODE": "disabled",
    }
    done = CliRunner(env={**clean, **(env or {})}).invoke(app, list(args))
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return Result(done.exit_code, done.stdout, done.stderr)
