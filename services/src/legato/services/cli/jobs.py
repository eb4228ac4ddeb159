"""Job specs run here: ``legato batch SPEC``, ``legato demo`` (the main job) and ``legato gallery``, and the
runner that ``legato generate`` shares with them.

A spec's ``model`` (and ``soundtrack``) may be a folder or a model name (``music-fast``); options override
the spec's fields. The job itself is `legato.pipelines.run_job`: atomic files, a manifest line per item, and
a re-run resumes by skipping the items the manifest lists.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from legato.services.cli.common import (
    EXIT_FAILED,
    JobBars,
    JsonOption,
    emit,
    fail,
    handle_errors,
    out_console,
    resolve_model,
)

DEMO_SPECS = ("jobs/main-music.yaml", "jobs/main-video.yaml")  # the main job (README's first command)


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


def load_spec(data: dict[str, Any]):
    """A `JobSpec` from a dict (validated: unknown fields and bad values are errors)."""
    from legato.pipelines import JobSpec

    return JobSpec.model_validate(data)


def run_spec(spec, *, as_json: bool, address: str | None = None, title: str | None = None) -> dict:
    """Run ``spec`` (resumable) and return its summary: output folder, ids written and skipped, seconds, and
    every item's manifest row with absolute file paths. ``address``: the Ray cluster of ``ray`` executors."""
    from rich.markup import escape

    from legato.pipelines.jobs import read_manifest, run_job

    if address:
        os.environ["RAY_ADDRESS"] = address  # what run_job's Ray executors connect to
    if title and not as_json:
        out_console().print(
            f"[bold]{escape(title)}[/bold]: {len(spec.items)} items -> {escape(str(Path(spec.output).resolve()))}"
        )
    with JobBars(len(spec.items), enabled=not as_json) as bars:
        result = run_job(spec, log=bars.log, progress=bars.stage)
        bars.finish(len(result.written) + len(result.skipped))
    output = result.output.resolve()
    rows = {row["id"]: row for row in read_manifest(output)}
    items = []
    for item_id in spec.item_ids:
        row = rows.get(item_id)
        files = [str(output / f) for f in row["files"]] if row else []
        items.append({"id": item_id, "prompt": row["prompt"] if row else None, "seed": row and row["seed"],
                      "files": files, "done": row is not None})  # fmt: skip
    return {
        "ok": all(i["done"] for i in items),
        "kind": spec.kind,
        "model": spec.model,
        "output": str(output),
        "manifest": str(output / "manifest.jsonl"),
        "written": result.written,
        "skipped": result.skipped,
        "failed": [i["id"] for i in items if not i["done"]],
        "seconds": round(result.seconds, 3),
        "warnings": result.warnings,
        "items": items,
    }


def print_summary(summary: dict, as_json: bool, *, extra: dict | None = None) -> int:
    """Print a job summary (a table, or JSON); returns the exit code (1 when items failed)."""
    summary = {**summary, **(extra or {})}
    if as_json:
        emit(summary, True)
    else:
        from rich.markup import escape
        from rich.table import Table

        table = Table(show_edge=False, pad_edge=False)
        for column in ("id", "seed", "prompt", "files"):
            table.add_column(column, overflow="fold")
        for item in summary["items"]:
            names = " ".join(Path(f).suffix.lstrip(".") for f in item["files"]) or "failed"
            table.add_row(escape(item["id"]), str(item["seed"]), escape(item["prompt"] or ""), escape(names))
        console = out_console()
        console.print(table)
        console.print(
            f"{len(summary['written'])} written, {len(summary['skipped'])} already there, "
            f"{len(summary['failed'])} failed in {summary['seconds']:.1f} s -> {summary['output']}",
            markup=False,
        )
    return EXIT_FAILED if summary["failed"] else 0


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
    gpus: Annotated[
        float | None,
        typer.Option(help="Ray executors: place the stages on this many GPUs by their measured costs."),
    ] = None,
    cpus: Annotated[
        float | None,
        typer.Option(help="Ray executors: place the stages on this many CPUs by their measured costs."),
    ] = None,
    compile: Annotated[
        Literal["default", "reduce-overhead", "max-autotune"] | None,
        typer.Option(
            help="torch.compile every stage's networks in this mode (reduce-overhead: CUDA graphs)."
        ),
    ] = None,
    gallery: Annotated[
        bool, typer.Option(help="Also write index.html in the output's parent folder.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a job spec: every item not finished yet (a re-run resumes), with the executor the spec names."""
    job = read_spec(spec, executor=executor, output=output, model=model, soundtrack=soundtrack, device=device,
                    gpus=gpus, cpus=cpus, compile=compile)  # fmt: skip
    summary = run_spec(job, as_json=as_json, address=address, title=str(spec))
    extra = {}
    if gallery:
        from legato.services.gallery import write_gallery

        extra["gallery"] = str(write_gallery(Path(job.output).resolve().parent).resolve())
    raise typer.Exit(print_summary(summary, as_json, extra=extra))


@handle_errors
def demo(
    specs: Annotated[
        list[Path] | None,
        typer.Argument(help="Job specs to run instead of the main job's.", show_default="jobs/main-*.yaml"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Where everything goes: each spec's folder under it by its last name "
            "(outputs/music -> OUTPUT/music), and the gallery over them.",
            show_default="outputs/ of the root",
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="Folder with jobs/main-*.yaml; the main job's paths (models/, outputs/) are relative to it.",
            show_default="here, or the checkout",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The main job: music clips and a video with a soundtrack from the bundled models, and a gallery."""
    from legato.pipelines.folders import checkout_models
    from legato.services.gallery import write_gallery

    if root is None:
        root = Path.cwd() if (Path.cwd() / DEMO_SPECS[0]).is_file() else checkout_models().parent
    if specs:
        base, paths = None, list(specs)  # a user's specs: their paths mean what they mean here
    else:
        missing = [s for s in DEMO_SPECS if not (root / s).is_file()]
        if missing:
            fail(f"{root} has no {', '.join(missing)}; run from a Legato checkout or pass --root")
        base, paths = root, [root / s for s in DEMO_SPECS]
    output = output or root / "outputs"
    jobs = [read_spec(path, base=base) for path in paths]  # every spec checked before any work
    folders = [output / Path(job.output).name for job in jobs]
    if len(set(folders)) < len(folders):
        fail(f"the specs' output folders {[job.output for job in jobs]} share a last name, so under --output "
             f"{output} they would write into one folder; give each job its own folder name")  # fmt: skip
    started, summaries, code = time.perf_counter(), [], 0
    for path, job, folder in zip(paths, jobs, folders, strict=True):
        job = job.model_copy(update={"output": str(folder)})
        summary = run_spec(job, as_json=as_json, title=str(path))
        failed = EXIT_FAILED if summary["failed"] else 0
        code = max(code, failed if as_json else print_summary(summary, as_json=False))
        summaries.append(summary)
    page = write_gallery(output).resolve()
    seconds = time.perf_counter() - started
    emit({"ok": code == 0, "jobs": summaries, "gallery": str(page), "seconds": round(seconds, 3)}, as_json)
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
    from legato.services.gallery import write_gallery

    page = write_gallery(folder).resolve()
    emit({"ok": True, "gallery": str(page)}, as_json)
    if not as_json:
        print(page)
