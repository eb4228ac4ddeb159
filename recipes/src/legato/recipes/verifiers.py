"""Verifiers: small classifiers, trained on a dataset's real training split, that score generated items.

A `Verifier` predicts a caption's attributes from a sample (music: style, instrument and tempo band from
the mel image; video: subject and motion from the clip). For a set of generated items and the attributes
their prompts asked for, `score` gives the attribute accuracy, and `legato.diffusion.frechet_distance` compares
the verifier's embeddings of two sets (generated against held-out real, as FID does with Inception features).

::

    legato recipes verifier music --data data/music --out models/verifiers/music
"""

from __future__ import annotations

import os

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

from legato.diffusion import SuperResolution
from legato.recipes.datasets import Dataset


class Verifier(ModelMixin, ConfigMixin):
    """Strided CNNs (2-D for mel images, 3-D for clips) -> an ``embedding_dim`` embedding -> one linear head
    per attribute. Inputs are samples in [-1, 1] at the dataset's resolution.

    ``motion_attributes`` (clips) are predicted by a second branch that sees only the frame differences:
    a held-out (photo, motion) pair is never in the training split, so a single branch learns "this photo
    never pans left" instead of what a left pan looks like. The embedding is both branches' together.
    """

    @register_to_config
    def __init__(
        self,
        attributes: dict[str, int],  # attribute -> number of classes
        in_channels: int = 1,
        video: bool = False,
        channels: tuple[int, ...] = (32, 64, 96, 128),
        embedding_dim: int = 32,
        motion_attributes: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        branches = 2 if motion_attributes else 1
        self.features = self._branch(in_channels, video, channels, embedding_dim // branches)
        self.motion = (
            self._branch(in_channels, video, channels, embedding_dim // branches) if branches > 1 else None
        )
        width = embedding_dim // branches
        self.heads = nn.ModuleDict({name: nn.Linear(width, n) for name, n in attributes.items()})

    @staticmethod
    def _branch(in_channels: int, video: bool, channels: tuple[int, ...], out: int) -> nn.Sequential:
        conv, norm = (nn.Conv3d, nn.BatchNorm3d) if video else (nn.Conv2d, nn.BatchNorm2d)
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(channels):
            stride = (
                ((1 if i == 0 else 2), 2, 2) if video else 2
            )  # clips keep their frames in the first layer
            layers += [conv(previous, width, 3, stride=stride, padding=1), norm(width), nn.SiLU()]
            previous = width
        return nn.Sequential(*layers, nn.Flatten(2), _Mean(), nn.Linear(previous, out), nn.SiLU())

    def _parts(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.motion is None:
            return self.features(x), None
        return self.features(x), self.motion(x[:, :, 1:] - x[:, :, :-1])

    def embedding(self, x: Tensor) -> Tensor:
        return torch.cat([p for p in self._parts(x) if p is not None], dim=1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        appearance, motion = self._parts(x)
        moving = set(self.config.motion_attributes)
        return {name: head(motion if name in moving else appearance) for name, head in self.heads.items()}


class _Mean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(-1)


def degrade(clips: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Each clip ``(N, C, T, H, W)``, with probability ``p``, at half the frames, half the size or both and
    brought back by the cascade's own upsampling (`SuperResolution`): what a generated clip's detail looks
    like. A verifier trained on sharp clips only reads motion from texture that a x2 round trip removes
    (real held-out clips at the base stage's resolution, upsampled bilinearly, scored 0.25 on motion
    against 0.80 sharp); one trained with this keeps reading the motion itself."""
    out = clips.clone()
    kinds = torch.randint(0, 3, (len(clips),), generator=generator)
    chosen = torch.rand(len(clips), generator=generator) < p
    for kind, sr in enumerate(
        (SuperResolution(time=2), SuperResolution(space=2), SuperResolution(time=2, space=2))
    ):
        index = torch.nonzero(chosen & (kinds == kind)).flatten()
        if len(index):
            out[index] = sr.upsample(sr.downsample(clips[index]), frames=clips.shape[2])
    return out


def train_verifier(data: Dataset, *, epochs: int = 12, batch_size: int = 64, seed: int = 0) -> Verifier:
    """Fit a verifier on ``data`` (the training split). Augmentation: mel images get a random circular
    shift in time, clips a x2 round trip in time and/or space on half of them (`degrade`)."""
    torch.manual_seed(seed)
    video = data.samples.ndim == 5
    attributes = {name: len(classes) for name, classes in data.meta["attributes"].items()}
    channels = (16, 32, 64, 96) if video else (32, 64, 96, 128)
    model = Verifier(attributes, in_channels=data.samples.shape[1], video=video, channels=channels,
                     motion_attributes=("motion",) if video else ())  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(data.samples) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.samples), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            x = data.samples[index]
            if not video:  # a random circular shift in time: what a window starts with is not a label
                x = torch.roll(x, int(torch.randint(0, x.shape[-1], (), generator=generator)), dims=-1)
            else:
                x = degrade(x, generator)
            logits = model(x)
            loss = sum(nn.functional.cross_entropy(logits[k], data.labels[k][index]) for k in logits)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: Verifier, samples: Tensor, batch_size: int = 64) -> tuple[dict[str, Tensor], Tensor]:
    """Predicted class per attribute ``{name: (N,)}`` and embeddings ``(N, embedding_dim)``."""
    model.eval()
    predictions: dict[str, list[Tensor]] = {name: [] for name in model.heads}
    embeddings = []
    for start in range(0, len(samples), batch_size):
        x = samples[start : start + batch_size].float()
        embeddings.append(model.embedding(x))
        for name, logits in model(x).items():
            predictions[name].append(logits.argmax(1))
    return {k: torch.cat(v) for k, v in predictions.items()}, torch.cat(embeddings)


def score(model: Verifier, samples: Tensor, labels: dict[str, Tensor]) -> dict[str, float]:
    """Attribute accuracy of ``samples`` against the attributes asked for, per attribute and their mean."""
    return accuracy(predict(model, samples)[0], labels)


def accuracy(predicted: dict[str, Tensor], labels: dict[str, Tensor]) -> dict[str, float]:
    """`score` from `predict`'s classes."""
    out = {name: float((predicted[name] == labels[name]).float().mean()) for name in predicted}
    out["mean"] = float(np.mean(list(out.values())))
    return out


def accuracy_by_class(
    predicted: dict[str, Tensor], labels: dict[str, Tensor], classes: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """Per attribute, the accuracy on the samples asked for each class (``classes``: the dataset meta's
    attribute names), for the classes asked for at least once: which motions a model gets wrong."""
    return {
        name: {classes[name][c]: float((predicted[name][labels[name] == c] == c).float().mean())
               for c in labels[name].unique().tolist()}
        for name in predicted
    }  # fmt: skip


def train_and_save(
    data: Dataset, out: str | os.PathLike[str], *, epochs: int | None = None
) -> dict[str, float]:
    """Train a verifier on ``data``'s training split (``epochs``: 12 for music, 6 for video), save it to
    ``out`` (safetensors) and return its attribute accuracy on the held-out real samples."""
    video = data.samples.ndim == 5
    model = train_verifier(data.split(held_out=False), epochs=epochs or (6 if video else 12))
    model.save_pretrained(out, safe_serialization=True)
    held = data.split(held_out=True)
    return score(model, held.samples, held.labels)
