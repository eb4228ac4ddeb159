"""``legato edit music|video``: a song or a video -> `edit` / ``invert_edit`` / ``inpaint`` -> files.

One mode per call: img2img (``--strength``, the default), DDIM inversion under a description of the input
(``--source-prompt``), or inpainting a time range (``--start``/``--end``) and/or a mask image (``--mask``;
the rest is kept exactly). Both kinds share the pipelines' one editing implementation
(`legato.pipelines.editing`), so both take the same options.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from legato.services.cli.common import (
    Device,
    Guidance,
    JsonOption,
    Master,
    Scheduler,
    Steps,
    check_outputs,
    emit,
    fail,
    handle_errors,
    parse_steps,
    resolve_model,
    status,
)

app = typer.Typer(
    help="Edit a song or a video with a model: img2img, DDIM inversion, or inpainting a time range or a mask.",
    no_args_is_help=True,
)
DEFAULT_SUFFIX = {"music": ".wav", "video": ".mp4"}


def check_formats(kind: str, paths: list[Path]) -> None:
    """Refuse output suffixes the pipelines cannot write, before any work (the job spec's own table)."""
    from legato.pipelines import JobSpec

    formats = [p.suffix.lower().lstrip(".") for p in paths]
    if not all(formats):
        fail(f"outputs {[str(p) for p in paths]} need a suffix that names the format (.wav, .png...)")
    JobSpec.model_validate(
        {"kind": kind, "model": ".", "output": ".", "items": [{"prompt": "-"}], "formats": formats}
    )


Prompt = Annotated[
    str, typer.Argument(help="What the edit (or the region) should become.", show_default=False)
]
Strength = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="img2img: how much to change, 0 keeps the input, 1 ignores it.",
        show_default="0.6",
    ),
]
SourcePrompt = Annotated[
    str | None, typer.Option(help="DDIM inversion: a description of the input; resampled under PROMPT.")
]
Start = Annotated[
    float | None, typer.Option(min=0.0, help="Inpainting: start of the range to regenerate, s.")
]
End = Annotated[float | None, typer.Option(min=0.0, help="Inpainting: end of the range to regenerate, s.")]
Seed = Annotated[int, typer.Option("--seed", "-s", help="Seed of the edit's noise.")]
Negative = Annotated[
    str | None, typer.Option("--negative", help="A negative prompt: what guidance steers the edit away from.")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace output files that exist (never the input).")
]


def model_option(kind: str):
    return Annotated[
        str | None,
        typer.Option("--model", "-m", help=f"A {kind} model folder or name.", show_default=f"{kind}-default"),
    ]


def out_option(formats: str, default: str):
    return Annotated[
        list[Path] | None,
        typer.Option(
            "--out", "-o", help=f"Output file, repeatable; the suffix is the format ({formats}).",
            show_default=default,
        ),
    ]  # fmt: skip


@app.command("music")
@handle_errors
def music(
    audio: Annotated[
        Path, typer.Argument(help="The song to edit (wav, flac, mp3, ogg...).", show_default=False)
    ],
    prompt: Prompt,
    strength: Strength = None,
    source_prompt: SourcePrompt = None,
    start: Start = None,
    end: End = None,
    mask: Annotated[
        Path | None,
        typer.Option(
            help="Inpainting: an image over the mel spectrogram (bands x frames, any size), white where to "
            "regenerate; with --start/--end, within that range."
        ),
    ] = None,
    seed: Seed = 0,
    negative: Negative = None,
    model: model_option("music") = None,
    steps: Steps = None,
    guidance: Guidance = None,
    scheduler: Scheduler = None,
    out: out_option(".wav, .flac, .png...", "<song>-edited.wav") = None,
    device: Device = None,
    overwrite: Overwrite = False,
    as_json: JsonOption = False,
    master: Master = True,
) -> None:
    """Edit AUDIO towards PROMPT with one of three modes (img2img, inversion, inpainting)."""
    edit("music", audio, prompt, strength=strength, source_prompt=source_prompt, start=start, end=end, mask=mask,
         seed=seed, model=model, steps=steps, guidance=guidance, scheduler=scheduler, out=out, device=device,
         overwrite=overwrite, as_json=as_json, master=master, negative=negative)  # fmt: skip


@app.command("video")
@handle_errors
def video(
    source: Annotated[
        Path, typer.Argument(help="The video to edit (mp4, webm, gif...).", show_default=False)
    ],
    prompt: Prompt,
    strength: Strength = None,
    source_prompt: SourcePrompt = None,
    start: Start = None,
    end: End = None,
    mask: Annotated[
        Path | None,
        typer.Option(
            help="Inpainting: an image (any size, scaled to the frames), white where to regenerate in every "
            "frame; with --start/--end, within that range."
        ),
    ] = None,
    seed: Seed = 0,
    negative: Negative = None,
    model: model_option("video") = None,
    steps: Steps = None,
    guidance: Guidance = None,
    scheduler: Scheduler = None,
    out: out_option(".mp4, .webm, .gif", "<video>-edited.mp4") = None,
    device: Device = None,
    overwrite: Overwrite = False,
    as_json: JsonOption = False,
) -> None:
    """Edit SOURCE towards PROMPT (re-timed to the model's frame rate and cropped to its frame size) with one
    of three modes (img2img, inversion, inpainting)."""
    edit("video", source, prompt, strength=strength, source_prompt=source_prompt, start=start, end=end, mask=mask,
         seed=seed, model=model, steps=steps, guidance=guidance, scheduler=scheduler, out=out, device=device,
         overwrite=overwrite, as_json=as_json, negative=negative)  # fmt: skip


def edit(kind: str, source: Path, prompt: str, *, strength, source_prompt, start, end, mask, seed, model, steps,
         guidance, scheduler, out, device, overwrite, as_json, master=True, negative=None) -> None:  # fmt: skip
    """One edit of ``source`` with a ``kind`` pipeline, its files and summary."""
    if not source.is_file():
        fail(f"{source} is not a file; give the {'song' if kind == 'music' else 'video'} to edit")
    if (start is None) != (end is None):
        fail("inpainting a time range needs both --start and --end (seconds)")
    if mask is not None and not mask.is_file():
        fail(f"--mask {mask} is not a file; give an image, white where to regenerate")
    modes = [m for m, on in (("img2img", strength is not None), ("inversion", source_prompt is not None),
                             ("inpainting", start is not None or mask is not None)) if on]  # fmt: skip
    if len(modes) > 1:
        fail(
            f"choose one mode, got {' and '.join(modes)}: --strength, --source-prompt, or --start/--end/--mask"
        )
    mode = modes[0] if modes else "img2img"
    outputs = out or [Path(f"{source.stem}-edited{DEFAULT_SUFFIX[kind]}")]
    check_formats(kind, outputs)
    check_outputs(outputs, inputs=[source, *([mask] if mask else [])], overwrite=overwrite)
    path, config = resolve_model(model, kind)
    from legato.pipelines import MusicPipeline, VideoPipeline
    from legato.pipelines.jobs import with_sampling

    started = time.perf_counter()
    with status(f"{mode} of {source.name} with {path.name}", enabled=not as_json):
        if kind == "music":
            loaded = MusicPipeline.from_pretrained(
                path, device=device, **({} if master else {"mastering": None})
            )
        else:
            loaded = VideoPipeline.from_pretrained(path, device=device)
        pipe = with_sampling(loaded, parse_steps(steps, config), guidance, scheduler)
        neg = negative or ""
        if mode == "inpainting":
            result = pipe.inpaint(source, prompt, start, end, mask=mask, seed=seed, negative=neg)
        elif mode == "inversion":
            result = pipe.invert_edit(source, source_prompt, prompt, seed=seed, negative=neg)
        else:
            result = pipe.edit(source, prompt, strength=0.6 if strength is None else strength, seed=seed,
                               negative=neg)  # fmt: skip
        files = [str(result.save(p).resolve()) for p in outputs]
    seconds = time.perf_counter() - started
    length = result.seconds if kind == "music" else result.frames.shape[1] / result.fps
    emit({"ok": True, "mode": mode, "input": str(source.resolve()), "prompt": prompt, "seed": seed,
          "model": str(path), "files": files, f"{'audio' if kind == 'music' else 'video'}_seconds": round(length, 3),
          "seconds": round(seconds, 3)}, as_json)  # fmt: skip
    if not as_json:
        print(
            f"{mode}: {length:.2f} s of {'audio' if kind == 'music' else 'video'} in {seconds:.1f} s -> {', '.join(files)}"
        )
