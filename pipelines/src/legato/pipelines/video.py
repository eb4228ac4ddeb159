"""`VideoPipeline`: prompts -> text embeddings -> base video -> temporal SR -> spatial SR -> frames.

::

    pipe = VideoPipeline.from_pretrained("models/video-default", soundtrack="models/music-default")
    videos = pipe(["slow zoom into a cat"], seeds=[0])
    videos[0].save("cat.mp4")          # H.264 with the generated AAC soundtrack

The cascade's samples are ``(C, T, H, W)`` in [-1, 1]; its ``metadata["fps"]`` is the output frame rate.
A soundtrack comes from a `MusicPipeline` given the same prompt and seed, as long as the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from legato.cascade import Cascade, Executor, Item, LocalExecutor, Progress
from legato.diffusion import Conditioning
from legato.pipelines.music import MusicPipeline, as_lists
from legato.pipelines.outputs import VideoClip
from legato.pipelines.text import TextEncoder, load_pipeline_cascade


@dataclass(frozen=True, eq=False)
class VideoPipeline:
    """A video cascade, its frame rate and text encoder, and optionally a music pipeline for soundtracks."""

    cascade: Cascade
    fps: float
    text: TextEncoder
    executor: Executor = field(default_factory=LocalExecutor)
    soundtrack: MusicPipeline | None = None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | None = None,
        executor: Executor | None = None,
        soundtrack: str | Path | MusicPipeline | None = None,
    ) -> VideoPipeline:
        cascade, text = load_pipeline_cascade(path, "video", device)
        meta = cascade.metadata
        if soundtrack is not None and not isinstance(soundtrack, MusicPipeline):
            soundtrack = MusicPipeline.from_pretrained(soundtrack, device=device, executor=executor)
        return cls(cascade, float(meta["fps"]), text, executor or LocalExecutor(), soundtrack)

    def save_pretrained(self, path: str | Path, weights_dtype: str | None = None) -> Path:
        meta = {
            **self.cascade.metadata,
            "pipeline": "video",
            "fps": self.fps,
            "text_encoder": self.text.name,
            "max_tokens": self.text.max_tokens,
        }
        return replace(self.cascade, metadata=meta).save_pretrained(path, weights_dtype)

    @property
    def frames(self) -> int:
        return self.cascade.output_shape()[1]

    def items(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Item]:
        text = self.text(prompts)
        return [Item(f"{i:04d}", s, Conditioning(text=text[i])) for i, s in enumerate(seeds)]

    def __call__(
        self,
        prompts: str | Sequence[str],
        *,
        seeds: int | Sequence[int] | None = None,
        soundtrack: bool = True,
        progress: Progress | None = None,
    ) -> list[VideoClip]:
        """One video per prompt; with a soundtrack pipeline (and ``soundtrack``), each gets music as long
        as it is."""
        prompts, seeds = as_lists(prompts, seeds)
        videos = self.executor.run(self.cascade, self.items(prompts, seeds), progress=progress)
        music = [None] * len(prompts)
        if soundtrack and self.soundtrack is not None:
            music = self.soundtrack(prompts, seeds=seeds, duration=self.frames / self.fps)
        return [
            VideoClip(((v + 1) / 2).clamp(0, 1), self.fps, p, s, m)
            for v, p, s, m in zip(videos, prompts, seeds, music, strict=True)
        ]
