"""``legato models``: the cascades in the models folders, summarised from cascade.json and the model card.

Reads only files (no weights, no torch), so it answers at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from legato.pipelines.folders import damaged_weights, model_dirs
from legato.pipelines.vocabulary import describe_terms, read_vocabulary
from legato.services.cli.common import JsonOption, emit, handle_errors, out_console


def card_summary(folder: Path) -> str:
    """The first paragraph of the model card (README.md) after its title, or ''."""
    card = folder / "README.md"
    if not card.is_file():
        return ""
    paragraphs = [p.strip() for p in card.read_text().split("\n\n") if p.strip()]
    text = next((p for p in paragraphs if not p.startswith(("#", "```", "-", "|"))), "")
    return " ".join(text.split())


def describe(folder: Path) -> dict | None:
    """A cascade folder's summary, or None when ``folder`` holds no cascade.json."""
    try:
        config = json.loads((folder / "cascade.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    meta = config.get("metadata", {})
    stages = []
    for stage in config.get("stages", []):
        if stage.get("step") in ("decode", "encode"):
            stages.append({"name": stage["name"], "steps": 0, "guidance": 1.0, "shape": None, "space": None,
                           "time": None, "step": stage["step"]})  # fmt: skip
            continue
        sr = stage.get("sr") or {}
        stages.append({
            "name": stage["name"], "steps": stage["steps"], "guidance": stage.get("guidance_scale", 1.0),
            "shape": stage.get("shape"), "space": sr.get("space"), "time": sr.get("time"),
        })  # fmt: skip
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    damaged = damaged_weights(folder)  # a weights file whose header does not fit its size, say
    try:
        vocabulary = read_vocabulary(folder)
    except ValueError as err:  # loading the model would refuse it: say so here, not at generation time
        vocabulary = None
        damaged.append(str(err))
    return {
        "name": folder.name,
        "path": str(folder.resolve()),
        "kind": meta.get("pipeline"),
        "stages": stages,
        "evaluations": sum(s["steps"] * (2 if s["guidance"] != 1.0 else 1) for s in stages),
        "text_encoder": meta.get("text_encoder"),
        "fps": meta.get("fps"),
        "sample_rate": (meta.get("spectrogram") or {}).get("sample_rate"),
        "megabytes": round(size / 2**20, 1),
        "summary": card_summary(folder),
        "vocabulary": None if vocabulary is None else vocabulary["terms"],  # what its training captions say
        "damaged": damaged,
    }


def find_models(extra: list[Path]) -> list[dict]:
    """Every cascade in the models folders (and in ``extra`` folders, or ``extra`` cascades themselves)."""
    found, seen = [], set()
    for root in model_dirs(extra):
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            info = describe(folder)
            if info is not None and info["path"] not in seen:
                seen.add(info["path"])
                found.append(info)
    return found


def stage_text(stage: dict) -> str:
    if stage.get("step") == "decode":
        return f"{stage['name']} (the VAE's decoder)"
    if stage.get("step") == "encode":
        return f"{stage['name']} (resize + the VAE's encoder)"
    if stage["shape"]:
        size = "x".join(map(str, stage["shape"]))
    else:
        size = " ".join(f"{axis} x{stage[axis]}" for axis in ("space", "time") if (stage[axis] or 1) > 1)
    guidance = f", guidance {stage['guidance']:g}" if stage["guidance"] != 1.0 else ""
    return f"{stage['name']} {size} ({stage['steps']} steps{guidance})"


app = typer.Typer(invoke_without_command=True, no_args_is_help=False, add_completion=False)


@app.callback()
@handle_errors
def models(
    ctx: typer.Context,
    path: Annotated[
        list[Path] | None,
        typer.Option("--path", "-p", help="Another folder of models (or a model folder); repeatable."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the bundled and local models: kind, stages, steps, size, the model card's summary, and what each
    was trained on (its vocabulary: prompts far from it get a warning when generating). `legato models import`
    brings a diffusers checkpoint in."""
    if ctx.invoked_subcommand is not None:
        return
    for folder in path or []:
        if not folder.is_dir():
            raise FileNotFoundError(f"--path {folder} is not a folder")
    found = find_models(list(path or []))
    if as_json:
        ok = not any(m["damaged"] for m in found)
        emit({"ok": ok, "folders": [str(p) for p in model_dirs(list(path or []))], "models": found}, True)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_lines=True)
    for column in ("name", "kind", "stages", "evals", "MB", "summary"):
        table.add_column(column, overflow="fold")
    for m in found:
        summary = "DAMAGED: " + "; ".join(m["damaged"]) if m["damaged"] else m["summary"]
        if m["vocabulary"]:
            summary += "\nKnows " + describe_terms(m["vocabulary"])
        table.add_row(escape(m["name"]), m["kind"] or "?", escape("\n".join(map(stage_text, m["stages"]))),
                      str(m["evaluations"]), f"{m['megabytes']:g}", escape(summary))  # fmt: skip
    console = out_console()
    console.print(table)
    for m in found:
        for line in m["damaged"]:
            print(f"warning: {m['name']}: {line}", file=sys.stderr)
    where = ", ".join(str(p) for p in model_dirs(list(path or [])))
    console.print(f"{len(found)} models in {where}; use a name or a path with --model", markup=False)


def _size(option: str, text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{option} {text!r} must be HEIGHTxWIDTH, like 512x512") from None
    return height, width


@app.command("import")
@handle_errors
def import_(
    folders: Annotated[
        list[Path],
        typer.Argument(
            help="diffusers pipeline folders: a base, then x4 upscalers, video-to-video refiners, or LTX's "
            "latent upsampler and a second LTX folder (its multi-scale recipe)."
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="The model's name (a folder in ./models).")],
    kind: Annotated[
        str, typer.Option(help="music (Riffusion's spectrogram images), image or video.")
    ] = "image",
    steps: Annotated[
        str | None, typer.Option(help="Steps per folder, comma-separated (default: diffusers').")
    ] = None,
    guidance: Annotated[float | None, typer.Option(help="The base stage's guidance scale.")] = None,
    size: Annotated[
        str | None,
        typer.Option(
            help="Output HEIGHTxWIDTH in pixels.", show_default="the UNet's; Wan 480x832; LTX 512x704"
        ),
    ] = None,
    frames: Annotated[
        int | None,
        typer.Option(help="Frames of a text-to-video base stage.", show_default="16; Wan 81; LTX 161"),
    ] = None,
    refine_size: Annotated[
        str | None,
        typer.Option(
            help="HEIGHTxWIDTH a video-to-video stage refines at (Zeroscope XL: 576x1024).",
            show_default="twice the base's",
        ),
    ] = None,
    strength: Annotated[
        float,
        typer.Option(
            min=0.01, max=0.99, help="How much a video-to-video stage (or LTX's refining pass) changes."
        ),
    ] = 0.6,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    into: Annotated[Path, typer.Option("--into", help="Where the model folder goes.")] = Path("models"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model of that name.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Import diffusers checkpoints (StableDiffusionPipeline, StableDiffusionUpscalePipeline,
    TextToVideoSDPipeline, VideoToVideoSDPipeline, WanPipeline, LTXPipeline, LTXLatentUpsamplePipeline folders) as
    one Legato model: `legato models import riffusion-model-v1 --name
    riffusion --kind music`, then `legato generate music "..." --model riffusion`."""
    from legato.pipelines.checkpoints import import_checkpoint

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name {name!r} must be a plain folder name, like riffusion")
    counts = None if steps is None else [int(n) for n in steps.split(",")]
    path = import_checkpoint([str(f) for f in folders], into / name, kind=kind, force=force, steps=counts,
                             guidance=guidance, size=_size("--size", size), frames=frames, dtype=dtype,
                             device=device, refine_size=_size("--refine-size", refine_size),
                             strength=strength)  # fmt: skip
    info = describe(path)
    if as_json:
        emit({"ok": True, "model": info}, True)
        return
    out_console().print(f"imported {name} ({info['kind']}) into {path}: " + "; ".join(map(stage_text, info["stages"])),
                        markup=False)  # fmt: skip
