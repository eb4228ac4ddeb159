"""A discrete-event model of a cascade on stage actors: throughput and latency from measured stage costs.

It follows what `legato.pipelines.ray_executor.RayExecutor` does. Items are cut into fixed batches per stage
(``batch_size``). Each batch's call goes to the stage's actors in turn: one call counter is shared by the
stages, in the order the executor submits them. A call starts when the upstream batches it covers are done
and their outputs have travelled (``transfer`` seconds per batch), and when its actor has finished the calls
submitted to it before. A Ray actor runs its calls one at a time, in submission order. Its duration is the
stage's measured time for a batch of that size (``seconds(n)``).

Actors are assumed not to slow each other down: each is given the resources its cost was measured on (a GPU,
or whole CPUs). Where actors share a core, measure the costs on the shared resources. The model then answers,
for any number of GPUs and any placement, what the executor would reach: `simulate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StageModel:
    """One stage as the model sees it: ``seconds(n)`` for a batch of ``n`` items on one actor (a constant, or
    ``fixed + per_item * n`` from `linear`), its batch size, its actors, and what a batch's outputs take to
    reach the next stage."""

    name: str
    seconds: Callable[[int], float]
    batch_size: int = 1
    replicas: int = 1
    transfer: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.replicas < 1:
            raise ValueError(
                f"stage {self.name!r}: batch_size={self.batch_size} and replicas={self.replicas} must be >= 1"
            )


def linear(fixed: float, per_item: float) -> Callable[[int], float]:
    """A batch's time as a fixed cost (a launch, a call's overhead) plus a cost per item."""
    return lambda n: fixed + per_item * n


@dataclass(frozen=True)
class Prediction:
    """What `simulate` predicts for ``items`` items submitted at once."""

    items: int
    makespan: float  # seconds until the last item is done
    latencies: tuple[float, ...]  # per item: seconds from submission to done
    busy: tuple[float, ...]  # per stage: the fraction of its actors' time spent computing

    @property
    def throughput(self) -> float:
        return self.items / self.makespan

    @property
    def latency(self) -> float:
        return sum(self.latencies) / len(self.latencies)


def simulate(stages: Sequence[StageModel], items: int) -> Prediction:
    """The executor's timeline for ``items`` items through ``stages`` in order (see the module's docstring)."""
    if items < 1 or not stages:
        raise ValueError(
            f"simulate needs at least one item and one stage, got {items} items, {len(stages)} stages"
        )
    free = [[0.0] * s.replicas for s in stages]  # when each actor has finished its calls so far
    calls = 0
    upstream = [(range(items), 0.0)]  # (positions, done at): the items, all there at t = 0
    busy = []
    for index, stage in enumerate(stages):
        produced, work = [], 0.0
        for lo in range(0, items, stage.batch_size):
            positions = range(lo, min(lo + stage.batch_size, items))
            ready = max(
                done
                for covered, done in upstream
                if covered.start < positions.stop and positions.start < covered.stop
            )
            if index:
                ready += stages[index - 1].transfer
            actor = calls % stage.replicas
            calls += 1
            start = max(ready, free[index][actor])
            took = stage.seconds(len(positions))
            free[index][actor] = start + took
            work += took
            produced.append((positions, start + took))
        upstream = produced
        span = max(free[index])
        busy.append(work / (span * stage.replicas) if span else 0.0)
    latencies = tuple(done for positions, done in upstream for _ in positions)
    return Prediction(items, max(latencies), latencies, tuple(busy))
