"""The music pipeline on a tiny trained cascade: files, continuation, editing, executors."""

import json
from dataclasses import replace

import pytest
import torch
from diffusers import UNet2DConditionModel

from legato.cascade import CASCADE_FILE, Cascade
from legato.pipelines.music import MusicPipeline

from .conftest import MUSIC_PROMPTS


def test_save_pretrained_writes_one_diffusers_folder_per_stage_and_loads_back_byte_equal(
    music_model, tmp_path
):
    pipe = MusicPipeline.from_pretrained(music_model)
    config = json.loads((music_model / CASCADE_FILE).read_text())
    assert [s["name"] for s in config["stages"]] == ["base", "sr"]
    assert config["metadata"]["pipeline"] == "music"
    # A stage folder is plain diffusers: its own from_pretrained reads it.
    UNet2DConditionModel.from_pretrained(music_model / "sr", low_cpu_mem_usage=False)
    again = MusicPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    a = pipe(list(MUSIC_PROMPTS), seeds=[0, 1])
    b = again(list(MUSIC_PROMPTS), seeds=[0, 1])
    assert all(torch.equal(x.mel, y.mel) and torch.equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    assert "phase" not in json.loads((tmp_path / "copy" / CASCADE_FILE).read_text())["metadata"]  # zero phase
    integrated = MusicPipeline.from_pretrained(replace(pipe, phase="pghi").save_pretrained(tmp_path / "pghi"))
    assert integrated.phase == "pghi"
    assert (
        MusicPipeline.from_pretrained(replace(integrated, phase="zero").save_pretrained(tmp_path / "z")).phase
        == "zero"
    )
    with pytest.raises(ValueError, match="phase='random'"):
        replace(pipe, phase="random")


def test_every_stage_keeps_a_prefix_and_continues_it(music_model):
    pipe = MusicPipeline.from_pretrained(music_model)
    cascade = pipe.cascade
    first = pipe.executor.run(cascade, pipe.items(["a low drone"], [5]))[0]
    prefix = first[..., -16:]
    item = pipe.items(["a low drone"], [6])[0]

    out = pipe.executor.run(cascade, [replace(item, prefix=prefix)])[0]
    assert torch.equal(out[..., :16], prefix)  # kept exactly
    assert not torch.equal(out[..., 16:32], first[..., 16:32])  # the rest is new
    base = pipe.executor.run(cascade, [replace(item, prefix=prefix)], stop="sr")[0]
    assert torch.equal(base[..., :8], cascade.prefix_at(0, prefix))  # the base stage keeps its share
    assert isinstance(cascade, Cascade)


def test_edits_keep_what_they_should(music_model):
    pipe = MusicPipeline.from_pretrained(music_model)
    song = pipe(["a melody of short notes"], seeds=[11], duration=2.5)[0]
    source = pipe.encode(song)  # a mastered clip goes back to the model's rate and channels
    unit = (source + 1) / 2

    def distance(clip):
        return float((clip.mel - unit[..., : clip.mel.shape[-1]]).abs().mean())

    light, heavy = (pipe.edit(song, "a low drone", strength=s, seed=1) for s in (0.3, 1.0))
    assert light.audio.shape == heavy.audio.shape
    assert distance(light) < distance(heavy)
    inverted = pipe.invert_edit(song, "a melody of short notes", "a melody of short notes")
    assert distance(inverted) < distance(heavy)
    patched = pipe.inpaint(song, "a low drone", 1.0, 1.5, seed=2)
    lo, hi = (round(t * pipe.params.sample_rate / pipe.params.hop_length) for t in (1.0, 1.5))
    assert torch.equal(patched.mel[..., :lo], unit[..., :lo])  # outside the range: the input, exactly
    assert torch.equal(patched.mel[..., hi:], unit[..., hi : patched.mel.shape[-1]])
    assert not torch.equal(patched.mel[..., lo:hi], unit[..., lo:hi])
