"""`VideoPipeline`: prompts -> text embeddings -> base video -> temporal SR -> spatial SR -> frames.

::

    pipe = VideoPipeline.from_pretrained("models/video-default", soundtrack="models/music-default")
    videos = pipe(["slow zoom into a cat"], seeds=[0])
    videos[0].save("cat.mp4")          # H.264 with the generated AAC soundtrack

    longer = pipe(["slow zoom into a cat"], frames=48)   # windows continued from their last frames
    edited = pipe.edit("cat.mp4", "a rocket at night", strength=0.5)      # also invert_edit, inpaint

The cascade's samples are ``(C, T, H, W)`` in [-1, 1]; its ``metadata["fps"]`` is the output frame rate.
More frames than one window come window by window, each continuing the last quarter of the one before
(`legato.pipelines.continuation`); edits come from `legato.pipelines.editing`, as for music. A soundtrack comes
from a `MusicPipeline` given the same prompt and seed, as long as the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from legato.cascade import Cascade, Executor, Item, LocalExecutor, Progress
from legato.codec.master import DEFAULT_MASTERING, Mastering
from legato.pipelines.continuation import (
    aligned_trim,
    continue_latents,
    continue_windows,
    overlap_positions,
    whole_decoder,
)
from legato.pipelines.editing import Editing
from legato.pipelines.folders import load_pipeline_cascade, resolve_model
from legato.pipelines.music import MusicPipeline, as_lists
from legato.pipelines.outputs import Soundtrack, VideoClip
from legato.pipelines.text import TextEncoder, prompt_items
from legato.pipelines.vocabulary import PromptCheck, Vocabulary
from legato.video import Video, read_soundtrack, read_video


@dataclass(frozen=True, eq=False)
class VideoPipeline(Editing, PromptCheck):
    """A video cascade, its frame rate and text encoder, and optionally a music pipeline for soundtracks."""

    cascade: Cascade
    fps: float
    text: TextEncoder | None  # None: the stages encode prompts themselves (imported checkpoints)
    executor: Executor = field(default_factory=LocalExecutor)
    soundtrack: MusicPipeline | None = None
    vocabulary: Vocabulary | None = None  # what it was trained on: prompts far from it get a PromptWarning
    # Reconstruction guidance of the base stage on continued windows (`legato.diffusion.sample`): the new
    # frames are steered to agree with the kept ones, instead of only being pasted after them. Measured on
    # video-fast (docs/pipelines.md), with the trim and realign: 4 takes the largest join from 1.2-1.6x the
    # clip's p90 frame difference to 1.01-1.04x; 0 turns it off.
    join_guidance: float = 4.0

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | None = None,
        executor: Executor | None = None,
        soundtrack: str | Path | MusicPipeline | None = None,
        mastering: Mastering | None = DEFAULT_MASTERING,
    ) -> VideoPipeline:
        """Load a cascade folder or a model by name; ``soundtrack`` (a music model's folder or name, or a
        `MusicPipeline`) gives each video music as long as it is, finished by ``mastering`` (44.1 kHz stereo
        at -14 LUFS by default; None: the music model's raw output) where it is loaded here."""
        path = resolve_model(path, "video")[0]
        cascade, text = load_pipeline_cascade(path, "video", device)
        meta = cascade.metadata
        if soundtrack is not None and not isinstance(soundtrack, MusicPipeline):
            soundtrack = MusicPipeline.from_pretrained(
                soundtrack, device=device, executor=executor, mastering=mastering
            )
        return cls(cascade, float(meta["fps"]), text, executor or LocalExecutor(), soundtrack,
                   Vocabulary.load(path))  # fmt: skip

    def save_pretrained(self, path: str | Path, weights_dtype: str | None = None) -> Path:
        meta = {**self.cascade.metadata, "pipeline": "video", "fps": self.fps}
        if self.text is not None:
            meta.update(text_encoder=self.text.name, max_tokens=self.text.max_tokens)
        out = replace(self.cascade, metadata=meta).save_pretrained(path, weights_dtype)
        if self.vocabulary is not None:
            self.vocabulary.save(path)
        return out

    @property
    def frames(self) -> int:
        """Frames per window (the cascade's output length)."""
        return self.cascade.output_shape()[1]

    @property
    def rate(self) -> float:
        """Frames per second (editing's time axis)."""
        return self.fps

    def items(self, prompts: Sequence[str], seeds: Sequence[int], negative: str = "") -> list[Item]:
        return prompt_items(self.text, prompts, seeds, 0, negative)

    def __call__(
        self,
        prompts: str | Sequence[str],
        *,
        seeds: int | Sequence[int] | None = None,
        frames: int | None = None,
        soundtrack: bool = True,
        progress: Progress | None = None,
        negative: str = "",
    ) -> list[VideoClip]:
        """One video per prompt, ``frames`` long (default: one window); with a soundtrack pipeline (and
        ``soundtrack``), each gets music as long as it is. ``negative``: what guidance steers away from."""
        prompts, seeds = as_lists(prompts, seeds)
        self.check_prompts(prompts)
        total = self.frames if frames is None else frames
        if not isinstance(total, int) or total < 1:
            raise ValueError(f"frames={frames!r}; give a positive whole number of frames")
        items = self.items(prompts, seeds, negative)
        cascade = self.cascade
        if whole_decoder(cascade) is not None:  # Wan, LTX: continued in latent space, decoded once
            videos = continue_latents(self.executor, cascade, items, total, progress)
        else:
            keep = overlap_positions(self.cascade, None)
            if total > self.frames and self.join_guidance:  # the first window keeps nothing: unchanged by it
                base = replace(cascade.stages[0], reconstruction=self.join_guidance)
                cascade = replace(cascade, stages=(base, *cascade.stages[1:]))
            trim = aligned_trim(cascade)
            videos = continue_windows(
                self.executor, cascade, items, total, keep, progress, trim=trim, realign=trim > 0
            )
        music = [None] * len(prompts)
        if soundtrack and self.soundtrack is not None:
            music = self.soundtrack(prompts, seeds=seeds, duration=total / self.fps)
        return [
            VideoClip(((v + 1) / 2).clamp(0, 1), self.fps, p, s, m)
            for v, p, s, m in zip(videos, prompts, seeds, music, strict=True)
        ]

    # -- editing (legato.pipelines.editing) -----------------------------------------------------------------

    def encode(self, video: Video | Tensor | str | Path) -> Tensor:
        """A video (a file, a `Video`, or frames ``(T, 3, H, W)`` in [0, 1] at the pipeline's frame rate) as
        a sample of this cascade: ``(3, T, H, W)`` in [-1, 1], re-timed to its fps (nearest frame) and
        scaled and centre-cropped to its frame size."""
        if isinstance(video, Tensor):
            video = Video(video, self.fps)
        elif not isinstance(video, Video):
            video = read_video(video, with_audio=False)
        frames = video.frames.float()
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"video frames of shape {tuple(frames.shape)}; give (T, 3, H, W) in [0, 1]")
        fps = video.fps or self.fps  # a file without a frame rate: taken as the pipeline's
        count = max(1, int(frames.shape[0] * self.fps / fps + 1e-6))
        frames = frames[(torch.arange(count) * fps / self.fps).long().clamp_max(frames.shape[0] - 1)]
        height, width = self.cascade.output_shape()[-2:]
        scale = max(height / frames.shape[-2], width / frames.shape[-1])
        size = (max(height, round(frames.shape[-2] * scale)), max(width, round(frames.shape[-1] * scale)))
        frames = torch.nn.functional.interpolate(frames, size=size, mode="bilinear", antialias=True)
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
        frames = frames[..., top : top + height, left : left + width]
        return (frames.clamp(0, 1) * 2 - 1).transpose(0, 1).contiguous()

    def _load(self, video: Video | Tensor | str | Path) -> Tensor:
        return self.encode(video)

    def _finish(self, video: Tensor, prompt: str, seed: int, source: object) -> VideoClip:
        """The edited frames, with the source's soundtrack (cut to their length) where it has one."""
        track = None
        if isinstance(source, Video) and source.audio is not None:
            track = (source.audio, source.sample_rate)
        elif isinstance(source, str | Path):
            track = read_soundtrack(source)
        soundtrack = None
        if track is not None:
            audio, rate = track
            soundtrack = Soundtrack(audio[:, : round(video.shape[1] / self.fps * rate)], rate)
        return VideoClip(((video + 1) / 2).clamp(0, 1), self.fps, prompt, seed, soundtrack)
