"""Batch jobs: a validated `JobSpec` (YAML or JSON) run into an output folder with a JSONL manifest.

::

    # job.yaml
    kind: music
    model: models/music-default
    output: outputs/jigs
    formats: [wav, png]
    executor: ray                      # local | ray | ray-data
    resources: {base: {replicas: 1}, sr: {num_cpus: 1}}
    steps: [16, 8]                     # optional: sampling steps per stage; guidance: base-stage scale;
    scheduler: dpm++                   #   scheduler: every stage's sampler (ddim, dpm++, euler, heun, ...)
    items:
      - {prompt: "a jig on fiddle", seed: 0, duration: 10}
      - {prompt: "ragtime piano", seed: 1}

    result = run_job(JobSpec.from_file("job.yaml"))       # or: legato batch job.yaml

Each item's files are written atomically (a temporary sibling renamed into place), then one manifest line
(``id, seed, prompt, model hash, files, timings``) is appended and synced. Running the same spec again
skips the items the manifest lists whose files are all there, so a killed job resumes where it stopped and
no item is written twice; stray temporary files of a killed run are removed first. An output folder made by
another model (a different hash), or with other ``steps``/``guidance``/``scheduler``, is refused instead of mixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from legato.cascade import CASCADE_FILE, Executor, LocalExecutor, Progress
from legato.cascade.pretrained import cascade_folders
from legato.codec import AUDIO_FORMATS
from legato.codec.master import Mastering
from legato.diffusion import SCHEDULERS
from legato.pipelines.music import MusicPipeline
from legato.pipelines.text import check_prompt
from legato.pipelines.video import VideoPipeline
from legato.video import VIDEO_FORMATS

MANIFEST = "manifest.jsonl"
_STRICT = ConfigDict(extra="forbid", frozen=True)
SCHEDULER_NAMES = tuple(sorted(SCHEDULERS))  # the samplers a spec, a request or a command may name


def scheduler_name(scheduler: object) -> str:
    """The name a spec, a request or a command gives ``scheduler``'s class (its class name if none does)."""
    names = [name for name in SCHEDULER_NAMES if type(scheduler) is SCHEDULERS[name][0]]
    return names[0] if names else type(scheduler).__name__


class ItemSpec(BaseModel):
    model_config = _STRICT

    prompt: str
    seed: int = Field(default=0, ge=0, lt=2**63)
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    duration: float | None = Field(default=None, gt=0, le=600)  # music: seconds (default: one window)
    frames: int | None = Field(default=None, ge=1, le=10_000)  # video: frames (default: one window)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return check_prompt(value)


class ResourceSpec(BaseModel):
    model_config = _STRICT

    replicas: int = Field(default=1, ge=1)
    num_cpus: float | None = Field(default=None, gt=0)
    num_gpus: float | None = Field(default=None, ge=0)


class MasteringSpec(BaseModel):
    """Music jobs' finishing (`legato.codec.master.Mastering`): rate, channels, loudness, true peak."""

    model_config = _STRICT

    sample_rate: int | None = Field(default=44_100, ge=8_000, le=192_000)
    channels: Literal[1, 2] = 2
    width: float = Field(default=0.5, ge=0, le=1)
    loudness: float | None = Field(default=-14.0, gt=-70, lt=0)
    true_peak: float = Field(default=-1.0, ge=-20, le=0)


class JobSpec(BaseModel):
    """What to generate, with which model, how to run it, and where the files go."""

    model_config = _STRICT

    kind: Literal["music", "video"]
    model: str
    soundtrack: str | None = None  # video jobs: a music model folder for the soundtracks
    output: str
    items: list[ItemSpec] = Field(min_length=1)
    formats: list[str] | None = None  # default: wav + png (music), mp4 (video)
    executor: Literal["local", "ray", "ray-data"] = "local"
    resources: dict[str, ResourceSpec] = Field(default_factory=dict)
    chunk: int = Field(default=8, ge=1)  # items generated between manifest writes
    device: str | None = None
    steps: list[Annotated[int, Field(ge=1)]] | None = None  # sampling steps per stage (default: the model's)
    guidance: float | None = Field(
        default=None, ge=1
    )  # the base stage's guidance scale (default: the model's)
    scheduler: str | None = None  # every stage's sampler, by name (default: the model's)
    mastering: MasteringSpec | None = None  # music: 44.1 kHz stereo at -14 LUFS etc.; None: raw model output

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str | None) -> str | None:
        if name is not None and name not in SCHEDULER_NAMES:
            raise ValueError(f"scheduler {name!r} is not one of {list(SCHEDULER_NAMES)}")
        return name

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: list[str] | None) -> list[str] | None:
        if formats is not None and not formats:
            raise ValueError("formats is empty; leave it out for the defaults or list at least one")
        return formats

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        allowed = [*sorted(AUDIO_FORMATS), "png"] if self.kind == "music" else sorted(VIDEO_FORMATS)
        bad = [f for f in self.resolved_formats if f not in allowed]
        if bad:
            raise ValueError(f"formats {bad} are not {self.kind} formats; use some of {allowed}")
        if self.kind == "video" and any(i.duration is not None for i in self.items):
            raise ValueError("video items take no duration; give frames (a number of frames) instead")
        if self.kind == "music" and any(i.frames is not None for i in self.items):
            raise ValueError("music items take no frames; give duration (seconds) instead")
        if self.kind == "video" and self.mastering is not None:
            raise ValueError("mastering= is for music jobs; remove it from this video job")
        if self.kind == "music" and self.soundtrack is not None:
            raise ValueError("soundtrack= is for video jobs; remove it from this music job")
        if self.soundtrack is not None:
            sound = sorted(f for f, v in VIDEO_FORMATS.items() if v.audio_codec)
            silent = [f for f in self.resolved_formats if f not in sound]
            if silent:
                raise ValueError(
                    f"formats {silent} cannot carry the soundtrack; use some of {sound}, or no soundtrack"
                )
        ids = [i for i in self.item_ids]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"item ids {dupes} appear more than once; ids name files and must be unique")
        return self

    @property
    def resolved_formats(self) -> list[str]:
        return self.formats or (["wav", "png"] if self.kind == "music" else ["mp4"])

    @property
    def item_ids(self) -> list[str]:
        return [item.id or f"{i:05d}" for i, item in enumerate(self.items)]

    @classmethod
    def from_file(cls, path: str | Path) -> JobSpec:
        """Read a ``.yaml``/``.yml`` or ``.json`` spec; errors name the file and every bad field."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ValueError(f"cannot read job spec {path}: {err.strerror}") from err
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ValueError(f"{path} does not parse: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of fields (kind, model, output, items, ...)")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ValueError(f"{path} is not a valid job spec:\n{err}") from err


@dataclass(frozen=True)
class JobResult:
    output: Path
    written: list[str]  # ids generated by this run
    skipped: list[str]  # ids a previous run had finished
    seconds: float


def model_hash(path: str | Path) -> str:
    """A short hash of a model folder's files (cascade.json, configs, weights) and of the folders outside it
    that it loads (shared stages, a vocoder), for the manifest. Model cards (``*.md``) are documentation,
    not what makes an item: editing one leaves the hash, and a resume, as they were."""
    digest = hashlib.sha256()
    root = Path(path).resolve()
    folders = [root, *cascade_folders(root)]
    vocoder = json.loads((root / CASCADE_FILE).read_text()).get("metadata", {}).get("vocoder")
    if vocoder is not None:
        folders.append((root / vocoder).resolve())
    outside = sorted({f for f in folders[1:] if not f.is_relative_to(root)})
    for folder in [root, *outside]:
        files = [
            p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".md"
        ]
        for file in sorted(files):
            digest.update(os.path.relpath(file, root).encode())
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def read_manifest(output: Path) -> list[dict]:
    """The manifest's complete lines (a line cut off by a kill is ignored)."""
    file = output / MANIFEST
    if not file.is_file():
        return []
    rows = []
    for line in file.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def make_executor(spec: JobSpec) -> Executor:
    if spec.executor == "local":
        return LocalExecutor()
    from legato.pipelines.ray_executor import RayDataExecutor, RayExecutor, StageResources, connect

    connect()
    resources = {name: StageResources(**r.model_dump()) for name, r in spec.resources.items()}
    return RayExecutor(resources) if spec.executor == "ray" else RayDataExecutor(resources)


def load_pipeline(spec: JobSpec, executor: Executor) -> MusicPipeline | VideoPipeline:
    if spec.kind == "music":
        master = None if spec.mastering is None else Mastering(**spec.mastering.model_dump())
        pipe = MusicPipeline.from_pretrained(
            spec.model, device=spec.device, executor=executor, mastering=master
        )
    else:
        pipe = VideoPipeline.from_pretrained(
            spec.model, device=spec.device, executor=executor, soundtrack=spec.soundtrack
        )
    return with_sampling(pipe, spec.steps, spec.guidance, spec.scheduler)


def with_sampling(
    pipe: MusicPipeline | VideoPipeline,
    steps: list[int] | None = None,
    guidance: float | None = None,
    scheduler: str | None = None,
) -> MusicPipeline | VideoPipeline:
    """``pipe`` with ``steps`` sampling steps per stage, ``guidance`` on its base stage and every stage on
    the named ``scheduler`` (None keeps the model's own; see `Cascade.with_sampling`)."""
    return replace(pipe, cascade=pipe.cascade.with_sampling(steps, guidance, scheduler))


def job_model_id(spec: JobSpec) -> str:
    """What the manifest records as the model: its hash, and any sampling settings the spec overrides (an
    output folder is never mixed from two of them)."""
    tag = model_hash(spec.model)
    if spec.steps is not None:
        tag += "+steps=" + ",".join(map(str, spec.steps))
    if spec.guidance is not None:
        tag += f"+guidance={spec.guidance:g}"
    if spec.scheduler is not None:
        tag += f"+scheduler={spec.scheduler}"
    if spec.mastering is not None:
        tag += "+master=" + json.dumps(spec.mastering.model_dump(), sort_keys=True, separators=(",", ":"))
    return tag


def run_job(
    spec: JobSpec,
    *,
    executor: Executor | None = None,
    log: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> JobResult:
    """Generate every item of ``spec`` not finished yet; see the module docstring for the guarantees.
    ``log`` gets a line after each chunk of items, ``progress`` the cascade's (stage, done, total)."""
    started = time.perf_counter()
    output = Path(spec.output)
    output.mkdir(parents=True, exist_ok=True)
    for stray in output.glob(".*.part"):  # temporary files of a run that was killed mid-write
        stray.unlink(missing_ok=True)
    model = job_model_id(spec)
    done = set()
    for row in read_manifest(output):
        if row.get("model") != model:
            raise ValueError(
                f"{output} holds items made by model {row.get('model')}, not {spec.model} ({model}); "
                "use a new output folder, or remove the old one"
            )
        if all((output / f).is_file() for f in row["files"]):
            done.add(row["id"])
    ids = spec.item_ids
    todo = [i for i, item_id in enumerate(ids) if item_id not in done]
    skipped = [item_id for item_id in ids if item_id in done]
    if not todo:
        return JobResult(output, [], skipped, time.perf_counter() - started)
    executor = executor or make_executor(spec)
    pipe = load_pipeline(spec, executor)
    written: list[str] = []
    # Items of one length run together; chunks bound how much a kill can lose.
    groups: dict[tuple[float | None, int | None], list[int]] = {}
    for i in todo:
        groups.setdefault((spec.items[i].duration, spec.items[i].frames), []).append(i)
    with open(output / MANIFEST, "a") as manifest:
        for (duration, frames), positions in groups.items():
            for lo in range(0, len(positions), spec.chunk):
                chunk = positions[lo : lo + spec.chunk]
                prompts = [spec.items[i].prompt for i in chunk]
                seeds = [spec.items[i].seed for i in chunk]
                t0 = time.perf_counter()
                if spec.kind == "music":
                    results = pipe(prompts, seeds=seeds, duration=duration, progress=progress)
                else:
                    results = pipe(prompts, seeds=seeds, frames=frames, progress=progress)
                generate = (time.perf_counter() - t0) / len(chunk)
                for i, result in zip(chunk, results, strict=True):
                    t1 = time.perf_counter()
                    files = [f"{ids[i]}.{fmt}" for fmt in spec.resolved_formats]
                    for name in files:
                        result.save(output / name)
                    row = {
                        "id": ids[i], "seed": result.seed, "prompt": result.prompt, "model": model,
                        "files": files, "timings": {"generate_s": round(generate, 4),
                                                    "write_s": round(time.perf_counter() - t1, 4)},
                    }  # fmt: skip
                    if getattr(result, "measured", None):  # mastered music: loudness, true peak
                        row["audio"] = result.measured
                    manifest.write(json.dumps(row) + "\n")
                    manifest.flush()
                    os.fsync(manifest.fileno())
                    written.append(ids[i])
                if log is not None:
                    log(f"{len(written) + len(skipped)}/{len(ids)} items in {output}")
    return JobResult(output, written, skipped, time.perf_counter() - started)
