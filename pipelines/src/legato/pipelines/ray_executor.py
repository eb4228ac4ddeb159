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

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import ray
import torch
from torch import Tensor

from legato.cascade import Cascade, Item, Progress, Stage, batches, check_run, run_batch
from legato.cascade.placement import (
    Placement,
    PlacementError,
    StageResources,
    balanced_resources,
    describe,
    plan,
)
from legato.cascade.simulate import stage_costs
from legato.diffusion import Conditioning, scheduler_config, scheduler_from_config

RESTARTS = 3  # per stage actor
# Upstream outputs are read in place from the object store instead of copied out of it on ray.get: 100 MB
# went from 104 ms to 0.6 ms a hop here (benchmarks/transfer.py); `StageWorker.run` copies the rows it takes.
ZERO_COPY = {"env_vars": {"RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1"}}
READ_ONLY = "The given NumPy array is not writable"  # torch's warning for a tensor read in place


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


def _on_device(cascade: Cascade, stages: Sequence[int]) -> Cascade:
    """``cascade`` with stages ``stages`` moved to their device here (a CUDA stage without a GPU stays put)."""
    here = ["cuda" if s.device.startswith("cuda") and torch.cuda.is_available() else s.device for s in cascade.stages]  # fmt: skip
    return replace(cascade, stages=tuple(s.to(here[i]) if i in stages else s for i, s in enumerate(cascade.stages)))  # fmt: skip


def _profile(cascade: Cascade, items: list[Item], threads: int) -> list[float]:
    """The stages' seconds per item at ``threads`` torch threads, on their devices here (`stage_costs`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return stage_costs(_on_device(cascade, range(len(cascade.stages))), items)
    finally:
        torch.set_num_threads(before)


def placed(cascade: Cascade, items: Sequence[Item], resources: dict[str, StageResources], *,
           gpus: float | None, cpus: float | None, costs: Sequence[float] | None,
           threads: int | None) -> dict[str, StageResources]:  # fmt: skip
    """``resources``, and with ``gpus`` or ``cpus`` the stages they leave out placed by cost over those devices
    (`balanced_resources`). Without ``costs``, each stage is timed on the first items (up to 4): in a task on
    one GPU, or here at ``threads`` threads for CPUs (only their ratios decide the split). The plan is printed
    to stderr."""
    if not (gpus or cpus):
        return resources
    kind, have = ("GPU", gpus) if gpus else ("CPU", cpus)
    if have > (there := ray.cluster_resources().get(kind, 0.0)) + 1e-9:
        raise PlacementError(
            f"{kind.lower()}s={have:g}, but the cluster has {there:g} {kind}s; ask for at most that"
        )
    on_cpu = [s.name for s in cascade.stages if gpus and not s.device.startswith("cuda")]
    if on_cpu:
        raise PlacementError(
            f"gpus={gpus:g}, but stages {on_cpu} run on the CPU; load the model with device='cuda' (--device cuda), or place them with cpus="
        )
    if costs is None:  # GPUs: timed in a task on one of them; CPUs: here, on one thread as each actor runs
        probe = list(items[: min(4, max(s.batch_size for s in cascade.stages))])
        task = ray.remote(_profile).options(num_gpus=1, num_cpus=1)
        costs = (
            ray.get(task.remote(cascade, probe, threads or 1))
            if gpus
            else _profile(cascade, probe, threads or 1)
        )
    planned, predicted = balanced_resources(cascade, costs, gpus=gpus, cpus=cpus)
    planned.update(resources)  # explicit per-stage resources override the plan
    note = " (before the explicit resources)" if resources else ""
    print(f"legato: {describe(cascade, planned, costs, predicted)}{note}", file=sys.stderr)
    return planned


class StageWorker:
    """Holds one stage (its model on its device) and runs batches of it; a Ray actor class."""

    def __init__(self, cascade: Cascade, index: int, threads: int) -> None:
        torch.set_num_threads(threads)
        warnings.filterwarnings("ignore", message=READ_ONLY)  # upstream outputs, read in place (ZERO_COPY)
        self.cascade, self.index = _on_device(cascade, [index]), index

    def run(self, items: list[Item], slices: list[tuple[int, int]], *parts: Tensor) -> Tensor:
        """One batch: ``parts`` are upstream batch outputs, ``slices`` the rows of each that are these items."""
        inputs = torch.cat([p[a:b] for p, (a, b) in zip(parts, slices, strict=True)]) if parts else None
        return run_batch(self.cascade, self.index, items, inputs)

    def ready(self) -> bool:
        return True


class RayExecutor:
    """Runs a cascade on the connected Ray cluster (``ray.init`` first), stages on their own actors.

    ``resources`` maps stage names to `StageResources`; ``threads`` is every other stage actor's torch thread
    count (the local run's count gives byte-equal outputs). ``gpus=N`` (or ``cpus=N``) places the stages
    ``resources`` leaves out by their costs over N devices (`placed`: timed on the first run's first items,
    or ``costs``, seconds per item per stage). Actors start on first use and are kept for later runs of the
    same cascade; `shutdown` releases them.
    """

    def __init__(self, resources: dict[str, StageResources] | None = None, *, threads: int | None = None,
                 gpus: float | None = None, cpus: float | None = None,
                 costs: Sequence[float] | None = None) -> None:  # fmt: skip
        self.resources, self.threads = resources or {}, threads
        self.devices = {"gpus": gpus, "cpus": cpus, "costs": costs}
        self._actors: dict[int, list[Any]] = {}
        self.placement: Placement | None = None  # what the actors were given
        self._cascade: Cascade | None = None
        self._shared: Any = None

    def actors(self, cascade: Cascade, items: Sequence[Item] = ()) -> dict[int, list[Any]]:
        """The stage actors for ``cascade``, started (and placed, timing ``items`` where asked to) once."""
        if self._cascade is not cascade:
            self.shutdown()
            resources = placed(cascade, items, self.resources, threads=self.threads, **self.devices)
            placement = self.placement = plan(cascade, resources, ray.cluster_resources(), self.threads)
            # Held for the actors' lifetime: a restarted actor rebuilds itself from this same object.
            shared = self._shared = ray.put(cascade)
            remote = ray.remote(StageWorker)
            for index in range(len(cascade.stages)):
                # A killed actor (or its worker process) is restarted and its unfinished calls are run again:
                # the same items and seeds, so the same outputs (tests/pipelines/test_ray_faults.py).
                options = {"num_cpus": placement.cpus[index], "num_gpus": placement.gpus[index],
                           "max_restarts": RESTARTS, "max_task_retries": RESTARTS, "runtime_env": ZERO_COPY}  # fmt: skip
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

        actors = self.actors(cascade, items)
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
        with (
            warnings.catch_warnings()
        ):  # the outputs are read in place (ZERO_COPY): copied out to be the caller's
            warnings.filterwarnings("ignore", message=READ_ONLY)
            return [row.clone() for batch in ray.get(refs) for row in batch]

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
    gpus: float | None = None,
    cpus: float | None = None,
    costs: Sequence[float] | None = None,
) -> list[Any]:
    """The cascade as a Ray Data pipeline: ``map_batches`` per stage, an actor pool per stage, streaming.
    ``gpus``/``cpus``/``costs`` place the stages by cost as `RayExecutor`'s do."""

    span = cascade.span(start, stop)
    check_run(cascade, items, span, inputs)
    resources = placed(cascade, items, resources or {}, gpus=gpus, cpus=cpus, costs=costs, threads=threads)
    placement = plan(cascade, resources, ray.cluster_resources(), threads)
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

    def __init__(self, resources: dict[str, StageResources] | None = None, *, threads: int | None = None,
                 gpus: float | None = None, cpus: float | None = None,
                 costs: Sequence[float] | None = None) -> None:  # fmt: skip
        self.resources, self.threads = resources or {}, threads
        self.devices = {"gpus": gpus, "cpus": cpus, "costs": costs}

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
            **self.devices,
        )
