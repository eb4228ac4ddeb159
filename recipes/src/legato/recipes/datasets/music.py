"""The music dataset: real tunes from the music21 corpus, rendered through a General MIDI SoundFont.

Sources (their style is the corpus's own metadata: the collection, or the tune type in the title):

- ``chorale``: Bach's four-part chorales (``music21.corpus`` "bach");
- ``reel``, ``jig``, ``hornpipe``: Ryan's Mammoth Collection (1883) of fiddle tunes, by the tune type that
  ends each title ("7th Regiment -- Reel").

Each piece is rendered ``renders`` times, each with an instrument program and a tempo band drawn from the
seed, through TinySoundFont and the TimGM6mb SoundFont that ``pretty_midi`` ships; the audio is cut into
windows of the model's length and stored as 8-bit mel images (`legato.codec.MelCodec`). Captions come from
that metadata: "a jig on flute, fast tempo, in D major". The held-out split is by piece: no window of a
held-out piece is in the training split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from legato.codec import MelCodec, SpectrogramParams
from legato.pipelines.vocabulary import Vocabulary

STYLES = ("chorale", "reel", "jig", "hornpipe")
INSTRUMENTS = {"piano": 0, "organ": 19, "violin": 40, "flute": 73}  # General MIDI programs
TEMPI = {"slow": (66.0, 76.0), "moderate": (96.0, 108.0), "fast": (132.0, 148.0)}  # quarter notes / min


@dataclass(frozen=True)
class Piece:
    id: str  # the corpus file's stem
    style: str
    path: Path


def corpus_pieces(per_style: int) -> list[Piece]:
    """Up to ``per_style`` pieces of each style, in the corpus's sorted order."""
    from music21 import corpus

    found: dict[str, list[Piece]] = {style: [] for style in STYLES}
    for path in sorted(corpus.getComposer("bach")):
        found["chorale"].append(Piece(path.stem, "chorale", path))
    for path in sorted(corpus.getComposer("ryansMammoth")):
        kind = re.search(r"(Reel|Jig|Hornpipe)$", path.stem)
        if kind:
            found[kind.group(1).lower()].append(Piece(path.stem, kind.group(1).lower(), path))
    return [piece for style in STYLES for piece in found[style][:per_style]]


def piece_notes(path: Path, max_quarters: float) -> tuple[list[tuple[float, float, int]], str]:
    """The notes ``(onset, duration, midi pitch)`` in quarter notes of the first ``max_quarters`` of a piece,
    and its key ("D major"), from its key signature (or music21's key analysis where it has none)."""
    from music21 import converter

    score = converter.parse(str(path))
    flat = score.flatten()
    notes = []
    for n in flat.notes:
        onset, length = float(n.offset), float(n.quarterLength)
        if length <= 0 or onset >= max_quarters:
            continue
        notes.extend((onset, length, int(p.midi)) for p in n.pitches)
    signatures = list(flat.getElementsByClass("KeySignature"))
    key = signatures[0].asKey() if signatures else score.analyze("key")
    return notes, f"{key.tonic.name.replace('-', ' flat')} {key.mode}"


def render(
    notes: list[tuple[float, float, int]], program: int, bpm: float, sample_rate: int, seconds: float
) -> np.ndarray:
    """Mono float32 audio of ``notes`` played by General MIDI ``program`` at ``bpm`` quarter notes a minute."""
    import pretty_midi
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    font = synth.sfload(str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"))
    synth.program_select(0, font, 0, program)
    per_quarter = 60.0 / bpm
    events = []  # (sample, order, pitch): note-offs (order 0) before note-ons at the same sample
    for onset, length, pitch in notes:
        start = round(onset * per_quarter * sample_rate)
        events.append((start, 1, pitch))
        events.append((round((onset + length) * per_quarter * sample_rate), 0, pitch))
    events.sort()
    total = round(seconds * sample_rate)
    out, position = [], 0
    for sample, on, pitch in events:
        if sample >= total:
            break
        if sample > position:
            out.append(np.frombuffer(synth.generate(sample - position), dtype=np.float32))
            position = sample
        if on:
            synth.noteon(0, pitch, 90)
        else:
            synth.noteoff(0, pitch)
    if total > position:
        out.append(np.frombuffer(synth.generate(total - position), dtype=np.float32))
    stereo = np.concatenate(out).reshape(-1, 2)
    return stereo.mean(axis=1).astype(np.float32)


@dataclass(frozen=True)
class Render:
    """One rendering of a piece: mono float32 audio at RMS -20 dBFS and what it was made of."""

    piece: int  # index into the pieces
    held_out: bool
    instrument: int  # index into INSTRUMENTS
    tempo: int  # index into TEMPI
    caption: str
    audio: np.ndarray


def render_pieces(
    sample_rate: int, seconds: float, *, per_style: int = 240, renders: int = 2, held_out: float = 0.1,
    seed: int = 0,
) -> tuple[list[Piece], Iterator[Render]]:  # fmt: skip
    """The pieces, and a stream of their renderings (``renders`` per piece, ``seconds`` long each), in the
    order and with the random draws that `build_music` uses: one seed gives the same audio everywhere."""
    rng = np.random.default_rng(seed)
    pieces = corpus_pieces(per_style)
    held = {
        p.id for style in STYLES for p in _held_out([q for q in pieces if q.style == style], held_out, rng)
    }
    instruments, tempi = list(INSTRUMENTS), list(TEMPI)

    def stream() -> Iterator[Render]:
        for index, piece in enumerate(pieces):
            for _ in range(renders):
                instrument = int(rng.integers(len(instruments)))
                tempo = int(rng.integers(len(tempi)))
                bpm = float(rng.uniform(*TEMPI[tempi[tempo]]))
                notes, key = piece_notes(piece.path, seconds * bpm / 60.0)
                audio = render(notes, INSTRUMENTS[instruments[instrument]], bpm, sample_rate, seconds + 0.1)
                audio = audio / max(float(np.sqrt(np.mean(audio**2))), 1e-4) * 0.1  # RMS -20 dBFS
                caption = f"a {piece.style} on {instruments[instrument]}, {tempi[tempo]} tempo, in {key}"
                yield Render(index, piece.id in held, instrument, tempo, caption, np.clip(audio, -1, 1))

    return pieces, stream()


def build_music(
    params: SpectrogramParams,
    *,
    window: int,
    per_style: int = 240,
    renders: int = 2,
    windows_per_render: int = 2,
    held_out: float = 0.1,
    seed: int = 0,
) -> dict:
    """The dataset as arrays: ``mel`` (N, n_mels, window) uint8, per-window ``style``, ``instrument``,
    ``tempo`` (indices into `STYLES`, `INSTRUMENTS`, `TEMPI`), ``caption`` (index into ``captions``),
    ``piece`` (index into ``pieces``) and ``held_out`` (bool)."""
    codec = MelCodec(params)
    seconds = window * params.hop_length / params.sample_rate
    pieces, stream = render_pieces(
        params.sample_rate, windows_per_render * seconds, per_style=per_style, renders=renders,
        held_out=held_out, seed=seed,
    )  # fmt: skip
    captions: dict[str, int] = {}
    names = ("mel", "style", "instrument", "tempo", "caption", "piece", "held_out")
    rows: dict[str, list] = {k: [] for k in names}
    for r in stream:
        unit = codec.to_unit(codec.mel(torch.from_numpy(r.audio)))
        for w in range(windows_per_render):
            image = unit[:, w * window : (w + 1) * window]
            if image.shape[1] < window or float(image.mean()) < 0.15:  # ran out of notes: silence
                continue
            rows["mel"].append((image * 255).round().to(torch.uint8).numpy())
            rows["style"].append(STYLES.index(pieces[r.piece].style))
            rows["instrument"].append(r.instrument)
            rows["tempo"].append(r.tempo)
            rows["caption"].append(captions.setdefault(r.caption, len(captions)))
            rows["piece"].append(r.piece)
            rows["held_out"].append(r.held_out)
    arrays = {k: np.stack(v) if k == "mel" else np.asarray(v) for k, v in rows.items()}
    arrays = {k: v.astype(np.int64) if k not in ("mel", "held_out") else v for k, v in arrays.items()}
    return {
        **arrays,
        "captions": list(captions),
        "pieces": [p.id for p in pieces],
        "attributes": {"style": list(STYLES), "instrument": list(INSTRUMENTS), "tempo": list(TEMPI)},
        "params": params.to_json(),
        "window": window,
        "seed": seed,
    }


def _held_out(pieces: list[Piece], fraction: float, rng: np.random.Generator) -> list[Piece]:
    count = max(1, round(len(pieces) * fraction)) if pieces and fraction > 0 else 0
    return [pieces[i] for i in rng.choice(len(pieces), size=count, replace=False)]


def vocabulary() -> Vocabulary:
    """What the music models are trained on: the caption words, and captions that cover every style,
    instrument and tempo (in two keys: the key's words matter little to the text encoder)."""
    terms = {"styles": list(STYLES), "instruments": list(INSTRUMENTS), "tempi": [f"{t} tempo" for t in TEMPI],
             "keys": ["major keys", "minor keys"]}  # fmt: skip
    captions = [
        f"a {style} on {instrument}, {tempo} tempo, in {key}"
        for style in STYLES for instrument in INSTRUMENTS for tempo in TEMPI for key in ("C major", "A minor")
    ]  # fmt: skip
    return Vocabulary(terms, captions)
