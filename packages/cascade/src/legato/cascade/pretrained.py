"""A cascade as one folder: ``cascade.json`` plus one diffusers-layout folder per stage.

::

    my-cascade/
      cascade.json                     # format, metadata, and each stage's settings, in order
      base/config.json                 # the network: diffusers save_pretrained (config + safetensors)
      base/diffusion_pytorch_model.safetensors
      base/scheduler_config.json       # the scheduler: diffusers save_pretrained
      sr/...

A stage folder is what diffusers itself writes, so ``UNet2DConditionModel.from_pretrained("my-cascade/base")``
works too. Network classes are looked up by module and name, only in ``legato.*`` and ``diffusers`` modules:
loading a folder never imports code the folder names from elsewhere. Folders are written to a temporary
sibling and renamed into place, so an interrupted save leaves the previous folder whole.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diffusers
import torch
from torch import nn

from legato.cascade.decode import Decode, Encode, LatentUpsample
from legato.cascade.stage import DTYPES, Stage
from legato.cascade.text import TextEncoder, TextSettings
from legato.cascade.weights import eager_load, own_storage, require_safetensors
from legato.diffusion import (
    Denoiser,
    EDMDenoiser,
    NoiseAugmentation,
    SuperResolution,
    VPSchedule,
    scheduler_from_config,
)
from legato.diffusion.errors import DiffusionError
from legato.diffusion.latents import LatentRefine, LatentSpace, LatentUpscale
from legato.diffusion.schedulers import Timesteps

if TYPE_CHECKING:
    from legato.cascade.cascade import Cascade

CASCADE_FILE = "cascade.json"
TEXT_ENCODER, TOKENIZER = "text_encoder", "tokenizer"  # a stage's own text encoder, in its folder
PROJECTION = "projection_model"  # Stable Audio's projection of the text and the seconds
FORMAT = "legato-cascade/1"
_TRUSTED_MODULES = ("legato.", "diffusers.")


def save_cascade(cascade: Cascade, path: str | Path, weights_dtype: str | None = None) -> Path:
    """Write ``cascade`` to the folder ``path`` (replaced whole if it exists); returns the path.

    ``weights_dtype="float16"`` stores the weights in half precision (half the bytes); a stage loads them
    back into its own ``dtype``."""
    if weights_dtype is not None and weights_dtype not in DTYPES:
        raise DiffusionError(f"weights_dtype={weights_dtype!r}; use one of {sorted(DTYPES)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        stages = []
        for stage in cascade.stages:
            folder = tmp / stage.name
            step = isinstance(stage, (Decode, Encode, LatentUpsample))
            network = stage.latents.vae if step else stage.denoiser.network
            if isinstance(
                stage, LatentUpsample
            ):  # the upsampler in the folder, its VAE's statistics beside it
                vae = stage.latents.vae
                if weights_dtype is not None:
                    vae = copy.deepcopy(vae).to(DTYPES[weights_dtype])
                vae.save_pretrained(folder / "vae", safe_serialization=True)
                network = stage.upsampler
            if not hasattr(network, "save_pretrained"):
                raise DiffusionError(
                    f"stage {stage.name!r}: {type(network).__name__} has no save_pretrained; build the network "
                    "as a diffusers ModelMixin + ConfigMixin"
                )
            if weights_dtype is not None:
                network = copy.deepcopy(network).to(DTYPES[weights_dtype])
            network.save_pretrained(folder, safe_serialization=True)
            if step:
                stages.append(_step_config(stage))
                continue
            stage.scheduler.save_pretrained(folder)
            if stage.text is not None:
                stage.text.save_pretrained(folder / TEXT_ENCODER, folder / TOKENIZER, folder / PROJECTION)
            stages.append(_stage_config(stage))
        config = {"format": FORMAT, "metadata": dict(cascade.metadata), "stages": stages}
        with open(tmp / CASCADE_FILE, "w") as f:
            json.dump(config, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_cascade(path: str | Path, *, device: str | None = None) -> Cascade:
    """Read a folder written by `save_cascade`; ``device`` overrides every stage's device."""
    from legato.cascade.cascade import Cascade

    root = Path(path)
    file = root / CASCADE_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{root} holds no {CASCADE_FILE}; pass a folder written by Cascade.save_pretrained (e.g. models/music-default)"
        )
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise DiffusionError(
            f"{file} is not valid JSON ({err}); restore it, or save the cascade again with save_pretrained"
        ) from err
    if config.get("format") != FORMAT:
        raise DiffusionError(f"{file}: format {config.get('format')!r} is not {FORMAT!r}")
    stages = tuple(_stage_from(stage_folder(root, s), s, device) for s in config["stages"])
    return Cascade(stages, metadata=config.get("metadata", {}))


def stage_folder(root: Path, spec: dict[str, Any]) -> Path:
    """Where a stage's network and scheduler live: ``root/<name>``, or the folder its ``"folder"`` entry
    names relative to ``root`` (a stage shared with another cascade, e.g. a fast variant's SR stage that
    is the default's: ``"../music-default/sr"``)."""
    return root / spec.get("folder", spec["name"])


def share_stages(path: str | Path, other: str | Path, names: list[str]) -> None:
    """Make the cascade folder ``path`` load its stages ``names`` from the cascade folder ``other`` (where
    their files are byte-identical: checked), removing its own copies: one set of weights on disk for a
    stage two cascades share (a fast variant that runs the default's SR stage with fewer steps)."""
    root, source = Path(path), Path(other)
    file = root / CASCADE_FILE
    config = json.loads(file.read_text())
    copies = []
    for spec in config["stages"]:
        if spec["name"] not in names:
            continue
        mine, theirs = stage_folder(root, spec), source / spec["name"]
        for f in sorted(p for p in mine.rglob("*") if p.is_file()):
            twin = theirs / f.relative_to(mine)
            if not twin.is_file() or _contents(twin) != _contents(f):
                raise DiffusionError(f"{f} differs from {twin}: stage {spec['name']!r} is not shared")
        spec["folder"] = os.path.relpath(theirs, root)
        copies.append(mine)
    # every check passed: point at the shared folders, then remove the copies (a crash between leaves a
    # loadable cascade and a spare folder)
    _write_config(file, config)
    for folder in copies:
        shutil.rmtree(folder)


def update_metadata(path: str | Path, **entries: Any) -> None:
    """Set ``entries`` in the metadata of the cascade folder ``path`` (say, where its vocoder is), atomically."""
    file = Path(path) / CASCADE_FILE
    config = json.loads(file.read_text())
    config["metadata"].update(entries)
    _write_config(file, config)


def _write_config(file: Path, config: dict[str, Any]) -> None:
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, file)


def _contents(file: Path) -> bytes | dict:
    """What a stage file holds: bytes, or a JSON config without where it was loaded from."""
    if file.suffix == ".json":
        return {k: v for k, v in json.loads(file.read_text()).items() if k != "_name_or_path"}
    return file.read_bytes()


def cascade_folders(path: str | Path) -> list[Path]:
    """The stage folders a cascade folder loads from, resolved (what its identity depends on)."""
    root = Path(path)
    config = json.loads((root / CASCADE_FILE).read_text())
    return [stage_folder(root, s).resolve() for s in config["stages"]]


def _step_config(step: Decode | Encode | LatentUpsample) -> dict[str, Any]:
    network = type(step.upsampler if isinstance(step, LatentUpsample) else step.latents.vae)
    kind = {Decode: "decode", Encode: "encode", LatentUpsample: "upsample"}[type(step)]
    return {
        "name": step.name,
        "step": kind,
        "network": f"{network.__module__}:{network.__qualname__}",
        **(
            {"vae": f"{type(step.latents.vae).__module__}:{type(step.latents.vae).__qualname__}"}
            if kind == "upsample"
            else {}
        ),
        "batch_size": step.batch_size,
        "device": step.device,
        "dtype": step.dtype,
        "tiling": step.latents.tiling,
        "slicing": step.latents.slicing,
        **({"size": list(step.size), "resize": step.resize} if isinstance(step, Encode) else {}),
    }


def _sr_config(sr: SuperResolution | LatentUpscale | LatentRefine | None) -> dict[str, Any] | None:
    if sr is None:
        return None
    if isinstance(sr, LatentRefine):
        return {"type": "latent-refine", "strength": sr.strength}
    if isinstance(sr, LatentUpscale):
        return {"type": "latent-upscale", "channels": sr.channels, "noise_level": sr.noise_level,
                "low_res_scheduler": json.loads(sr.low_res_scheduler)}  # fmt: skip
    return {
        "space": sr.space,
        "time": sr.time,
        "residual_scale": sr.residual_scale,
        "max_level": sr.augmentation.max_level,
        "sample_level": sr.augmentation.sample_level,
    }


def _sr_from(sr: dict[str, Any] | None) -> SuperResolution | LatentUpscale | LatentRefine | None:
    if sr is None:
        return None
    if sr.get("type") == "latent-refine":
        return LatentRefine(sr["strength"])
    if sr.get("type") == "latent-upscale":
        return LatentUpscale(sr["channels"], json.dumps(sr["low_res_scheduler"]), sr["noise_level"])
    return SuperResolution(
        sr["space"], sr["time"], NoiseAugmentation(sr["max_level"], sr["sample_level"]), sr["residual_scale"]
    )


def _text_from(folder: Path, spec: dict[str, Any] | None) -> TextEncoder | None:
    if spec is None:
        return None
    settings = TextSettings.from_dict(spec.get("settings", {}))
    projection = folder / spec["projection"] if "projection" in spec else None
    return TextEncoder.from_pretrained(
        folder / spec["encoder"], folder / spec["tokenizer"], settings, projection
    )


def _text_config(text: TextEncoder) -> dict[str, Any]:
    spec: dict[str, Any] = {"encoder": TEXT_ENCODER, "tokenizer": TOKENIZER}
    if text.projection is not None:
        spec["projection"] = PROJECTION
    if text.settings != TextSettings():  # CLIP's folders keep the bytes they had
        spec["settings"] = text.settings.to_dict()
    return spec


def _stage_config(stage: Stage) -> dict[str, Any]:
    denoiser = stage.denoiser
    if isinstance(denoiser, EDMDenoiser):
        kind: dict[str, Any] = {"type": "edm", "sigma_data": denoiser.sigma_data}
    elif isinstance(denoiser, Denoiser):
        kind = {"type": "denoiser", "prediction_type": denoiser.output_type}
    else:
        raise DiffusionError(
            f"stage {stage.name!r}: cannot save a {type(denoiser).__name__}; stages that are saved use "
            "Denoiser or EDMDenoiser"
        )
    network = type(denoiser.network)
    return {
        "name": stage.name,
        "network": f"{network.__module__}:{network.__qualname__}",
        "denoiser": kind,
        "steps": stage.steps,
        "shape": None if stage.shape is None else list(stage.shape),
        "sr": _sr_config(stage.sr),
        "frames": stage.frames,
        "guidance_scale": stage.guidance_scale,
        "guidance_input": stage.guidance_input,
        "batch_size": stage.batch_size,
        "device": stage.device,
        "dtype": stage.dtype,
        # written only when set, so folders of models trained on independent noise keep their bytes
        **({"frame_correlation": stage.frame_correlation} if stage.frame_correlation else {}),
        **({"null": stage.null} if stage.null != "zeros" else {}),
        **({"timesteps": stage.timesteps.to_dict()} if stage.timesteps is not None else {}),
        **({"text_encoder": _text_config(stage.text)} if stage.text is not None else {}),
    }


def _available(device: str) -> str:
    """A saved stage's device, or the CPU where that device is absent (a GPU-trained cascade on a laptop)."""
    return device if not device.startswith("cuda") or torch.cuda.is_available() else "cpu"


def _network_class(spec: str) -> type[nn.Module]:
    module, _, name = spec.partition(":")
    if not module.startswith(_TRUSTED_MODULES):
        raise DiffusionError(
            f"network class {spec!r} is outside legato and diffusers; Legato loads only those network classes"
        )
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.ModelMixin)):
        raise DiffusionError(f"network class {spec!r} is not a diffusers ModelMixin")
    return cls


def _stage_from(
    folder: Path, spec: dict[str, Any], device: str | None
) -> Stage | Decode | Encode | LatentUpsample:
    if not folder.is_dir():
        raise FileNotFoundError(f"stage folder {folder} is missing; the cascade folder is incomplete")
    require_safetensors(folder)
    cls = _network_class(spec["network"])
    network = cls.from_pretrained(folder, use_safetensors=True, **eager_load(cls)).eval()
    own_storage(network)
    if spec.get("step") in ("decode", "encode", "upsample"):
        upsampler = None
        if spec["step"] == "upsample":
            vae_cls = _network_class(spec["vae"])
            require_safetensors(folder / "vae")
            vae = vae_cls.from_pretrained(folder / "vae", use_safetensors=True, **eager_load(vae_cls)).eval()
            upsampler, network = network, vae
            own_storage(network)
        latents = LatentSpace(network, tiling=spec.get("tiling", False), slicing=spec.get("slicing", False))
        where = (
            spec["name"],
            latents,
            spec["batch_size"],
            device or _available(spec["device"]),
            spec["dtype"],
        )
        if spec["step"] == "decode":
            step = Decode(*where)
        elif spec["step"] == "upsample":
            step = LatentUpsample(*where, upsampler=upsampler)
        else:
            step = Encode(*where, size=tuple(spec["size"]), resize=spec.get("resize", "bicubic"))
        return step.to(step.device)
    try:
        scheduler = scheduler_from_config((folder / "scheduler_config.json").read_text())
    except DiffusionError as err:
        raise DiffusionError(f"{folder}: {err}") from None
    kind = spec["denoiser"]
    if kind["type"] == "edm":
        denoiser: nn.Module = EDMDenoiser(network, VPSchedule.from_scheduler(scheduler), kind["sigma_data"])
    else:
        denoiser = Denoiser(network, kind["prediction_type"])
    stage = Stage(
        spec["name"],
        denoiser,
        scheduler,
        spec["steps"],
        shape=None if spec["shape"] is None else tuple(spec["shape"]),
        sr=_sr_from(spec["sr"]),
        frames=spec["frames"],
        guidance_scale=spec["guidance_scale"],
        guidance_input=spec["guidance_input"],
        batch_size=spec["batch_size"],
        frame_correlation=spec.get("frame_correlation", 0.0),
        null=spec.get("null", "zeros"),
        text=_text_from(folder, spec.get("text_encoder")),
        timesteps=Timesteps.from_dict(spec.get("timesteps")),
        device=device or _available(spec["device"]),
        dtype=spec["dtype"],
    )
    return stage.to(stage.device)
