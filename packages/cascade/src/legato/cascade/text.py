"""`TextEncoder`: an imported checkpoint's own text encoder, owned by its stage.

Each latent diffusion checkpoint was trained with its own encoder (SD 1.x: CLIP ViT-L/14; the x4 upscaler and
SD 2.x: OpenCLIP ViT-H; LTX-Video and Stable Audio: T5; Wan: UMT5), so a stage of one holds its encoder, on
the stage's device and dtype, and encodes its items' prompts itself (`Item.prompt`, `Item.negative`): two
stages of a cascade can read the same prompt with different encoders. The empty or negative prompt, encoded
the same way, is guidance's null, as these checkpoints were trained.

Encoding is what the family's diffusers pipeline does, recorded as `TextSettings` (saved with the stage):
prompts padded to ``max_tokens`` and truncated there, then the last hidden states, and

- ``clean``: Wan's ``prompt_clean`` first (HTML entities unescaped, whitespace collapsed);
- ``encoder_mask``: the attention mask given to the encoder (T5 and UMT5; CLIP only where its config says);
- ``zero_padding``: the states past each prompt's last token set to zero (Wan);
- ``network_mask``: the attention mask handed on to the denoiser (`Conditioning.text_mask`; LTX-Video);
- ``seconds``: Stable Audio's timing, ``(start, total)`` seconds, embedded by its projection model (a
  ``StableAudioProjectionModel``, the encoder's ``projection``) into two tokens after the prompt's and, side by
  side, the DiT's global conditioning (`Conditioning.pooled`). An empty negative prompt is no negative prompt
  there: the unconditional states are zeros, as ``StableAudioPipeline`` makes them without one.

Nothing is downloaded: folders only.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from legato.diffusion import Conditioning
from legato.diffusion.errors import DiffusionError

# the transformers encoder classes a folder may name (its config's ``architectures``)
ENCODERS = ("CLIPTextModel", "T5EncoderModel", "UMT5EncoderModel")


@dataclass(frozen=True)
class TextSettings:
    """How a family's pipeline encodes prompts (see the module's docstring); ``max_tokens=None`` takes the
    tokenizer's ``model_max_length``."""

    max_tokens: int | None = None
    clean: bool = False
    encoder_mask: bool | None = None  # None: CLIP's config decides (use_attention_mask)
    zero_padding: bool = False
    network_mask: bool = False
    seconds: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = None if self.seconds is None else list(self.seconds)
        return out

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> TextSettings:
        spec = dict(spec)
        if spec.get("seconds") is not None:
            spec["seconds"] = tuple(spec["seconds"])
        return cls(**spec)


class TextEncoder:
    """A stage's own prompt encoder: `conditioning(prompts, negatives)` -> the stage's text conditioning
    (`encode_with_mask`: ``(B, max_tokens, D)`` states and their mask), from a tokenizer and a transformers encoder."""

    def __init__(self, tokenizer, model, settings: TextSettings = TextSettings(), projection=None) -> None:
        self.tokenizer, self.model, self.settings = tokenizer, model.eval(), settings
        self.projection = None if projection is None else projection.eval()
        if (projection is None) != (settings.seconds is None):
            raise DiffusionError("a projection model and seconds= go together (Stable Audio's conditioning)")

    @classmethod
    def from_pretrained(
        cls,
        text_encoder: str | Path,
        tokenizer: str | Path,
        settings: TextSettings = TextSettings(),
        projection: str | Path | None = None,
    ) -> TextEncoder:
        """From the ``text_encoder/`` and ``tokenizer/`` folders of a diffusers pipeline (safetensors only),
        and Stable Audio's ``projection_model/``."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import transformers
        from transformers import AutoConfig, AutoTokenizer

        for what, path in (("text encoder", text_encoder), ("tokenizer", tokenizer)):
            if not Path(path).is_dir():
                raise FileNotFoundError(f"{what} folder {path} is missing; the model folder is incomplete")
        if not any(Path(text_encoder).glob("*.safetensors")):
            raise DiffusionError(
                f"{text_encoder} holds no .safetensors weights; Legato loads only safetensors (save the "
                "encoder with save_pretrained(..., safe_serialization=True))"
            )
        config = AutoConfig.from_pretrained(str(text_encoder), local_files_only=True)
        name = next(iter(config.architectures or []), None)
        if name not in ENCODERS:
            raise DiffusionError(f"{text_encoder} holds a {name}; Legato loads the text encoders {ENCODERS}")
        model = getattr(transformers, name).from_pretrained(
            str(text_encoder), local_files_only=True, use_safetensors=True
        )
        tok = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        proj = None
        if projection is not None:
            from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

            if not any(Path(projection).glob("*.safetensors")):
                raise DiffusionError(
                    f"{projection} holds no .safetensors weights; Legato loads only safetensors"
                )
            proj = StableAudioProjectionModel.from_pretrained(
                str(projection), use_safetensors=True, low_cpu_mem_usage=False
            )
        return cls(tok, model, settings, proj)

    def save_pretrained(
        self, text_encoder: str | Path, tokenizer: str | Path, projection: str | Path | None = None
    ) -> None:
        self.model.save_pretrained(str(text_encoder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(tokenizer))
        if self.projection is not None:
            if projection is None:
                raise DiffusionError("this encoder has a projection model: give the folder to save it in")
            self.projection.save_pretrained(str(projection), safe_serialization=True)

    def to(self, device: str | torch.device, dtype: torch.dtype) -> TextEncoder:
        self.model.to(device, dtype)
        if self.projection is not None:
            self.projection.to(device, dtype)
        return self

    @property
    def max_tokens(self) -> int:
        return int(self.settings.max_tokens or self.tokenizer.model_max_length)

    @property
    def dim(self) -> int:
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.d_model)

    @torch.no_grad()
    def encode_with_mask(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Prompts (the empty one too) -> ``(B, L, D)`` states in the encoder's dtype, on its device, and the
        ``(B, L)`` attention mask of their tokens."""
        settings = self.settings
        device = next(self.model.parameters()).device
        texts = [_clean(p) for p in prompts] if settings.clean else list(prompts)
        tokens = self.tokenizer(texts, padding="max_length", max_length=self.max_tokens, truncation=True,
                                add_special_tokens=True, return_attention_mask=True, return_tensors="pt")  # fmt: skip
        mask = tokens.attention_mask.to(device)
        use_mask = settings.encoder_mask
        if use_mask is None:
            use_mask = getattr(self.model.config, "use_attention_mask", False)
        states = self.model(tokens.input_ids.to(device), attention_mask=mask if use_mask else None)[0]
        if settings.zero_padding:
            lengths = mask.gt(0).sum(dim=1)
            keep = torch.arange(states.shape[1], device=device)[None] < lengths[:, None]
            states = states * keep[..., None].to(states.dtype)
        return states, mask

    def conditioning(self, prompts: Sequence[str], negatives: Sequence[str]) -> Conditioning:
        """The prompts' and the negative prompts' embeddings (float32, on the CPU) as a stage's conditioning;
        with ``network_mask``, their attention masks too."""
        if self.projection is not None:
            return self._stable_audio(prompts, negatives)
        states, mask = self.encode_with_mask([*prompts, *negatives])
        states, mask = states.float().cpu(), mask.cpu()
        n = len(prompts)
        if self.settings.network_mask:
            return Conditioning(
                text=states[:n], negative=states[n:], text_mask=mask[:n], negative_mask=mask[n:]
            )
        return Conditioning(text=states[:n], negative=states[n:])

    @torch.no_grad()
    def _stable_audio(self, prompts: Sequence[str], negatives: Sequence[str]) -> Conditioning:
        """``StableAudioPipeline.encode_prompt`` and ``encode_duration``: projected T5 states (zero past each
        prompt), then the start and total seconds' tokens; the seconds side by side as the global input."""
        states, mask = self.encode_with_mask([*prompts, *negatives])
        states = self.projection(text_hidden_states=states).text_hidden_states
        states = states * mask.unsqueeze(-1).to(states.dtype)
        n, device = len(prompts), states.device
        start, total = self.settings.seconds
        seconds = self.projection(start_seconds=torch.full((n,), float(start), device=device),
                                  end_seconds=torch.full((n,), float(total), device=device))  # fmt: skip
        first, last = seconds.seconds_start_hidden_states, seconds.seconds_end_hidden_states
        text = torch.cat([states[:n], first, last], dim=1)
        negative = torch.cat([states[n:], first, last], dim=1)
        empty = torch.tensor([not neg for neg in negatives], device=device)
        negative = torch.where(empty[:, None, None], torch.zeros_like(negative), negative)
        pooled = torch.cat([first, last], dim=2)
        return Conditioning(text=text, negative=negative, pooled=pooled).map(lambda v: v.float().cpu())


def _clean(text: str) -> str:
    """Wan's ``prompt_clean`` (without ftfy, which diffusers uses only where it is installed)."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text)).strip()).strip()
