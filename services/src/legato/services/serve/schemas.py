"""What the service accepts and returns: request bodies, limits, job records and error bodies.

Request bodies are parsed once, here, with ``extra="forbid"`` (a misspelt field is an error, not a silent
default). The schema holds what is always true of a request (types, ``duration > 0``); `Limits` holds what
this server is willing to do (how many prompts, how long a clip), checked by `check_limits` so that one
server can be configured without changing the schema. Every error the service returns is an `ErrorBody`:
what went wrong, and how to fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from legato.pipelines.job_spec import AUDIO_FORMATS, SCHEDULER_NAMES, VIDEO_FORMATS
from legato.pipelines.text import check_prompt

# The formats a request may name: derived from the writers' own tables, so the schema cannot drift from them.
MUSIC_FORMATS = (*sorted(AUDIO_FORMATS), "png")  # png: the clip's mel spectrogram image
VIDEO_FILE_FORMATS = tuple(sorted(VIDEO_FORMATS))
MusicFormat = Literal[MUSIC_FORMATS]  # type: ignore[valid-type]
VideoFormat = Literal[VIDEO_FILE_FORMATS]  # type: ignore[valid-type]

SchedulerName = Literal[SCHEDULER_NAMES]  # type: ignore[valid-type]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
_STRICT = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Limits:
    """What one server accepts. Requests over a limit get a 4xx naming it; overload gets a 503."""

    max_prompts: int = 8  # prompts (clips or videos) per request
    max_prompt_chars: int = 500
    max_duration: float = 60.0  # seconds of music per clip
    max_frames: int = 240  # frames per video
    max_steps: int = 100  # sampling steps per stage
    max_guidance: float = 20.0
    max_body_bytes: int = 64 * 1024
    max_active_jobs: int = 8  # generations running or waiting, per ingress replica; more get a 503
    keep_jobs: int = 1000  # finished jobs kept on disk; older ones are removed
    job_timeout_s: float = 600.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Generate(BaseModel):
    """Fields shared by music and video requests."""

    model_config = _STRICT

    prompt: str | None = Field(None, min_length=1, max_length=10_000, description="one prompt")
    prompts: list[Annotated[str, Field(min_length=1, max_length=10_000)]] | None = Field(
        None, min_length=1, description="several prompts, one output each (give prompt or prompts)"
    )
    seed: Seed | list[Seed] = Field(
        0, description="one seed per prompt; a single number n gives the prompts n, n + 1, ..."
    )
    negative: str | None = Field(
        None, max_length=10_000, description="a negative prompt: what guidance steers every output away from"
    )
    steps: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, description="sampling steps, one number per cascade stage (default: the model's)"
    )
    guidance: float | None = Field(
        None, ge=1, description="classifier-free guidance scale of the base stage (default: the model's)"
    )
    scheduler: SchedulerName | None = Field(
        None, description="every stage's sampler (default: the model's); dpm++ needs about half DDIM's steps"
    )
    master: bool = Field(
        True,
        description="finish music (and soundtracks) as listeners expect: 44.1 kHz stereo at -14 LUFS, true "
        "peak under -1 dBTP; false: the model's raw output (mono at its own rate)",
    )

    @property
    def prompt_list(self) -> list[str]:
        return [self.prompt] if self.prompt is not None else list(self.prompts or [])


class MusicRequest(_Generate):
    """``POST /v1/music``: one clip per prompt."""

    duration: float | None = Field(
        None, gt=0, description="seconds per clip (default: one window of the model, a few seconds)"
    )
    format: MusicFormat = Field("wav", description="file format of each clip (png: its mel spectrogram)")


class VideoRequest(_Generate):
    """``POST /v1/video``: one video per prompt."""

    frames: int | None = Field(
        None,
        ge=1,
        description="frames per video (default: the model's window, see /healthz; longer videos "
        "continue window by window)",
    )
    soundtrack: bool = Field(False, description="add music made from the same prompt and seed")
    format: VideoFormat = Field("mp4", description="file format of each video (gif carries no sound)")


class Problem(BaseModel):
    field: str | None = None
    problem: str
    fix: str


class ErrorBody(BaseModel):
    """Every error response: a short code, what went wrong, and what to do about it."""

    error: str
    message: str
    fix: str
    problems: list[Problem] = Field(default_factory=list)
    job: str | None = None


class ServiceError(Exception):
    """Raised by the routes; the app turns it into a JSON `ErrorBody` with ``status``."""

    def __init__(self, status: int, error: str, message: str, fix: str, problems: list[Problem] | None = None,
                 job: str | None = None, headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.body = ErrorBody(error=error, message=message, fix=fix, problems=problems or [], job=job)


class JobFile(BaseModel):
    name: str
    url: str
    prompt: str
    seed: int


class Job(BaseModel):
    """A generation request and what became of it (``GET /v1/jobs/{id}``)."""

    id: str
    kind: Literal["music", "video"]
    status: Literal["running", "done", "failed"]
    created: float  # unix time
    finished: float | None = None
    seconds: float | None = None  # generation and writing time
    request: dict[str, Any]
    files: list[JobFile] = Field(default_factory=list)
    error: ErrorBody | None = None
    service: str | None = None  # the service instance running it (a restarted service is another one)
    warnings: list[str] = Field(default_factory=list)  # prompts far from what the model was trained on


# --- validation errors as problems with fixes ---------------------------------------------------------------

_FIXES = {
    "extra_forbidden": "remove it; the fields are {fields}",
    "missing": "add it",
    "literal_error": "use one of {expected}",
    "greater_than": "use a number above {gt}",
    "greater_than_equal": "use a number of at least {ge}",
    "less_than": "use a number below {lt}",
    "less_than_equal": "use a number of at most {le}",
    "too_short": "give at least {min_length}",
    "too_long": "give at most {max_length}",
    "string_too_short": "give a non-empty string",
    "string_too_long": "shorten it to {max_length} characters",
    "json_invalid": "send a JSON object (Content-Type: application/json)",
    "model_attributes_type": "send a JSON object of fields {fields}",
}


def problems_from_errors(errors: list[dict[str, Any]], fields: list[str]) -> list[Problem]:
    """Pydantic's errors (from a request body) as problems with fixes, derived from each error's own
    type and context."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        ctx = {k: v for k, v in (err.get("ctx") or {}).items()}
        template = _FIXES.get(err.get("type", ""), "see the request schema at /openapi.json")
        try:
            fix = template.format(fields=", ".join(fields), **ctx)
        except KeyError:
            fix = "see the request schema at /openapi.json"
        out.append(Problem(field=".".join(loc) or None, problem=str(err.get("msg", "invalid")), fix=fix))
    return out


def check_limits(request: MusicRequest | VideoRequest, limits: Limits, stages: list[str]) -> list[Problem]:
    """Rules across fields and this server's limits: the problems of ``request`` (empty when it is fine)."""
    problems = []
    add = lambda field, problem, fix: problems.append(Problem(field=field, problem=problem, fix=fix))  # noqa: E731
    if (request.prompt is None) == (request.prompts is None):
        add("prompt", "give exactly one of prompt and prompts", 'send "prompt": "..." or "prompts": [...]')
    prompts = request.prompt_list
    if len(prompts) > limits.max_prompts:
        add("prompts", f"{len(prompts)} prompts; this server makes at most {limits.max_prompts} per request",
            f"split them into requests of at most {limits.max_prompts}")  # fmt: skip
    for i, p in enumerate(prompts):
        if len(p) > limits.max_prompt_chars:
            add("prompt" if request.prompt is not None else f"prompts.{i}",
                f"{len(p)} characters; this server takes at most {limits.max_prompt_chars}",
                f"shorten it to {limits.max_prompt_chars} characters")  # fmt: skip
        elif not p.strip():
            add("prompt" if request.prompt is not None else f"prompts.{i}", "the prompt is blank",
                "describe the music or video to make")  # fmt: skip
        else:
            try:
                check_prompt(p)  # control characters: the pipelines' own rule
            except ValueError as err:
                add("prompt" if request.prompt is not None else f"prompts.{i}", str(err), "plain text only")
    if request.negative is not None and len(request.negative) > limits.max_prompt_chars:
        add("negative", f"{len(request.negative)} characters; this server takes at most {limits.max_prompt_chars}",
            f"shorten it to {limits.max_prompt_chars} characters")  # fmt: skip
    if isinstance(request.seed, list) and len(request.seed) != len(prompts):
        add("seed", f"{len(request.seed)} seeds for {len(prompts)} prompts",
            "give one seed per prompt, or a single number")  # fmt: skip
    if request.steps is not None:
        if len(request.steps) != len(stages):
            add("steps", f"{len(request.steps)} numbers for the {len(stages)} stages {stages}",
                "give one number per stage, or leave steps out")  # fmt: skip
        elif max(request.steps) > limits.max_steps:
            add("steps", f"{max(request.steps)} steps; this server takes at most {limits.max_steps}",
                f"use at most {limits.max_steps} steps per stage")  # fmt: skip
    if request.guidance is not None and request.guidance > limits.max_guidance:
        add("guidance", f"{request.guidance:g} is over this server's limit of {limits.max_guidance:g}",
            f"use a scale from 1 to {limits.max_guidance:g}")  # fmt: skip
    duration = getattr(request, "duration", None)
    if duration is not None and duration > limits.max_duration:
        add("duration", f"{duration:g} s is over this server's limit of {limits.max_duration:g} s",
            f"ask for at most {limits.max_duration:g} s, or join several clips")  # fmt: skip
    if (
        isinstance(request, VideoRequest)
        and request.frames is not None
        and request.frames > limits.max_frames
    ):
        add("frames", f"{request.frames} frames is over this server's limit of {limits.max_frames}",
            f"ask for at most {limits.max_frames} frames, or join several videos")  # fmt: skip
    return problems
