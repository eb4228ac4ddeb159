"""Codec throughput against librosa: mel spectrogram + inversion to audio, same params, same GL iterations.

    .venv/bin/python benchmarks/codec.py                      # 32 clips of 5 s, small preset, CPU
    .venv/bin/python benchmarks/codec.py --preset riffusion --clips 8
    .venv/bin/python benchmarks/codec.py --device cuda        # where there is a GPU

Both sides get the same clips, the same SpectrogramParams and the same number of Griffin-Lim iterations
(momentum 0.99 on both). librosa runs clip by clip, as its API takes one signal at a time: its
``melspectrogram`` and ``feature.inverse.mel_to_audio`` (NNLS by L-BFGS-B, then Griffin-Lim). Legato runs
the batch at once: `MelCodec.mel` and `MelCodec.audio` (batched FISTA NNLS, then Griffin-Lim). Prints the
throughput ratio and each side's mean spectral convergence against the original audio (lower is better).
Target (issue 3): >= 10x librosa's throughput at equal or better convergence.
"""

from __future__ import annotations

import argparse
import time

import librosa
import numpy as np
import torch

from legato.codec import PRESETS, MelCodec, spectral_convergence
from legato.codec.testing import harmonic_notes


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations, both sides")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    p = PRESETS[args.preset]
    device = torch.device(args.device)
    audio = torch.stack([harmonic_notes(args.seconds, p.sample_rate, seed=i) for i in range(args.clips)])
    n = audio.shape[-1]
    print(
        f"{args.clips} clips x {args.seconds:g} s, preset {args.preset} ({p.n_mels} mels, n_fft {p.n_fft}, "
        f"hop {p.hop_length}), Griffin-Lim {args.n_iter} iterations, device {device}, "
        f"torch threads {torch.get_num_threads()}"
    )

    codec = MelCodec(p).to(device)
    x = audio.to(device)
    codec.audio(codec.mel(x[:2]), n_iter=2, length=n)  # warm-up: kernels, caches
    sync(device)
    t0 = time.perf_counter()
    ours = codec.audio(codec.mel(x), n_iter=args.n_iter, length=n)
    sync(device)
    t_ours = time.perf_counter() - t0

    common = dict(
        sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length, win_length=p.win_length, window=p.window,
        center=True, pad_mode="constant", power=p.power, fmin=p.f_min, fmax=p.f_max,
        htk=p.mel_scale == "htk", norm=p.mel_norm,
    )  # fmt: skip
    np.random.seed(0)  # noqa: NPY002 -- librosa's Griffin-Lim draws its initial phase from the global RNG
    t0 = time.perf_counter()
    theirs = []
    try:
        for clip in audio.numpy():
            mel = librosa.feature.melspectrogram(y=clip, n_mels=p.n_mels, **common)
            theirs.append(librosa.feature.inverse.mel_to_audio(mel, n_iter=args.n_iter, length=n, **common))
    except MemoryError as err:  # its L-BFGS-B NNLS allocates per block; large FFTs exhaust memory
        theirs, failure = None, f"{type(err).__name__}: {err}"
    t_librosa = time.perf_counter() - t0

    audio_seconds = args.clips * args.seconds
    sc_ours = float(spectral_convergence(audio, ours.cpu()[:, :n], p.n_fft, p.hop_length).mean())
    print(f"legato : {t_ours:7.2f} s  ({audio_seconds / t_ours:8.1f} s of audio per s)  SC {sc_ours:6.2f} dB")
    if theirs is None:
        print(f"librosa: failed after {t_librosa:.1f} s ({failure})")
        print(
            "target >= 10x at equal or better convergence: no peer figure (librosa cannot run these params)"
        )
        return
    sc_librosa = float(
        spectral_convergence(audio, torch.from_numpy(np.stack(theirs)), p.n_fft, p.hop_length).mean()
    )
    print(
        f"librosa: {t_librosa:7.2f} s  ({audio_seconds / t_librosa:8.1f} s of audio per s)  SC {sc_librosa:6.2f} dB"
    )
    ratio = t_librosa / t_ours
    verdict = "meets" if ratio >= 10 and sc_ours <= sc_librosa else "MISSES"
    print(
        f"throughput ratio legato/librosa: {ratio:.1f}x; convergence {sc_ours - sc_librosa:+.2f} dB vs librosa"
    )
    print(f"target >= 10x at equal or better convergence: {verdict}")


if __name__ == "__main__":
    main()
