"""`MusicPipeline`: prompts -> text embeddings -> a mel-spectrogram cascade -> inversion -> audio.

::

    pipe = MusicPipeline.from_pretrained("models/music-default")
    clips = pipe(["a jig on fiddle", "ragtime piano"], seeds=[0, 1], duration=30.0)
    clips[0].save("jig.wav"); clips[0].save("jig.png")
    edited = pipe.edit(clips[1].audio, "a slow chorale on organ", strength=0.6)

The cascade works on mel "images" in [-1, 1] (``2 * unit - 1`` of `legato.codec.MelCodec`): bands as height,
time as width. Any duration comes from windows of the cascade's fixed width: window ``k`` is generated with
the last ``overlap`` frames of window ``k - 1`` as a prefix that every stage keeps (outpainting), so the
join is the model continuing the music, and the whole spectrogram is then inverted to audio at once, so the
phase runs on across joins (`legato.pipelines.continuation`). Edits (img2img, DDIM inversion with a new prompt,
inpainting a time range or a mask) run window by window and are joined by crossfades of the mel images
(`legato.pipelines.editing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from legato.cascade import Cascade, Executor, Item, LocalExecutor, Progress, require_safetensors
from legato.codec import MelCodec, SpectrogramParams, check_phase, read_audio
from legato.codec.master import DEFAULT_MASTERING, Mastering, master, resample
from legato.codec.riffusion import DEFAULT_MAX_VALUE, riffusion_pixels, unit_from_pixels
from legato.codec.vocoder import Vocoder
from legato.pipelines.continuation import continue_latents, continue_windows, overlap_positions, whole_decoder
from legato.pipelines.editing import Editing
from legato.pipelines.folders import load_pipeline_cascade, resolve_model
from legato.pipelines.interpolate import Interpolation, interpolate
from legato.pipelines.outputs import AudioClip
from legato.pipelines.text import TextEncoder, prompt_items
from legato.pipelines.vocabulary import PromptCheck, Vocabulary

# The fraction of each window's overlap that crossfades into the next window (Item.fade). With the prefix
# kept exactly (0), the bundled model's joins were the largest mel changes of a 30 s clip; faded over the
# whole overlap they sit inside the clip's own spread (tests/pipelines/test_long_music.py).
JOIN_FADE = 1.0


def as_lists(prompts: str | Sequence[str], seeds: int | Sequence[int] | None) -> tuple[list[str], list[int]]:
    """Prompts and seeds as equal-length lists (seeds default to 0, 1, 2, ...)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("prompts is empty; pass a prompt or a list of prompts")
    if seeds is None:
        seeds = list(range(len(prompts)))
    elif isinstance(seeds, int):
        seeds = [seeds + i for i in range(len(prompts))]
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one seed per prompt")
    return prompts, seeds


@dataclass(frozen=True, eq=False)
class MusicPipeline(Editing, PromptCheck):
    """A mel-spectrogram cascade with its spectrogram parameters and text encoder.

    ``executor`` runs the cascade (`LocalExecutor` by default; a ``RayExecutor`` spreads its stages over a
    Ray cluster with the same results). The mel becomes audio through ``vocoder`` (a `Vocoder` trained on
    these spectrogram parameters) where there is one, else by `MelCodec.audio` (``n_iter`` Griffin-Lim
    iterations from ``phase``); ``mastering`` (a `Mastering`: rate, stereo, loudness, true peak) finishes
    each clip: by default 44.1 kHz stereo at -14 LUFS with true peak under -1 dBTP, what listeners expect of
    a music generator; ``mastering=None`` gives the model's raw output (mono at its own rate, unnormalised).
    """

    cascade: Cascade
    params: SpectrogramParams
    text: TextEncoder | None  # None: the stages encode prompts with their own encoders (imported checkpoints)
    executor: Executor = field(default_factory=LocalExecutor)
    n_iter: int = 32
    vocoder: Vocoder | None = None
    mastering: Mastering | None = DEFAULT_MASTERING
    vocabulary: Vocabulary | None = None  # what it was trained on: prompts far from it get a PromptWarning
    phase: str = "zero"  # Griffin-Lim's start: "zero" or "pghi" (imported Riffusion checkpoints' default)

    def __post_init__(self) -> None:
        check_phase(self.phase)
        if self.vocoder is not None:
            self.vocoder.check_params(self.params)

    # -- files ---------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | None = None,
        executor: Executor | None = None,
        inversion: str = "auto",
        mastering: Mastering | None = DEFAULT_MASTERING,
    ) -> MusicPipeline:
        """Load a cascade folder, or a model by name (``"music-fast"``: `legato.pipelines.folders`).
        ``inversion``: "auto" (the folder's vocoder where its ``cascade.json`` names one, else Griffin-Lim),
        "griffin-lim", or the path of a `Vocoder` folder."""
        path = resolve_model(path, "music")[0]
        cascade, text = load_pipeline_cascade(path, "music", device)
        meta = cascade.metadata
        params = SpectrogramParams.from_dict(meta["spectrogram"])
        where = {"auto": meta.get("vocoder"), "griffin-lim": None}.get(inversion, inversion)
        vocoder = None
        if where is not None:
            folder = Path(path) / where if inversion == "auto" else Path(where)
            if not (folder / "config.json").is_file():
                raise FileNotFoundError(
                    f"vocoder folder {folder} has no config.json; pass inversion='griffin-lim' or the folder "
                    "of a Vocoder saved with save_pretrained"
                )
            vocoder = Vocoder.from_pretrained(
                require_safetensors(folder),
                torch_dtype=torch.float32,
                low_cpu_mem_usage=False,
                use_safetensors=True,
            ).eval()
        return cls(cascade, params, text, executor or LocalExecutor(), meta.get("n_iter", 32), vocoder, mastering,
                   Vocabulary.load(path), meta.get("phase", "zero"))  # fmt: skip

    def save_pretrained(self, path: str | Path, weights_dtype: str | None = None) -> Path:
        """The cascade folder; a vocoder goes into its ``vocoder/`` sub-folder and is named in cascade.json."""
        meta = {
            **{k: v for k, v in self.cascade.metadata.items() if k not in ("vocoder", "phase")},
            "pipeline": "music",
            "spectrogram": self.params.to_dict(),
            "n_iter": self.n_iter,
            **({"phase": self.phase} if self.phase != "zero" else {}),  # folders from before it stay the same
        }
        if self.text is not None:
            meta.update(text_encoder=self.text.name, max_tokens=self.text.max_tokens)
        if self.vocoder is not None:
            meta["vocoder"] = "vocoder"
        out = replace(self.cascade, metadata=meta).save_pretrained(path, weights_dtype)
        if self.vocoder is not None:
            self.vocoder.save_pretrained(Path(path) / "vocoder")
        if self.vocabulary is not None:
            self.vocabulary.save(path)
        return out

    # -- geometry ------------------------------------------------------------------------------------------

    @property
    def codec(self) -> MelCodec:
        return MelCodec(self.params)

    @property
    def window(self) -> int:
        """Frames per window (the cascade's output width)."""
        return self.cascade.output_shape()[-1]

    @property
    def window_seconds(self) -> float:
        return self.params.seconds(self.window)

    def overlap_frames(self, overlap: float | None) -> int:
        """``overlap`` seconds as frames, rounded to a multiple of the stages' factor (default: a quarter
        window)."""
        try:
            return overlap_positions(self.cascade, None if overlap is None else round(overlap * self.rate))
        except ValueError as err:
            raise ValueError(
                f"overlap={overlap} s: {err} ({self.window_seconds:.2f} s); use about a quarter of it"
            ) from None

    # -- generation ----------------------------------------------------------------------------------------

    def items(
        self, prompts: Sequence[str], seeds: Sequence[int], window: int = 0, negative: str = ""
    ) -> list[Item]:
        return prompt_items(self.text, prompts, seeds, window, negative)

    def __call__(
        self,
        prompts: str | Sequence[str],
        *,
        seeds: int | Sequence[int] | None = None,
        duration: float | None = None,
        overlap: float | None = None,
        fade: float = JOIN_FADE,
        progress: Progress | None = None,
        negative: str = "",
    ) -> list[AudioClip]:
        """One clip per prompt, ``duration`` seconds long (default: one window), seeded per item; longer
        clips join windows that continue the last ``overlap`` seconds, of which ``fade`` (a fraction)
        crossfades into the new window (see `legato.pipelines.continuation.continue_windows`).
        ``negative``: what guidance steers away from (the negative prompt)."""
        prompts, seeds = as_lists(prompts, seeds)
        self.check_prompts(prompts)
        mels = self.generate(prompts, seeds, duration=duration, overlap=overlap, fade=fade, progress=progress,
                             negative=negative)  # fmt: skip
        samples = None if duration is None else round(duration * self.params.sample_rate)
        return [self.clip(m, p, s, samples) for m, p, s in zip(mels, prompts, seeds, strict=True)]

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        duration: float | None = None,
        overlap: float | None = None,
        fade: float = JOIN_FADE,
        progress: Progress | None = None,
        negative: str = "",
    ) -> list[Tensor]:
        """The mel images ``(C, n_mels, frames)`` in [-1, 1], one per prompt, long enough for ``duration`` (a
        model that makes audio itself, Stable Audio: the audio ``(2, samples)``)."""
        if duration is not None and not duration > 0:
            raise ValueError(f"duration={duration!r} must be a positive number of seconds")
        if self.audio_rate is not None:  # Stable Audio: audio from the decoder, continued in latent space
            total = self.window if duration is None else round(duration * self.audio_rate)
            items = self.items(prompts, seeds, negative=negative)
            return continue_latents(self.executor, self.cascade, items, total, progress, fade=fade)
        total = self.window
        if duration is not None:
            total = self.params.num_frames(round(duration * self.params.sample_rate))
        keep = self.overlap_frames(overlap)
        return continue_windows(
            self.executor,
            self.cascade,
            self.items(prompts, seeds, negative=negative),
            total,
            keep,
            progress,
            fade,
        )

    @property
    def audio_rate(self) -> int | None:
        """The sample rate of a model that makes audio itself (Stable Audio's decoder), else None (mels)."""
        decoder = whole_decoder(self.cascade)
        if decoder is None or not decoder.latents.is_audio:
            return None
        return int(decoder.latents.vae.config.sampling_rate)

    def clip(self, mel: Tensor, prompt: str, seed: int, samples: int | None = None) -> AudioClip:
        """Invert a mel image in [-1, 1] to an `AudioClip` (``samples`` long, default from its frames); a
        model's own audio (`audio_rate`) is taken as it is, with its mel computed for the picture."""
        if self.audio_rate is not None:
            return self._audio_clip(mel, prompt, seed, samples)
        unit = unit_from_pixels(mel) if self.riffusion else ((mel.float() + 1) / 2).clamp(0, 1)
        # a model's image has no spectrogram max (per-image params: Riffusion's): Riffusion's default level,
        # then a peak of 0.5; the loudness is mastering's to set
        level = DEFAULT_MAX_VALUE if self.params.reference is None else None
        if self.vocoder is not None:
            with torch.inference_mode():
                audio = self.vocoder(unit.to(self.vocoder.device), length=samples).float().cpu()
        else:
            spectrogram = (codec := self.codec).from_unit(unit, level)  # one MelCodec built per clip
            audio = codec.audio(spectrogram, n_iter=self.n_iter, length=samples, phase=self.phase)
        if level is not None:
            audio = audio / audio.abs().max().clamp_min(1e-8) * 0.5
        rate, measured = self.params.sample_rate, None
        if self.mastering is not None:
            audio, rate, measured = master(audio, rate, self.mastering, seed=seed)
        return AudioClip(audio.clamp(-1, 1), rate, unit, self.params, prompt, seed, measured)

    def _refuse_audio_models(self) -> None:
        if self.audio_rate is not None:
            raise ValueError(
                "editing and interpolating a model that makes audio itself (Stable Audio) is not supported yet; "
                "generate with it, or edit with a mel-spectrogram model"
            )

    def _audio_clip(self, audio: Tensor, prompt: str, seed: int, samples: int | None) -> AudioClip:
        audio = audio.float().clamp(-1, 1)
        if samples is not None:
            audio = audio[..., :samples]
        rate, measured = self.audio_rate, None
        codec = self.codec
        unit = codec.to_unit(
            codec.mel(resample(audio.mean(dim=0, keepdim=True), rate, self.params.sample_rate))
        )
        if self.mastering is not None:
            audio, rate, measured = master(audio, rate, self.mastering, seed=seed)
        return AudioClip(audio.clamp(-1, 1), rate, unit, self.params, prompt, seed, measured)

    def encode(self, audio: AudioClip | Tensor | str | Path) -> Tensor:
        """Audio -> its mel image in [-1, 1] (an imported Riffusion model's: Riffusion's RGB form): an
        `AudioClip` (a mastered one too: resampled to the model's rate, stereo folded to mono, which
        mastering's mid/side keeps exact), a tensor ``(C, N)`` at the pipeline's sample rate, or a file."""
        self._refuse_audio_models()
        channels = 1 if self.riffusion else self.cascade.output_shape()[0]
        if isinstance(audio, AudioClip):
            mono = audio.audio.mean(dim=0, keepdim=True) if channels == 1 else audio.audio
            audio = resample(mono, audio.sample_rate, self.params.sample_rate)
        elif isinstance(audio, Tensor) and audio.ndim == 2 and audio.shape[0] != channels:
            raise ValueError(
                f"audio of shape {tuple(audio.shape)} has {audio.shape[0]} channel(s), the model makes "
                f"{channels}: pass the AudioClip itself (pipe.edit(clip, ...): a mastered clip is brought back "
                f"to the model's rate), a file, or audio at {self.params.sample_rate} Hz"
            )
        elif not isinstance(audio, Tensor):
            audio, _ = read_audio(audio, sample_rate=self.params.sample_rate, channels=channels)
        codec = self.codec
        unit = codec.to_unit(codec.mel(audio))
        return riffusion_pixels(unit) if self.riffusion else unit * 2 - 1

    @property
    def riffusion(self) -> bool:
        """Whether the model's images are Riffusion's (an imported riffusion-model-v1: RGB, louder = darker)."""
        return self.cascade.metadata.get("image_form") == "riffusion"

    def interpolate(
        self,
        prompts: str | Sequence[str],
        seeds: int | Sequence[int] = (0, 1),
        *,
        steps: int = 4,
        strength: float | None = None,
        overlap: float | None = None,
    ) -> Interpolation:
        """A riff from ``prompts[0]``/``seeds[0]`` to ``prompts[1]``/``seeds[1]`` in ``steps`` clips (text
        embeddings lerped, starting noise slerped; img2img from the previous step with ``strength``),
        stitched into one track: see `legato.pipelines.interpolate`."""
        self._refuse_audio_models()
        self.check_prompts([prompts] if isinstance(prompts, str) else prompts)
        return interpolate(self, prompts, seeds, steps=steps, strength=strength, overlap=overlap)

    # -- editing (legato.pipelines.editing) -----------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Mel frames per second."""
        return self.params.sample_rate / self.params.hop_length

    def _load(self, audio: AudioClip | Tensor | str | Path) -> Tensor:
        """What an edit starts from: a mel image ``(C, n_mels, frames)`` in [-1, 1] as is, else `encode`."""
        return audio if isinstance(audio, Tensor) and audio.ndim == 3 else self.encode(audio)

    def _finish(self, mel: Tensor, prompt: str, seed: int, source: object) -> AudioClip:
        return self.clip(mel, prompt, seed, (mel.shape[-1] - 1) * self.params.hop_length)
