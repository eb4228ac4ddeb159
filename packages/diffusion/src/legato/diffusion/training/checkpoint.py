"""Atomic training checkpoints: safetensors for every tensor, a small JSON for the rest.

Layout of ``<dir>/step-00000100/``::

    model/            save_pretrained of the network (config.json + safetensors), or model.safetensors
    state.safetensors EMA shadow weights, optimizer moments, RNG states
    state.json        step, data position, LR schedule, optimizer groups, EMA counters; written last

A checkpoint is built in a hidden ``.step-...tmp-*`` folder and renamed into place when complete, so a
process killed mid-write leaves only a temporary folder that `latest` never returns. Nothing here loads a
pickle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

_NAME = re.compile(r"^step-(\d{8})$")
MODEL_FILE = "model.safetensors"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def latest(directory: Path) -> Checkpoint | None:
    """The newest complete checkpoint in ``directory`` (one with its ``state.json``), or None."""
    if not directory.is_dir():
        return None
    return max(_complete(directory), key=lambda c: c.step, default=None)


def save_network(network: nn.Module, directory: Path) -> None:
    """diffusers' ``save_pretrained`` (safetensors) where the network has it, else a bare safetensors file."""
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(network, "save_pretrained"):
        # diffusers' to_json_string adds _class_name and _diffusers_version to the live config in place, and a
        # compiled forward that reads self.config guards on its length: put the config back as it was.
        config = getattr(network, "_internal_dict", None)
        kept = type(config)(config) if config is not None else None
        network.save_pretrained(directory, safe_serialization=True)
        if kept is not None:
            network._internal_dict = kept
    else:
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, directory / MODEL_FILE)


def load_network_weights(network: nn.Module, directory: Path) -> None:
    files = sorted(directory.glob("*.safetensors"))
    if len(files) != 1:
        raise FileNotFoundError(
            f"{directory}: expected one .safetensors weights file, found {[f.name for f in files]}"
        )
    network.load_state_dict(load_file(files[0]))


def write(
    directory: Path,
    step: int,
    network: nn.Module,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically, then delete all but the newest ``keep`` complete ones."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=directory))
    try:
        save_network(network, tmp / "model")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp / "state.safetensors")
        with open(tmp / "state.json", "w") as f:
            # default=str: descriptive entries (an objective holding a scheduler) are kept as text
            json.dump({"step": step, **meta}, f, indent=1, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    complete = sorted(_complete(directory), key=lambda c: c.step)
    for old in complete[: max(0, len(complete) - keep)]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def read(checkpoint: Checkpoint) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with open(checkpoint.path / "state.json") as f:
        meta = json.load(f)
    return load_file(checkpoint.path / "state.safetensors"), meta


def _complete(directory: Path) -> list[Checkpoint]:
    out = []
    for child in directory.iterdir():
        match = _NAME.match(child.name)
        if match and (child / "state.json").is_file():
            out.append(Checkpoint(child, int(match.group(1))))
    return out


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer ``state_dict`` as flat tensors plus JSON-able rest."""
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
