"""`Cascade`: an ordered tuple of stages and a final decode; `Item`: one unit of work; `LocalExecutor`.

Executors (this one, and the Ray ones in legato.pipelines) share one contract: ``run(cascade, items,
start=, stop=, inputs=, progress=)`` returns one output per item, in the items' order, and an item's output
depends only on the item (its seed and conditioning) and on the stages' batch sizes, never on which executor
or worker ran it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from legato.cascade.stage import Stage
from legato.diffusion import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.training import collate

Progress = Callable[[str, int, int], None]  # (stage name, items finished at that stage, items in the run)


@dataclass(frozen=True)
class Item:
    """One unit of work: an id (file names, manifests), a seed, and unbatched conditioning (e.g. a prompt's
    text embedding ``(L, D)``)."""

    id: str
    seed: int
    cond: Conditioning = field(default_factory=Conditioning)


@dataclass(frozen=True, eq=False)
class Cascade:
    """Stages in order (a base stage first, then super-resolution stages), and an optional per-item
    ``decode`` (e.g. mel -> audio) applied to the last stage's output ``(C, ...)``."""

    stages: tuple[Stage, ...]
    decode: Callable[[Tensor], Any] | None = None

    def __post_init__(self) -> None:
        if not self.stages:
            raise DiffusionError("a Cascade needs at least one Stage")
        if not self.stages[0].is_base:
            raise DiffusionError(f"the first stage {self.stages[0].name!r} must be a base stage (shape=...)")
        for stage in self.stages[1:]:
            if stage.is_base:
                raise DiffusionError(f"stage {stage.name!r} after the first must be a super-resolution stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise DiffusionError(f"stage names must be unique, got {names}")

    def span(self, start: int | str = 0, stop: int | str | None = None) -> range:
        """Stage indices from ``start`` up to, not including, ``stop`` (indices or stage names)."""
        index = {s.name: i for i, s in enumerate(self.stages)}
        lo = index[start] if isinstance(start, str) else start
        hi = len(self.stages) if stop is None else index[stop] if isinstance(stop, str) else stop
        if not 0 <= lo < hi <= len(self.stages):
            raise DiffusionError(
                f"start={start!r}, stop={stop!r} select no stages of {[s.name for s in self.stages]}"
            )
        return range(lo, hi)


def batches(count: int, size: int) -> list[range]:
    """Consecutive positions ``0..count`` cut into ranges of ``size`` (the last may be short)."""
    return [range(i, min(i + size, count)) for i in range(0, count, size)]


def check_run(cascade: Cascade, items: Sequence[Item], span: range, inputs: Sequence[Tensor] | None) -> None:
    """Validate a run's arguments (shared by every executor)."""
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise DiffusionError("item ids must be unique within a run")
    first = cascade.stages[span.start]
    if first.is_base and inputs is not None:
        raise DiffusionError(f"the run starts at base stage {first.name!r}: it takes no inputs")
    if not first.is_base and (inputs is None or len(inputs) != len(items)):
        raise DiffusionError(
            f"the run starts at super-resolution stage {first.name!r}: pass inputs=, one tensor per item"
        )


def run_batch(stage: Stage, index: int, items: Sequence[Item], inputs: Tensor | None) -> Tensor:
    """One stage on one batch of items (what every executor's worker calls)."""
    cond = collate([(torch.zeros(()), item.cond) for item in items])[1]
    return stage.run(inputs, cond, [item.seed for item in items], index)


class Executor(Protocol):
    def run(
        self,
        cascade: Cascade,
        items: Sequence[Item],
        *,
        start: int | str = 0,
        stop: int | str | None = None,
        inputs: Sequence[Tensor] | None = None,
        progress: Progress | None = None,
    ) -> list[Any]: ...


class LocalExecutor:
    """Runs a cascade in this process, stage after stage, each in batches of its own ``batch_size``."""

    def run(
        self,
        cascade: Cascade,
        items: Sequence[Item],
        *,
        start: int | str = 0,
        stop: int | str | None = None,
        inputs: Sequence[Tensor] | None = None,
        progress: Progress | None = None,
    ) -> list[Any]:
        span = cascade.span(start, stop)
        check_run(cascade, items, span, inputs)
        current: list[Tensor] | None = list(inputs) if inputs is not None else None
        for index in span:
            stage = cascade.stages[index]
            outputs: list[Tensor] = []
            for positions in batches(len(items), stage.batch_size):
                x = torch.stack([current[p] for p in positions]) if current is not None else None
                outputs += list(run_batch(stage, index, [items[p] for p in positions], x))
                if progress is not None:
                    progress(stage.name, len(outputs), len(items))
            current = outputs
        return finish(cascade, span, current)


def finish(cascade: Cascade, span: range, outputs: list[Tensor]) -> list[Any]:
    """Decode the outputs when the run reached the cascade's last stage."""
    if cascade.decode is None or span.stop != len(cascade.stages):
        return outputs
    return [cascade.decode(x) for x in outputs]
