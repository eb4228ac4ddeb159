"""What every command shares: exit codes, one-line errors, ``--json`` output, model names, progress bars.

Exit codes, one meaning each: 0 everything done; 1 items failed or a runtime error (a crash, a lost cluster,
a failed Ray job, a full disk or another I/O failure, which names its path); 2 bad usage or input (a missing
file, an invalid spec, a wrong model, an unknown format, an output you cannot write, found before any work);
3 the output folder is being written by another run; 130 interrupted (Ctrl-C or SIGTERM: run the same
command again to resume). Errors are one line on stderr (``error: ...``), and with ``--json`` also a JSON object on
stdout; ``LEGATO_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# Every Legato package's own error type is a ValueError (CodecError, DiffusionError, VideoError; pydantic's
# ValidationError too), so these say "bad input" without services importing below pipelines.
USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout (no progress bars), for scripts.")
]
# Sampling and placement options shared by the commands that run a model (generate, edit).
Steps = Annotated[
    str | None,
    typer.Option(
        help="Sampling steps: one number for every stage, or one per stage (32,16).",
        show_default="the model's",
    ),
]
Guidance = Annotated[
    float | None,
    typer.Option(
        min=1.0,
        help="Classifier-free guidance scale of the base stage (1 = none).",
        show_default="the model's",
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        help="Every stage's sampler: ddim, ddpm, dpm++, euler, euler_a or heun (dpm++ matches DDIM's accuracy "
        "in about half the steps; a -fast model's distilled base wants its own ddim).",
        show_default="the model's",
    ),
]
Device = Annotated[
    str | None,
    typer.Option(help="Where the model runs: cpu, cuda, cuda:1...", show_default="the model's, cpu"),
]
VaeTiling = Annotated[
    bool | None,
    typer.Option("--vae-tiling/--no-vae-tiling", show_default="the model's",
                 help="Latent models: decode in tiles (big sizes in small memory; pixels a little off at seams)."),
]  # fmt: skip
VaeSlicing = Annotated[
    bool | None,
    typer.Option("--vae-slicing/--no-vae-slicing", show_default="the model's",
                 help="Latent models: decode one image or frame at a time (the same pixels, less memory)."),
]  # fmt: skip


class CliError(Exception):
    """An error the command explains in one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    raise CliError(message, code)


def one_line(err: BaseException) -> str:
    """An exception as one line; pydantic validation errors as ``field: problem; ...``."""
    from pydantic import ValidationError

    invalid = err if isinstance(err, ValidationError) else err.__cause__
    text = str(err)
    if isinstance(invalid, ValidationError):
        problems = "; ".join(
            ".".join(map(str, e["loc"])) + ": " * bool(e["loc"]) + e["msg"].removeprefix("Value error, ")
            for e in invalid.errors()
        )
        title = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", invalid.title).lower()  # JobSpec -> job spec
        head = text.splitlines()[0].rstrip(":") if invalid is not err else f"invalid {title}"
        return f"{head}: {problems}"
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(err).__name__


def report(message: str, code: int, as_json: bool) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    if as_json:
        print(json.dumps({"ok": False, "error": message, "exit_code": code}), flush=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command, turning exceptions into a one-line message and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors: the parser reports them
            raise
        except KeyboardInterrupt:
            report("interrupted; run the same command again to resume", EXIT_INTERRUPTED, as_json)
        except BrokenPipeError:  # the reader stopped reading (`| head`): end quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
            raise typer.Exit(EXIT_OK) from None
        except RuntimeError as err:
            if type(err).__name__ != "FolderBusy":  # legato.pipelines.manifest's, without importing it here
                debug(err)
                report(f"{type(err).__name__}: {one_line(err)}", EXIT_FAILED, as_json)
            report(one_line(err), EXIT_BUSY, as_json)
        except CliError as err:
            report(err.message, err.code, as_json)
        except USAGE_ERRORS as err:
            debug(err)
            report(one_line(err), EXIT_USAGE, as_json)
        except Exception as err:
            debug(err)
            report(f"{type(err).__name__}: {one_line(err)}", EXIT_FAILED, as_json)

    return wrapper


def debug(err: BaseException) -> None:
    if os.environ.get("LEGATO_DEBUG"):
        traceback.print_exception(err, file=sys.stderr)


def emit(data: dict, as_json: bool) -> None:
    """Print a command's result as JSON on stdout (``--json``); the human summary is the caller's."""
    if as_json:
        print(json.dumps(data, default=str), flush=True)


def err_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def out_console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)  # paths and summaries stay whole lines


def status(text: str, enabled: bool):
    """A rich spinner on stderr while a step without its own progress runs (nothing when disabled)."""
    return err_console().status(text) if enabled else contextlib.nullcontext()


# --- models: a folder, or a name in the models folders (legato.pipelines.folders resolves both) ---------


def resolve_model(value: str | None, kind: str | None) -> tuple[Path, dict]:
    """`legato.pipelines.folders.resolve_model`, its refusals as one-line usage errors (exit 2)."""
    from legato.pipelines.folders import resolve_model as resolve

    try:
        return resolve(value, kind)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))


def check_outputs(paths: list[Path], *, inputs: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, an output file that is one of the ``inputs``, one that exists (unless
    ``overwrite``), or one that cannot be written where it is asked for."""
    for path in paths:
        if any(path.resolve() == source.resolve() for source in inputs):
            fail(f"the output {path} is the input; write the result to another file")
        if path.is_dir():
            fail(f"the output {path} is a folder; give a file name with a suffix (.wav, .mp4...)")
        if path.exists() and not overwrite:
            fail(f"{path} exists; pass --overwrite to replace it, or choose another output file")
        folder = path.resolve().parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            fail(
                f"cannot write {path}: {folder} is not a folder you can write to; choose another output file"
            )


def parse_steps(text: str | None, config: dict, *, zero_keeps: bool = False) -> list[int] | None:
    """``--steps``: one number for every stage, or one per stage (``32,16``); with ``zero_keeps`` (training)
    a 0 leaves that stage as it is."""
    if text is None:
        return None
    names = [s["name"] for s in config["stages"] if "step" not in s]  # not the Encode/Decode steps
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError:
        fail(f"--steps {text!r}: give whole numbers, one for every stage or one per stage {names}")
    if len(steps) == 1:
        steps = steps * len(names)
    lowest = 0 if zero_keeps else 1
    if len(steps) != len(names) or min(steps) < lowest or max(steps) < 1:
        keeps = " (0 keeps a stage as it is)" if zero_keeps else ""
        fail(f"--steps {text!r}: give one positive number, or one per stage {names}{keeps}")
    return steps


# --- progress ---------------------------------------------------------------------------------------------


class JobBars:
    """Rich bars on stderr for a job: items finished (from `run_job`'s log lines) and the stage at work
    (the cascade's progress callback). Disabled: every call is a no-op."""

    def __init__(self, total: int, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console(), disable=not enabled,
        )  # fmt: skip
        self.items = self.bars.add_task("items", total=total)
        self.stage_task = self.bars.add_task("loading", total=None)

    def __enter__(self) -> JobBars:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def log(self, line: str) -> None:
        if line.startswith("warning: "):  # on stderr whatever the mode, above the bars where they show
            (self.bars.console.print(line, markup=False, highlight=False) if self.bars.live.is_started
             else print(line, file=sys.stderr, flush=True))  # fmt: skip
            return
        match = re.match(r"(\d+)/(\d+) items", line)
        if match:
            self.bars.update(self.items, completed=int(match[1]), total=int(match[2]))

    def stage(self, name: str, done: int, total: int) -> None:
        self.bars.update(self.stage_task, description=f"stage {name}", completed=done, total=total)

    def finish(self, done: int) -> None:
        """The job is over: ``done`` items are there (skipped ones too); a stage bar that never ran goes."""
        self.bars.update(self.items, completed=done)
        if self.bars.tasks[self.stage_task].total is None:
            self.bars.update(self.stage_task, visible=False)


Master = Annotated[
    bool,
    typer.Option(
        "--master/--no-master",
        help="Finish each clip (or soundtrack) as listeners expect: 44.1 kHz stereo at -14 LUFS, true peak "
        "under -1 dBTP, measured in the manifest. --no-master: the model's raw output (mono, its own rate).",
    ),
]
Loudness = Annotated[
    float | None, typer.Option(max=-1, min=-69, help="Target loudness in LUFS.", show_default="-14")
]
SampleRate = Annotated[
    int | None, typer.Option(min=8000, max=192000, help="Output sample rate.", show_default="44100")
]
Mono = Annotated[bool, typer.Option("--mono", help="One channel instead of stereo.")]


def finishing(master: bool, loudness: float | None, sample_rate: int | None, mono: bool) -> dict | None:
    """The spec's ``mastering`` from the options: ``{}`` for the defaults, None for --no-master."""
    if not master:
        if loudness is not None or sample_rate is not None or mono:
            fail("--loudness, --sample-rate and --mono finish clips; leave out --no-master")
        return None
    mastering: dict = {"channels": 1} if mono else {}
    if loudness is not None:
        mastering["loudness"] = loudness
    if sample_rate is not None:
        mastering["sample_rate"] = sample_rate
    return mastering
