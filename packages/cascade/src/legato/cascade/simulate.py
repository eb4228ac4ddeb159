"""A discrete-event model of a cascade on stage actors: throughput and latency from measured stage costs.

It follows what `legato.pipelines.ray_executor.RayExecutor` does. Items are cut into fixed batches per stage
(``batch_size``). Each batch's call goes to the stage's actors in turn: one call counter is shared by the
stages, in the order the executor submits them. A call starts when the upstream batches it covers are done
and their outputs have travelled (``transfer`` seconds per batch), and when its actor has finished the calls
submitted to it before. A Ray actor runs its calls one at a time, in submission order. Its duration is the
stage's measured time for a batch of that size (``seconds(n)``).

Resources, two ways. By default each actor has the resources its cost was measured on (a GPU, or whole
CPUs): actors do not slow each other down, and a stage on a fraction of a device is given that much longer a
``seconds`` by the caller. With ``cores=C``, the actors share C cores instead, as the processes of a Ray node
do (Ray's ``num_cpus`` is a scheduling label, not a limit): a call that runs on ``threads`` cores alone runs
``min(1, C / T)`` as fast while calls wanting T cores in all run at once (processor sharing). The model then
answers, for any number of GPUs and any placement, what the executor would reach: `simulate`.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from legato.cascade.cascade import Cascade, Item, LocalExecutor


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
    threads: int = 1  # the cores one call runs on (``cores=`` only)

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


def simulate(stages: Sequence[StageModel], items: int, *, cores: float | None = None) -> Prediction:
    """The executor's timeline for ``items`` items through ``stages`` in order, on dedicated resources or
    on ``cores`` shared cores (see the module's docstring)."""
    if items < 1 or not stages:
        raise ValueError(
            f"simulate needs at least one item and one stage, got {items} items, {len(stages)} stages"
        )
    if cores is not None:
        if cores <= 0:
            raise ValueError(f"cores={cores}: give the number of cores the actors share (> 0), or None")
        return _shared(stages, items, cores)
    free = [[0.0] * s.replicas for s in stages]  # when each actor has finished its calls so far
    calls = 0
    upstream = [(range(items), 0.0)]  # (positions, done at): the items, all there at t = 0
    busy = []
    for index, stage in enumerate(stages):
        produced, work = [], 0.0
        starts = [covered.start for covered, _ in upstream]
        for lo in range(0, items, stage.batch_size):
            positions = range(lo, min(lo + stage.batch_size, items))
            ready = max(done for _, done in _covering(upstream, starts, positions))
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


def _covering(
    batches: list[tuple[range, Any]], starts: list[int], positions: range
) -> list[tuple[range, Any]]:
    """The ``(positions, value)`` batches (in order of position; ``starts`` their first positions) that hold
    any of ``positions``."""
    first = max(0, bisect.bisect_right(starts, positions.start) - 1)
    out = []
    for batch, value in batches[first:]:
        if batch.start >= positions.stop:
            break
        if batch.stop > positions.start:
            out.append((batch, value))
    return out


@dataclass
class _Call:
    stage: int
    positions: range
    needs: list[int]  # upstream calls whose outputs this one takes
    left: float  # seconds of work still to do, at full speed
    work: float
    done: float = math.inf


def _calls(stages: Sequence[StageModel], items: int) -> tuple[list[_Call], list[list[int]]]:
    """Every call in submission order, and each actor's queue (stage by stage, actor by actor)."""
    calls: list[_Call] = []
    queues: list[list[int]] = [[] for s in stages for _ in range(s.replicas)]
    first = [sum(s.replicas for s in stages[:i]) for i in range(len(stages))]
    upstream: list[tuple[range, int]] = []  # (positions, call) of the stage before
    for index, stage in enumerate(stages):
        produced = []
        starts = [covered.start for covered, _ in upstream]
        for lo in range(0, items, stage.batch_size):
            positions = range(lo, min(lo + stage.batch_size, items))
            needs = [c for _, c in _covering(upstream, starts, positions)]
            took = stage.seconds(len(positions))
            queues[first[index] + len(calls) % stage.replicas].append(len(calls))
            produced.append((positions, len(calls)))
            calls.append(_Call(index, positions, needs, took, took))
        upstream = produced
    return calls, queues


def _shared(stages: Sequence[StageModel], items: int, cores: float) -> Prediction:
    """Processor sharing: the head call of each actor's queue runs once its inputs have arrived, all running
    calls at ``min(1, cores / their threads)`` of full speed; time goes from event to event."""
    calls, queues = _calls(stages, items)
    heads, now = [0] * len(queues), 0.0

    def arrival(call: _Call) -> float:
        if not call.needs:
            return 0.0
        return max(calls[c].done for c in call.needs) + stages[call.stage - 1].transfer

    while any(h < len(q) for h, q in zip(heads, queues, strict=True)):
        waiting = [calls[q[h]] for h, q in zip(heads, queues, strict=True) if h < len(q)]
        running = [c for c in waiting if arrival(c) <= now]
        rate = min(1.0, cores / sum(stages[c.stage].threads for c in running)) if running else 0.0
        events = [arrival(c) for c in waiting if arrival(c) > now]
        events += [now + c.left / rate for c in running]
        step = min(events) - now
        now += step
        for call in running:
            call.left -= step * rate
            if call.left <= 1e-12 * max(1.0, call.work):
                call.done = now
        heads = [h + (h < len(q) and calls[q[h]].done <= now) for h, q in zip(heads, queues, strict=True)]
    latencies = [0.0] * items
    busy = []
    for index, stage in enumerate(stages):
        mine = [c for c in calls if c.stage == index]
        span = max(c.done for c in mine)
        busy.append(sum(c.work for c in mine) / (span * stage.replicas) if span else 0.0)
        if index == len(stages) - 1:
            for c in mine:
                for p in c.positions:
                    latencies[p] = c.done
    return Prediction(items, max(latencies), tuple(latencies), tuple(busy))


@dataclass(frozen=True)
class Share:
    """A stage's part of the devices: ``replicas`` actors of ``devices`` CPUs or GPUs each."""

    replicas: int
    devices: float


def balance(costs: Sequence[float], devices: float, *, whole: bool = False) -> list[Share]:
    """Split ``devices`` (CPUs or GPUs) over stages whose measured costs (seconds per item on one device) are
    ``costs``, so that their throughputs balance.

    CPUs (``whole`` False): stage ``i`` gets ``devices * c_i / sum(c)``, held by ``ceil(share)`` replicas of an
    equal part each. GPUs (``whole``): a fraction of a GPU cannot straddle two, so the cheap stages share one
    GPU (each a fraction in proportion to its cost) and the others get whole GPUs as replicas, the GPUs left
    going one by one to the stage that is slowest then; of every choice of stages to share the one GPU, the
    one with the highest throughput (below one GPU, all the stages share what there is)."""
    if not costs or any(c <= 0 for c in costs) or devices <= 0:
        raise ValueError(f"balance needs positive costs and devices, got {list(costs)} and {devices}")
    total = sum(costs)
    if not whole:
        shares = [devices * c / total for c in costs]
        return [Share(max(1, math.ceil(s - 1e-9)), s / max(1, math.ceil(s - 1e-9))) for s in shares]
    best: tuple[float, list[Share]] | None = None
    for mask in range(1 << len(costs)):  # the stages that share one GPU (or all of fewer than one)
        shared = [i for i in range(len(costs)) if mask >> i & 1]
        alone = [i for i in range(len(costs)) if not mask >> i & 1]
        left = math.floor(devices + 1e-9) - bool(shared)  # whole GPUs beside the shared one
        if len(alone) > max(left, 0):
            continue
        # the shared GPU's items per second (none shared: no limit)
        part = min(1.0, devices) / sum(costs[i] for i in shared) if shared else math.inf
        out = {i: Share(1, part * costs[i]) for i in shared} | {i: Share(1, 1.0) for i in alone}
        for _ in range(left - len(alone)):
            slowest = min(alone, key=lambda i: out[i].replicas / costs[i], default=None)
            if slowest is None or out[slowest].replicas / costs[slowest] >= part:
                break  # the shared GPU is the slowest: a whole GPU more helps no one
            out[slowest] = Share(out[slowest].replicas + 1, 1.0)
        shares = [out[i] for i in range(len(costs))]
        if best is None or throughput(costs, shares) > best[0] + 1e-12:
            best = (throughput(costs, shares), shares)
    assert best is not None  # every stage sharing one GPU always fits
    return best[1]


def throughput(costs: Sequence[float], shares: Sequence[Share]) -> float:
    """Items per second in steady state: the slowest stage's replicas x device share / cost (a stage on a
    fraction of a device runs that much slower)."""
    return min(sh.replicas * min(sh.devices, 1.0) / c for c, sh in zip(costs, shares, strict=True))


def stage_costs(cascade: Cascade, probe: Sequence[Item], *, warm: bool = True) -> list[float]:
    """Each stage's seconds per item, run alone here on the ``probe`` items (the outputs of one stage the
    inputs of the next), after a warm-up run of one item unless ``warm`` is False: the costs `balance` and
    `StageModel` take. The caller sets torch's thread count to what a stage actor will have."""
    local, outputs, costs = LocalExecutor(), None, []
    if warm:
        local.run(cascade, probe[:1])
    for index in range(len(cascade.stages)):
        start = time.perf_counter()
        outputs = local.run(cascade, probe, start=index, stop=index + 1, inputs=outputs)
        costs.append((time.perf_counter() - start) / len(probe))
    return costs
