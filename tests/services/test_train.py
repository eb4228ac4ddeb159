"""``legato train`` / ``legato distill`` on a dataset folder from the datasets builder: new model folders that
load and generate, and runs that resume from their checkpoints."""

import json

import pytest
import torch
from safetensors.torch import load_file

from .conftest import invoke, legato


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The music dataset builder at the tiny model's size: 32 mel bands x 64 frames, one piece per style."""
    from legato.codec import SMALL
    from legato.recipes.datasets import save
    from legato.recipes.datasets.music import build_music

    data = build_music(SMALL.replace(n_mels=32), window=64, per_style=1, renders=1, windows_per_render=1,
                       held_out=0.0)  # fmt: skip
    return save(data, tmp_path_factory.mktemp("data") / "music", "all-MiniLM-L6-v2")


def weights(folder):
    return load_file(str(folder / "base" / "diffusion_pytorch_model.safetensors"))


def test_fine_tune_writes_a_new_model_and_a_rerun_resumes(dataset, models, tmp_path, cli_env):
    out, runs = tmp_path / "tuned", tmp_path / "runs"
    args = ["train", "music", "--data", str(dataset), "--from", "music-tiny", "--out", str(out), "--runs", str(runs),
            "--batch-size", "4", "--device", "cpu", "--json"]  # fmt: skip
    first = legato(*args, "--steps", "2", env=cli_env)
    assert first.code == 0, first.stderr
    summary = first.json()
    assert (summary["mode"], summary["items"], summary["resumed"]) == ("fine-tune", 4, {})
    before, after = weights(models / "music-tiny"), weights(out)
    assert any((before[k].float() - after[k].float()).abs().max() > 0 for k in before)  # it trained
    again = invoke(*args, "--steps", "3", env=cli_env)
    assert again.code == 0, again.stderr
    assert again.json()["resumed"] == {"base": 2, "sr": 2}  # continued from the checkpoints at step 2
    rows = [json.loads(line) for line in (runs / "base" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][-1] == 3
    assert (
        invoke("generate", "music", "a jig", "-m", str(out), "-o", str(tmp_path / "clips"), env=cli_env).code
        == 0
    )


def test_a_zero_step_count_keeps_that_stage_bit_exact(dataset, models, tmp_path, cli_env):
    out = tmp_path / "base-only"
    result = invoke("train", "music", "--data", str(dataset), "--from", "music-tiny", "--out", str(out), "--runs",
                    str(tmp_path / "runs"), "--steps", "2,0", "--batch-size", "4", "--device", "cpu", "--json",
                    env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    assert not (tmp_path / "runs" / "sr").exists()  # the SR stage never trained
    before = load_file(str(models / "music-tiny" / "sr" / "diffusion_pytorch_model.safetensors"))
    after = load_file(str(out / "sr" / "diffusion_pytorch_model.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    base_before, base_after = weights(models / "music-tiny"), weights(out)
    assert any(not torch.equal(base_before[k], base_after[k]) for k in base_before)


@pytest.mark.slow  # 51 s of the default suite's budget; docs/training.md's train_on_ray example runs by default
def test_fine_tune_on_two_ray_train_workers(dataset, models, tmp_path, cli_env):
    """``--workers 2``: each stage trains data-parallel (DDP over gloo) on a local Ray cluster the command
    starts; the model is rank 0's EMA export, and a resume with another worker count is refused."""
    from legato.diffusion.training import checkpoint as ckpt

    out, runs = tmp_path / "tuned", tmp_path / "runs"
    args = ["train", "music", "--data", str(dataset), "--from", "music-tiny", "--out", str(out), "--runs", str(runs),
            "--batch-size", "2", "--device", "cpu", "--json"]  # fmt: skip
    first = legato(*args, "--steps", "2", "--workers", "2", env=cli_env, timeout=600)
    assert first.code == 0, first.stderr
    assert first.json()["workers"] == 2
    for stage in ("base", "sr"):
        latest = ckpt.latest(runs / stage / "checkpoints")
        assert latest.step == 2
        assert ckpt.read(latest)[1]["world"] == 2
        exported = load_file(str(runs / stage / "model" / "diffusion_pytorch_model.safetensors"))
        written = load_file(str(out / stage / "diffusion_pytorch_model.safetensors"))
        assert all(
            (exported[k].half() == written[k].half()).all() for k in exported
        )  # the model is rank 0's export
    before, after = weights(models / "music-tiny"), weights(out)
    assert any((before[k].float() - after[k].float()).abs().max() > 0 for k in before)  # it trained
    other = invoke(*args, "--steps", "3", env=cli_env)
    assert other.code != 0
    assert "same number of workers" in other.stderr
    assert (
        invoke("generate", "music", "a jig", "-m", str(out), "-o", str(tmp_path / "clips"), env=cli_env).code
        == 0
    )


def test_distill_halves_the_base_stage_steps_and_the_student_generates(dataset, tmp_path, cli_env):
    out = tmp_path / "student"
    result = invoke("distill", "music-tiny", "--data", str(dataset), "--out", str(out), "--steps", "2",
                    "--batch-size", "4", "--runs", str(tmp_path / "runs"), "--device", "cpu", "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["steps"] == 1
    base = json.loads((out / "cascade.json").read_text())["stages"][0]
    assert (base["steps"], base["guidance_scale"]) == (1, 1.0)  # guidance folded into the student
    clips = tmp_path / "clips"
    assert (
        invoke("generate", "music", "a reel", "-m", str(out), "-o", str(clips), "--json", env=cli_env).code
        == 0
    )
    assert len(list(clips.glob("*.wav"))) == 1


def test_the_bundled_recipe_refuses_what_only_fine_tuning_takes(dataset, cli_env):
    result = invoke("train", "music", "--data", str(dataset), "--out", "x", env=cli_env)
    assert result.code == 2
    assert "go with --from" in result.stderr
    bad = invoke(
        "train",
        "video",
        "--data",
        str(dataset),
        "--from",
        "video-tiny",
        "--out",
        "x",
        "--steps",
        "1",
        env=cli_env,
    )
    assert bad.code == 2
    assert "holds samples of shape (1, 32, 64), the model makes (3, 8, 16, 16)" in bad.stderr
    recipe_only = invoke("train", "video", "--data", str(dataset), "--from", "video-tiny", "--out", "x",
                         "--steps", "1", "--init", "models/video-default", "--no-distill", env=cli_env)  # fmt: skip
    assert recipe_only.code == 2
    assert "--init, --no-distill: only the bundled recipe takes these" in recipe_only.stderr


def test_the_recipe_runs_a_curriculum_phase_by_phase(tmp_path, cli_env):
    # recipes/docs/history.md, Training: the video base trains on one photo's pans first (--captions,
    # --clips-per-caption, no distillation), then continues from that run (--init a runs folder).
    from legato.recipes import RECIPES
    from legato.recipes.datasets import save
    from legato.recipes.datasets.video import build_video
    from legato.video.models import UNet3D

    video = build_video(frames=16, size=64, clips_per_pair=1, seed=0)
    data = save(video, tmp_path / "data", "all-MiniLM-L6-v2")
    common = ["train", "video", "--data", str(data), "--stage", "base", "--steps", "1", "--batch-size", "2",
              "--precision", "bf16", "--no-distill", "--device", "cpu", "--json"]  # fmt: skip
    warm, pans = tmp_path / "warm", tmp_path / "pans"
    phase1 = invoke(*common, "--runs", str(warm), "--captions", "pan (left|right) over an astronaut",
                    "--clips-per-caption", "1", env=cli_env)  # fmt: skip
    assert phase1.code == 0, phase1.stderr
    assert sorted(p.name for p in warm.iterdir()) == ["base"]  # trained, not distilled
    log = [json.loads(line) for line in (warm / "base" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 1

    # Phase 2 starts from phase 1's network, moved far from any fresh one so that "starts there" is
    # visible, and trains at its own --learning-rate where phase 1 kept the recipe's.
    network = UNet3D.from_pretrained(warm / "base" / "model", low_cpu_mem_usage=False)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.5)
    network.save_pretrained(warm / "base" / "model")
    phase2 = invoke(*common, "--runs", str(pans), "--init", str(warm), "--captions", "pan (left|right)",
                    "--learning-rate", "1e-4", env=cli_env)  # fmt: skip
    assert phase2.code == 0, phase2.stderr
    peak = {run: json.loads((run / "base" / "checkpoints" / "step-00000001" / "state.json").read_text())
            ["config"]["learning_rate"] for run in (warm, pans)}  # fmt: skip
    assert peak == {warm: RECIPES["video"].learning_rate, pans: 1e-4}
    trained = UNet3D.from_pretrained(pans / "base" / "model", low_cpu_mem_usage=False).state_dict()
    start = network.state_dict()
    assert max((v - start[k]).abs().max().item() for k, v in trained.items()) < 1e-2

    for args, message in (
        (("--captions", "moonwalk"), "'moonwalk' matches no training caption"),
        (("--steps", "0"), "--steps 0: give a positive whole number"),
    ):
        bad = invoke(*common, "--runs", str(tmp_path / "bad"), *args, env=cli_env)
        assert bad.code == 2, (args, bad.stderr)
        assert message in bad.stderr + bad.stdout, args
