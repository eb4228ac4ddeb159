"""`CLIPTextEncoder`: an imported checkpoint's own text encoder, owned by its stage.

Each latent diffusion checkpoint was trained with its own encoder (SD 1.x: CLIP ViT-L/14, the x4 upscaler and
SD 2.x: OpenCLIP ViT-H), so a stage of one holds its encoder, on the stage's device and dtype, and encodes its
items' prompts itself (`Item.prompt`, `Item.negative`): two stages of a cascade can read the same prompt with
different encoders. Encoding is what ``StableDiffusionPipeline.encode_prompt`` does (padded to the
tokenizer's length, truncated there, the last hidden states); the empty or negative prompt, encoded the same
way, is guidance's null, as these checkpoints were trained. Nothing is downloaded: folders only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from legato.diffusion.errors import DiffusionError


class CLIPTextEncoder:
    """``encode(prompts)`` -> ``(B, model_max_length, D)`` from a ``CLIPTokenizer`` and ``CLIPTextModel``."""

    def __init__(self, tokenizer, model) -> None:
        self.tokenizer, self.model = tokenizer, model.eval()

    @classmethod
    def from_pretrained(cls, text_encoder: str | Path, tokenizer: str | Path) -> CLIPTextEncoder:
        """From the ``text_encoder/`` and ``tokenizer/`` folders of a diffusers pipeline (safetensors only)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import CLIPTextModel, CLIPTokenizer

        for what, path in (("text encoder", text_encoder), ("tokenizer", tokenizer)):
            if not Path(path).is_dir():
                raise FileNotFoundError(f"{what} folder {path} is missing; the model folder is incomplete")
        if not any(Path(text_encoder).glob("*.safetensors")):
            raise DiffusionError(
                f"{text_encoder} holds no .safetensors weights; Legato loads only safetensors (save the "
                "encoder with save_pretrained(..., safe_serialization=True))"
            )
        tok = CLIPTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        model = CLIPTextModel.from_pretrained(str(text_encoder), local_files_only=True, use_safetensors=True)
        return cls(tok, model)

    def save_pretrained(self, text_encoder: str | Path, tokenizer: str | Path) -> None:
        self.model.save_pretrained(str(text_encoder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(tokenizer))

    def to(self, device: str | torch.device, dtype: torch.dtype) -> CLIPTextEncoder:
        self.model.to(device, dtype)
        return self

    @property
    def max_tokens(self) -> int:
        return int(self.tokenizer.model_max_length)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> Tensor:
        """Prompts (the empty one too) -> ``(B, L, D)`` in the encoder's dtype, on its device."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_tokens,
                                truncation=True, return_tensors="pt")  # fmt: skip
        use_mask = getattr(self.model.config, "use_attention_mask", False)
        mask = tokens.attention_mask.to(device) if use_mask else None
        return self.model(tokens.input_ids.to(device), attention_mask=mask)[0]
