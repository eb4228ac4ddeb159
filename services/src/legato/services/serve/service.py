"""`Ingress`: the HTTP-facing deployment. It checks requests, encodes prompts, runs the cascade through the
stage deployments (`ServeExecutor`), decodes to audio or video, and writes the files of each job.

Generation runs on a pool of ``Limits.max_active_jobs`` threads per replica (the pipelines are synchronous);
a request beyond that gets a 503 at once instead of a place in an unbounded queue. A job's outcome is its
record in the `JobStore`, so ``wait=false`` clients poll it and a client that disconnects loses nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any

import torch
from ray import serve
from ray.serve.exceptions import BackPressureError

from legato.pipelines import MusicPipeline, VideoPipeline
from legato.pipelines.job_spec import scheduler_name
from legato.pipelines.jobs import with_sampling
from legato.pipelines.music import as_lists
from legato.pipelines.vocabulary import PromptWarning
from legato.services.serve.routes import make_app
from legato.services.serve.schemas import (
    ErrorBody,
    Job,
    JobFile,
    Limits,
    MusicRequest,
    ServiceError,
    VideoRequest,
    check_limits,
)
from legato.services.serve.stages import ServeExecutor
from legato.services.serve.store import JobStore

# HTTP status of a failed job, by its error code.
STATUS = {"invalid_request": 422, "overloaded": 503, "timeout": 504, "internal": 500}


@serve.deployment(max_ongoing_requests=64, max_queued_requests=128)
@serve.ingress()
class Ingress:
    """The service: ``music_model`` / ``video_model`` folders (either may be None) with the handles of their
    stage deployments, in stage order."""

    def __init__(self, music_model: str | None, music_stages: list, video_model: str | None, video_stages: list,
                 jobs_dir: str, limits: Limits, threads: int = 1, service: str | None = None,
                 token: str | None = None, vae: dict[str, dict] | None = None) -> None:  # fmt: skip
        torch.set_num_threads(threads)
        warnings.filterwarnings("ignore", category=PromptWarning)  # a job's record carries them instead
        self.limits, self.store, self.service, self.token = limits, JobStore(jobs_dir), service, token
        if service is not None:  # jobs an earlier service left running are failed, not forgotten
            self.store.recover(service)
        self.models = {"music": music_model, "video": video_model}
        self.pipes: dict[str, MusicPipeline | VideoPipeline] = {}
        timeout = limits.job_timeout_s
        vae = vae or {}  # the decode's tiling and slicing as the stage replicas have them, for /healthz
        if music_model is not None:
            music = MusicPipeline.from_pretrained(
                music_model, device="cpu", executor=ServeExecutor(music_stages, timeout)
            )
            self.pipes["music"] = replace(music, cascade=music.cascade.with_vae(**vae.get("music", {})))
        if video_model is not None:
            video = VideoPipeline.from_pretrained(
                video_model, device="cpu", executor=ServeExecutor(video_stages, timeout),
                soundtrack=self.pipes.get("music"),
            )  # fmt: skip
            self.pipes["video"] = replace(video, cascade=video.cascade.with_vae(**vae.get("video", {})))
        for pipe in self.pipes.values():
            if pipe.text is not None:  # imported checkpoints: their stages hold their own encoders
                pipe.text(["warm up"])  # load the text encoder now, not in the first request
        self.pool = ThreadPoolExecutor(max_workers=limits.max_active_jobs, thread_name_prefix="legato-job")
        self.active, self.lock = 0, threading.Lock()

    def __serve_build_asgi_app__(self) -> Any:
        return make_app(self)

    # -- what /healthz reports -----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok", "active_jobs": self.active, "limits": self.limits.to_dict()}
        for kind, pipe in self.pipes.items():
            sampled = [pipe.cascade.stages[i] for i in pipe.cascade.sampled]  # not the Encode/Decode steps
            entry = {"model": self.models[kind], "stages": [s.name for s in sampled],
                     "steps": [s.steps for s in sampled],
                     "schedulers": [scheduler_name(s.scheduler) for s in sampled],
                     "guidance": pipe.cascade.stages[0].guidance_scale}  # fmt: skip
            if isinstance(pipe, MusicPipeline):
                entry.update(sample_rate=pipe.params.sample_rate, window_seconds=pipe.window_seconds,
                             mastering=None if pipe.mastering is None else asdict(pipe.mastering))  # fmt: skip
            else:
                entry.update(frames=pipe.frames, fps=pipe.fps, soundtrack=pipe.soundtrack is not None)
            space = getattr(pipe.cascade.stages[-1], "latents", None)  # a latent model ends with its decode
            if space is not None:  # how that decode uses memory
                entry["vae"] = {"tiling": space.tiling, "slicing": space.slicing}
            out[kind] = entry
        return out

    # -- jobs ----------------------------------------------------------------------------------------------

    async def submit(self, kind: str, request: MusicRequest | VideoRequest, wait: bool) -> Job:
        """Check ``request``, start its job, and (with ``wait``) return it finished; failures raise
        `ServiceError` with the job's id."""
        pipe = self.pipes.get(kind)
        if pipe is None:
            raise ServiceError(404, "no_model", f"this server runs no {kind} model",
                               f"start the server with {kind}_model=FOLDER (e.g. models/{kind}-default)")  # fmt: skip
        stages = [pipe.cascade.stages[i].name for i in pipe.cascade.sampled]  # what steps= counts
        problems = check_limits(request, self.limits, stages)
        if isinstance(request, VideoRequest) and request.soundtrack and pipe.soundtrack is None:
            raise ServiceError(422, "no_soundtrack", "this server runs no music model for soundtracks",
                               'send "soundtrack": false, or start the server with music_model= as well')  # fmt: skip
        if problems:
            raise ServiceError(422, "invalid_request", f"{len(problems)} problem(s) in the request",
                               "fix each field listed under problems; the schema is at /openapi.json", problems)  # fmt: skip
        with self.lock:
            if self.active >= self.limits.max_active_jobs:
                raise ServiceError(503, "overloaded",
                                   f"{self.active} jobs are running, this server's limit (max_active_jobs)",
                                   "retry in a few seconds", headers={"Retry-After": "5"})  # fmt: skip
            self.active += 1
        try:
            job = self.store.new(kind, request.model_dump(mode="json", exclude_none=True), self.service)
            future = self.pool.submit(self.generate, job, pipe, request)
        except BaseException:
            self.release()
            raise
        if not wait:
            return job
        job = await asyncio.wrap_future(future)
        if job.error is not None:
            raise ServiceError(STATUS.get(job.error.error, 500), job.error.error, job.error.message,
                               job.error.fix, job=job.id)  # fmt: skip
        return job

    def generate(
        self, job: Job, pipe: MusicPipeline | VideoPipeline, request: MusicRequest | VideoRequest
    ) -> Job:
        """Generate and write one job's files (on a pool thread); the record says how it ended."""
        started = time.perf_counter()
        update: dict[str, Any]
        try:
            pipe = with_sampling(pipe, request.steps, request.guidance, request.scheduler)
            if not request.master:
                pipe = raw(pipe)
            prompts, seeds = as_lists(request.prompt_list, request.seed)
            job = job.model_copy(update={"warnings": pipe.check_prompts(prompts, warn=False)})
            negative = request.negative or ""
            if isinstance(request, MusicRequest):
                outputs = pipe(prompts, seeds=seeds, duration=request.duration, negative=negative)
            else:
                outputs = pipe(prompts, seeds=seeds, frames=request.frames, soundtrack=request.soundtrack,
                               negative=negative)  # fmt: skip
            files = []
            for i, out in enumerate(outputs):
                name = f"{i:04d}.{request.format}"
                out.save(self.store.folder(job.id) / name)
                url = f"/v1/jobs/{job.id}/files/{name}"
                files.append(JobFile(name=name, url=url, prompt=out.prompt, seed=out.seed))
            update = {"status": "done", "files": files}
        except BackPressureError as err:
            update = _failed("overloaded", f"a stage's queue is full ({err})", "retry in a few seconds")
        except TimeoutError:
            update = _failed("timeout", f"a stage took over {self.limits.job_timeout_s:g} s (job_timeout_s) to answer",
                             "ask for fewer or shorter outputs, or retry when the server is less busy")  # fmt: skip
        except ValueError as err:
            update = _failed("invalid_request", str(err), "change the request as the message says")
        except Exception as err:  # the record must say the job ended, whatever ended it
            update = _failed("internal", f"{type(err).__name__}: {err}", "retry; report it if it persists")
        finally:
            self.release()
        job = job.model_copy(update={**update, "finished": time.time(),
                                     "seconds": round(time.perf_counter() - started, 4)})  # fmt: skip
        self.store.save(job)
        self.store.prune(self.limits.keep_jobs)
        return job

    def release(self) -> None:
        with self.lock:
            self.active -= 1


def raw(pipe: MusicPipeline | VideoPipeline) -> MusicPipeline | VideoPipeline:
    """``pipe`` with its music (or its soundtrack's) unmastered."""
    if isinstance(pipe, MusicPipeline):
        return replace(pipe, mastering=None)
    return (
        pipe
        if pipe.soundtrack is None
        else replace(pipe, soundtrack=replace(pipe.soundtrack, mastering=None))
    )


def _failed(error: str, message: str, fix: str) -> dict[str, Any]:
    return {"status": "failed", "error": ErrorBody(error=error, message=message, fix=fix)}
