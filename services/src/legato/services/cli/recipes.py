"""``legato recipes``: what builds the bundled models (`legato.recipes`), one subcommand per step.

::

    legato recipes dataset music data/music                  # real material, offline; --small for tests
    legato train music --data data/music --runs runs/music   # (the recipe's training is `legato train`)
    legato recipes export music --runs runs/music --models models
    legato recipes verifier music --data data/music --out models/verifiers/music
    legato recipes evaluate music --items 120                # the quality table, models/quality-music.json
    legato recipes vocoder data data/music-audio; legato recipes vocoder train ...; legato recipes vocoder export ...

Every command imports the recipes (torch) only when it runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from legato.services.cli.common import fail, handle_errors

app = typer.Typer(
    help="Build the bundled models: datasets, export, verifiers, evaluation, the vocoder.",
    no_args_is_help=True,
)
vocoder = typer.Typer(
    help="The music vocoder: render its audio, train it, export its weights.", no_args_is_help=True
)
app.add_typer(vocoder, name="vocoder")

Kind = Annotated[Literal["music", "video"], typer.Argument(help="Which cascade.", show_default=False)]
Models = Annotated[Path, typer.Option(help="The models folder (cascades, verifiers, quality tables).")]
Data = Annotated[Path | None, typer.Option(help="The dataset folder.", show_default="data/<kind>")]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda...")]


def _say(text: str) -> None:
    print(text, flush=True)


@app.command()
@handle_errors
def dataset(
    kind: Kind,
    folder: Annotated[Path, typer.Argument(help="Where the dataset goes.", show_default=False)],
    seed: Annotated[int, typer.Option(help="Which pieces, clips and crops.")] = 0,
    small: Annotated[bool, typer.Option("--small", help="A few items per class, for tests.")] = False,
    more_photos: Annotated[
        bool,
        typer.Option(
            "--more-photos",
            help="Video: training-only clips over photos the verifier never scores "
            "(`legato train --more-data`).",
        ),
    ] = False,
    text_encoder: Annotated[
        str, typer.Option(help="'none' keeps the folder's caption embeddings (same captions; no encoder).")
    ] = "all-MiniLM-L6-v2",
) -> None:
    """Build a bundled recipe's dataset from real material that installs offline."""
    from legato.recipes import datasets

    started = time.time()
    datasets.build(kind, folder, seed=seed, small=small, more_photos=more_photos,
                   text_encoder=None if text_encoder == "none" else text_encoder)  # fmt: skip
    data = datasets.load(folder)
    _say(f"{kind}: {len(data.held_out)} items ({int(data.held_out.sum())} held out), "
         f"{len(set(data.captions))} captions -> {folder} in {time.time() - started:.0f} s")  # fmt: skip


@app.command()
@handle_errors
def export(
    kind: Kind,
    runs: Annotated[
        Path, typer.Option(help="The recipe's runs (`legato train KIND --runs`).", show_default=False)
    ],
    models: Models = Path("models"),
) -> None:
    """Write MODELS/<kind>-default and MODELS/<kind>-fast (float16) from the runs' trained networks."""
    from legato.recipes import export as write
    from legato.recipes.catalog import VOCODER

    for path in write(kind, runs, models):
        _say(f"wrote {path}")
    if kind == "music" and not (models / VOCODER / "config.json").is_file():
        _say(f"no {models / VOCODER}: the music cascades invert mels with Griffin-Lim until it is trained "
             "(legato recipes vocoder) and this export runs again")  # fmt: skip


@app.command()
@handle_errors
def verifier(
    kind: Kind,
    data: Annotated[Path, typer.Option(help="The dataset folder.", show_default=False)],
    out: Annotated[Path, typer.Option(help="The verifier's folder.", show_default=False)],
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the data.", show_default="12 music, 6 video")
    ] = None,
) -> None:
    """Train a verifier (attributes from samples) on a dataset's training split."""
    from legato.recipes.datasets import load
    from legato.recipes.verifiers import train_and_save

    started = time.time()
    accuracy = train_and_save(load(data), out, epochs=epochs)
    _say(f"{kind} verifier: {time.time() - started:.0f} s; held-out real accuracy "
         + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))  # fmt: skip


@app.command()
@handle_errors
def evaluate(
    kind: Kind,
    data: Data = None,
    models: Models = Path("models"),
    items: Annotated[int, typer.Option(min=2, help="Prompts scored.")] = 40,
    seed: Annotated[int, typer.Option(help="Which prompts (the split's shuffle).")] = 0,
    only: Annotated[
        Literal["default", "fast"] | None,
        typer.Option(help="Score this model again (default: with base + bilinear), keep the other rows."),
    ] = None,
    guidance: Annotated[
        str | None,
        typer.Option(help="Comma-separated base guidance scales for the default model, on training prompts."),
    ] = None,
    probe: Annotated[
        bool, typer.Option("--probe", help="Video: does the default base stage read the motion words?")
    ] = False,
    bases: Annotated[
        bool,
        typer.Option(
            "--bases",
            help="The default's base stage, its distillation teacher's and the fast one's, each "
            "upsampled bilinearly; with --guidance: the default's base stage alone at each scale.",
        ),
    ] = False,
    candidate: Annotated[
        Path | None,
        typer.Option(
            metavar="RUNS",
            help="With --bases: this runs folder's base network, sampled as the default's base.",
        ),
    ] = None,
    scheduler: Annotated[str | None, typer.Option(help="With --guidance: every stage's sampler.")] = None,
    steps: Annotated[
        str | None, typer.Option(help="With --guidance: sampling steps per stage, comma-separated.")
    ] = None,
) -> None:
    """Score the bundled cascades with the verifiers: the quality table on held-out prompts, a guidance sweep on
    training prompts (--guidance), the base stages alone (--bases), or the motion probes (--probe)."""
    from legato.recipes import evaluate as bench

    data_folder = str(data or f"data/{kind}")
    scored = dict(
        data=data_folder, models=str(models), verifier=f"{models}/verifiers/{kind}", items=items, seed=seed
    )
    if (scheduler or steps) and not guidance:
        fail("--scheduler and --steps set up a sweep: add --guidance (e.g. --guidance 3)")
    if candidate and (not bases or guidance):
        fail(f"--candidate {candidate} scores a trained base stage: use it with --bases alone")
    if probe:
        return _probe(kind, data or Path("data/video"), models, items, seed, guidance)
    if bases and not guidance:
        bench.base_rows(kind, **scored, candidate=None if candidate is None else str(candidate))
        _say(f"\n{items} held-out prompts, base stages only, upsampled bilinearly")
        return
    if guidance:
        try:
            scales = [float(g) for g in guidance.split(",")]
            per_stage = [int(n) for n in steps.split(",")] if steps else None
        except ValueError:
            fail(f"--guidance {guidance!r} / --steps {steps!r}: give comma-separated numbers")
        result = bench.sweep_guidance(
            kind, scales, **scored, scheduler=scheduler, steps=per_stage, base_only=bases
        )
        out = models / f"guidance-{kind}.json"
        result = bench.save(result, out, merge=True)
        _say("\n".join(bench.row_line(name, r) for name, r in result["rows"].items()))
        _say(f"\n{items} training-split prompts; wrote {out}")
        return
    result = bench.evaluate(kind, **scored, only=only)
    out = models / f"quality-{kind}.json"
    bench.save(result, out)
    _say(bench.table(result))
    _say(f"\n{items} held-out prompts, {result['reference_items']} reference items; wrote {out}")


def _probe(kind: str, data: Path, models: Path, items: int, seed: int, guidance: str | None) -> None:
    """``evaluate --probe``: the motion probes of the default video base stage (`legato.recipes.probes`)."""
    if kind != "video":
        fail("--probe asks a video base stage about motion: use it with video")
    if guidance and "," in guidance:
        fail(f"--probe --guidance {guidance}: give one scale (the pan readout samples at it)")
    from legato.pipelines.folders import load_pipeline_cascade
    from legato.recipes.datasets import load
    from legato.recipes.probes import PROBE_LEVELS, motion_probe, pan_drift

    cascade, text = load_pipeline_cascade(models / "video-default", "video", "cpu")
    if guidance:  # the pan readout samples at this base guidance instead of the model's
        cascade = cascade.with_sampling(None, float(guidance), None)
    split = load(data).split(held_out=False)
    result = motion_probe(cascade, split, text, items=items, seed=seed)
    levels = ", ".join(map(str, PROBE_LEVELS))
    _say(f"loss against the clip's own caption, {items} training clips, noise levels {levels}:")
    _say("\n".join(f"  {name}: {value:+.1%}" for name, value in result.items()))
    drift = pan_drift(cascade, split, items=items, seed=seed)
    _say(f"pans sliding the way their caption says (> 0.5 px a frame at the base stage's size), {items} "
         f"training captions, guidance {cascade.stages[0].guidance_scale:g}:")  # fmt: skip
    _say(
        "\n".join(
            f"  {name}: {v['right way']:.0%}, {v['px per frame']:+.2f} px a frame"
            for name, v in drift.items()
        )
    )


@vocoder.command("data")
@handle_errors
def vocoder_data(
    folder: Annotated[Path, typer.Argument(help="Where the renders go.", show_default=False)],
    per_style: Annotated[int, typer.Option(min=2, help="Pieces rendered per style.")] = 60,
    preset: Annotated[
        str, typer.Option(help="Spectrogram preset: small (the bundled models) or riffusion (44.1 kHz).")
    ] = "small",
) -> None:
    """Render the music dataset's pieces once (train and held-out .flac, renders.json)."""
    from legato.codec import PRESETS
    from legato.recipes.vocoder import build_audio

    if preset not in PRESETS:
        raise typer.BadParameter(f"--preset {preset!r}; use one of {sorted(PRESETS)}")
    started = time.perf_counter()
    out = build_audio(folder, per_style=per_style, params=PRESETS[preset])
    _say(f"{out} in {time.perf_counter() - started:.1f} s")


@vocoder.command("train")
@handle_errors
def vocoder_train(
    data: Annotated[Path, typer.Option(help="`legato recipes vocoder data` folder.", show_default=False)],
    out: Annotated[
        Path, typer.Option(help="The run's folder (checkpoints; a re-run resumes).", show_default=False)
    ],
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 6000,
    batch: Annotated[int, typer.Option(min=1, help="One-second segments per step.")] = 32,
    width: Annotated[int, typer.Option(min=8, help="The vocoder's channels.")] = 192,
    layers: Annotated[int, typer.Option(min=1, help="The vocoder's blocks.")] = 8,
    n_fft: Annotated[
        int | None, typer.Option(min=16, help="The vocoder's own STFT size (default: the mel's).")
    ] = None,
    device: DeviceOption = "cpu",
    bf16: Annotated[bool, typer.Option("--bf16", help="bf16 autocast.")] = False,
) -> None:
    """Train the vocoder on the rendered audio (resumes from the newest checkpoint)."""
    from legato.recipes.vocoder import trainer

    started = time.perf_counter()
    run = trainer(data, out, steps=steps, batch=batch, device=device, width=width, layers=layers, bf16=bf16,
                  n_fft=n_fft)  # fmt: skip
    result = run.fit()
    last = result.losses[-1] if result.losses else float("nan")
    _say(f"step {result.step}, last loss {last:.4f}; {time.perf_counter() - started:.1f} s")


@vocoder.command("export")
@handle_errors
def vocoder_export(
    run: Annotated[Path, typer.Option(help="The training run's folder.", show_default=False)],
    out: Annotated[
        Path, typer.Option(help="The vocoder folder (e.g. models/vocoder-music).", show_default=False)
    ],
) -> None:
    """Write the EMA weights of a run's newest checkpoint as float16 safetensors."""
    from legato.recipes.vocoder import export as write

    _say(str(write(run, out)))
