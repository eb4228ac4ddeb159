"""`legato train KIND` (the bundled recipes): more training of a shipped stage, its distillation rounds,
training-only data and a curriculum's phases, through the command as a user runs it."""

import re

import pytest
import torch
from diffusers import UNet2DConditionModel

from legato.codec import SMALL
from legato.recipes.datasets.music import build_music
from legato.recipes.datasets.video import build_video
from legato.recipes.train import train_stage

from ..cli import invoke
from .conftest import MODELS, small_video


def test_more_training_starts_from_a_shipped_stage_with_the_recipe_overridden(tmp_path):
    # What a GPU session continues from: the shipped video base (its first run's checkpoints are gone),
    # here for one step of batch 2 on a small real dataset, in bf16 autocast (what makes CPU training 2.4x
    # faster). The video recipe distils nothing (its fast cascade samples this base at fewer steps).
    from legato.cascade.pretrained import load_cascade
    from legato.recipes import RECIPES
    from legato.video.models import UNet3D

    data = small_video(tmp_path / "data", seed=0)
    runs = tmp_path / "runs"
    done = invoke("train", "video", "--stage", "base", "--data", str(data), "--runs", str(runs), "--device", "cpu",
                  "--init", str(MODELS / "video-default"), "--steps", "1", "--batch-size", "2",
                  "--distill-steps", "1", "--precision", "bf16")  # fmt: skip
    assert done.code == 0, done.stderr
    trained = UNet3D.from_pretrained(runs / "base" / "model", low_cpu_mem_usage=False).state_dict()
    shipped = load_cascade(MODELS / "video-default").stages[0].denoiser.network.state_dict()
    fresh = RECIPES["video"].build().stages[0].denoiser.network.state_dict()

    def distance(weights: dict) -> float:
        return max((trained[k] - weights[k].float()).abs().max().item() for k in trained)

    # One step of an EMA that starts from the shipped weights stays next to them, far from a fresh network.
    assert distance(shipped) < 1e-3 < 0.1 < distance(fresh)
    assert sorted(p.name for p in runs.iterdir()) == ["base"]  # the video recipe distils nothing
    with pytest.raises(ValueError, match="--batch-size 0: give a positive whole number"):
        train_stage("video", "base", data, runs, "cpu", batch_size=0)
    refused = invoke("train", "video", "--stage", "sr-time", "--data", str(data), "--runs", str(runs),
                     "--init", str(MODELS / "music-default"))  # fmt: skip
    assert refused.code == 2
    assert "no stage 'sr-time' there" in refused.stderr


def test_more_training_of_the_music_base_distils_it_in_the_recipes_rounds(tmp_path):
    # The music recipe distils its base twice (32 -> 16 -> 8 steps): one step of each round here, from the
    # shipped base, on a few real renders; each student starts from its teacher and lands next to it.
    from legato.recipes.datasets import save

    data = save(build_music(SMALL, window=256, per_style=2, renders=1, held_out=0.25, seed=3),
                tmp_path / "data", "all-MiniLM-L6-v2")  # fmt: skip
    runs = tmp_path / "runs"
    done = invoke("train", "music", "--stage", "base", "--data", str(data), "--runs", str(runs), "--device", "cpu",
                  "--init", str(MODELS / "music-default"), "--steps", "1", "--batch-size", "2",
                  "--distill-steps", "1", "--precision", "bf16")  # fmt: skip
    assert done.code == 0, done.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["base", "base-16", "base-8"]  # trained, then 2 rounds
    base, student = (
        UNet2DConditionModel.from_pretrained(runs / name / "model", low_cpu_mem_usage=False).state_dict()
        for name in ("base", "base-8")
    )
    assert max((base[k] - student[k]).abs().max().item() for k in base) < 1e-2


def test_more_data_joins_training_only_clips_and_refuses_held_out_prompts(tmp_path):
    # legato train --more-data: clips over photos the verifier never scores join the training split, each
    # part time-reversed on its own; a dataset that holds a held-out prompt, or names its classes otherwise,
    # is refused before any training.
    from legato.recipes.datasets import load, save
    from legato.recipes.train import training_only

    data = small_video(tmp_path / "data", seed=0)
    more = save(build_video(frames=16, size=64, clips_per_pair=1, seed=1, more_photos=True), tmp_path / "more",
                "all-MiniLM-L6-v2")  # fmt: skip
    joined = training_only(load(more), load(data))
    assert len(joined.captions) == len(load(more).captions)  # all of it: none held out
    assert joined.labels["subject"].min() >= len(load(data).meta["attributes"]["subject"])
    leaky = build_video(frames=16, size=64, clips_per_pair=1, seed=2)
    leaky["held_out"][:] = False  # the verifier's photos with every pair in training
    save(leaky, tmp_path / "leaky", "all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match="holds held-out prompts"):
        training_only(load(tmp_path / "leaky"), load(data))
    other = build_video(frames=16, size=64, clips_per_pair=1, seed=2)
    other["attributes"] = {**other["attributes"], "subject": other["attributes"]["subject"][::-1]}
    save(other, tmp_path / "other", "all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match=r"subject classes .* do not extend"):
        training_only(load(tmp_path / "other"), load(data))
    refused = invoke("train", "video", "--stage", "base", "--data", str(data), "--runs", str(tmp_path / "runs"),
                     "--more-data", str(tmp_path / "leaky"))  # fmt: skip
    assert refused.code == 2  # refused by train, before training
    assert "holds held-out prompts" in refused.stderr
    assert not (tmp_path / "runs").exists()
    done = invoke("train", "video", "--stage", "base", "--data", str(data), "--runs", str(tmp_path / "runs"),
                  "--more-data", str(more), "--device", "cpu", "--steps", "1", "--batch-size", "2",
                  "--precision", "bf16", "--no-distill")  # fmt: skip
    assert done.code == 0, done.stderr
    assert (tmp_path / "runs" / "base" / "model" / "diffusion_pytorch_model.safetensors").is_file()


def test_a_curriculum_trains_on_the_captions_asked_then_continues_from_that_run(tmp_path):
    # recipes/docs/history.md: the video base binds a pan's direction to its words on one photo's pans first, then
    # keeps it on every photo's. Phase 1 trains on the matching clips only and does not distil; phase 2
    # starts from phase 1's runs folder.
    from legato.recipes import RECIPES
    from legato.recipes.datasets import load
    from legato.recipes.datasets.video import time_reversed
    from legato.recipes.train import matching
    from legato.video.models import UNet3D

    data = small_video(tmp_path / "data", seed=0)
    train = load(data).split(held_out=False)
    train = train + time_reversed(train)
    astronaut = r"pan (left|right) over an astronaut"
    wanted = sorted({c for c in train.captions if re.search(astronaut, c)})
    assert 2 <= len(wanted) < len(set(train.captions))
    picked = matching(train, astronaut, 1)
    assert sorted(picked.captions) == wanted  # every matching caption, once
    assert sorted(matching(train, astronaut, None).captions) == sorted(
        c for c in train.captions if re.search(astronaut, c)
    )
    for bad, message in (("(", "is not a regular expression"), ("moonwalk", "matches no training caption")):
        with pytest.raises(ValueError, match=re.escape(repr(bad)) + ".*" + message):
            matching(train, bad, None)
    with pytest.raises(ValueError, match="--clips-per-caption 0: give a positive whole number"):
        matching(train, astronaut, 0)

    common = ["train", "video", "--stage", "base", "--data", str(data), "--device", "cpu",
              "--batch-size", "2", "--precision", "bf16", "--no-distill"]  # fmt: skip
    # Phase 1 for 2 steps, checkpointed after each (recipes/scripts/video-curriculum's smaller interval on a CPU).
    done = invoke(*common, "--runs", str(tmp_path / "phase1"), "--captions", astronaut, "--clips-per-caption", "1",
                  "--steps", "2", "--checkpoint-every", "1")  # fmt: skip
    assert done.code == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "phase1").iterdir()) == ["base"]  # trained, not distilled
    checkpoints = tmp_path / "phase1" / "base" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000001", "step-00000002"]
    with pytest.raises(ValueError, match="--checkpoint-every 0: give a positive whole number"):
        train_stage("video", "base", data, tmp_path / "phase1", "cpu", checkpoint_every=0)
    assert invoke(*common, "--runs", str(tmp_path / "phase1"), "--checkpoint-every", "0").code == 2
    # Phase 2 from a runs folder whose base network is far from any fresh one: it starts there.
    fresh = RECIPES["video"].build().stages[0].denoiser.network
    with torch.no_grad():
        for parameter in fresh.parameters():
            parameter.add_(0.5)
    fresh.save_pretrained(tmp_path / "warm" / "base" / "model")
    done = invoke(
        *common, "--steps", "1", "--runs", str(tmp_path / "phase2"), "--init", str(tmp_path / "warm")
    )
    assert done.code == 0, done.stderr
    trained = UNet3D.from_pretrained(tmp_path / "phase2" / "base" / "model", low_cpu_mem_usage=False)
    warm = fresh.state_dict()
    recipe = RECIPES["video"].build().stages[0].denoiser.network.state_dict()
    distance = {
        name: max((v - weights[k]).abs().max().item() for k, v in trained.state_dict().items() if k in warm)
        for name, weights in (("warm", warm), ("recipe", recipe))
    }
    assert distance["warm"] < 1e-2 < 0.4 < distance["recipe"]
