"""Model folders: where model names are found, and loading a pipeline folder's cascade and text encoder.

A model is a folder holding ``cascade.json`` (`legato.cascade.save_cascade`), named by its path or by its name
in the models folders (``music-fast``: ``$LEGATO_MODELS``, ``./models``, the checkout's ``models/``). Every
entry point resolves names here. Resolving reads only files (no torch), so the command line lists and checks
models at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CASCADE_JSON = "cascade.json"
STAGE_TEXT = "stages"  # metadata's text_encoder of imported checkpoints: each stage holds its own  # legato.cascade.CASCADE_FILE, without importing torch


def checkout_models() -> Path:
    """``models/`` of the checkout this package is installed from (editable installs)."""
    return Path(__file__).resolve().parents[4] / "models"


def model_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Where model names are looked up: ``extra``, ``$LEGATO_MODELS`` (``:``-separated), ``./models`` and
    the checkout's ``models/``; existing folders only, each once."""
    env = [Path(p) for p in os.environ.get("LEGATO_MODELS", "").split(os.pathsep) if p]
    found: list[Path] = []
    for folder in [*(extra or []), *env, Path("models"), checkout_models()]:
        folder = folder.expanduser().resolve()
        if folder.is_dir() and folder not in found:
            found.append(folder)
    return found


def read_cascade_json(folder: Path) -> dict:
    """A model folder's ``cascade.json``, parsed."""
    try:
        return json.loads((folder / CASCADE_JSON).read_text())
    except json.JSONDecodeError as err:  # the message the cascade loader gives (a ValueError too)
        from legato.diffusion import DiffusionError  # torch: only on this path (`legato models` needs none)

        raise DiffusionError(
            f"{folder / CASCADE_JSON} is not valid JSON ({err}); restore it, or save the model again with "
            "save_pretrained"
        ) from err
    except OSError as err:
        raise ValueError(
            f"{folder / CASCADE_JSON} cannot be read ({err}); is {folder} a model folder?"
        ) from err


def resolve_model(value: str | os.PathLike[str] | None, kind: str | None) -> tuple[Path, dict]:
    """A model folder (absolute) and its cascade.json, from a folder or a name like ``music-fast``; the
    default is ``<kind>-default``, and a ``kind`` other than the folder's is refused (None: any kind)."""
    value = str(value or f"{kind}-default")
    path = Path(value).expanduser()
    if not (path / CASCADE_JSON).is_file():
        if path.exists():
            raise FileNotFoundError(
                f"{path} is not a model folder (no {CASCADE_JSON}); `legato models` lists the models"
            )
        named = [d / value for d in model_dirs() if (d / value / CASCADE_JSON).is_file()]
        if "/" in value or not named:
            where = ", ".join(map(str, model_dirs())) or "no models folder found"
            raise FileNotFoundError(
                f"no model {value!r}: not a folder, nor a name in {where}; `legato models` lists them"
            )
        path = named[0]
    config = read_cascade_json(path)
    found = config.get("metadata", {}).get("pipeline")
    if kind is not None and found != kind:
        raise ValueError(
            f"{path} is a {found} model, not a {kind} one; choose a {kind} model (`legato models`)"
        )
    return path.resolve(), config


def damaged_weights(folder: Path) -> list[str]:
    """Every damaged safetensors file a model folder loads (its stages, shared stages elsewhere, its vocoder),
    as ``path: problem`` lines; read without torch (the files' headers against their sizes)."""
    from safetensors import safe_open

    config = read_cascade_json(folder)
    folders = [folder / stage.get("folder", stage["name"]) for stage in config.get("stages", [])]
    if vocoder := config.get("metadata", {}).get("vocoder"):
        folders.append(folder / vocoder)
    problems = []
    for file in sorted({f.resolve() for d in folders for f in Path(d).glob("*.safetensors")}):
        try:
            with safe_open(str(file), framework="numpy"):
                pass
        except Exception as err:  # SafetensorError, or OSError for an unreadable file
            problems.append(f"{file}: damaged ({str(err).strip()}, {file.stat().st_size} bytes)")
    return problems


def load_pipeline_cascade(path: str | os.PathLike[str], kind: str, device: str | None):
    """A pipeline folder's (or model name's, `resolve_model`) `Cascade`, checked to be a ``kind`` one, and the
    `TextEncoder` its metadata names (None where its stages hold their own: imported checkpoints)."""
    from legato.cascade import Cascade
    from legato.pipelines.text import DEFAULT_TEXT_ENCODER, TextEncoder

    cascade = Cascade.from_pretrained(resolve_model(path, kind)[0], device=device)
    meta = cascade.metadata
    if meta.get("text_encoder") == STAGE_TEXT:  # an imported checkpoint: each stage encodes with its own
        return cascade, None
    text = TextEncoder(meta.get("text_encoder", DEFAULT_TEXT_ENCODER), max_tokens=meta.get("max_tokens", 16))
    return cascade, text
