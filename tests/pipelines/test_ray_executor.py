"""Ray executors on a real local cluster: the same cascade and items give the LocalExecutor's outputs."""

from dataclasses import replace

import pytest
import torch

from legato.cascade import LocalExecutor
from legato.pipelines.ray_executor import (
    PlacementError,
    RayExecutor,
    StageResources,
    placed,
    plan,
    ray_data_run,
)

from ..cascade.conftest import tiny_cascade, tiny_items


def local(cascade, items, **kwargs):
    """LocalExecutor with one torch thread, as each stage actor gets here (1 CPU each): kernels split their
    reductions by thread count, so byte equality needs equal threads as well as equal batches."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return LocalExecutor().run(cascade, items, **kwargs)
    finally:
        torch.set_num_threads(threads)


def test_ray_executor_outputs_are_byte_equal_to_local(ray_cluster, capfd):
    cascade, items = tiny_cascade(base_batch=3, sr_batch=2), tiny_items(7)
    expected = local(cascade, items)
    # cpus=2: the stages are timed on the first items and the CPUs split by those costs (printed)
    executor = RayExecutor(cpus=2, threads=1)
    seen = []
    remote = executor.run(cascade, items, progress=lambda *a: seen.append(a))
    assert all(torch.equal(a, b) for a, b in zip(expected, remote, strict=True))
    assert seen[-1] == ("sr", 7, 7)
    # start/stop through Ray too, and the graph of refs for users' own Ray code
    previews = executor.run(cascade, items, stop="sr")
    assert all(
        torch.equal(a, b)
        for a, b in zip(expected, executor.run(cascade, items, start="sr", inputs=previews), strict=True)
    )
    refs = executor.bind(cascade, items)
    assert len(refs) == 4
    assert torch.equal(torch.cat(ray_cluster.get(refs)), torch.stack(expected))
    executor.shutdown()
    assert "placement by measured cost, predicted" in capfd.readouterr().err
    placement = executor.placement
    assert sum(c * n for c, n in zip(placement.cpus, placement.replicas, strict=True)) == pytest.approx(2)


def test_ray_data_path_matches_within_rounding(ray_cluster):
    cascade, items = tiny_cascade(base_batch=3, sr_batch=2), tiny_items(7)
    expected = local(cascade, items)
    data = ray_data_run(cascade, items)
    # Ray Data forms its own batches: only floating-point rounding may differ.
    assert max((a - b).abs().max().item() for a, b in zip(expected, data, strict=True)) < 1e-4
    ones = replace(cascade, stages=tuple(replace(s, batch_size=1) for s in cascade.stages))
    assert all(
        torch.equal(a, b) for a, b in zip(local(ones, items[:3]), ray_data_run(ones, items[:3]), strict=True)
    )


def test_placement_splits_cpus_and_refuses_what_cannot_fit():
    cascade = tiny_cascade()
    placement = plan(cascade, {}, {"CPU": 2.0})
    assert placement.cpus == (1.0, 1.0)
    assert placement.threads == (1, 1)
    assert placement.gpus == (0.0, 0.0)
    shared = plan(cascade, {"base": StageResources(replicas=3)}, {"CPU": 2.0})
    assert sum(c * r for c, r in zip(shared.cpus, shared.replicas, strict=True)) == pytest.approx(2.0)
    gpu = replace(cascade, stages=(replace(cascade.stages[0], device="cuda"), cascade.stages[1]))
    with pytest.raises(PlacementError, match=r"need 1 GPUs .*base: 1 x 1.* cluster has 0"):
        plan(gpu, {}, {"CPU": 2.0})
    with pytest.raises(PlacementError, match="unknown stages \\['nope'\\]"):
        plan(cascade, {"nope": StageResources()}, {"CPU": 2.0})
    with pytest.raises(PlacementError, match="ask for 4 CPUs"):
        plan(cascade, {"base": StageResources(num_cpus=4)}, {"CPU": 2.0})


def test_placement_by_cost_gives_the_dear_stage_more_and_refuses_what_does_not_fit(ray_cluster):
    # the SR stage 16x dearer by its steps gets the larger share of the 2 CPUs (its run: the test above)
    cascade, items = tiny_cascade(base_batch=2, sr_batch=2), tiny_items(4)
    cascade = replace(
        cascade, stages=(replace(cascade.stages[0], steps=1), replace(cascade.stages[1], steps=16))
    )
    with pytest.raises(PlacementError, match="gpus=1, but the cluster has 0 GPUs"):
        RayExecutor(gpus=1).run(cascade, items)
    timed = placed(cascade, items, {}, gpus=None, cpus=2, costs=None, threads=1)  # times them here
    base, sr = timed["base"], timed["sr"]
    assert sr.replicas * sr.num_cpus > 3 * base.replicas * base.num_cpus
    assert base.replicas * base.num_cpus + sr.replicas * sr.num_cpus == pytest.approx(2)
    # costs given (recorded with a model, or timed before): no timing; explicit resources override the plan
    given = placed(cascade, items, {"base": StageResources(num_cpus=0.5)}, gpus=None, cpus=2, costs=[1.0, 3.0],
                   threads=1)  # fmt: skip
    assert given == {"base": StageResources(num_cpus=0.5), "sr": StageResources(replicas=2, num_cpus=0.75)}
