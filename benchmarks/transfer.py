"""How stage outputs travel between stages, measured on this machine.

    .venv/bin/python benchmarks/transfer.py                  # CPU
    .venv/bin/python benchmarks/transfer.py --device cuda    # on a GPU machine

- In one process (`LocalExecutor`): the hand-over of each stage's batch of outputs to the next stage, per
  batch, as it was before issue 45 (``Stage.run`` returned float32 on the CPU; the next stage moved it back
  to its device) and as it is now (left on the device where the next stage runs there: ``keep``), on the
  3-stage cascade of `cascade_ray.py`, beside the stages' own time per batch.
- On Ray (`RayExecutor`): one actor's output tensor taken by another actor (through the object store, on the
  same node), per size, with Ray's default (a torch tensor is copied out of the store on ``ray.get``) and with
  ``RAY_ENABLE_ZERO_COPY_TORCH_TENSORS=1`` (read in place, as numpy arrays are); with ``--device cuda`` the
  tensors are CUDA tensors (Ray moves them through host memory).
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import torch
from cascade_ray import build, items

from legato.cascade import LocalExecutor


def clock(fn, repeats: int, device: str) -> float:
    """Seconds per call of ``fn``, the best of ``repeats`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def local(device: str, batch: int) -> None:
    cascade = build(3, device, 6, 6, batch)
    work = items(batch)
    torch.set_num_threads(1)
    print(f"LocalExecutor hand-over per batch of {batch}, device {device}:")
    outputs = None
    for index, stage in enumerate(cascade.stages[:-1]):
        step = functools.partial(
            LocalExecutor().run, cascade, work, start=index, stop=index + 1, inputs=outputs
        )
        took = clock(step, 2, device)
        outputs = step()
        resident = [o.to(device) for o in outputs]  # as `keep` leaves them

        def before(resident=resident):  # to float32 on the CPU, then back to the device
            return torch.stack([o.float().cpu() for o in resident]).to(device).contiguous()

        def after(resident=resident):  # left on the device
            return torch.stack(resident).to(device).contiguous()

        before, after = clock(before, 20, device), clock(after, 20, device)
        size = outputs[0].numel() * 4 * batch
        print(f"  {stage.name} -> {cascade.stages[index + 1].name}: {size / 1e6:.2f} MB; before {before * 1e6:.0f} us, "
              f"now {after * 1e6:.0f} us; the stage's batch takes {took * 1e3:.0f} ms")  # fmt: skip


def hops(device: str, zero_copy: bool, sizes: list[float], repeats: int) -> dict[float, float]:
    import ray

    env = {"RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1"} if zero_copy else {}
    ray.init(num_cpus=2, num_gpus=1 if device == "cuda" else 0, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})  # fmt: skip
    gpu = 0.5 if device == "cuda" else 0

    @ray.remote(num_cpus=0.5, num_gpus=gpu)
    class Actor:
        def make(self, megabytes: float):
            return torch.ones(int(megabytes * 1e6 / 4), device=device)

        def take(self, x) -> float:
            return float(x[-1])  # the tensor is here, on its device

    a, b = Actor.remote(), Actor.remote()
    out = {}
    tiny = a.make.remote(1e-5)
    ray.wait([tiny])
    base = clock(lambda: ray.get(b.take.remote(tiny)), repeats, "cpu")  # a call's own cost
    for mb in sizes:
        ref = a.make.remote(mb)
        ray.wait([ref])
        out[mb] = clock(lambda: ray.get(b.take.remote(ref)), repeats, "cpu") - base  # noqa: B023
    ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--sizes", default="0.1,1,10,100", help="MB per tensor")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    local(args.device, args.batch)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sizes = [float(s) for s in args.sizes.split(",")]
    copied = hops(args.device, False, sizes, args.repeats)
    shared = hops(args.device, True, sizes, args.repeats)
    print(f"Ray actor -> actor on one node, {args.device} tensors (beyond an empty call's time):")
    for mb in sizes:
        print(f"  {mb:g} MB: copied {copied[mb] * 1e3:.2f} ms ({mb / 1e3 / max(copied[mb], 1e-9):.1f} GB/s), "
              f"zero-copy {shared[mb] * 1e3:.2f} ms ({mb / 1e3 / max(shared[mb], 1e-9):.1f} GB/s)")  # fmt: skip


if __name__ == "__main__":
    main()
