"""``legato generate music A B --interpolate N``: a riff from one prompt/seed to another, as one track."""

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

    start = time.perf_counter()
    pipe = MusicPipeline.from_pretrained(
        path, device=device, mastering=None if mastering is None else Mastering(**mastering)
    )
    result = pipe.interpolate(prompts, seeds if len(seeds) == 2 else seeds[0], steps=steps, strength=strength)
    folder = (out or Path("outputs") / "riffs").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    key = json.dumps([prompts, seeds, steps, strength, str(path), mastering], sort_keys=True)
    slug = re.sub(r"[^a-z0-9]+", "-", " to ".join(prompts).lower()).strip("-")[:60].strip("-") or "riff"
    stem = f"riff-{slug}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"
    files = [str(result.track.save(folder / f"{stem}.wav"))]
    files += [str(clip.save(folder / f"{stem}-step{k}.wav")) for k, clip in enumerate(result.clips)]
    summary = {"track": files[0], "steps": files[1:], "seconds": round(time.perf_counter() - start, 2),
               "audio_seconds": round(result.track.seconds, 3), "measured": result.track.measured}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"riff of {steps} steps ({summary['audio_seconds']} s) -> {files[0]} in {summary['seconds']} s"
        )
