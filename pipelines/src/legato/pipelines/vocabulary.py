"""What a model was trained on, and the check that says when a prompt is far from all of it.

A model folder may hold ``vocabulary.json``: the words its training captions were made of, by kind
(``{"styles": [...], "instruments": [...]}``), the captions themselves (or a sample that covers every
word), and the similarity under which a prompt counts as far from them. A bundled model answers any prompt
with material from its training set, so "lofi hip hop beat" gets an organ drone; the check turns that
silence into a `PromptWarning` that names what the model knows.

Far means: the prompt's sentence embedding (the pipeline's own text encoder, mean-pooled and normalised) has
cosine similarity under ``threshold`` with every caption. Measured with all-MiniLM-L6-v2 on the bundled
models' captions: in-vocabulary prompts and paraphrases score 0.51-1.0 ("a jig on fiddle" 0.60, "une
gigue à la flûte" 0.51, "a camera move over a photo" 0.55), prompts from outside 0.16-0.44 ("heavy metal
guitar solo" 0.41, "a dancer spinning" 0.44); the default threshold 0.47 lies between.

The file is documentation of the training data, like the model card: it does not change what the model
makes, so it is left out of the model's hash (`legato.pipelines.jobs.model_hash`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VOCABULARY_FILE = "vocabulary.json"
THRESHOLD = 0.47


class PromptWarning(UserWarning):
    """A prompt far from every caption the model was trained on: expect material from its training set."""


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """``terms`` by kind, the training ``captions``, and the similarity under which a prompt is far."""

    terms: dict[str, list[str]]
    captions: list[str]
    threshold: float = THRESHOLD
    _embedded: dict[str, Any] = field(default_factory=dict, repr=False)  # text encoder -> caption embeddings

    def __post_init__(self) -> None:
        if not self.captions:
            raise ValueError("a vocabulary needs at least one training caption")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold={self.threshold!r} must lie in (0, 1); {THRESHOLD} is measured")

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Vocabulary | None:
        """The vocabulary in ``folder``, or None where it has none."""
        data = read_vocabulary(folder)
        if data is None:
            return None
        return cls({k: list(v) for k, v in data["terms"].items()}, list(data["captions"]),
                   float(data.get("threshold", THRESHOLD)))  # fmt: skip

    def save(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder) / VOCABULARY_FILE
        data = {"terms": self.terms, "captions": self.captions, "threshold": self.threshold}
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        return path

    def summary(self) -> str:
        """``"styles: chorale, reel; instruments: piano, organ"``."""
        return describe_terms(self.terms)

    def far(self, prompts: Sequence[str], text: Any) -> list[str]:
        """A message for each distinct prompt of ``prompts`` that is far from every training caption, as
        ``text`` (a `TextEncoder`) embeds them."""
        unique = list(dict.fromkeys(prompts))
        if not unique:
            return []
        key = str(text.path)
        if key not in self._embedded:
            self._embedded[key] = text.sentences(self.captions)
        scores = text.sentences(unique) @ self._embedded[key].T
        best, nearest = scores.max(dim=1)
        return [
            f"prompt {prompt!r} is far from everything this model was trained on (closest caption "
            f"{self.captions[int(i)]!r}, similarity {float(s):.2f} < {self.threshold:g}); expect material from "
            f"its training set. It knows {self.summary()}"
            for prompt, s, i in zip(unique, best, nearest, strict=True)
            if float(s) < self.threshold
        ]

    def warn(self, prompts: Sequence[str], text: Any) -> list[str]:
        """`far`, each message also issued as a `PromptWarning` (for callers of the Python API)."""
        messages = self.far(prompts, text)
        for message in messages:
            warnings.warn(message, PromptWarning, stacklevel=3)
        return messages


def read_vocabulary(folder: str | os.PathLike[str]) -> dict | None:
    """``folder``'s vocabulary.json as read (no torch: `legato models` lists it at once), or None."""
    path = Path(folder) / VOCABULARY_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data.get("terms"), dict) or not isinstance(data.get("captions"), list):
            raise ValueError("needs 'terms' (an object) and 'captions' (a list)")
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} is not a vocabulary file ({err}); remove it or write it again") from None
    return data


def describe_terms(terms: dict[str, list[str]]) -> str:
    return "; ".join(f"{kind}: {', '.join(words)}" for kind, words in terms.items())


class PromptCheck:
    """`check_prompts` for a pipeline with a ``vocabulary`` (or None) and a ``text`` encoder."""

    vocabulary: Vocabulary | None
    text: Any

    def check_prompts(self, prompts: Sequence[str], *, warn: bool = True) -> list[str]:
        """Messages for the prompts far from what the model was trained on (see the module), each issued as
        a `PromptWarning` too unless ``warn=False``; none where the model has no vocabulary."""
        from legato.pipelines.text import check_prompt

        for prompt in prompts:  # a bad prompt is an error before it is a warning
            check_prompt(prompt)
        if self.vocabulary is None:
            return []
        return self.vocabulary.warn(prompts, self.text) if warn else self.vocabulary.far(prompts, self.text)
