"""``legato generate music|video``: prompts and seeds -> a job spec -> files, a manifest, a summary.

Each (prompt, seed) pair becomes one item of a `JobSpec` whose id names its files (a slug of the prompt, the
seed, and a short hash), so generating into the same folder again skips what is there and adds the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from legato.services.cli.common import (
    Device,
    Guidance,
    JsonOption,
    Loudness,
    Master,
    Mono,
    SampleRate,
    Scheduler,
    Steps,
    VaeSlicing,
    VaeTiling,
    fail,
    finishing,
    handle_errors,
    parse_steps,
    resolve_model,
)

app = typer.Typer(
    help="Generate music clips or videos from prompts (files + manifest.jsonl; a re-run skips what is done).",
    no_args_is_help=True,
)

Prompts = Annotated[
    list[str],
    typer.Argument(help="One or more prompts; each is generated once per --seed.", show_default=False),
]
Seeds = Annotated[
    list[int] | None,
    typer.Option(
        "--seed", "-s", help="A seed (repeat for several: every prompt x every seed).", show_default="0"
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A model folder, or a name in models/ (music-fast...).",
        show_default="<kind>-default",
    ),
]
Formats = Annotated[
    list[str] | None,
    typer.Option(
        "--format", "-f", help="File format, repeatable.", show_default="wav + png (music), mp4 (video)"
    ),
]
Negative = Annotated[
    str | None,
    typer.Option("--negative", help="A negative prompt: what guidance steers every output away from."),
]
Out = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output folder.", show_default="outputs/generate-<kind>")
]
Executor = Annotated[
    Literal["local", "ray", "ray-data"],
    typer.Option(help="local: this process; ray: stage actors on a Ray cluster; ray-data: Ray Data batches."),
]
Address = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster for --executor ray (e.g. 10.0.0.5:6379).",
        show_default="$RAY_ADDRESS or a new local one",
    ),
]


def items(
    prompts: list[str],
    seeds: list[int] | None,
    length: float | None = None,
    key: str = "duration",
    negative: str | None = None,
) -> list[dict]:
    pairs = dict.fromkeys((p, s) for p in prompts for s in seeds or [0])  # repeated pairs once, in order
    if any(not p.strip() for p, _ in pairs):
        fail("a prompt is empty; give each prompt some words")
    found = []
    for prompt, seed in pairs:
        item = {"prompt": prompt, "seed": seed}  # its id, and file names, come from these (JobSpec.item_ids)
        if length is not None:
            item[key] = length
        if negative:
            item["negative"] = negative
        found.append(item)
    return found


def generate(kind: str, prompts: list[str], *, seeds, length, model, soundtrack, steps, guidance, formats,
             out, device, executor, address, as_json, mastering=None, scheduler=None,
             negative=None, vae_tiling=None, vae_slicing=None) -> None:  # fmt: skip
    path, config = resolve_model(model, kind)
    spec = {
        "kind": kind,
        "model": str(path),
        "output": str((out or Path("outputs") / f"generate-{kind}").resolve()),
        "items": items(prompts, seeds, length, "duration" if kind == "music" else "frames", negative),
        "formats": formats or None,
        "executor": executor,
        "device": device,
        "steps": parse_steps(steps, config),
        "guidance": guidance,
        "scheduler": scheduler,
        "vae_tiling": vae_tiling,
        "vae_slicing": vae_slicing,
    }
    spec["mastering"] = mastering  # None: the raw model output
    if soundtrack is not None:
        spec["soundtrack"] = str(resolve_model(soundtrack, "music")[0])
    from legato.services.cli.jobs import load_spec, print_summary, run_spec

    job = load_spec(spec)
    summary = run_spec(job, as_json=as_json, address=address, title=f"{kind} from {path.name}")
    raise typer.Exit(print_summary(summary, as_json))


@app.command("music")
@handle_errors
def music(
    prompts: Prompts,
    seed: Seeds = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            "-d",
            min=0.1,
            max=600,
            help="Seconds per clip; longer than the model's window continues window by window.",
            show_default="one window",
        ),
    ] = None,
    model: Model = None,
    negative: Negative = None,
    steps: Steps = None,
    guidance: Guidance = None,
    scheduler: Scheduler = None,
    formats: Formats = None,
    out: Out = None,
    device: Device = None,
    executor: Executor = "local",
    address: Address = None,
    vae_tiling: VaeTiling = None,
    vae_slicing: VaeSlicing = None,
    as_json: JsonOption = False,
    master: Master = True,
    loudness: Loudness = None,
    sample_rate: SampleRate = None,
    mono: Mono = False,
    interpolate: Annotated[
        int | None,
        typer.Option(
            min=2,
            max=64,
            help="Riff: N steps from the first prompt/seed to the second, stitched into one track "
            "(text lerped, noise slerped).",
            show_default="off",
        ),
    ] = None,
    strength: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="With --interpolate: img2img each step from the previous one at this strength.",
        ),
    ] = None,
) -> None:
    """Music clips: audio files (wav, flac, mp3, ogg) and their mel spectrogram images (png)."""
    mastering = finishing(master, loudness, sample_rate, mono)
    if interpolate is not None:
        from legato.services.cli.riff import riff

        riff(prompts, seed, steps=interpolate, strength=strength, model=model, mastering=mastering, out=out,
             device=device, as_json=as_json)  # fmt: skip
        return
    if strength is not None:
        fail("--strength is for --interpolate; add --interpolate N")
    generate("music", prompts, seeds=seed, length=duration, model=model, soundtrack=None, steps=steps,
             guidance=guidance, formats=formats, out=out, device=device, executor=executor, address=address,
             as_json=as_json, mastering=mastering, scheduler=scheduler, negative=negative, vae_tiling=vae_tiling,
             vae_slicing=vae_slicing)  # fmt: skip


@app.command("video")
@handle_errors
def video(
    prompts: Prompts,
    seed: Seeds = None,
    frames: Annotated[
        int | None,
        typer.Option(
            "--frames",
            "-n",
            min=1,
            max=10_000,
            help="Frames per video; more than the model's window continue window by window.",
            show_default="one window",
        ),
    ] = None,
    model: Model = None,
    soundtrack: Annotated[
        str | None,
        typer.Option(
            help="A music model (folder or name, e.g. music-fast) for a soundtrack as long as the video."
        ),
    ] = None,
    negative: Negative = None,
    steps: Steps = None,
    guidance: Guidance = None,
    scheduler: Scheduler = None,
    formats: Formats = None,
    out: Out = None,
    device: Device = None,
    executor: Executor = "local",
    address: Address = None,
    vae_tiling: VaeTiling = None,
    vae_slicing: VaeSlicing = None,
    as_json: JsonOption = False,
    master: Master = True,
    loudness: Loudness = None,
    sample_rate: SampleRate = None,
    mono: Mono = False,
) -> None:
    """Videos (mp4, webm, gif) of the model's length and size, optionally with a generated soundtrack."""
    mastering = finishing(master, loudness, sample_rate, mono)
    if soundtrack is None and (not master or mastering != {}):
        fail("--no-master, --loudness, --sample-rate and --mono finish a soundtrack: add --soundtrack MODEL")
    generate("video", prompts, seeds=seed, length=frames, model=model, soundtrack=soundtrack, steps=steps,
             guidance=guidance, formats=formats, out=out, device=device, executor=executor, address=address,
             as_json=as_json, scheduler=scheduler, mastering=mastering if soundtrack else None,
             negative=negative, vae_tiling=vae_tiling, vae_slicing=vae_slicing)  # fmt: skip
