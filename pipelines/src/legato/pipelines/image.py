"""`ImagePipeline`: an imported image cascade (an SD 1.x/2.x fine-tune, optionally + the x4 upscaler) as one
call, with img2img, DDIM-inversion edits and inpainting through the VAE (`legato.pipelines.editing`).

::

    pipe = ImagePipeline.from_pretrained("sd-x4")          # a `legato models import ... --kind image` folder
    images = pipe(["a lighthouse at dusk"], seeds=[1], negative="blurry")
    edited = pipe.edit(images[0], "a lighthouse in a storm", strength=0.6)
    filled = pipe.inpaint(images[0], "a red boat", mask="mask.png")       # white: regenerate

Images are PIL images; an edit's input may be a PIL image, a file, or a ``(3, H, W)`` tensor in [-1, 1], of
the cascade's output size. Each edit is sampled as diffusers' img2img and inpainting pipelines sample it
(tests/pipelines/test_checkpoints.py holds them against ``StableDiffusionImg2ImgPipeline`` and
``StableDiffusionInpaintPipeline``); inpainting then puts back the input's pixels outside the mask exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from legato.cascade import Cascade, Executor, LocalExecutor
from legato.pipelines.editing import Editing
from legato.pipelines.folders import load_pipeline_cascade, resolve_model
from legato.pipelines.music import as_lists
from legato.pipelines.text import TextEncoder, prompt_items
from legato.pipelines.vocabulary import PromptCheck, Vocabulary


def to_pil(pixels: Tensor) -> Image.Image:
    """A ``(3, H, W)`` image in [-1, 1] as an 8-bit RGB PIL image (rounded, as diffusers' ``numpy_to_pil``)."""
    unit = ((pixels.detach().float().cpu() + 1) / 2).clamp(0, 1)
    return Image.fromarray((unit.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def from_pil(image: Image.Image) -> Tensor:
    """An RGB PIL image as ``(3, H, W)`` in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1) * 2 - 1


@dataclass
class ImagePipeline(Editing, PromptCheck):
    """An image cascade (its stages encode prompts with their own text encoders) and its executor."""

    cascade: Cascade
    executor: Executor = field(default_factory=LocalExecutor)
    text: TextEncoder | None = None
    vocabulary: Vocabulary | None = None
    output: str = "pil"  # or "tensor": (3, H, W) in [-1, 1], float32, unrounded
    rate: float = 1.0  # editing's time axis is the width: `inpaint(start=, end=)` are pixel columns

    def __post_init__(self) -> None:
        if self.output not in ("pil", "tensor"):
            raise ValueError(f"output={self.output!r}; use 'pil' (8-bit images) or 'tensor' ([-1, 1] floats)")

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | None = None,
        executor: Executor | None = None,
        output: str = "pil",
    ) -> ImagePipeline:
        """Load an image model folder (`legato models import ... --kind image`) or a model by name."""
        path = resolve_model(path, "image")[0]
        cascade, text = load_pipeline_cascade(path, "image", device)
        return cls(cascade, executor or LocalExecutor(), text, output=output)

    @property
    def size(self) -> tuple[int, int]:
        """The cascade's output ``(height, width)``."""
        return tuple(self.cascade.output_shape()[-2:])

    def __call__(
        self, prompts: str | Sequence[str], *, seeds: int | Sequence[int] | None = None, negative: str = ""
    ) -> list[Image.Image] | list[Tensor]:
        """One image per prompt (seeds default to 0, 1, ...), guided away from ``negative``."""
        prompts, seeds = as_lists(prompts, seeds)
        self.check_prompts(prompts)
        items = prompt_items(self.text, prompts, seeds, 0, negative)
        return [self._finish(x, p, s, None) for x, p, s in
                zip(self.executor.run(self.cascade, items), prompts, seeds, strict=True)]  # fmt: skip

    def _load(self, image: Image.Image | Tensor | str | Path) -> Tensor:
        if isinstance(image, Tensor):
            pixels = image.float()
        elif isinstance(image, Image.Image):
            pixels = from_pil(image)
        else:
            with Image.open(image) as opened:
                pixels = from_pil(opened)
        if tuple(pixels.shape) != (3, *self.size):
            raise ValueError(
                f"an image of shape {tuple(pixels.shape)}; this model edits (3, {self.size[0]}, {self.size[1]}) "
                f"images: resize it to {self.size[1]}x{self.size[0]} (width x height) first"
            )
        return pixels

    def _finish(self, pixels: Tensor, prompt: str, seed: int, source: object) -> Image.Image | Tensor:
        return pixels if self.output == "tensor" else to_pil(pixels)
