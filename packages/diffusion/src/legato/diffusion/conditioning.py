"""`Conditioning`: what a denoiser is conditioned on besides the noisy sample and the noise level."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from legato.diffusion.errors import DiffusionError


@dataclass(frozen=True)
class Conditioning:
    """Per-item conditioning, every field optional and batched on its first dim.

    Attributes:
        text: ``(B, L, D)`` token embeddings, attended to by cross-attention.
        pooled: ``(B, D)`` pooled embedding (e.g. a sentence embedding), added to the time embedding.
        labels: ``(B,)`` integer class labels.
        low_res: ``(B, C', ...)`` extra input channels at the sample's size, concatenated on the channel
            axis (the upsampled previous stage, for super-resolution).
        noise_level: ``(B,)`` noise-augmentation level of ``low_res``, in the model's timestep units.
        fps: ``(B,)`` frame rate, for video models conditioned on it.
        guidance: ``(B,)`` classifier-free guidance scale, for students of guided distillation that take it
            as an input instead of running two forwards.
        negative: ``(B, L, D)`` the text encoder's embedding of the negative (or empty) prompt: the
            unconditional branch of guidance for checkpoints trained with an empty prompt as the null
            (diffusers' convention); networks never see it (`without_negative`), `null` returns it.
        text_mask, negative_mask: ``(B, L)`` which tokens of ``text`` and ``negative`` are the prompt's (1) and
            which are padding (0), for networks that take the mask (LTX-Video's ``encoder_attention_mask``).
    """

    text: Tensor | None = None
    pooled: Tensor | None = None
    labels: Tensor | None = None
    low_res: Tensor | None = None
    noise_level: Tensor | None = None
    fps: Tensor | None = None
    guidance: Tensor | None = None
    negative: Tensor | None = None
    text_mask: Tensor | None = None
    negative_mask: Tensor | None = None

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}

    @property
    def batch_size(self) -> int | None:
        sizes = {name: t.shape[0] for name, t in self.tensors().items()}
        if len(set(sizes.values())) > 1:
            raise DiffusionError(f"conditioning fields disagree on the batch size: {sizes}")
        return next(iter(sizes.values()), None)

    def check(self, batch: int, device: torch.device) -> None:
        """Raise `DiffusionError` unless every field has ``batch`` items on ``device`` and is finite."""
        for name, value in self.tensors().items():
            if value.shape[0] != batch:
                raise DiffusionError(
                    f"conditioning.{name} has {value.shape[0]} items (shape {tuple(value.shape)}) for a batch of "
                    f"{batch}; pass one row per item"
                )
            if value.device != device:
                raise DiffusionError(
                    f"conditioning.{name} is on {value.device}, the sample on {device}; use .to()"
                )
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise DiffusionError(f"conditioning.{name} holds NaN/Inf values")

    def cat(self, other: Conditioning) -> Conditioning:
        """Stack two conditionings along the batch (both must set the same fields)."""
        mine, theirs = self.tensors(), other.tensors()
        if mine.keys() != theirs.keys():
            raise DiffusionError(
                f"cannot stack conditionings with fields {sorted(mine)} and {sorted(theirs)}; the unconditional "
                "branch must set the same fields (e.g. an empty-prompt embedding, a null label)"
            )
        return Conditioning(**{k: torch.cat([mine[k], theirs[k]]) for k in mine})

    @staticmethod
    def stack(items: Sequence[Conditioning]) -> Conditioning:
        """Unbatched per-item conditionings (e.g. one prompt's ``(L, D)`` text each) stacked into a batch."""
        if not items:
            raise DiffusionError("cannot stack an empty list of conditionings; pass one per item")
        fields = items[0].tensors().keys()
        for item in items[1:]:
            if item.tensors().keys() != fields:
                raise DiffusionError(
                    f"cannot stack conditionings with fields {sorted(fields)} and {sorted(item.tensors())}; "
                    "give every item the same fields"
                )
        return Conditioning(**{k: torch.stack([item.tensors()[k] for item in items]) for k in fields})

    def null(self) -> Conditioning:
        """The unconditional branch of classifier-free guidance. With ``negative`` set, that embedding (one
        row per item: the negative prompt, or the empty one, as diffusers' pipelines guide). Otherwise, for
        networks trained with Legato's condition dropout: one row of all-zero ``text`` and ``pooled``
        embeddings (what `drop_conditions` gives a dropped item; the empty prompt of Legato's own text
        encoder is zero-padded to the same)."""
        if self.text is None:
            raise DiffusionError("classifier-free guidance needs text conditioning (prompts) to drop")
        if self.negative is not None:
            if self.negative.shape[1:] != self.text.shape[1:]:
                raise DiffusionError(
                    f"conditioning.negative has shape {tuple(self.negative.shape)}, the text "
                    f"{tuple(self.text.shape)}; encode both with the same text encoder"
                )
            mask = self.negative_mask if self.text_mask is not None else None
            if self.text_mask is not None and mask is None:
                raise DiffusionError("conditioning.text_mask is set but negative_mask is not; give both")
            return Conditioning(text=self.negative, pooled=self.pooled, text_mask=mask)
        pooled = None if self.pooled is None else torch.zeros_like(self.pooled[:1])
        mask = None if self.text_mask is None else torch.ones_like(self.text_mask[:1])
        return Conditioning(text=torch.zeros_like(self.text[:1]), pooled=pooled, text_mask=mask)

    def without_negative(self) -> Conditioning:
        """What the network is given: everything but the negative prompt's embedding."""
        if self.negative is None and self.negative_mask is None:
            return self
        return dataclasses.replace(self, negative=None, negative_mask=None)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Conditioning:
        return Conditioning(**{k: fn(v) for k, v in self.tensors().items()})

    def replace(self, **changes: Tensor | None) -> Conditioning:
        return dataclasses.replace(self, **changes)
