"""Inversion quality and speed on held-out music: Griffin-Lim (from zero and from integrated phase) against the vocoder.

    .venv/bin/python benchmarks/vocoder.py                       # CPU, models/vocoder-music, data/music-audio
    .venv/bin/python benchmarks/vocoder.py --device cuda
    .venv/bin/python benchmarks/vocoder.py --data data/riffusion-audio --vocoder models/vocoder-riffusion

The RIFFUSION preset's images (44.1 kHz, 512 bands, 5.12 s windows) carry no loudness: both inversions are
given each window's mel maximum, as a Riffusion image's EXIF holds it. Riffusion's own decoding is
Griffin-Lim, 32 iterations; render its data with ``legato recipes vocoder data data/riffusion-audio
--preset riffusion --per-style 50``.

The held-out renders of ``legato recipes vocoder data data/music-audio`` (pieces no model was
trained on) are cut into 4.096 s windows; each goes audio -> mel -> 8-bit image (what the diffusion models
see and the dataset stores) -> audio, through NNLS + fast Griffin-Lim (`MelCodec.audio`) and through the
`Vocoder` (with and without its mel-consistency rounds). Prints spectral convergence and log-spectral distance against the original audio (dB, lower is
better; n_fft 1024, hop 256, and SC again in the preset's own STFT: its window and hop, the same for SMALL,
a 4,410-sample window for RIFFUSION) and the compute time per second of audio (batch of all windows, after a
warm-up). Targets (issue 11): the vocoder beats Griffin-Lim-32 by >= 6 dB spectral convergence and runs
>= 5x faster than real time on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import torch

from legato.codec import MelCodec, log_spectral_distance, spectral_convergence
from legato.codec.vocoder import Vocoder
from legato.recipes.vocoder import load_audio


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 1) -> tuple[torch.Tensor, float]:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    sync(device)
    return out, (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/music-audio")
    parser.add_argument("--vocoder", default="models/vocoder-music")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--windows", type=int, default=40, help="held-out windows scored (at most)")
    parser.add_argument("--skip-vocoder", action="store_true", help="Griffin-Lim rows only")
    parser.add_argument(
        "--refine", type=int, help="mel-consistency rounds of the vocoder row (default: its own)"
    )
    parser.add_argument(
        "--pghi", type=int, nargs="*", default=[16, 32], help="Griffin-Lim iterations from integrated phase"
    )
    parser.add_argument(
        "--griffin-lim",
        type=int,
        nargs="+",
        default=[32, 128],
        help="Griffin-Lim iterations (32 is always run)",
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    if not (Path(args.data) / "renders.json").is_file():
        raise SystemExit(
            f"{args.data} holds no rendered audio; render it first (16 s on 2 cores):\n"
            f"    .venv/bin/legato recipes vocoder data {args.data} --per-style 50"
        )
    renders, params = load_audio(args.data, "held_out")
    n = (256 if params.reference is not None else 512) * params.hop_length
    audio = torch.cat([r[: r.shape[0] // n * n].reshape(-1, n) for r in renders])
    audio = audio[audio.pow(2).mean(dim=1) > 1e-6][: args.windows]
    seconds = audio.shape[0] * n / params.sample_rate
    codec = MelCodec(params).to(device)
    mel = codec.mel(audio.to(device))
    level = codec.reference(mel) if params.reference is None else None  # per image: in Riffusion's EXIF
    unit = (codec.to_unit(mel) * 255).round() / 255  # the 8-bit image form
    vocoder = None
    if not args.skip_vocoder:
        vocoder = Vocoder.from_pretrained(args.vocoder, torch_dtype=torch.float32).to(device).eval()
        vocoder.check_params(params)
    print(
        f"{audio.shape[0]} held-out windows of {n / params.sample_rate:.3f} s ({seconds:.0f} s of audio), "
        f"device {device}, torch threads {torch.get_num_threads()}, vocoder "
        f"{sum(p.numel() for p in vocoder.parameters()) / 1e6 if vocoder else 0:.2f} M parameters"
    )
    methods = {
        f"griffin-lim {k}": functools.partial(
            lambda k: codec.audio(codec.from_unit(unit, level), n_iter=k, length=n), k
        )
        for k in sorted({32, *args.griffin_lim})
    }
    methods |= {  # Griffin-Lim from phase integrated from the magnitudes (PGHI; RIFFUSION checkpoints' default)
        f"pghi + gl {k}": functools.partial(
            lambda k: codec.audio(codec.from_unit(unit, level), n_iter=k, length=n, phase="pghi"), k
        )
        for k in args.pghi
    }
    methods |= {
        "vocoder, raw": lambda: vocoder(unit, length=n, refine=0, level=level),  # the network's spectrum
        "vocoder": lambda: vocoder(
            unit, length=n, level=level, refine=args.refine
        ),  # + its consistency rounds
    }
    if args.skip_vocoder:
        methods = {k: v for k, v in methods.items() if not k.startswith("vocoder")}
    rows = {}
    with torch.inference_mode():
        for name, fn in methods.items():
            out, dt = timed(fn, device)
            out = out.float().cpu()
            sc = float(spectral_convergence(audio, out).mean())
            own = float(spectral_convergence(audio, out, params.win_length, params.hop_length).mean())
            lsd = float(log_spectral_distance(audio, out).mean())
            rows[name] = (sc, lsd, dt / seconds)
            print(
                f"{name:16s} SC {sc:7.2f} dB  SC in the preset's STFT {own:7.2f} dB  LSD {lsd:6.2f} dB  "
                f"{dt / seconds * 1000:8.2f} ms per s of audio "
                f"({seconds / dt:8.1f}x real time)"
            )
    if "vocoder" not in rows:
        return
    gl, voc = rows["griffin-lim 32"], rows["vocoder"]
    print(
        f"vocoder vs griffin-lim 32: SC {gl[0] - voc[0]:+.2f} dB better (target >= 6), "
        f"{gl[2] / voc[2]:.1f}x faster; vocoder {1 / voc[2]:.0f}x real time (target >= 5 on 2 CPU cores)"
    )


if __name__ == "__main__":
    main()
