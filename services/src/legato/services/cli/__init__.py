"""The ``legato`` command: parse, validate, call `legato.pipelines`, write files, summarise.

::

    legato generate music "a jig on fiddle" --seed 1 --seed 2 --duration 8     # files + manifest.jsonl
    legato generate video "slow zoom into a cat" --soundtrack music-fast
    legato edit music song.wav "a slow chorale on organ" --strength 0.5
    legato batch job.yaml                                                        # resumable
    legato job submit job.yaml --address http://HOST:8265 --wait                # the same, as a Ray job
    legato models; legato demo; legato train music --data data/music; legato serve
    legato recipes dataset music data/music                                     # building the bundled models

Exit codes: 0 ok; 1 failed items or a runtime error (a full disk included); 2 bad usage or input (one line,
no traceback); 3 the output folder is being written by another run; 130 interrupted (Ctrl-C, SIGTERM). Every command takes ``--help``; most take ``--json``. Commands import the pipelines (torch)
only when they run, so ``--help`` and ``legato models`` answer at once.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

import typer

from legato.services.cli import edit, generate, jobs, models, ray_jobs, recipes, serve, train

app = typer.Typer(
    name="legato",
    help="Music and video from cascaded diffusion models: generate, edit, batch jobs, Ray jobs, training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _quiet_libraries() -> None:
    """Music and video from cascaded diffusion models: generate, edit, batch jobs, Ray jobs, training.

    Exit codes: 0 ok, 1 failed items or a runtime error, 2 bad usage or input, 130 interrupted.
    """
    # Library progress bars (model loading) would interleave with ours; nothing is ever downloaded.
    quiet = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error",
             "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    for key, value in quiet.items():
        os.environ.setdefault(key, value)
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if category.__name__ == "PromptWarning":  # ours: one plain line, like every other message
            print(f"warning: {message}", file=sys.stderr, flush=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


app.add_typer(generate.app, name="generate")
app.add_typer(edit.app, name="edit")
app.command("batch")(jobs.batch)
app.add_typer(ray_jobs.app, name="job")
app.add_typer(models.app, name="models")
app.command("demo")(jobs.demo)
app.command("gallery")(jobs.gallery)
app.command("train")(train.train)
app.command("distill")(train.distill)
app.add_typer(recipes.app, name="recipes")
app.command("serve")(serve.serve)


def main() -> None:
    """The console script's entry point. SIGTERM stops a command as Ctrl-C does (exit 130, "run the same
    command again to resume"), so what it started (a local Ray cluster, a lock) is let go on the way out."""
    signal.signal(signal.SIGTERM, _terminated)
    app(prog_name="legato")


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


__all__ = ["app", "main"]
