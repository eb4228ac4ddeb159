"""Faults on a real local Ray cluster: a stage actor killed, or its worker process killed, in the middle of a
run. The run finishes and every item equals a clean run's (each retry uses the item's own seed)."""

import os
import signal

import torch

from ..cascade.conftest import tiny_cascade, tiny_items
from .test_ray_executor import local


def test_a_killed_stage_actor_is_restarted_and_the_outputs_equal_a_clean_run(ray_cluster):
    from legato.pipelines.ray_executor import RayExecutor

    ray = ray_cluster
    cascade, items = tiny_cascade(base_batch=3, sr_batch=2), tiny_items(7)
    expected = local(cascade, items)
    executor = RayExecutor()
    refs = executor.bind(cascade, items)  # every stage call is in flight
    ray.kill(executor.actors(cascade)[1][0], no_restart=False)  # the SR stage's actor
    got = torch.cat(ray.get(refs))
    assert torch.equal(got, torch.stack(expected))
    executor.shutdown()


def test_a_killed_worker_process_is_restarted_and_the_outputs_equal_a_clean_run(ray_cluster):
    from legato.pipelines.ray_executor import RayExecutor

    ray = ray_cluster
    cascade, items = tiny_cascade(base_batch=3, sr_batch=2), tiny_items(7)
    expected = local(cascade, items)
    executor = RayExecutor()
    base = executor.actors(cascade)[0][0]
    pid = ray.get(base.__ray_call__.remote(lambda self: os.getpid()))
    refs = executor.bind(cascade, items)
    os.kill(pid, signal.SIGKILL)  # the base stage's worker process, as an OOM killer would
    got = torch.cat(ray.get(refs))
    assert torch.equal(got, torch.stack(expected))
    new_pid = ray.get(base.__ray_call__.remote(lambda self: os.getpid()))
    assert new_pid != pid  # it really was restarted
    executor.shutdown()
