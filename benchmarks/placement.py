"""Cost-aware placement on this machine: an unbalanced 3-stage cascade (real UNets; the last SR stage the
dearest, at least 4x the cheapest), placed by the planner and by the even split, against the ideal throughput
of the CPUs given.

    .venv/bin/python benchmarks/placement.py                    # 2 CPUs, 24 items, batch 2

Measured in one run: each stage's time per item alone (one torch thread), before and after the Ray runs and
averaged; the planner's placement from the costs timed before the Ray runs
(`legato.pipelines.ray_executor.balanced_resources`: replicas and CPUs per stage balanced by cost); the Ray executor's throughput with that placement and with the even split (one actor per stage, the
CPUs shared evenly), each against the ideal ``cpus / sum(stage costs)`` (every CPU busy the whole run), and
beside each the simulator's prediction (`legato.cascade.simulate.simulate` with the actors sharing the
cores), for four placements: the planner's, the even split, and the dearest stage on two and on four actors. The outputs of both placements are
checked byte-equal to LocalExecutor's on one thread. Target (issue 45): the planner's placement at least 0.85
of the ideal.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch
from cascade_ray import build, items

from legato.cascade import Cascade, LocalExecutor
from legato.cascade.simulate import StageModel, linear, simulate, stage_costs


def unbalanced(device: str, batch: int, base_steps: int = 6, sr1: int = 6, sr2: int = 12) -> Cascade:
    """`cascade_ray.build`'s 3-stage cascade with the last SR stage's steps set apart: the dearest stage."""
    cascade = build(3, device, base_steps, sr1, batch)
    return replace(cascade, stages=(*cascade.stages[:2], replace(cascade.stages[2], steps=sr2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--device", default="cpu", help="cuda: the stages share one GPU in fractions")
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", default="6,6,12", help="steps of base, sr1, sr2")
    args = parser.parse_args()
    cascade = unbalanced(args.device, args.batch, *(int(n) for n in args.steps.split(",")))
    work = items(args.items)
    torch.set_num_threads(1)
    local = LocalExecutor()
    probe = work[: 4 * args.batch]
    before = stage_costs(cascade, probe)
    expected = local.run(cascade, work)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from legato.pipelines.ray_executor import RayExecutor, StageResources, balanced_resources

    gpu = args.device.startswith("cuda")
    devices = 1 if gpu else args.cpus  # what the placements split: one GPU, or the CPUs
    ray.init(num_cpus=args.cpus, num_gpus=1 if gpu else 0, include_dashboard=False, log_to_driver=False)

    def share(part: float, replicas: int = 1) -> StageResources:
        if gpu:  # a CPU each beside its part of the GPU, as far as the CPUs go
            return StageResources(replicas, num_cpus=min(1.0, args.cpus / 6), num_gpus=part)
        return StageResources(replicas, num_cpus=part)

    names = [s.name for s in cascade.stages]
    planned, _ = balanced_resources(cascade, before, **({"gpus": 1} if gpu else {"cpus": args.cpus}))
    if gpu:
        planned = {n: share(r.num_gpus, r.replicas) for n, r in planned.items()}
    even = {n: share(devices / len(names)) for n in names}
    half = {n: share(devices / 4) for n in names[:-1]}  # half the devices to the dear stage
    # Two more placements to hold the simulator against: the dear stage on two actors, and on four.
    placements = {"planner": planned, "even split": even,
                  "sr2 x 2": {**half, names[-1]: share(devices / 4, 2)},
                  "sr2 x 4": {**half, names[-1]: share(devices / 8, 4)}}  # fmt: skip
    measured, equal = {}, {}
    for name, resources in placements.items():
        executor = RayExecutor(resources, threads=1)
        executor.run(cascade, work[:2])  # starts the actors
        start = time.perf_counter()
        out = executor.run(cascade, work)
        measured[name] = args.items / (time.perf_counter() - start)
        executor.shutdown()
        equal[name] = all(torch.equal(a, b) for a, b in zip(expected, out, strict=True))
        if not gpu:  # one thread per actor, as the local run: byte-equal on a CPU
            assert equal[name], f"{name}: outputs differ"
    ray.shutdown()
    after = stage_costs(cascade, probe, warm=False)
    costs = [(a + b) / 2 for a, b in zip(before, after, strict=True)]
    ideal = devices / sum(costs)
    what = "1 GPU" if gpu else f"{args.cpus} CPUs"
    same = "byte-equal" if all(equal.values()) else f"byte-equal for {sorted(n for n in equal if equal[n])}"
    print(f"{what}, {args.items} items, batch {args.batch}; outputs {same} to LocalExecutor's")
    for s, c, a, b in zip(cascade.stages, costs, before, after, strict=True):
        print(
            f"  {s.name:5s} ({s.steps:2d} steps): {c * 1000:7.1f} ms/item (before {a * 1000:.1f}, after {b * 1000:.1f})"
        )
    print(f"  cost ratio, dearest / cheapest: {max(costs) / min(costs):.1f}x; ideal {ideal:.2f} items/s")
    for name, resources in placements.items():
        # The actors share the devices whatever their num_cpus/num_gpus (labels for Ray's scheduler): processor
        # sharing of the cores, or of the one GPU's time.
        models = [StageModel(n, linear(0.0, c), args.batch, resources.get(n, StageResources()).replicas)
                  for n, c in zip(names, costs, strict=True)]  # fmt: skip
        predicted = simulate(models, args.items, cores=devices).throughput
        plan = ", ".join(
            f"{n} {r.replicas} x {(r.num_gpus if gpu else r.num_cpus):.2f} {'GPU' if gpu else 'CPU'}"
            for n, r in resources.items()
        )
        print(f"  {name:10s} ({plan}): {measured[name]:.2f} items/s = {measured[name] / ideal:.3f} of the ideal; "
              f"simulated {predicted:.2f} (measured / simulated {measured[name] / predicted:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
