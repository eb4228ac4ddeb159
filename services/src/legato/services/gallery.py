"""An HTML gallery of job outputs (`legato gallery`): ``index.html`` beside the jobs' folders, one card per
manifest line.

Audio files get a player, PNG spectrograms an image, videos a player; each card shows its prompt, seed and
id, and links every file. Paths are relative, so the folder can be copied or served as it is.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from legato.codec import atomic_output
from legato.pipelines.manifest import MANIFEST, read_manifest

_AUDIO = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
_VIDEO = {".mp4": "video/mp4", ".webm": "video/webm"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; background: #fafafa; color: #222; }
h2 { margin-top: 2rem; } .grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { background: white; border: 1px solid #ddd; border-radius: 8px; padding: .8rem; width: 300px; }
.card img, .card video { width: 100%; image-rendering: pixelated; } .card audio { width: 100%; }
.prompt { font-weight: 600; } .meta { color: #666; font-size: .85em; }
"""


def _card(folder: str, row: dict) -> str:
    parts = [f'<div class="card"><div class="prompt">{html.escape(str(row.get("prompt", "")))}</div>',
             f'<div class="meta">id {html.escape(str(row["id"]))} &middot; seed {row.get("seed")}{_timing(row)}</div>']  # fmt: skip
    for name in row["files"]:
        src = html.escape(f"{folder}/{name}", quote=True)
        suffix = Path(name).suffix.lower()
        if suffix in _VIDEO:
            parts.append(f'<video controls loop src="{src}" type="{_VIDEO[suffix]}"></video>')
        elif suffix in _AUDIO:
            parts.append(f'<audio controls src="{src}" type="{_AUDIO[suffix]}"></audio>')
        elif suffix in (".png", ".gif"):
            parts.append(f'<img src="{src}" alt="{html.escape(name, quote=True)}">')
    links = " ".join(
        f'<a href="{html.escape(f"{folder}/{n}", quote=True)}">{html.escape(n)}</a>' for n in row["files"]
    )
    parts.append(f'<div class="meta">{links}</div></div>')
    return "\n".join(parts)


def write_gallery(root: str | os.PathLike[str], title: str = "Legato outputs") -> Path:
    """Write ``root/index.html`` over every ``root/<job>/manifest.jsonl``; returns its path."""
    root = Path(root)
    jobs = sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    if not jobs:
        raise FileNotFoundError(f"{root} has no <job>/{MANIFEST}; run a job into {root}/<job> first")
    sections = []
    for job in jobs:
        rows = read_manifest(job)
        names = sorted({str(r.get("model_name") or "") for r in rows} - {""})
        ids = sorted({str(r.get("model", "")) for r in rows})
        model = html.escape(", ".join(names) + (f" ({', '.join(ids)})" if ids else "")) if rows else ""
        cards = "\n".join(_card(job.name, row) for row in rows)
        sections.append(f'<h2>{html.escape(job.name)}</h2><div class="meta">{len(rows)} items &middot; '
                        f'model {model}</div><div class="grid">{cards}</div>')  # fmt: skip
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>")  # fmt: skip
    target = root / "index.html"
    with atomic_output(target) as tmp:
        Path(tmp).write_text(page)
    return target


def _timing(row: dict) -> str:
    """`` · made in 1.23 s`` from the manifest's timings (generation plus writing), or nothing without them."""
    timings = row.get("timings") or {}
    seconds = sum(v for v in timings.values() if isinstance(v, int | float))
    return f" &middot; made in {seconds:.2f} s" if timings else ""
