"""Datasets for the bundled models, built from real material that installs offline, reproducible from a seed.

::

    legato recipes dataset music data/music      # music21 tunes through a GM SoundFont
    legato recipes dataset video data/video      # clips over scikit-image's photos

A dataset folder holds ``arrays.npz`` (the samples as uint8 and their integer attributes), ``meta.json``
(captions, attribute names, how it was built) and ``text.safetensors`` (each caption's text embedding, so
that training needs no text encoder). `load` gives the samples in [-1, 1] with their embeddings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from legato.codec import atomic_output

ARRAYS, META, TEXT = "arrays.npz", "meta.json", "text.safetensors"


@dataclass(frozen=True)
class Dataset:
    samples: (
        Tensor  # (N, C, ...) float in [-1, 1]: mel images (N, 1, n_mels, frames) or clips (N, 3, T, H, W)
    )
    text: Tensor  # (N, L, D) each sample's caption embedding
    captions: list[str]  # each sample's caption
    labels: dict[str, Tensor]  # attribute -> (N,) class index (see meta["attributes"])
    held_out: Tensor  # (N,) bool
    meta: dict

    def __add__(self, other: Dataset) -> Dataset:
        """Both datasets' samples, one after the other (the same kind of samples and attributes)."""
        return Dataset.concat([self, other])

    @staticmethod
    def concat(parts: list[Dataset]) -> Dataset:
        """The parts' samples one after the other, copied once (the same kind of samples and attributes);
        the first part's meta."""
        first = parts[0]
        for other in parts[1:]:
            if (
                first.samples.shape[1:] != other.samples.shape[1:]
                or first.labels.keys() != other.labels.keys()
            ):
                raise ValueError(
                    f"cannot join samples {tuple(first.samples.shape[1:])} with {tuple(other.samples.shape[1:])}, "
                    f"attributes {sorted(first.labels)} with {sorted(other.labels)}: join splits of one dataset"
                )
        return Dataset(torch.cat([p.samples for p in parts]), torch.cat([p.text for p in parts]),
                       [c for p in parts for c in p.captions],
                       {k: torch.cat([p.labels[k] for p in parts]) for k in first.labels},
                       torch.cat([p.held_out for p in parts]), first.meta)  # fmt: skip

    def split(self, held_out: bool) -> Dataset:
        return self.subset((self.held_out == held_out).nonzero().flatten())

    def subset(self, rows: Tensor | list[int]) -> Dataset:
        """The samples at ``rows`` (indices, in that order), with their text, captions and labels."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return Dataset(self.samples[rows], self.text[rows], [self.captions[i] for i in rows.tolist()],
                       {k: v[rows] for k, v in self.labels.items()}, self.held_out[rows], self.meta)  # fmt: skip


def save(data: dict, folder: str | os.PathLike[str], text_encoder: str | None = None) -> Path:
    """Write a dataset built by `build_music` / `build_video`, and its caption embeddings."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in data.items() if not isinstance(v, np.ndarray)}
    with atomic_output(folder / ARRAYS) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    if text_encoder is None:  # keep the folder's embeddings, which must be of these very captions
        old = json.loads((folder / META).read_text()) if (folder / META).is_file() else {}
        if old.get("captions") != meta["captions"] or not (folder / TEXT).is_file():
            raise ValueError(
                f"{folder} has no text embeddings of these captions; pass text_encoder (e.g. "
                "'all-MiniLM-L6-v2') to compute them"
            )
        meta["text_encoder"] = old["text_encoder"]
    else:
        from legato.pipelines.text import TextEncoder

        embeddings = TextEncoder(text_encoder)(meta["captions"]).to(torch.float16).contiguous()
        with atomic_output(folder / TEXT) as tmp:
            save_file({"embeddings": embeddings}, str(tmp))
        meta["text_encoder"] = text_encoder
    with atomic_output(folder / META) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1))
    return folder


def load(folder: str | os.PathLike[str]) -> Dataset:
    folder = Path(folder)
    for name in (ARRAYS, META, TEXT):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing; build the dataset with "
                f"`legato recipes dataset {{music,video}} {folder}`"
            )
    meta = json.loads((folder / META).read_text())
    with np.load(folder / ARRAYS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = "mel" if "mel" in arrays else "video"
    samples = torch.from_numpy(arrays.pop(key)).float() / 127.5 - 1.0
    if key == "mel":
        samples = samples[:, None]
    caption_index = torch.from_numpy(arrays.pop("caption"))
    embeddings = load_file(str(folder / TEXT))["embeddings"].float()
    return Dataset(
        samples=samples,
        text=embeddings[caption_index],
        captions=[meta["captions"][i] for i in caption_index.tolist()],
        labels={name: torch.from_numpy(arrays[name]).long() for name in meta["attributes"]},
        held_out=torch.from_numpy(arrays["held_out"]).bool(),
        meta=meta,
    )


def build(
    kind: str,
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    small: bool = False,
    more_photos: bool = False,
    text_encoder: str | None = "all-MiniLM-L6-v2",
) -> Path:
    """Build and save the ``kind`` ("music" or "video") dataset of the bundled recipes into ``folder``:
    ``small`` (a few items per class, for tests), ``more_photos`` (video: training-only clips over other
    photos than the verifier's, `legato.recipes.train`'s ``more_data``); ``text_encoder=None`` keeps the
    folder's caption embeddings (the same captions; no encoder needed)."""
    from legato.codec import SMALL

    if kind not in ("music", "video"):
        raise ValueError(f"dataset kind {kind!r}: build 'music' or 'video'")
    if more_photos and kind != "video":
        raise ValueError(f"--more-photos builds video clips; drop it for {kind}")
    if kind == "music":
        from legato.recipes.datasets.music import build_music

        data = build_music(SMALL, window=256, per_style=4 if small else 240, seed=seed)
    else:
        from legato.recipes.datasets.video import build_video

        data = build_video(
            frames=16, size=64, clips_per_pair=2 if small else 40, seed=seed, more_photos=more_photos
        )
    return save(data, folder, text_encoder)
