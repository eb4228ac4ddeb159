"""Importing diffusers checkpoints as cascade stages: `from_diffusers` and `import_checkpoint`.

A diffusers pipeline folder (``model_index.json`` and a folder per component) becomes stages of a
`legato.cascade.Cascade`, each family as diffusers' own pipeline samples it (`legato.cascade.families`: SD,
the x4 upscaler, ModelScope/Zeroscope and Zeroscope XL, Wan 2.1, LTX-Video and its latent upsampler, Stable
Audio Open).

Several folders chain: ``from_diffusers([sd, x4])`` is the SD -> x4 cascade, ``from_diffusers([zeroscope_576w,
zeroscope_xl], refine_size=(576, 1024))`` the community's 576w -> XL one, ``from_diffusers([ltx, upsampler,
ltx], strength=0.4)`` LTX's multi-scale recipe. `import_checkpoint` writes the result as a Legato model folder
(``legato models import``), which every entry point then loads by path or name. Nothing is downloaded: a hub
id that is not a local folder is refused with what to do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from legato.cascade import Cascade, Decode, Encode, Stage
from legato.cascade.families import (  # noqa: F401  (model_index and the names of families: this module's API too)
    BASES,
    FAMILIES,
    LATENT_INPUTS,
    ImportSettings,
    family_stages,
    model_index,
)

KINDS = ("image", "music", "video")


def from_diffusers(
    folders: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    steps: Sequence[int | None] | None = None,
    guidance: float | None = None,
    metadata: dict[str, Any] | None = None,
    **settings: Any,
) -> Cascade:
    """A cascade of the diffusers folders in order (a base family, then x4 upscalers or video-to-video
    refiners; LTX-Video's multi-scale recipe is ``[ltx, ltx_upsampler, ltx]``: a base pass, the latent
    upsampler, and a refining pass from ``strength`` at the high size). ``steps``: one per folder (None: diffusers' default); ``guidance`` sets the base stage's
    (later stages keep their family's default); ``settings``: the fields of `ImportSettings` (``size``,
    ``frames``, ``refine_size``, ``strength``, ``noise_level``, ``dtype``, ``device``, ``batch_size``)."""
    folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    if not folders:
        raise ValueError("from_diffusers needs at least one diffusers pipeline folder")
    unknown = sorted(set(settings) - {f.name for f in fields(ImportSettings)})
    if unknown:
        raise TypeError(f"from_diffusers got unknown settings {unknown}; see ImportSettings")
    config = ImportSettings(**settings)
    steps = list(steps) if steps is not None else [None] * len(folders)
    if len(steps) != len(folders):
        raise ValueError(f"steps={steps} gives {len(steps)} step counts for {len(folders)} folders")
    names = ["base", *(f"sr{i}" if len(folders) > 2 else "sr" for i in range(1, len(folders)))]
    stages: list[Stage | Decode | Encode] = []
    for i, (folder, name, n) in enumerate(zip(folders, names, steps, strict=True)):
        if (
            stages
            and isinstance(stages[-1], Decode)
            and model_index(folder)[1]["_class_name"] in LATENT_INPUTS
        ):
            stages.pop()  # it takes the previous stage's latents: no decode between them
        previous = Cascade(tuple(stages)).output_shape() if stages else None
        stages += family_stages(folder, name=name, previous=previous, steps=n,
                                guidance=guidance if i == 0 else None, settings=config)  # fmt: skip
    sources = [str(model_index(f)[0]) for f in folders]
    return Cascade(tuple(stages), metadata={"imported_from": sources, **(metadata or {})})


def import_checkpoint(
    folders: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    dest: str | os.PathLike[str],
    *,
    kind: str = "image",
    force: bool = False,
    **settings: Any,
) -> Path:
    """Write the cascade of diffusers ``folders`` (`from_diffusers`, with ``settings``) as a Legato model
    folder at ``dest``, a ``kind`` model: ``"music"`` reads its images as Riffusion spectrograms
    (riffusion-model-v1), ``"video"`` for text-to-video, ``"image"`` otherwise. An existing ``dest`` is
    kept unless ``force``."""
    from legato.codec import RIFFUSION
    from legato.pipelines.folders import STAGE_TEXT

    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; use one of {KINDS}")
    target = Path(dest)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; choose another name, or pass --force to replace it")
    metadata: dict[str, Any] = {"pipeline": kind, "text_encoder": STAGE_TEXT}
    fps = settings.pop("fps", 8)
    cascade = from_diffusers(folders, metadata=metadata, **settings)
    shape = cascade.output_shape()
    channels, height = shape[0], shape[-2]
    if kind == "music" and len(shape) == 2:  # Stable Audio: audio from its decoder; a mel for the pictures
        metadata.update(spectrogram=RIFFUSION.to_dict(), n_iter=32)
    elif kind == "music":
        if len(shape) != 3 or channels != 3:
            raise ValueError(
                "a music model is Stable Audio (StableAudioPipeline) or an image model (StableDiffusionPipeline, "
                "e.g. riffusion-model-v1)"
            )
        # Riffusion's parameters (a checkpoint of another height: as many mel bands); decoded from PGHI phase
        params = RIFFUSION if height == RIFFUSION.n_mels else RIFFUSION.replace(n_mels=height)
        metadata.update(spectrogram=params.to_dict(), image_form="riffusion", n_iter=32, phase="pghi")
    elif kind == "video":
        if len(shape) != 4:
            raise ValueError("a video model starts with a TextToVideoSDPipeline (ModelScope, Zeroscope)")
        metadata["fps"] = fps
    elif len(shape) != 3:
        raise ValueError(
            f"{kind!r} is for image models; import video models with --kind video and Stable Audio with --kind music"
        )
    return replace(cascade, metadata=metadata).save_pretrained(target)
