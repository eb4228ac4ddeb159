"""Running a `legato.cascade.Cascade` on Ray: stage actors that overlap, and a Ray Data path for batch jobs.

`RayExecutor` puts each stage on its own actors (``replicas`` per stage, each with its own CPUs/GPUs) and
submits the whole run at once as a graph of actor calls: stage ``i``'s batch waits only for the
stage-``i - 1`` batches holding its items, so while SR works on the first items the base stage already
runs the next ones. Stage outputs travel as object refs, never through the driver. Items are batched per
stage exactly as `LocalExecutor` batches them, so outputs are byte-equal.

`ray_data_run` does the same work with Ray Data (``map_batches`` per stage over an actor pool, streaming):
the path for thousands of items. Ray Data forms its own batches, so outputs equal the other executors'
within floating-point rounding (byte-equal at batch size 1).

Resources: unless a stage says otherwise, the cluster's CPUs are split evenly over all stage actors (Ray's
default of one CPU per actor hangs a small machine), GPUs go one per actor to stages with ``device="cuda"``,
and a stage that cannot be placed raises `PlacementError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import ray
import torch
from torch import Tensor

from legato.cascade import Cascade, Item, Progress, Stage, batches, check_run, run_batch
from legato.cascade.simulate import balance, throughput
from legato.diffusion import Conditioning, scheduler_config, scheduler_from_config


class PlacementError(RuntimeError):
    """A stage's actors cannot be placed on the cluster."""


@dataclass(frozen=True)
class StageResources:
    """Per-stage placement: actors (``replicas``), CPUs / GPUs per actor (None: computed), and torch threads
    per actor (None: the whole CPUs it holds; the same count as a local run gives byte-equal outputs)."""

    replicas: int = 1
    num_cpus: float | None = None
    num_gpus: float | None = None
    threads: int | None = None


@dataclass(frozen=True)
class Placement:
    """What each stage's actors get; `plan` computes it from the cluster."""

    cpus: tuple[float, ...]
    gpus: tuple[float, ...]
    replicas: tuple[int, ...]
    threads: tuple[int, ...] = field(default=())


def plan(cascade: Cascade, resources: dict[str, StageResources], cluster: dict[str, float],
         threads: int | None = None) -> Placement:  # fmt: skip
    """Resources per stage actor. CPUs left unset share the cluster's CPUs evenly (at most 1 each for
    GPU stages); torch threads per actor: the stage's own, else ``threads``, else the whole CPUs it holds
    (at least 1)."""
    stages = cascade.stages
    unknown = set(resources) - {s.name for s in stages}
    if unknown:
        raise PlacementError(
            f"resources name unknown stages {sorted(unknown)}; stages: {[s.name for s in stages]}"
        )
    spec = [resources.get(s.name, StageResources()) for s in stages]
    total_cpu, total_gpu = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    gpus = []
    for stage, r in zip(stages, spec, strict=True):
        want = r.num_gpus if r.num_gpus is not None else (1.0 if stage.device.startswith("cuda") else 0.0)
        if want > 0 and not stage.device.startswith("cuda"):
            raise PlacementError(f"stage {stage.name!r} asks for GPUs but runs on device={stage.device!r}")
        gpus.append(want)
    need_gpu = sum(g * r.replicas for g, r in zip(gpus, spec, strict=True))
    if need_gpu > total_gpu + 1e-9:
        raise PlacementError(
            f"the stages need {need_gpu:g} GPUs ({', '.join(f'{s.name}: {g:g} x {r.replicas}' for s, g, r in zip(stages, gpus, spec, strict=True) if g)}) "
            f"but the cluster has {total_gpu:g}; lower num_gpus (fractions share a GPU) or replicas"
        )
    fixed = sum(r.num_cpus * r.replicas for r in spec if r.num_cpus is not None)
    free_actors = sum(r.replicas for r in spec if r.num_cpus is None)
    share = (total_cpu - fixed) / free_actors if free_actors else 0.0
    if fixed > total_cpu + 1e-9 or (free_actors and share < 0.01):
        raise PlacementError(
            f"the stages ask for {fixed:g} CPUs and {free_actors} more actors, but the cluster has {total_cpu:g} "
            "CPUs; lower num_cpus or replicas"
        )
    cpus = tuple(
        r.num_cpus if r.num_cpus is not None else (min(share, 1.0) if g else share)
        for r, g in zip(spec, gpus, strict=True)
    )
    threads = tuple(
        r.threads or threads or max(1, math.floor(c + 1e-9)) for r, c in zip(spec, cpus, strict=True)
    )
    return Placement(cpus, tuple(gpus), tuple(r.replicas for r in spec), threads)


def balanced_resources(cascade: Cascade, costs: Sequence[float], *, cpus: float | None = None,
                       gpus: float | None = None) -> tuple[dict[str, StageResources], float]:  # fmt: skip
    """Per-stage resources balanced by cost: ``costs`` are the stages' seconds per item
    (`legato.cascade.simulate.stage_costs` times them), ``gpus`` (whole GPUs for a dear stage, fractions for a
    cheap one) or ``cpus`` are split by `legato.cascade.simulate.balance`. Returns them, for `RayExecutor`,
    and the predicted items/s."""
    if not (cpus or gpus):
        raise PlacementError("balanced_resources needs cpus= or gpus=: the devices to split over the stages")
    if len(costs) != len(cascade.stages):
        raise PlacementError(
            f"got {len(costs)} costs for the {len(cascade.stages)} stages; give one per stage"
        )
    shares = balance(costs, gpus or cpus, whole=bool(gpus))
    key = "num_gpus" if gpus else "num_cpus"
    resources = {s.name: StageResources(replicas=sh.replicas, **{key: sh.devices})
                 for s, sh in zip(cascade.stages, shares, strict=True)}  # fmt: skip
    return resources, throughput(costs, shares)


RESTARTS = 3  # per stage actor


@dataclass(frozen=True)
class StageSettings:
    """What a call may change of a cascade stage without other weights: its steps, guidance and sampler (the
    scheduler's class and config as JSON, `legato.diffusion.scheduler_config`). Hashable and small, so a
    remote stage (a serving replica) can take it with every call and keep one copy of the weights."""

    steps: int
    guidance_scale: float
    scheduler: str
    reconstruction: float = 0.0  # reconstruction guidance of kept parts (video continuations)

    @classmethod
    def of(cls, stage: Any) -> StageSettings:
        if not isinstance(stage, Stage):  # an Encode or Decode step: nothing to sample
            return cls(0, 1.0, "")
        return cls(stage.steps, stage.guidance_scale, scheduler_config(stage.scheduler), stage.reconstruction)

    def apply(self, cascade: Cascade, index: int) -> Cascade:
        """``cascade`` with stage ``index`` sampled with these settings (a step that does not sample, as is)."""
        if not self.steps:
            return cascade
        stage = replace(cascade.stages[index], steps=self.steps, guidance_scale=self.guidance_scale,
                        scheduler=scheduler_from_config(self.scheduler), reconstruction=self.reconstruction)  # fmt: skip
        return replace(cascade, stages=(*cascade.stages[:index], stage, *cascade.stages[index + 1 :]))


class StageWorker:
    """Holds one stage (its model on its device) and runs batches of it; a Ray actor class."""

    def __init__(self, cascade: Cascade, index: int, threads: int) -> None:
        torch.set_num_threads(threads)
        stage = cascade.stages[index]
        device = "cuda" if stage.device.startswith("cuda") and torch.cuda.is_available() else stage.device
        stages = tuple(s.to(device) if i == index else s for i, s in enumerate(cascade.stages))
        self.cascade, self.index = replace(cascade, stages=stages), index

    def run(self, items: list[Item], slices: list[tuple[int, int]], *parts: Tensor) -> Tensor:
        """One batch: ``parts`` are upstream batch outputs, ``slices`` the rows of each that are these items."""
        inputs = torch.cat([p[a:b] for p, (a, b) in zip(parts, slices, strict=True)]) if parts else None
        return run_batch(self.cascade, self.index, items, inputs)

    def ready(self) -> bool:
        return True


class RayExecutor:
    """Runs a cascade on the connected Ray cluster (``ray.init`` first), stages on their own actors.

    ``resources`` maps stage names to `StageResources`; ``threads`` is every other stage actor's torch thread
    count (the local run's count gives byte-equal outputs). Actors start on first use and are kept for later
    runs of the same cascade; `shutdown` releases them.
    """

    def __init__(
        self, resources: dict[str, StageResources] | None = None, *, threads: int | None = None
    ) -> None:
        self.resources, self.threads = resources or {}, threads
        self._actors: dict[int, list[Any]] = {}
        self._cascade: Cascade | None = None
        self._shared: Any = None

    def actors(self, cascade: Cascade) -> dict[int, list[Any]]:

        if self._cascade is not cascade:
            self.shutdown()
            placement = plan(cascade, self.resources, ray.cluster_resources(), self.threads)
            # Held for the actors' lifetime: a restarted actor rebuilds itself from this same object.
            shared = self._shared = ray.put(cascade)
            remote = ray.remote(StageWorker)
            for index in range(len(cascade.stages)):
                # A killed actor (or its worker process) is restarted and its unfinished calls are run again:
                # the same items and seeds, so the same outputs (tests/pipelines/test_ray_faults.py).
                options = {"num_cpus": placement.cpus[index], "num_gpus": placement.gpus[index],
                           "max_restarts": RESTARTS, "max_task_retries": RESTARTS}  # fmt: skip
                self._actors[index] = [
                    remote.options(**options).remote(shared, index, placement.threads[index])
                    for _ in range(placement.replicas[index])
                ]
            ray.get([a.ready.remote() for group in self._actors.values() for a in group])
            self._cascade = cascade
        return self._actors

    def bind(self, cascade: Cascade, items: Sequence[Item], *, start: int | str = 0, stop: int | str | None = None,
             inputs: Sequence[Tensor] | None = None) -> list[Any]:  # fmt: skip
        """The run as a graph of object refs, one per last-stage batch, for composing with other Ray code
        (``ray.get`` them, or pass them to your own tasks)."""
        span = cascade.span(start, stop)
        check_run(cascade, items, span, inputs)

        actors = self.actors(cascade)
        # Upstream: (ref, first position) per batch; the inputs of a run that starts at an SR stage are refs too.
        upstream = []
        if inputs is not None:
            upstream = [(ray.put(torch.stack(list(inputs))), range(len(items)))]
        calls = 0
        for index in span:
            stage = cascade.stages[index]
            produced = []
            for positions in batches(len(items), stage.batch_size):
                parts, slices = [], []
                for ref, covered in upstream:
                    lo, hi = max(positions.start, covered.start), min(positions.stop, covered.stop)
                    if lo < hi:
                        parts.append(ref)
                        slices.append((lo - covered.start, hi - covered.start))
                group = actors[index]
                actor = group[calls % len(group)]
                calls += 1
                ref = actor.run.remote([items[p] for p in positions], slices, *parts)
                produced.append((ref, positions))
            upstream = produced
        return [ref for ref, _ in upstream]

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
        refs = self.bind(cascade, items, start=start, stop=stop, inputs=inputs)
        sizes = {
            ref: len(p)
            for ref, p in zip(
                refs, batches(len(items), cascade.stages[span.stop - 1].batch_size), strict=True
            )
        }
        pending, done = list(refs), 0
        while pending and progress is not None:
            ready, pending = ray.wait(pending, num_returns=1)
            done += sizes[ready[0]]
            progress(cascade.stages[span.stop - 1].name, done, len(items))
        return [row for batch in ray.get(refs) for row in batch]

    def shutdown(self) -> None:

        for group in self._actors.values():
            for actor in group:
                ray.kill(actor)
        self._actors, self._cascade, self._shared = {}, None, None


# --- Ray Data --------------------------------------------------------------------------------------------


def _rows(items: Sequence[Item], inputs: Sequence[Tensor] | None) -> list[dict[str, Any]]:
    rows = []
    for pos, item in enumerate(items):
        row: dict[str, Any] = {
            "pos": pos,
            "id": item.id,
            "seed": item.seed,
            "fade": item.fade,
            "realign": item.realign,
            "prompt": item.prompt or "",
            "has_prompt": item.prompt is not None,
            "negative": item.negative,
        }
        row.update({f"cond.{k}": v.numpy() for k, v in item.cond.tensors().items()})
        if item.prefix is not None:
            row["prefix"] = item.prefix.numpy()
        if inputs is not None:
            row["x"] = inputs[pos].numpy()
        rows.append(row)
    return rows


class _StageMapper:
    """A Ray Data callable class: one stage over numpy batches of rows."""

    def __init__(self, cascade: Any, index: int, threads: int) -> None:

        # Ray Data passes constructor arguments as given: fetch the shared cascade here.
        cascade = ray.get(cascade) if isinstance(cascade, ray.ObjectRef) else cascade
        self.worker = StageWorker(cascade, index, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fields = [k for k in batch if k.startswith("cond.")]
        items = [
            Item(str(batch["id"][i]), int(batch["seed"][i]),
                 Conditioning(**{k[5:]: torch.from_numpy(np.array(batch[k][i])) for k in fields}),
                 torch.from_numpy(np.array(batch["prefix"][i])) if "prefix" in batch else None,
                 float(batch["fade"][i]), bool(batch["realign"][i]),
                 str(batch["prompt"][i]) if bool(batch["has_prompt"][i]) else None, str(batch["negative"][i]))
            for i in range(len(batch["pos"]))
        ]  # fmt: skip
        x = torch.from_numpy(np.array(batch["x"])) if "x" in batch else None
        out = run_batch(self.worker.cascade, self.worker.index, items, x)
        return {**{k: v for k, v in batch.items() if k != "x"}, "x": out.numpy()}


def ray_data_run(
    cascade: Cascade,
    items: Sequence[Item],
    *,
    start: int | str = 0,
    stop: int | str | None = None,
    inputs: Sequence[Tensor] | None = None,
    resources: dict[str, StageResources] | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> list[Any]:
    """The cascade as a Ray Data pipeline: ``map_batches`` per stage, an actor pool per stage, streaming."""

    span = cascade.span(start, stop)
    check_run(cascade, items, span, inputs)
    placement = plan(cascade, resources or {}, ray.cluster_resources(), threads)
    shared = ray.put(cascade)
    data = ray.data.from_items(
        _rows(items, inputs), override_num_blocks=max(1, len(items) // cascade.stages[span.start].batch_size)
    )
    for index in span:
        stage = cascade.stages[index]
        data = data.map_batches(
            _StageMapper, fn_constructor_args=(shared, index, placement.threads[index]),
            batch_size=stage.batch_size, batch_format="numpy", zero_copy_batch=False,
            compute=ray.data.ActorPoolStrategy(size=placement.replicas[index]),
            num_cpus=placement.cpus[index], num_gpus=placement.gpus[index] or None,
        )  # fmt: skip
    outputs: dict[int, Tensor] = {}
    last = cascade.stages[span.stop - 1].name
    for row in data.iter_rows():
        outputs[int(row["pos"])] = torch.from_numpy(np.array(row["x"]))
        if progress is not None:
            progress(last, len(outputs), len(items))
    return [outputs[p] for p in range(len(items))]


class RayDataExecutor:
    """`ray_data_run` behind the `legato.cascade.Executor` interface (for pipelines and batch jobs)."""

    def __init__(
        self, resources: dict[str, StageResources] | None = None, *, threads: int | None = None
    ) -> None:
        self.resources, self.threads = resources or {}, threads

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
        return ray_data_run(
            cascade,
            items,
            start=start,
            stop=stop,
            inputs=inputs,
            resources=self.resources,
            progress=progress,
            threads=self.threads,
        )
