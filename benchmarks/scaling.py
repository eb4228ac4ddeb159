"""The planner from 1 to 512 GPUs, by the pipeline simulator, on a cascade whose stage costs are measured here.

    .venv/bin/python benchmarks/scaling.py                   # costs timed on this CPU (one thread)
    .venv/bin/python benchmarks/scaling.py --device cuda     # costs timed on a GPU
    .venv/bin/python benchmarks/scaling.py --costs 0.05,0.11,0.96   # seconds per item per stage, given

The cascade is `placement.py`'s (a base and two x2 SR stages, real UNets, the last the dearest). Its stages'
seconds per item on one device are timed (`legato.cascade.simulate.stage_costs`), then `simulate` predicts,
for 1, 8, 64 and 512 GPUs, the throughput of three placements, each against the ideal (every GPU busy:
GPUs / sum of the costs):

- the planner's (`balance(costs, gpus, whole=True)`: whole GPUs for a dear stage, a fraction of one for a
  cheap one, the rest to whichever stage is slowest);
- the even split (each stage a third of the GPUs: whole GPUs as replicas, fractions below 3 GPUs);
- one GPU per stage (what `plan` gives when nothing is said: one actor per stage, the other GPUs idle).

A stage on a fraction ``f`` of a GPU runs ``1 / f`` times slower (time-slicing); transfers are left out (on
one node they are well under a millisecond a batch: `transfer.py`). Also printed: one item's latency alone.
"""

from __future__ import annotations

import argparse
import math

import torch
from cascade_ray import items
from placement import unbalanced

from legato.cascade.simulate import Share, StageModel, balance, linear, simulate, stage_costs


def even(costs: list[float], gpus: int) -> list[Share]:
    per = gpus / len(costs)
    return [Share(math.floor(per), 1.0) if per >= 1 else Share(1, per) for _ in costs]


def models(costs: list[float], shares: list[Share], batch: int) -> list[StageModel]:
    return [StageModel(f"s{i}", linear(0.0, c / min(1.0, sh.devices)), batch, sh.replicas)
            for i, (c, sh) in enumerate(zip(costs, shares, strict=True))]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--costs", help="seconds per item per stage, instead of timing them")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--gpus", default="1,8,64,512")
    args = parser.parse_args()
    if args.costs:
        costs = [float(c) for c in args.costs.split(",")]
    else:
        torch.set_num_threads(1)
        cascade = unbalanced(args.device, args.batch)
        costs = stage_costs(cascade, items(2 * args.batch))
    print(f"stage costs: {', '.join(f'{c * 1000:.1f}' for c in costs)} ms per item on one {args.device} device; "
          f"batch {args.batch}\n")  # fmt: skip
    print("| GPUs | planner: items/s (of ideal) | even split | one GPU per stage | planner's placement | "
          "one item's latency, planner |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for gpus in (int(g) for g in args.gpus.split(",")):
        ideal = gpus / sum(costs)
        n = 32 * gpus * args.batch  # enough items for the pipeline's filling and draining to fade
        row = []
        plans = {"planner": balance(costs, gpus, whole=True), "even": even(costs, gpus)}
        if gpus >= len(costs):
            plans["one"] = [Share(1, 1.0)] * len(costs)
        for name in ("planner", "even", "one"):
            if name not in plans:
                row.append(f"needs {len(costs)} GPUs")
                continue
            rate = simulate(models(costs, plans[name], args.batch), n).throughput
            row.append(f"{rate:.1f} ({rate / ideal:.2f})")
        placed = ", ".join(f"{sh.replicas} x {sh.devices:.2g}" for sh in plans["planner"])
        alone = simulate(models(costs, plans["planner"], 1), 1).makespan
        print(f"| {gpus} | {' | '.join(row)} | {placed} | {alone * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
