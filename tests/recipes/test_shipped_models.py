"""The bundled models in models/: they load, they generate, they stay small, and the export rebuilds them."""

import json

import pytest
import torch

from legato.recipes.evaluate import model_evaluations

from ..cli import invoke
from .conftest import MODELS


@pytest.mark.parametrize("kind", ["music", "video"])
def test_fast_model_uses_at_least_4x_fewer_evaluations(kind):
    from legato.pipelines.folders import load_pipeline_cascade

    default, _ = load_pipeline_cascade(MODELS / f"{kind}-default", kind, "cpu")
    fast, _ = load_pipeline_cascade(MODELS / f"{kind}-fast", kind, "cpu")
    assert model_evaluations(default) >= 4 * model_evaluations(fast)
    assert all(s.steps <= 8 for s in fast.stages)
    # float16 on disk, float32 in memory
    assert all(p.dtype == torch.float32 for s in fast.stages for p in s.denoiser.network.parameters())


def test_bundled_music_fast_generates_a_clip(tmp_path):
    from legato.codec import read_audio
    from legato.pipelines import MusicPipeline

    pipe = MusicPipeline.from_pretrained(MODELS / "music-fast")
    clip = pipe(["a reel on violin, fast tempo, in A major"], seeds=[0])[0]
    clip.save(tmp_path / "reel.wav")
    audio, sr = read_audio(tmp_path / "reel.wav")
    assert (sr, audio.shape[0]) == (44_100, 2)  # mastered by default
    assert audio.shape[-1] == pytest.approx(4.1 * sr, rel=0.02)
    assert 0.01 < float(audio.pow(2).mean().sqrt()) < 0.9


def test_the_bundled_weights_stay_under_60_mb_and_each_is_stored_once():
    """Issue 8's budget, and no duplicated weights: a fast variant names its default's shared stages."""
    import hashlib

    files = sorted(MODELS.rglob("*.safetensors"))
    assert sum(f.stat().st_size for f in files) < 60e6, [(f.name, f.stat().st_size) for f in files]
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert len(set(digests)) == len(digests)
    from legato.cascade.pretrained import cascade_folders

    assert (MODELS / "music-default" / "sr").resolve() in cascade_folders(MODELS / "music-fast")


@pytest.mark.parametrize("kind", ["music", "video"])
def test_export_of_the_shipped_networks_rebuilds_the_shipped_folders(kind, tmp_path):
    """`legato recipes export` is the documented last step of retraining: given the shipped networks as its runs, it
    must write the shipped layout (cascade.json with shared stages and the vocoder, the same weight files)."""
    import shutil

    from legato.cascade.pretrained import cascade_folders
    from legato.recipes import RECIPES, export
    from legato.recipes.catalog import VOCODER

    runs, models = tmp_path / "runs", tmp_path / "models"
    shipped = {v: MODELS / f"{kind}-{v}" for v in ("default", "fast")}
    recipe = RECIPES[kind]
    for stage, rounds, steps in zip(
        recipe.build().stages, recipe.distill_rounds, recipe.fast_steps, strict=True
    ):
        shutil.copytree(MODELS / f"{kind}-default" / stage.name, runs / stage.name / "model")
        if rounds:
            shutil.copytree(MODELS / f"{kind}-fast" / stage.name, runs / f"{stage.name}-{steps}" / "model")
    if kind == "music":
        shutil.copytree(MODELS / VOCODER, models / VOCODER)
    written = export(kind, runs, models)
    assert (
        invoke("recipes", "export", kind, "--runs", str(runs), "--models", str(tmp_path / "again")).code == 0
    )
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [f"{kind}-default", f"{kind}-fast"]
    for variant, path in zip(("default", "fast"), written, strict=True):
        assert json.loads((path / "cascade.json").read_text()) == json.loads(
            (shipped[variant] / "cascade.json").read_text()
        )
        ours, theirs = cascade_folders(path), cascade_folders(shipped[variant])
        assert [p.name for p in ours] == [p.name for p in theirs]
        for mine, other in zip(ours, theirs, strict=True):
            files = sorted(f.relative_to(other) for f in other.rglob("*") if f.is_file())
            assert sorted(f.relative_to(mine) for f in mine.rglob("*") if f.is_file()) == files
            for f in files:
                if f.suffix == ".json":  # configs: the same, but for where they were loaded from
                    a, b = (json.loads((d / f).read_text()) for d in (mine, other))
                    assert {k: v for k, v in a.items() if k != "_name_or_path"} == {
                        k: v for k, v in b.items() if k != "_name_or_path"
                    }, f
                else:
                    assert (mine / f).read_bytes() == (other / f).read_bytes(), f


@pytest.mark.parametrize("name", ["music-default", "music-fast", "video-default", "video-fast"])
def test_each_bundled_model_ships_the_vocabulary_of_its_training_captions(name):
    from legato.pipelines.vocabulary import Vocabulary
    from legato.recipes.datasets import music, video

    shipped = Vocabulary.load(MODELS / name)
    made = (music if name.startswith("music") else video).vocabulary()
    assert (shipped.terms, shipped.captions, shipped.threshold) == (made.terms, made.captions, made.threshold)
