"""A job spec: what to generate, with which model, how to run it and where the files go (YAML or JSON).

::

    # job.yaml
    kind: music
    model: models/music-default        # a folder, or a model name such as music-fast
    output: outputs/jigs
    formats: [wav, png]
    executor: ray                      # local | ray | ray-data
    resources: {base: {replicas: 1}, sr: {num_cpus: 1}}
    steps: [16, 8]                     # optional: sampling steps per stage; guidance: base-stage scale;
    scheduler: dpm++                   #   scheduler: every stage's sampler (ddim, dpm++, euler, heun, ...)
    items:
      - {prompt: "a jig on fiddle", seed: 0, duration: 10}
      - {prompt: "ragtime piano", seed: 1, id: ragtime, negative: "drums"}

An item without an ``id`` is named by what decides its output (`item_id`: prompt, seed, length, negative
prompt), so its
files and manifest line follow it wherever it moves in the list. `legato.pipelines.jobs.run_job` runs a spec.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from legato.codec import AUDIO_FORMATS
from legato.diffusion import SCHEDULERS
from legato.pipelines.text import check_prompt
from legato.video import VIDEO_FORMATS

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
    negative: str | None = Field(default=None, max_length=2000)  # what guidance steers away from

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return check_prompt(value)


class ResourceSpec(BaseModel):
    model_config = _STRICT

    replicas: int = Field(default=1, ge=1)
    num_cpus: float | None = Field(default=None, gt=0)
    num_gpus: float | None = Field(default=None, ge=0)
    threads: int | None = Field(default=None, ge=1)


class MasteringSpec(BaseModel):
    """How music clips and soundtracks are finished (`legato.codec.master.Mastering`): rate, channels,
    loudness, true peak. On by default; ``mastering: null`` (or ``false``) in a spec keeps the raw output."""

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
    # ray, ray-data: the GPUs (or CPUs) to place the stages on by their measured costs; resources override
    gpus: float | None = Field(default=None, gt=0)
    cpus: float | None = Field(default=None, gt=0)
    chunk: int = Field(default=8, ge=1)  # items generated between manifest writes
    device: str | None = None
    # torch threads of every stage (this process for local; each stage actor for ray and ray-data): the same
    # count on both sides gives byte-equal files; default: all cores (local), each actor's whole CPUs (ray)
    threads: int | None = Field(default=None, ge=1)
    steps: list[Annotated[int, Field(ge=1)]] | None = None  # sampling steps per stage (default: the model's)
    guidance: float | None = Field(default=None, ge=1)  # the base stage's (default: the model's)
    scheduler: str | None = None  # every stage's sampler, by name (default: the model's)
    compile: Literal["default", "reduce-overhead", "max-autotune"] | None = None  # torch.compile, per stage
    vae_tiling: bool | None = None  # latent models' decode in tiles (Cascade.with_vae; default: the model's)
    vae_slicing: bool | None = None  # ... one image or frame at a time: the same pixels in less memory
    # music and soundtracks: 44.1 kHz stereo at -14 LUFS under -1 dBTP by default; None: the raw model output
    mastering: MasteringSpec | None = Field(default_factory=MasteringSpec)

    @field_validator("mastering", mode="before")
    @classmethod
    def _mastering_switch(cls, value: object) -> object:
        return {True: {}, False: None}.get(value, value) if isinstance(value, bool) else value

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
        if (self.gpus or self.cpus) and (self.executor == "local" or (self.gpus and self.cpus)):
            raise ValueError(
                f"gpus={self.gpus}, cpus={self.cpus}: give one of them, with executor ray or ray-data "
                f"(they place stage actors by cost), not with executor {self.executor!r}"
            )
        if self.kind == "video" and any(i.duration is not None for i in self.items):
            raise ValueError("video items take no duration; give frames (a number of frames) instead")
        if self.kind == "music" and any(i.frames is not None for i in self.items):
            raise ValueError("music items take no frames; give duration (seconds) instead")
        if (
            self.kind == "video"
            and self.soundtrack is None
            and self.mastering is not None
            and ("mastering" in self.model_fields_set)
        ):
            raise ValueError("mastering= finishes music and soundtracks; this video job has no soundtrack")
        if self.kind == "music" and self.soundtrack is not None:
            raise ValueError("soundtrack= is for video jobs; remove it from this music job")
        if self.soundtrack is not None:
            sound = sorted(f for f, v in VIDEO_FORMATS.items() if v.audio_codec)
            silent = [f for f in self.resolved_formats if f not in sound]
            if silent:
                raise ValueError(
                    f"formats {silent} cannot carry the soundtrack; use some of {sound}, or no soundtrack"
                )
        ids = self.item_ids
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(
                f"item ids {dupes} appear more than once; ids name files and must be unique (items without an "
                "id that share prompt, seed and length are the same item: list it once)"
            )
        return self

    @property
    def resolved_formats(self) -> list[str]:
        return self.formats or (["wav", "png"] if self.kind == "music" else ["mp4"])

    @property
    def item_ids(self) -> list[str]:
        """Each item's id: its own, or one made from what decides its output (`item_id`), so that inserting,
        removing or reordering items never gives an item another's id."""
        return [
            item.id or item_id(item.prompt, item.seed, self.length(item), item.negative)
            for item in self.items
        ]

    def length(self, item: ItemSpec) -> float | int | None:
        """An item's length: a music item's duration, a video item's frames (None: one window)."""
        return item.duration if self.kind == "music" else item.frames

    def item_record(self, item: ItemSpec) -> dict:
        """What the manifest records of an item, and a resume compares: its prompt, seed and length."""
        return item.model_dump(exclude={"id"}, exclude_none=True)

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


def item_id(prompt: str, seed: int, length: float | None, negative: str | None = None) -> str:
    """An item's id when it has none: readable (a slug of the prompt, the seed) and different for a different
    prompt, seed, length (a music item's duration, a video's frames) or negative prompt; it names the item's
    files. (An item without a negative prompt keeps the id it had before there were any.)"""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48].strip("-") or "item"
    key = f"{prompt}\0{seed}\0{length}" + (f"\0{negative}" if negative else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    return f"{slug}-s{seed}-{digest}"
