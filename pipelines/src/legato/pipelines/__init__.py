"""legato.pipelines: where the domains meet — music and video pipelines over a cascade, text encoders,
batch jobs, and Ray execution.

The main flow::

    pipe = MusicPipeline.from_pretrained("models/music-default")           # executor=RayExecutor() for Ray
    clips = pipe(["a jig on fiddle"], seeds=[0], duration=30.0)
    clips[0].save("jig.wav")
    video = VideoPipeline.from_pretrained("models/video-default", soundtrack="models/music-default")
    video(["slow zoom into a cat"])[0].save("cat.mp4")
    run_job(JobSpec.from_file("job.yaml"))                                  # files + manifest.jsonl, resumable

Importing this package does not import Ray; `legato.pipelines.ray_executor` does.
"""

from legato.codec.master import Mastering
from legato.pipelines.interpolate import Interpolation
from legato.pipelines.jobs import JobResult, JobSpec, run_job
from legato.pipelines.music import MusicPipeline
from legato.pipelines.outputs import AudioClip, Soundtrack, VideoClip
from legato.pipelines.text import DEFAULT_TEXT_ENCODER, TextEncoder
from legato.pipelines.video import VideoPipeline

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "AudioClip",
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
