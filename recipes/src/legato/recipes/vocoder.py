"""Training the bundled vocoder (`legato.codec.Vocoder`) on the music dataset's renders, with the one `Trainer`.

::

    legato recipes vocoder data data/music-audio          # render audio (train + held-out .flac)
    legato recipes vocoder train --data data/music-audio --out runs/vocoder --device cuda
    legato recipes vocoder export --run runs/vocoder --out models/vocoder-music

The audio comes from `legato.recipes.datasets.music.render_pieces` with the music dataset's seed: the same
pieces, instruments and tempi, and the same held-out pieces (never trained on, used by
``benchmarks/vocoder.py``). Training items are fixed one-second segments (so a resumed run sees exactly the
batches it would have); the objective makes each segment's mel image on the fly, adds the 8-bit rounding
the images go through, and scores the vocoder's audio with `legato.codec.vocoder.spectral_loss`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import Tensor, nn

from legato.codec import SMALL, MelCodec, SpectrogramParams, read_audio, write_audio
from legato.codec.vocoder import Vocoder, spectral_loss
from legato.diffusion.training import TensorItems, TrainConfig, Trainer

SECONDS = 8.192  # per render: two model windows of the small preset


def build_audio(
    folder: str | Path, *, per_style: int = 60, seed: int = 0, params: SpectrogramParams = SMALL
) -> Path:
    """Render ``per_style`` pieces of each style once, into ``train.flac`` and ``held_out.flac`` (renders one
    after another) and ``renders.json`` (each render's caption, split and sample range)."""
    from legato.recipes.datasets.music import render_pieces

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, stream = render_pieces(params.sample_rate, SECONDS, per_style=per_style, renders=1, seed=seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "held_out": []}
    index = []
    for r in stream:
        split = "held_out" if r.held_out else "train"
        start = sum(len(a) for a in parts[split])
        parts[split].append(r.audio)
        index.append({"split": split, "start": start, "samples": len(r.audio), "caption": r.caption})
    for split, audio in parts.items():
        if not audio:
            raise ValueError(f"per_style={per_style} leaves no {split} renders; use per_style >= 2")
        write_audio(
            folder / f"{split}.flac", torch.from_numpy(np.concatenate(audio))[None], params.sample_rate
        )
    meta = {"renders": index, "params": params.to_dict(), "per_style": per_style, "seed": seed}
    (folder / "renders.json").write_text(json.dumps(meta, indent=1))
    return folder


def load_audio(folder: str | Path, split: str) -> tuple[list[Tensor], SpectrogramParams]:
    """The renders of ``split`` ("train" or "held_out") as mono waveforms, and the spectrogram params."""
    folder = Path(folder)
    meta = json.loads((folder / "renders.json").read_text())
    params = SpectrogramParams.from_dict(meta["params"])
    audio, _ = read_audio(folder / f"{split}.flac", sample_rate=params.sample_rate, channels=1)
    rows = [r for r in meta["renders"] if r["split"] == split]
    return [audio[0, r["start"] : r["start"] + r["samples"]] for r in rows], params


def segments(renders: list[Tensor], length: int, hop: int) -> Tensor:
    """Every ``length``-sample segment, ``hop`` apart, of every render that is not near-silent: ``(N, 1, length)``."""
    found = [a.unfold(0, length, hop) for a in renders if a.shape[0] >= length]
    cut = torch.cat(found)
    return cut[cut.pow(2).mean(dim=1).sqrt() > 1e-3][:, None]


@functools.lru_cache(maxsize=4)
def _loss_tools(spectrogram: str, device: str) -> tuple[MelCodec, Tensor]:
    """The codec that makes a segment's mel image and the 128-band mel basis of the loss, built once per
    (params, device) rather than every step (the codec's filterbank inverse is an SVD)."""
    codec = MelCodec(SpectrogramParams.from_json(spectrogram)).to(device)
    rate = codec.params.sample_rate
    fb = torchaudio.functional.melscale_fbanks(513, 0.0, rate / 2, 128, rate, "slaney", "slaney").to(device)
    return codec, fb


@dataclass(frozen=True)
class VocoderObjective:
    """Per-segment loss of a `Vocoder`: its audio from the segment's (8-bit rounded) mel image vs the segment.

    Follows the `Trainer`'s objective protocol; the noise schedule it is handed is not used."""

    spectrogram: str  # SpectrogramParams JSON
    quantize: bool = True
    level: float | None = None  # per-image-reference params: the mel maximum every target is brought to

    def loss(
        self, network: nn.Module, schedule, x0: Tensor, cond, generator, *, timestep_range=None
    ) -> Tensor:
        audio = x0[:, 0].float()
        with torch.no_grad(), torch.autocast(audio.device.type, enabled=False):
            codec, fb = _loss_tools(self.spectrogram, str(audio.device))
            mel = codec.mel(audio)
            unit = codec.to_unit(mel)
            if self.level is not None:  # the image says nothing of loudness: one canonical level
                audio = audio * (self.level / codec.reference(mel).reshape(-1, 1).clamp_min(1e-8))
            if self.quantize:  # the images models make are continuous; the dataset's are 8-bit
                noise = torch.rand(unit.shape, generator=generator, device=unit.device)
                unit = (unit + (noise - 0.5) / 255).clamp(0, 1)
        return spectral_loss(audio, network(unit, length=audio.shape[-1], refine=0), fb)

    def denoiser(self, network: nn.Module, schedule) -> nn.Module:
        return network


def trainer(data: str | Path, out: str | Path, *, steps: int, batch: int = 32, device: str = "cpu",
            width: int = 192, layers: int = 8, lr: float = 5e-4, bf16: bool = False,
            n_fft: int | None = None) -> Trainer:  # fmt: skip
    """The `Trainer` of a vocoder on ``data`` (a `build_audio` folder): segments of 64 frames, half of one
    apart. ``n_fft``: the vocoder's own STFT size (default: the mel's; ``4 * hop`` where that is large)."""
    from legato.diffusion.denoisers import VPSchedule

    renders, params = load_audio(data, "train")
    length = 64 * params.hop_length
    cut = segments(renders, length, length // 2)
    level = None
    if params.reference is None:  # per-image max: train at the median level of the data
        codec = MelCodec(params)
        with torch.no_grad():
            level = float(codec.reference(codec.mel(cut[:256, 0])).flatten().median())
    items = TensorItems(cut)
    network = Vocoder(params.to_dict(), dim=width, hidden=3 * width, layers=layers, n_fft=n_fft, level=level)
    config = TrainConfig(
        steps=steps, batch_size=batch, learning_rate=lr, lr_schedule="cosine", warmup_steps=min(500, steps // 10),
        ema_decay=0.999, checkpoint_every=500, mixed_precision="bf16" if bf16 else "no", log_every=50,
    )  # fmt: skip
    schedule = VPSchedule(torch.linspace(0.99, 0.01, 10))
    objective = VocoderObjective(params.to_json(), level=level)
    return Trainer(network, schedule, objective, items, config, out, device=device)


def export(run: str | Path, out: str | Path) -> Path:
    """The EMA weights of the newest checkpoint of ``run``, as float16 safetensors in ``out``."""
    from legato.diffusion.training import checkpoint as ckpt

    found = ckpt.latest(Path(run) / "checkpoints")
    if found is None:
        raise FileNotFoundError(f"{run} has no checkpoint; train first")
    model = Vocoder.from_pretrained(found.path / "model", low_cpu_mem_usage=False)
    tensors, meta = ckpt.read(found)
    if meta.get("ema"):
        shadow = [tensors[f"ema.{i}"] for i in range(len(list(model.parameters())))]
        for p, s in zip(model.parameters(), shadow, strict=True):
            p.data.copy_(s)
    model.to(torch.float16).save_pretrained(out)
    return Path(out)
