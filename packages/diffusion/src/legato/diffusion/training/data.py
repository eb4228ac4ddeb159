"""Training data: items, collation, condition dropout and bucketed batches with a resumable order.

An item is ``(x, cond)``: a sample ``(C, H, W)`` or ``(C, T, H, W)`` and a `Conditioning` whose fields are
unbatched (``text`` ``(L, D)``, ``pooled`` ``(D,)``, ``labels`` a 0-d integer tensor). Items of different
shapes (aspect ratios, durations) go to different buckets; a batch never mixes buckets. The batch order of
an epoch is a pure function of ``(seed, epoch)``, so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError

Item = tuple[Tensor, Conditioning]


class ItemDataset(Protocol):
    """Items by index. A dataset may also define ``shapes() -> list[tuple[int, ...]]`` (each item's sample
    shape) so that bucketing does not have to load every item; `item_shapes` falls back to loading them."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Item: ...


def item_shapes(dataset: ItemDataset) -> list[tuple[int, ...]]:
    """Each item's sample shape: ``dataset.shapes()`` where defined, else by loading every item."""
    if hasattr(dataset, "shapes"):
        return [tuple(s) for s in dataset.shapes()]
    return [tuple(dataset[i][0].shape) for i in range(len(dataset))]


class TensorItems:
    """An `ItemDataset` over in-memory tensors: ``samples`` (a list or a stacked tensor) and optional
    per-item conditioning tensors of the same length."""

    def __init__(self, samples: Sequence[Tensor] | Tensor, **cond: Tensor | Sequence[Tensor]) -> None:
        self.samples = samples
        self.cond = cond
        for name, values in cond.items():
            if len(values) != len(samples):
                raise DiffusionError(f"{name} has {len(values)} rows for {len(samples)} samples")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        return self.samples[index], Conditioning(**{k: v[index] for k, v in self.cond.items()})

    def shapes(self) -> list[tuple[int, ...]]:
        if isinstance(self.samples, Tensor):
            return [tuple(self.samples.shape[1:])] * len(self.samples)
        return [tuple(s.shape) for s in self.samples]


def collate(items: Sequence[Item]) -> tuple[Tensor, Conditioning]:
    """Stack items of one shape into ``(B, C, ...)`` and a batched `Conditioning`."""
    shapes = {tuple(x.shape) for x, _ in items}
    if len(shapes) > 1:
        raise DiffusionError(f"a batch mixes sample shapes {sorted(shapes)}; bucket items by shape")
    return torch.stack([x for x, _ in items]), Conditioning.stack([c for _, c in items])


def drop_conditions(
    cond: Conditioning, probability: float, generator: torch.Generator, null_label: int | None = None
) -> Conditioning:
    """Replace each item's conditioning by the null one with ``probability`` (for classifier-free guidance).

    Null text and pooled embeddings are zeros; the null label is ``null_label`` (a DiT with ``num_classes=K``
    uses ``K``). ``low_res`` and ``noise_level`` are never dropped: they are inputs, not guidance.
    """
    if probability <= 0:
        return cond
    batch = cond.batch_size
    if batch is None:
        return cond
    drop = torch.rand(batch, generator=generator, device=generator.device) < probability
    changes: dict[str, Tensor] = {}
    for name in ("text", "pooled"):
        value = getattr(cond, name)
        if value is not None:
            keep = (~drop).to(value.device, value.dtype).view(-1, *([1] * (value.ndim - 1)))
            changes[name] = value * keep
    if cond.labels is not None:
        if null_label is None:
            raise DiffusionError("condition dropout on labels needs null_label= (e.g. num_classes for a DiT)")
        changes["labels"] = torch.where(
            drop.to(cond.labels.device), torch.full_like(cond.labels, null_label), cond.labels
        )
    return cond.replace(**changes)


class BucketBatches:
    """Deterministic, resumable batches of indices, each from one shape bucket.

    Epoch ``e``: shuffle the indices with a generator seeded by ``(seed, e)``, cut each bucket's indices into
    batches of ``batch_size`` (dropping a short last batch), and shuffle the order of the batches too.
    ``shard=(rank, world)`` keeps every ``world``-th batch for data-parallel workers.
    """

    def __init__(
        self, shapes: Sequence[tuple[int, ...]], batch_size: int, seed: int, shard: tuple[int, int] = (0, 1)
    ) -> None:
        self.buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, shape in enumerate(shapes):
            self.buckets[tuple(shape)].append(index)
        self.batch_size, self.seed, self.shard = batch_size, seed, shard
        if self.batches_per_epoch == 0:
            sizes = {k: len(v) for k, v in self.buckets.items()}
            raise DiffusionError(
                f"no bucket holds a full batch of {batch_size} (bucket sizes {sizes}) for {shard[1]} worker(s); "
                "lower batch_size or add data"
            )

    @property
    def batches_per_epoch(self) -> int:
        total = sum(len(v) // self.batch_size for v in self.buckets.values())
        return total // self.shard[1]

    def epoch(self, epoch: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        batches = []
        for indices in self.buckets.values():
            order = [indices[i] for i in torch.randperm(len(indices), generator=gen).tolist()]
            batches += [
                order[i : i + self.batch_size]
                for i in range(0, len(order) - self.batch_size + 1, self.batch_size)
            ]
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        rank, world = self.shard
        return batches[rank : self.batches_per_epoch * world : world]
