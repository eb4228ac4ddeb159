"""``legato edit music``: an audio file -> `MusicPipeline.edit` / ``invert_edit`` / ``inpaint`` -> files.

One mode per call: img2img (``--strength``, the default), DDIM inversion under a description of the input
(``--source-prompt``), or inpainting a time range (``--start``/``--end``; the rest is kept exactly).
Video pipelines have no edits, so there is no ``edit video``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from legato.services.cli.common import (
    JsonOption,
    emit,
    fail,
    handle_errors,
    parse_steps,
    resolve_model,
    status,
)

app = typer.Typer(help="Edit a song with a music model: img2img, DDIM inversion, or inpainting a time range.",
                  no_args_is_help=True)  # fmt: skip


def check_formats(kind: str, paths: list[Path]) -> None:
    """Refuse output suffixes the pipelines cannot write, before any work (the job spec's own table)."""
    from legato.pipelines import JobSpec

    formats = [p.suffix.lower().lstrip(".") for p in paths]
    if not all(formats):
        fail(f"outputs {[str(p) for p in paths]} need a suffix that names the format (.wav, .png...)")
    JobSpec.model_validate(
        {"kind": kind, "model": ".", "output": ".", "items": [{"prompt": "-"}], "formats": formats}
    )


@app.command("music")
@handle_errors
def music(
    audio: Annotated[
        Path, typer.Argument(help="The song to edit (wav, flac, mp3, ogg...).", show_default=False)
    ],
    prompt: Annotated[
        str, typer.Argument(help="What the edited song (or region) should be.", show_default=False)
    ],
    strength: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="img2img: how much to change, 0 keeps the song, 1 ignores it.",
            show_default="0.6",
        ),
    ] = None,
    source_prompt: Annotated[
        str | None,
        typer.Option(help="DDIM inversion: a description of the input song; resampled under PROMPT."),
    ] = None,
    start: Annotated[
        float | None, typer.Option(min=0.0, help="Inpainting: start of the range to regenerate, s.")
    ] = None,
    end: Annotated[
        float | None, typer.Option(min=0.0, help="Inpainting: end of the range to regenerate, s.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the edit's noise.")] = 0,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="A music model folder or name.", show_default="music-default"),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help="Sampling steps: one for every stage, or one per stage.", show_default="the model's"
        ),
    ] = None,
    guidance: Annotated[
        float | None, typer.Option(min=1.0, help="Base-stage guidance scale.", show_default="the model's")
    ] = None,
    out: Annotated[
        list[Path] | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file, repeatable; the suffix is the format (.wav, .flac, .png...).",
            show_default="<song>-edited.wav",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda...", show_default="the model's, cpu")] = None,
    as_json: JsonOption = False,
) -> None:
    """Edit AUDIO towards PROMPT with one of three modes (img2img, inversion, inpainting)."""
    if not audio.is_file():
        fail(f"{audio} is not a file; give the song to edit")
    if (start is None) != (end is None):
        fail("inpainting needs both --start and --end (seconds)")
    modes = [m for m, on in (("img2img", strength is not None), ("inversion", source_prompt is not None),
                             ("inpainting", start is not None)) if on]  # fmt: skip
    if len(modes) > 1:
        fail(f"choose one mode, got {' and '.join(modes)}: --strength, --source-prompt, or --start/--end")
    mode = modes[0] if modes else "img2img"
    outputs = out or [Path(f"{audio.stem}-edited.wav")]
    check_formats("music", outputs)
    path, config = resolve_model(model, "music")
    from legato.pipelines import MusicPipeline
    from legato.pipelines.jobs import with_sampling

    started = time.perf_counter()
    with status(f"{mode} of {audio.name} with {path.name}", enabled=not as_json):
        pipe = with_sampling(
            MusicPipeline.from_pretrained(path, device=device), parse_steps(steps, config), guidance
        )
        if mode == "inpainting":
            clip = pipe.inpaint(audio, prompt, start, end, seed=seed)
        elif mode == "inversion":
            clip = pipe.invert_edit(audio, source_prompt, prompt, seed=seed)
        else:
            clip = pipe.edit(audio, prompt, strength=0.6 if strength is None else strength, seed=seed)
        files = [str(clip.save(p).resolve()) for p in outputs]
    seconds = time.perf_counter() - started
    emit({"ok": True, "mode": mode, "input": str(audio.resolve()), "prompt": prompt, "seed": seed,
          "model": str(path), "files": files, "audio_seconds": round(clip.seconds, 3),
          "seconds": round(seconds, 3)}, as_json)  # fmt: skip
    if not as_json:
        print(f"{mode}: {clip.seconds:.2f} s of audio in {seconds:.1f} s -> {', '.join(files)}")
