"""`legato recipes evaluate`: the quality table, guidance sweeps, base rows and motion probes."""

import json

import pytest

from ..cli import invoke
from .conftest import MODELS, small_video


def test_the_guidance_sweep_bench_draws_its_prompts_from_the_training_split_only(tmp_path):
    """`evaluate --guidance` chooses an inference setting: its prompts and FD reference must come from the
    training split, disjoint, so the held-out prompts of the quality table stay unseen."""
    from legato.recipes.evaluate import Bench

    data = small_video(tmp_path / "video", seed=3)
    verifier = str(MODELS / "verifiers" / "video")
    benches = {h: Bench.of(str(data), held_out=h, items=6, seed=0, verifier=verifier) for h in (False, True)}
    for held_out, bench in benches.items():
        assert bool((bench.split.held_out == held_out).all())
        assert len(bench.prompts) == 6
        assert set(bench.prompts.tolist()).isdisjoint(bench.reference.tolist())
        assert len(bench.prompts) + len(bench.reference) == len(bench.split.samples)
    train = benches[False]
    real = train.row(train.split.samples[train.prompts])
    assert real["accuracy"]["subject"] > 0.8  # the verifier on real training clips


@pytest.mark.slow  # 60 s: the recipes' analysis tools, not what a user runs (scripts/test -m slow)
def test_the_base_only_guidance_sweep_scores_the_base_stage_upsampled_on_training_prompts(tmp_path):
    # `evaluate --guidance 3,5 --bases`: each scale's row is the base stage alone at that scale, brought to
    # the final size bilinearly, on the training split's prompts (the same samples `Bench` would score).
    from legato.pipelines.folders import load_pipeline_cascade
    from legato.recipes.evaluate import Bench, bilinear

    data = small_video(tmp_path / "video", seed=7)
    models = tmp_path / "models"
    models.mkdir()
    for name in ("video-default", "verifiers"):
        (models / name).symlink_to(MODELS / name)
    result = invoke("recipes", "evaluate", "video", "--data", str(data), "--models", str(models), "--items", "2",
                    "--guidance", "3,5", "--bases")  # fmt: skip
    assert result.code == 0, result.stderr
    rows = json.loads((models / "guidance-video.json").read_text())["rows"]
    assert {name: row["evals"] for name, row in rows.items()} == {
        "guidance 3, base + bilinear": 64, "guidance 5, base + bilinear": 64,
    }  # fmt: skip
    bench = Bench.of(str(data), held_out=False, items=2, seed=0, verifier=str(MODELS / "verifiers" / "video"))
    default, _ = load_pipeline_cascade(MODELS / "video-default", "video", "cpu")
    cascade = default.with_sampling(None, 5.0, None)
    base, _ = bench.run(cascade, stop=1)
    expected = bench.row(bilinear(cascade, base))
    assert rows["guidance 5, base + bilinear"]["fd"] == pytest.approx(expected["fd"])
    assert rows["guidance 5, base + bilinear"]["accuracy"] == expected["accuracy"]
    assert rows["guidance 5, base + bilinear"]["by_class"] == expected["by_class"]
    assert rows["guidance 3, base + bilinear"]["fd"] != pytest.approx(expected["fd"])


@pytest.mark.slow  # 58 s: a check of the shipped weights (which CI does not change), not of code paths
def test_motion_probe_finds_the_shipped_video_base_reads_which_way_a_motion_goes(tmp_path):
    # Fresh clips of every (photo, motion) pair; the shipped base (the curriculum's, recipes/docs/history.md)
    # predicts them worse under the opposite direction's caption, another motion's, and far worse with no
    # prompt (measured here: +73%, +51%, +140%; the base it replaced, trained on everything from the start:
    # +0.8%, +6.9%, +127% on 40 training clips).
    from legato.pipelines.folders import load_pipeline_cascade
    from legato.recipes.datasets import load
    from legato.recipes.probes import motion_probe, pan_drift

    data = small_video(tmp_path / "video", seed=4)
    cascade, text = load_pipeline_cascade(MODELS / "video-default", "video", "cpu")
    result = motion_probe(cascade, load(data), text, items=16, levels=(800,))
    assert set(result) == {"no prompt", "another motion", "opposite direction"}
    assert result["no prompt"] > 0.5, result
    assert result["another motion"] > 0.2, result
    assert result["opposite direction"] > 0.2, result
    # Measured without the verifier: real pans slide their caption's way (at the base stage's 32 px, 1 to 3
    # px a frame), and so do the shipped base stage's samples of the same captions (here all 4, +1.86 px a
    # frame against the real +2.31; the replaced base's 0% at +0.02).
    drift = pan_drift(cascade, load(data), items=4)
    assert drift["real"]["right way"] == 1.0
    assert drift["real"]["px per frame"] > 0.9
    assert drift["generated"]["right way"] >= 0.75, drift
    assert drift["generated"]["px per frame"] > 0.5 * drift["real"]["px per frame"], drift


def test_probe_samples_at_one_guidance_scale():
    result = invoke("recipes", "evaluate", "video", "--probe", "--guidance", "3,5")
    assert result.code == 2
    assert "--probe --guidance 3,5: give one scale" in result.stderr


def test_evaluate_only_scores_one_model_again_and_keeps_the_other_rows(tmp_path):
    # After a model changes, `evaluate KIND --only fast` scores it on the last full run's prompts and keeps
    # every other row as it was (ratios recomputed); a run over other prompts is refused.
    data = small_video(tmp_path / "video", seed=5)
    models = tmp_path / "models"
    models.mkdir()
    for name in ("video-default", "video-fast", "verifiers"):
        (models / name).symlink_to(MODELS / name)
    rows = (("real (ceiling)", 1.0, 5.0), ("default", 0.5, 20.0), ("base + bilinear", 0.5, 30.0),
            ("fast", 0.0, 999.0), ("untrained (floor)", 0.0, 100.0))  # fmt: skip
    previous = {"kind": "video", "items": 2, "reference_items": 6, "seed": 0, "rows": {
        name: {"accuracy": {"motion": m, "subject": 1.0, "mean": (m + 1) / 2}, "fd": fd, "evals": None,
               "seconds": None} for name, m, fd in rows}}  # fmt: skip
    (models / "quality-video.json").write_text(json.dumps(previous))
    args = ["recipes", "evaluate", "video", "--data", str(data), "--models", str(models), "--only", "fast"]
    assert invoke(*args, "--items", "2").code == 0
    result = json.loads((models / "quality-video.json").read_text())
    for name, _, fd in rows:
        if name != "fast":
            assert result["rows"][name]["fd"] == fd, name
            assert result["rows"][name]["accuracy"] == previous["rows"][name]["accuracy"]
    fast = result["rows"]["fast"]
    assert fast["evals"] == 24
    assert fast["seconds"] > 0
    assert fast["fd"] != 999.0
    assert fast["fd_gap_closed"] == pytest.approx((100.0 - fast["fd"]) / (100.0 - 5.0))
    assert fast["accuracy_vs_ceiling"] == pytest.approx(fast["accuracy"]["mean"] / 1.0)
    refused = invoke(*args, "--items", "3")
    assert refused.code == 2
    assert "scored 2 items with seed 0; run them all" in refused.stderr


@pytest.mark.slow  # 80 s: the recipes' analysis tools, not what a user runs (scripts/test -m slow)
def test_base_rows_score_the_default_base_its_distillation_teacher_and_the_fast_base(tmp_path):
    # `evaluate --bases`: the default base row is the quality table's base + bilinear (the same samples of
    # the same prompts); the teacher samples the same network on DDIM's trailing grid (what a distillation
    # round would learn from), the fast base is the same network again at the fast cascade's 8 guided steps.
    from legato.pipelines.folders import load_pipeline_cascade
    from legato.recipes.evaluate import Bench, base_rows, bilinear

    data = str(small_video(tmp_path / "video", seed=6))
    verifier = str(MODELS / "verifiers" / "video")
    rows = base_rows("video", data=data, models=str(MODELS), verifier=verifier, items=2)["rows"]
    assert {name: row["evals"] for name, row in rows.items()} == {
        "default base": 64, "distillation teacher": 64, "fast base": 16,
    }  # fmt: skip
    bench = Bench.of(data, held_out=True, items=2, seed=0, verifier=verifier)
    default, _ = load_pipeline_cascade(MODELS / "video-default", "video", "cpu")
    base, _ = bench.run(default, stop=1)
    table = bench.row(bilinear(default, base))
    assert rows["default base"]["fd"] == pytest.approx(table["fd"])
    assert rows["default base"]["accuracy"] == table["accuracy"]
    assert rows["distillation teacher"]["fd"] != pytest.approx(table["fd"])
    # --candidate RUNS: a runs folder's base network sampled as the default's; the shipped network saved as
    # a run scores the default base row again, same samples
    default.stages[0].denoiser.network.save_pretrained(tmp_path / "runs" / "base" / "model")
    candidate = base_rows("video", data=data, models=str(MODELS), verifier=verifier, items=2,
                          candidate=str(tmp_path / "runs"))["rows"]  # fmt: skip
    assert list(candidate) == [f"{tmp_path / 'runs'} base"]
    (row,) = candidate.values()
    assert (row["fd"], row["accuracy"], row["evals"]) == (table["fd"], table["accuracy"], 64)
