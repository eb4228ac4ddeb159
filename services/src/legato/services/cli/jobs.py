"""``legato batch SPEC``, ``legato demo`` and ``legato gallery``: job specs run here, and their gallery.

A spec's ``model`` (and ``soundtrack``) may be a folder or a model name (``music-fast``); options override
the spec's fields. A job is resumable: its manifest lists the finished items, which a re-run skips.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from legato.services.cli.common import (
    EXIT_FAILED,
    JsonOption,
    emit,
    fail,
    handle_errors,
    out_console,
    resolve_model,
)


def read_spec(path: Path, base: Path | None = None, **overrides):
    """The spec at ``path`` with ``overrides`` (None: keep the spec's), models resolved to folders; relative
    paths in it are relative to ``base`` (default: the current folder, as for `run_job`)."""
    from legato.pipelines import JobSpec

    spec = JobSpec.from_file(path)
    data = {**spec.model_dump(exclude_unset=True), **{k: v for k, v in overrides.items() if v is not None}}
    if base is not None:
        data["output"] = str(base / data["output"])
        for key in ("model", "soundtrack"):
            if data.get(key) and (base / data[key]).exists():
                data[key] = str(base / data[key])
    data["model"] = str(resolve_model(data["model"], spec.kind)[0])
    if data.get("soundtrack"):
        data["soundtrack"] = str(resolve_model(data["soundtrack"], "music")[0])
    return JobSpec.model_validate(data)


@handle_errors
def batch(
    spec: Annotated[Path, typer.Argument(help="A job spec (.yaml, .yml or .json).", show_default=False)],
    executor: Annotated[
        Literal["local", "ray", "ray-data"] | None,
        typer.Option(help="Override the spec's executor.", show_default="the spec's"),
    ] = None,
    output: Annotated[str | None, typer.Option(help="Override the spec's output folder.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Override the spec's model.")] = None,
    soundtrack: Annotated[
        str | None, typer.Option(help="Override the spec's soundtrack model (video).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Override the spec's device (cpu, cuda...).")] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster for ray executors.", show_default="$RAY_ADDRESS or a new local one"),
    ] = None,
    gallery: Annotated[
        bool, typer.Option(help="Also write index.html in the output's parent folder.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a job spec: every item not finished yet (a re-run resumes), with the executor the spec names."""
    from legato.services.cli.run import print_summary, run_spec

    job = read_spec(spec, executor=executor, output=output, model=model, soundtrack=soundtrack, device=device)
    summary = run_spec(job, as_json=as_json, address=address, title=str(spec))
    extra = {}
    if gallery:
        from legato.pipelines.gallery import write_gallery

        extra["gallery"] = str(write_gallery(Path(job.output).resolve().parent).resolve())
    raise typer.Exit(print_summary(summary, as_json, extra=extra))


@handle_errors
def demo(
    root: Annotated[
        Path | None,
        typer.Option(
            help="Folder with jobs/main-*.yaml; outputs go to its outputs/.",
            show_default="here, or the checkout",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The main job: music clips and a video with a soundtrack from the bundled models, and a gallery."""
    from legato.pipelines.gallery import write_gallery
    from legato.pipelines.main_job import SPECS
    from legato.services.cli.common import checkout_models
    from legato.services.cli.run import print_summary, run_spec

    if root is None:
        root = Path.cwd() if (Path.cwd() / SPECS[0]).is_file() else checkout_models().parent
    missing = [s for s in SPECS if not (root / s).is_file()]
    if missing:
        fail(f"{root} has no {', '.join(missing)}; run from a Legato checkout or pass --root")
    started, jobs, code = time.perf_counter(), [], 0
    for path in SPECS:  # the specs' paths (models/, outputs/) are relative to the root
        summary = run_spec(read_spec(root / path, base=root), as_json=as_json, title=path)
        failed = EXIT_FAILED if summary["failed"] else 0
        code = max(code, failed if as_json else print_summary(summary, as_json=False))
        jobs.append(summary)
    page = write_gallery(root / "outputs").resolve()
    seconds = time.perf_counter() - started
    emit({"ok": code == 0, "jobs": jobs, "gallery": str(page), "seconds": round(seconds, 3)}, as_json)
    if not as_json:
        out_console().print(f"\ndone in {seconds:.0f} s; open {page}", markup=False)
    raise typer.Exit(code)


@handle_errors
def gallery(
    folder: Annotated[Path, typer.Argument(help="A folder of job outputs (<job>/manifest.jsonl).")] = Path(
        "outputs"
    ),
    as_json: JsonOption = False,
) -> None:
    """Write FOLDER/index.html: players, spectrograms, prompts and seeds of every job in FOLDER."""
    from legato.pipelines.gallery import write_gallery

    page = write_gallery(folder).resolve()
    emit({"ok": True, "gallery": str(page)}, as_json)
    if not as_json:
        print(page)
