"""legato.services.serve: Legato as an online service on Ray Serve.

The main flow::

    url = main(music_model="models/music-default", video_model="models/video-default", blocking=False)
    # POST {url}/v1/music {"prompt": "a jig on fiddle", "duration": 10}  -> a Job with file URLs
    # GET  {url}/v1/jobs/{id}/files/0000.wav
    serve.run(build_app("models/music-fast"), route_prefix="/")   # or compose the application yourself

An `Ingress` deployment (FastAPI) checks requests, encodes prompts, runs each cascade through one
`StageDeployment` per stage (each on its own replicas, CPUs or GPUs), decodes and writes the files of each
job. This package holds no model logic: it calls `legato.pipelines`. See docs/serve.md.
"""

from legato.services.serve.app import APP_NAME, build_app, main
from legato.services.serve.schemas import Job, Limits, MusicRequest, VideoRequest
from legato.services.serve.service import Ingress
from legato.services.serve.stages import ServeExecutor, StageDeployment

__all__ = [
    "APP_NAME",
    "Ingress",
    "Job",
    "Limits",
    "MusicRequest",
    "ServeExecutor",
    "StageDeployment",
    "VideoRequest",
    "build_app",
    "main",
]
