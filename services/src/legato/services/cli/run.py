"""Run a validated `JobSpec` with progress bars, and summarise it: what `generate`, `batch` and `demo` share.

The job itself is `legato.pipelines.run_job`: atomic files, a manifest line per item, resume by skipping
the items the manifest lists.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from legato.services.cli.common import EXIT_FAILED, JobBars, emit, out_console


def load_spec(data: dict[str, Any]):
    """A `JobSpec` from a dict (validated: unknown fields and bad values are errors)."""
    from legato.pipelines import JobSpec

    return JobSpec.model_validate(data)


def run_spec(spec, *, as_json: bool, address: str | None = None, title: str | None = None) -> dict:
    """Run ``spec`` (resumable) and return its summary: output folder, ids written and skipped, seconds, and
    every item's manifest row with absolute file paths. ``address``: the Ray cluster of ``ray`` executors."""
    from rich.markup import escape

    from legato.pipelines import run_job
    from legato.pipelines.jobs import read_manifest

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
