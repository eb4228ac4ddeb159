"""``legato generate music A B --interpolate N``: a riff from one prompt/seed to another, as one track.

Its files go into the output folder like a job's: under the folder's lock, with a manifest line that records
each file's size and hash, so the same command run again keeps a riff that is there and remakes a damaged one.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import typer

from legato.services.cli.common import fail, resolve_model


def riff(prompts: list[str], seeds: list[int] | None, *, steps: int, strength: float | None, model: str | None,
         mastering: dict | None, out: Path | None, device: str | None, as_json: bool) -> None:  # fmt: skip
    """Write ``riff-<slug>-<hash>.wav`` (the stitched track) and one ``.wav`` per step into ``out``."""
    seeds = seeds or [0, 1]
    if len(prompts) > 2 or len(seeds) > 2 or (len(prompts) < 2 and len(seeds) < 2):
        fail(
            f"--interpolate goes between two ends: got {len(prompts)} prompt(s) and {len(seeds)} seed(s); "
            "give two prompts and/or two --seed values"
        )
    path, _ = resolve_model(model, "music")
    from legato.pipelines import Mastering, MusicPipeline
    from legato.pipelines.jobs import model_hash
    from legato.pipelines.manifest import OutputFolder, file_record, missing_files

    start = time.perf_counter()
    folder = (out or Path("outputs") / "riffs").resolve()
    item = {"prompts": prompts, "seeds": seeds, "steps": steps, "strength": strength, "mastering": mastering}
    key = json.dumps([prompts, seeds, steps, strength, str(path), mastering], sort_keys=True)
    slug = re.sub(r"[^a-z0-9]+", "-", " to ".join(prompts).lower()).strip("-")[:60].strip("-") or "riff"
    stem = f"riff-{slug}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"
    names = [f"{stem}.wav", *(f"{stem}-step{k}.wav" for k in range(steps))]
    with OutputFolder(folder) as target:  # one run at a time; a riff already there is kept, not made again
        row = target.rows().get(stem)
        skipped = row is not None and not missing_files(folder, row, names)
        if not skipped:
            pipe = MusicPipeline.from_pretrained(
                path, device=device, mastering=None if mastering is None else Mastering(**mastering)
            )
            result = pipe.interpolate(
                prompts, seeds if len(seeds) == 2 else seeds[0], steps=steps, strength=strength
            )
            written = [result.track.save(folder / names[0])]
            written += [clip.save(folder / name) for clip, name in zip(result.clips, names[1:], strict=True)]
            if row is not None:  # damaged or missing files: the new line replaces the old one
                target.rewrite(r for r in target.rows().values() if r["id"] != stem)
            row = {"id": stem, "seed": seeds[0], "prompt": " -> ".join(prompts), "model": model_hash(path), "model_name": path.name,
                   "item": item, "files": names, "checks": {n: file_record(f) for n, f in zip(names, written, strict=True)},
                   "audio_seconds": round(result.track.seconds, 3), "audio": result.track.measured}  # fmt: skip
            target.append(row)
    files = [str(folder / name) for name in names]
    summary = {"track": files[0], "steps": files[1:], "seconds": round(time.perf_counter() - start, 2),
               "audio_seconds": row.get("audio_seconds"), "measured": row.get("audio"), "skipped": skipped,
               "manifest": str(folder / "manifest.jsonl")}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        done = "already there" if skipped else f"in {summary['seconds']} s"
        typer.echo(f"riff of {steps} steps ({summary['audio_seconds']} s) -> {files[0]} {done}")
