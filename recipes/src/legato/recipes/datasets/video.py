"""The video dataset: short clips made from the real photos that scikit-image ships.

Each clip moves a virtual camera over one photo (pan left or right, zoom in or out, rotate) or moves an
object over it (a ball rolling across), at a slow or fast speed, from a crop position drawn from the seed.
Captions say what was done: "slow zoom into a cat", "fast pan left over a coffee cup". The held-out split
is by source photo *and* motion: for each photo one motion is held out, so every photo and every motion is
in the training split, but no held-out (photo, motion) pair is.

`MORE_SUBJECTS` are other photos for training only (``build_video(more_photos=True)``): every motion on
each, none held out, none among the verifier's `SUBJECTS`. On them a model sees each motion on 8 more photos
than the 6 or 7 it meets among the verifier's: a held-out (photo, motion) pair asks for a motion on a photo
it was never shown on.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from legato.pipelines.vocabulary import Vocabulary
from legato.recipes.datasets import Dataset

# skimage.data function -> what the caption calls it; all ship inside the scikit-image wheel.
SUBJECTS = {
    "chelsea": "a cat",
    "coffee": "a coffee cup",
    "astronaut": "an astronaut",
    "rocket": "a rocket",
    "hubble_deep_field": "galaxies",
    "immunohistochemistry": "stained cells",
    "colorwheel": "a color wheel",
    "brick": "a brick wall",
}
# Training-only photos (all ship inside the wheel too): more photos for each motion, never scored.
MORE_SUBJECTS = {
    "camera": "a cameraman",
    "moon": "the moon",
    "coins": "coins",
    "clock": "a clock",
    "retina": "a retina",
    "grass": "grass",
    "gravel": "gravel",
    "page": "a page of text",
}
assert not SUBJECTS.keys() & MORE_SUBJECTS.keys(), "a training-only photo must not be one the verifier scores"
MOTIONS = ("pan left", "pan right", "zoom in", "zoom out", "rotate", "ball")
# The motions that are another played backwards (`clip`: same speed, same travel, reversed in time).
OPPOSITE = {"pan left": "pan right", "pan right": "pan left", "zoom in": "zoom out", "zoom out": "zoom in"}
SPEEDS = {"slow": 0.5, "fast": 1.0}


def caption(subject: str, motion: str, speed: str) -> str:
    what = SUBJECTS.get(subject) or MORE_SUBJECTS[subject]
    return {
        "pan left": f"{speed} pan left over {what}",
        "pan right": f"{speed} pan right over {what}",
        "zoom in": f"{speed} zoom into {what}",
        "zoom out": f"{speed} zoom out from {what}",
        "rotate": f"{speed} rotation of {what}",
        "ball": f"a red ball rolling {'slowly' if speed == 'slow' else 'fast'} across {what}",
    }[motion]


def speed_of(text: str) -> str:
    """The speed a `caption` names: "slow" ("slow ...", "... rolling slowly ...") or "fast"."""
    return "slow" if "slow" in text else "fast"


def photo(subject: str) -> Tensor:
    """The photo as a float RGB tensor ``(3, H, W)`` in [0, 1]."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, subject)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return torch.from_numpy(image[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1)


def held_out_motion(subject_index: int) -> int:
    return subject_index % len(MOTIONS)


def clip(image: Tensor, motion: str, speed: str, frames: int, size: int, rng: np.random.Generator) -> Tensor:
    """One clip ``(3, frames, size, size)`` in [0, 1]: the camera (a square crop of half to 0.7 of the
    photo's short side, moved, rotated and scaled per frame) sampled bilinearly from ``image``, reflected
    at its borders."""
    _, h, w = image.shape
    short = min(h, w)
    half = rng.uniform(0.5, 0.7) * short / 2  # half the crop's side, pixels
    amount = SPEEDS[speed] * rng.uniform(0.8, 1.2)
    cx = rng.uniform(half, w - half)
    cy = rng.uniform(half, h - half)
    s = torch.linspace(0.0, 1.0, frames)
    shift = torch.zeros(frames)
    scale = torch.ones(frames)
    angle = torch.zeros(frames)
    if motion in ("pan left", "pan right"):  # the camera moves 0.8 crop sides (fast), the view slides
        travel = 0.6 * amount * 2 * half
        cx = w / 2
        shift = (s - 0.5) * travel * (1 if motion == "pan right" else -1)
    elif motion == "zoom in":  # the crop shrinks: the view magnifies
        scale = 1.0 - 0.5 * amount * s
    elif motion == "zoom out":
        scale = 1.0 - 0.5 * amount * (1 - s)
    elif motion == "rotate":
        angle = s * amount * math.pi / 2
    theta = torch.zeros(frames, 2, 3)
    sx, sy = half / (w / 2), half / (h / 2)  # the crop in grid_sample's [-1, 1] coordinates
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sx * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * sy * w / h, cos * sy
    theta[:, 0, 2] = (cx + shift) / (w / 2) - 1
    theta[:, 1, 2] = cy / (h / 2) - 1
    grid = F.affine_grid(theta, (frames, 3, size, size), align_corners=False)
    video = F.grid_sample(image.expand(frames, -1, -1, -1), grid, mode="bilinear",
                          padding_mode="reflection", align_corners=False)  # fmt: skip
    if motion == "ball":
        video = _ball(video, amount, rng)
    return video.clamp(0, 1).permute(1, 0, 2, 3).contiguous()


def _ball(video: Tensor, amount: float, rng: np.random.Generator) -> Tensor:
    frames, _, size, _ = video.shape
    radius = size * rng.uniform(0.1, 0.14)
    y0 = rng.uniform(0.3, 0.7) * size
    direction = 1 if rng.random() < 0.5 else -1
    travel = (0.4 + 0.5 * amount) * size
    xs = size / 2 + direction * (torch.linspace(-0.5, 0.5, frames) * travel)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    dist = ((xx[None] - xs[:, None, None]) ** 2 + (yy[None] - y0) ** 2).sqrt()
    alpha = (radius + 0.5 - dist).clamp(0, 1)[:, None]  # antialiased disc
    shade = (1.0 - 0.35 * (((yy - y0 + radius * 0.4) / radius) ** 2).clamp(0, 1))[None, None]
    red = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1) * shade
    return video * (1 - alpha) + red * alpha


def build_video(*, frames: int, size: int, clips_per_pair: int = 40, seed: int = 0,
                more_photos: bool = False) -> dict:  # fmt: skip
    """The dataset as arrays: ``video`` (N, 3, frames, size, size) uint8, per-clip ``subject`` and
    ``motion`` (indices into ``attributes``), ``speed``, ``caption`` (index into ``captions``) and
    ``held_out`` (bool).

    ``more_photos`` builds the clips of `MORE_SUBJECTS` instead, every one in the training split; their
    subject classes follow `SUBJECTS`' (``attributes["subject"]`` lists both), so joined with the
    verifier's dataset every label still names its photo."""
    rng = np.random.default_rng(seed)
    subjects = list(SUBJECTS) + (list(MORE_SUBJECTS) if more_photos else [])
    captions: dict[str, int] = {}
    rows: dict[str, list] = {k: [] for k in ("video", "subject", "motion", "speed", "caption", "held_out")}
    for subject in MORE_SUBJECTS if more_photos else SUBJECTS:
        si = subjects.index(subject)
        image = photo(subject)
        for mi, motion in enumerate(MOTIONS):
            for _ in range(clips_per_pair):
                speed = "slow" if rng.random() < 0.5 else "fast"
                video = clip(image, motion, speed, frames, size, rng)
                rows["video"].append((video * 255).round().to(torch.uint8).numpy())
                rows["subject"].append(si)
                rows["motion"].append(mi)
                rows["speed"].append(list(SPEEDS).index(speed))
                rows["caption"].append(captions.setdefault(caption(subject, motion, speed), len(captions)))
                rows["held_out"].append(not more_photos and mi == held_out_motion(si))
    arrays = {k: np.stack(v) if k == "video" else np.asarray(v) for k, v in rows.items()}
    return {
        **arrays,
        "captions": list(captions),
        "attributes": {"subject": subjects, "motion": list(MOTIONS)},
        "frames": frames,
        "size": size,
        "seed": seed,
        **({"more_photos": True} if more_photos else {}),
    }


def time_reversed(split: Dataset) -> Dataset:
    """Each pan and zoom of ``split`` played backwards and captioned as the opposite motion.

    A pan left played backwards is exactly a pan right of the same speed and travel, a zoom in a zoom out
    (`clip` moves the camera symmetrically in time), so these clips are new samples of the dataset's own
    distribution, each the mirror in time of one the model also sees: more examples of which way a motion
    goes. A reversed clip is kept only if its caption is one of ``split``'s, so a training split never gains
    a held-out (photo, motion) pair."""
    subjects, motions = split.meta["attributes"]["subject"], split.meta["attributes"]["motion"]
    row_of = {text: i for i, text in enumerate(split.captions)}
    keep, twins = [], []
    for i, text in enumerate(split.captions):
        motion = motions[int(split.labels["motion"][i])]
        if motion not in OPPOSITE:
            continue
        twin = caption(subjects[int(split.labels["subject"][i])], OPPOSITE[motion], speed_of(text))
        if twin in row_of:
            keep.append(i)
            twins.append(row_of[twin])
    index, twin_index = torch.tensor(keep, dtype=torch.long), torch.tensor(twins, dtype=torch.long)
    return Dataset(
        samples=split.samples[index].flip(2),
        text=split.text[twin_index],
        captions=[split.captions[i] for i in twins],
        labels={name: values[twin_index] for name, values in split.labels.items()},
        held_out=split.held_out[index],
        meta=split.meta,
    )


def vocabulary() -> Vocabulary:
    """What the video models are trained on (with the training-only photos): every caption, and its words."""
    subjects = [*SUBJECTS, *MORE_SUBJECTS]
    terms = {"motions": ["pan left", "pan right", "zoom in", "zoom out", "rotation", "a red ball rolling across"],
             "speeds": list(SPEEDS), "subjects": [SUBJECTS.get(s) or MORE_SUBJECTS[s] for s in subjects]}  # fmt: skip
    captions = [caption(s, motion, speed) for s in subjects for motion in MOTIONS for speed in SPEEDS]
    return Vocabulary(terms, captions)
