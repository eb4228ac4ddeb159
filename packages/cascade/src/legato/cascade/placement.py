"""Where a cascade's stage actors go: per-stage resources (`StageResources`), the cluster split that honours
them (`plan`), and the split balanced by the stages' measured costs (`balanced_resources`, `describe`).

Plain arithmetic over a cluster's resource counts, with no Ray in it: the Ray executors, the service and the
simulator's benchmarks share it (`legato.pipelines.ray_executor` runs what it plans).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from legato.cascade.cascade import Cascade
from legato.cascade.simulate import balance, throughput


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


def describe(cascade: Cascade, resources: dict[str, StageResources], costs: Sequence[float],
             predicted: float) -> str:  # fmt: skip
    """The plan in one line per stage, with its measured cost and the predicted throughput, to print."""
    lines = []
    for stage, cost in zip(cascade.stages, costs, strict=True):
        r = resources.get(stage.name, StageResources())
        device = f"{r.num_gpus:.2f} GPU" if r.num_gpus else f"{r.num_cpus:.2f} CPU" if r.num_cpus else "auto"
        lines.append(f"  {stage.name}: {r.replicas} x {device} ({cost * 1000:.1f} ms per item on one)")
    return "placement by measured cost, predicted {:.2f} items/s:\n{}".format(predicted, "\n".join(lines))
