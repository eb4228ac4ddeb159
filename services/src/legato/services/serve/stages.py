"""One Serve deployment per cascade stage, and the executor that runs a cascade through them.

`StageDeployment` holds one stage of a pipeline folder on its own replicas (CPUs or a GPU of their own) and
runs batches of items through it with `legato.pipelines.ray_executor.StageWorker`, one batch at a time per
replica. `ServeExecutor` is `RayExecutor`'s graph of stage calls sent to those deployments instead of to
actors: stage ``i``'s batch is a handle call whose inputs are the responses of the stage ``i - 1`` batches
holding its items, so outputs go replica to replica, never through the ingress, and items are batched per
stage exactly as `LocalExecutor` batches them (the same outputs for the same thread count).

Sampling settings (steps, guidance, scheduler: `legato.pipelines.ray_executor.StageSettings`) travel with
every call, taken from the cascade the caller runs, so a request can change them without a replica holding
per-request state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ray import serve

from legato.pipelines.folders import load_pipeline_cascade
from legato.pipelines.ray_executor import RayExecutor, StageSettings, StageWorker


def with_device(cascade: Any, device: str, index: int | None = None) -> Any:
    """``cascade`` with stage ``index`` (default: every stage) labelled for ``device``; the weights move
    when a `StageWorker` takes the stage."""
    stages = tuple(
        replace(s, device=device) if index is None or i == index else s for i, s in enumerate(cascade.stages)
    )
    return replace(cascade, stages=stages)


@serve.deployment(max_ongoing_requests=2)
class StageDeployment:
    """Stage ``index`` of the ``kind`` pipeline in folder ``model``, on ``device`` with ``threads`` torch
    threads (``vae``: the decode's tiling and slicing, `legato.cascade.Cascade.with_vae`'s arguments). ``run``
    takes one batch, as `StageWorker.run` does, plus the caller's `StageSettings`."""

    def __init__(
        self, model: str, kind: str, index: int, device: str, threads: int, vae: dict | None = None
    ) -> None:
        cascade, _ = load_pipeline_cascade(model, kind, "cpu")
        cascade = cascade.with_vae(**vae) if vae else cascade
        self.threads = threads
        self.worker = StageWorker(with_device(cascade, device, index), index, threads)
        self.workers = {StageSettings.of(self.worker.cascade.stages[index]): self.worker}
        self.lock = asyncio.Lock()  # one batch at a time: memory stays bounded under load

    def worker_for(self, settings: StageSettings) -> StageWorker:
        """A worker whose stage has ``settings``; it shares the weights of the first one."""
        if settings not in self.workers:
            if len(self.workers) > 16:  # a few recent settings; the first worker is always kept
                del self.workers[next(k for k in self.workers if self.workers[k] is not self.worker)]
            cascade, index = self.worker.cascade, self.worker.index
            self.workers[settings] = StageWorker(settings.apply(cascade, index), index, self.threads)
        return self.workers[settings]

    async def run(
        self, settings: StageSettings, items: list, slices: list[tuple[int, int]], *parts: Any
    ) -> Any:
        worker = self.worker_for(settings)
        async with self.lock:
            return await asyncio.to_thread(worker.run, items, slices, *parts)

    def ready(self) -> bool:
        return True


class _StageCall:
    """Looks like a stage actor to `RayExecutor.bind` (``.run.remote(items, slices, *parts)``) and calls
    a stage deployment with the stage's settings."""

    def __init__(self, handle: Any, settings: StageSettings) -> None:
        self.handle, self.settings, self.run = handle, settings, self

    def remote(self, items: list, slices: list[tuple[int, int]], *parts: Any) -> Any:
        return self.handle.run.remote(self.settings, items, slices, *parts)


class ServeExecutor(RayExecutor):
    """Runs a cascade through stage deployments (``handles``, one per stage, in order); a
    `legato.cascade.Executor`, so the pipelines run on it unchanged."""

    def __init__(self, handles: Sequence[Any], timeout_s: float | None = None) -> None:
        super().__init__()
        self.handles, self.timeout_s = list(handles), timeout_s

    def actors(self, cascade: Any, items: Sequence[Any] = ()) -> dict[int, list[Any]]:
        if len(cascade.stages) != len(self.handles):
            raise ValueError(
                f"a cascade of {len(cascade.stages)} stages for {len(self.handles)} stage deployments; "
                "run the cascade the deployments were built from"
            )
        return {i: [_StageCall(h, StageSettings.of(s))] for i, (h, s) in enumerate(zip(self.handles, cascade.stages, strict=True))}  # fmt: skip

    def run(self, cascade: Any, items: Sequence[Any], *, start: int | str = 0, stop: int | str | None = None,
            inputs: Any = None, progress: Any = None) -> list[Any]:  # fmt: skip
        if inputs is not None:
            raise ValueError("the service runs whole cascades from prompts; inputs= (edits) is not served")
        span = cascade.span(start, stop)
        outputs = []
        for response in self.bind(cascade, items, start=start, stop=stop):
            outputs += list(response.result(timeout_s=self.timeout_s))
            if progress is not None:
                progress(cascade.stages[span.stop - 1].name, len(outputs), len(items))
        return outputs

    def shutdown(self) -> None:  # the deployments belong to Serve
        pass
