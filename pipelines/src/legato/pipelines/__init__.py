"""legato.pipelines: what a user's program runs — music and video pipelines over a cascade, text encoders,
model folders, batch jobs, Ray execution and fine-tuning.

The main flow (docs/architecture.md follows it hop by hop)::

    pipe = MusicPipeline.from_pretrained("models/music-default")           # executor=RayExecutor() for Ray
    clips = pipe(["a jig on fiddle"], seeds=[0], duration=30.0)
    clips[0].save("jig.wav")
    video = VideoPipeline.from_pretrained("models/video-default", soundtrack="models/music-default")
    video(["slow zoom into a cat"])[0].save("cat.mp4")
    run_job(JobSpec.from_file("job.yaml"))                                  # files + manifest.jsonl, resumable

Names are imported when first used (`legato.pipelines.folders` reads model folders without torch), and
importing this package never imports Ray: `legato.pipelines.ray_executor` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "Mastering": "legato.codec.master",
    "Interpolation": "legato.pipelines.interpolate",
    "JobResult": "legato.pipelines.jobs",
    "JobSpec": "legato.pipelines.job_spec",
    "run_job": "legato.pipelines.jobs",
    "ImagePipeline": "legato.pipelines.image",
    "MusicPipeline": "legato.pipelines.music",
    "AudioClip": "legato.pipelines.outputs",
    "Soundtrack": "legato.pipelines.outputs",
    "VideoClip": "legato.pipelines.outputs",
    "DEFAULT_TEXT_ENCODER": "legato.pipelines.text",
    "TextEncoder": "legato.pipelines.text",
    "VideoPipeline": "legato.pipelines.video",
}

if TYPE_CHECKING:
    from legato.codec.master import Mastering
    from legato.pipelines.image import ImagePipeline
    from legato.pipelines.interpolate import Interpolation
    from legato.pipelines.job_spec import JobSpec
    from legato.pipelines.jobs import JobResult, run_job
    from legato.pipelines.music import MusicPipeline
    from legato.pipelines.outputs import AudioClip, Soundtrack, VideoClip
    from legato.pipelines.text import DEFAULT_TEXT_ENCODER, TextEncoder
    from legato.pipelines.video import VideoPipeline


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'legato.pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "AudioClip",
    "ImagePipeline",
    "Interpolation",
    "JobResult",
    "JobSpec",
    "Mastering",
    "MusicPipeline",
    "Soundtrack",
    "TextEncoder",
    "VideoClip",
    "VideoPipeline",
    "run_job",
]
