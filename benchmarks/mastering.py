"""What the default music output is: 20 clips of a bundled model, raw (``--no-master``) against mastered
(the default), as written files read back through av.

    .venv/bin/python benchmarks/mastering.py                  # music-fast, 20 clips, about a minute on a CPU
    .venv/bin/python benchmarks/mastering.py --model music-default --clips 8

The same 20 generated clips are written twice: as the model makes them (16 kHz mono) and as
`legato.codec.master` finishes them (44.1 kHz stereo at -14 LUFS under -1 dBTP). For each version it
prints the sample peak (dBFS), how many samples sit at full scale (clipped), the BS.1770 true peak (dBTP)
and integrated loudness (LUFS): min / median / max over the clips.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from legato.codec import read_audio, write_audio
from legato.codec.master import DEFAULT_MASTERING, integrated_loudness, master, true_peak
from legato.pipelines import MusicPipeline
from legato.recipes.datasets.music import INSTRUMENTS, STYLES, TEMPI


def prompts(count: int) -> list[str]:
    """The issue's clipping example first ("a chorale on organ", seed 0), then every style, instrument and
    tempo in turn."""
    instruments, tempi = list(INSTRUMENTS), list(TEMPI)
    varied = [
        f"a {STYLES[i % 4]} on {instruments[(i // 4) % 4]}, {tempi[i % 3]} tempo, in D major"
        for i in range(count)
    ]
    return ["a chorale on organ", *varied][:count]


def figures(path: Path) -> dict[str, float]:
    audio, rate = read_audio(path)
    peak = float(audio.abs().max())
    return {"peak_dbfs": 20 * torch.log10(torch.tensor(max(peak, 1e-9))).item(),
            "full_scale": float((audio.abs() >= 32767 / 32768).sum()),
            "true_peak_dbtp": true_peak(audio, rate), "loudness_lufs": integrated_loudness(audio, rate)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="music-fast")
    parser.add_argument("--clips", type=int, default=20)
    args = parser.parse_args()
    pipe = MusicPipeline.from_pretrained(args.model, mastering=None)
    clips = pipe(prompts(args.clips), seeds=list(range(args.clips)))
    rows: dict[str, list[dict[str, float]]] = {"raw": [], "mastered": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k, clip in enumerate(clips):
            rows["raw"].append(figures(clip.save(Path(tmp) / f"raw{k}.wav")))
            audio, rate, _ = master(clip.audio, clip.sample_rate, DEFAULT_MASTERING, seed=clip.seed)
            rows["mastered"].append(figures(write_audio(Path(tmp) / f"mastered{k}.wav", audio, rate)))
    print(f"{args.clips} clips of {args.model}, written as 16-bit wav and read back (min / median / max):")
    for name, found in rows.items():
        cells = []
        for key in ("peak_dbfs", "full_scale", "true_peak_dbtp", "loudness_lufs"):
            values = torch.tensor([r[key] for r in found])
            cells.append(f"{key} {values.min():.2f} / {values.median():.2f} / {values.max():.2f}")
        print(f"  {name:9s}" + "; ".join(cells))


if __name__ == "__main__":
    main()
