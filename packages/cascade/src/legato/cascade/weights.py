"""Weights files: only safetensors are loaded (a pickle runs code when loaded), damaged ones are named, and
loaded weights get memory of their own (so a stage computes alike here and in a Ray actor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from legato.diffusion.errors import DiffusionError

PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def require_safetensors(folder: str | Path) -> Path:
    """Refuse a weights folder that holds pickled weights (which run code when loaded) instead of safetensors,
    with how to convert them; Legato loads only safetensors. Returns the folder."""
    folder = Path(folder)
    if any(folder.glob("*.safetensors")):
        for file in sorted(folder.glob("*.safetensors")):
            if problem := weights_problem(file):
                raise DiffusionError(f"{file}: {problem}")
        return folder
    pickles = sorted(f.name for f in folder.iterdir() if f.suffix in PICKLES) if folder.is_dir() else []
    if pickles:
        name = pickles[0]
        raise DiffusionError(
            f"{folder} holds pickled weights {pickles} and no .safetensors; Legato loads only safetensors (a pickle "
            'can run code when loaded). If you trust the file, convert it once: python -c "import torch; from '
            "safetensors.torch import save_file; save_file(torch.load('"
            f"{folder / name}', weights_only=True), '{folder / 'diffusion_pytorch_model.safetensors'}')\""
        )
    raise FileNotFoundError(f"{folder} holds no .safetensors weights; save the model with save_pretrained()")


def weights_problem(file: Path) -> str | None:
    """What is wrong with a safetensors file (a truncated copy, a header that does not parse), or None; read
    without loading the tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="numpy"):
            return None
    except Exception as err:  # safetensors raises its own SafetensorError, and OSError for unreadable files
        return (f"damaged weights ({str(err).strip() or type(err).__name__}, {file.stat().st_size} bytes); restore "
                "the file from where the model came from, or save the model again")  # fmt: skip


def eager_load(cls: type) -> dict[str, Any]:
    """``from_pretrained`` keywords that load every weight into memory of its own, where the class allows it
    (a class with ``_keep_in_fp32_modules``, Wan's transformer, insists on diffusers' lazy loading)."""
    return {"low_cpu_mem_usage": None if getattr(cls, "_keep_in_fp32_modules", None) else False}


def own_storage(network: nn.Module) -> None:
    """Give every parameter and buffer its own allocation. Loaded float32 weights are views into one buffer
    at offsets that are not 64-byte aligned, and CPU kernels round differently on unaligned memory: the same
    network computed 1 float32 ulp apart from its pickled copy (what a Ray actor holds), which cost the
    executors byte equality."""
    with torch.no_grad():
        for tensor in [*network.parameters(), *network.buffers()]:
            tensor.data = tensor.data.clone()
