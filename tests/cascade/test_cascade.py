"""LocalExecutor: per-item seeds, regrouping between stages, start/stop, guidance, and clear errors."""

from dataclasses import replace

import pytest
import torch
from diffusers import DDIMScheduler

from legato.cascade import Cascade, Item, LocalExecutor, Stage, stage_seed
from legato.diffusion import Denoiser, DiffusionError, SuperResolution

from .conftest import tiny_cascade, tiny_items, unet, with_batches


def test_outputs_have_the_last_stage_shape_and_are_reproducible(cascade):
    items = tiny_items()
    seen = []
    out = LocalExecutor().run(cascade, items, progress=lambda *a: seen.append(a))
    assert [tuple(x.shape) for x in out] == [(1, 16, 16)] * 5
    assert seen[-1] == ("sr", 5, 5)
    assert ("base", 3, 5) in seen
    again = LocalExecutor().run(cascade, items)
    assert all(torch.equal(a, b) for a, b in zip(out, again, strict=True))
    assert not torch.equal(out[0], out[1])  # different seeds and prompts


def test_an_item_gets_the_same_output_in_any_batch_at_equal_batch_size(cascade):
    items = tiny_items()
    one = with_batches(cascade, 1, 1)
    full = LocalExecutor().run(one, items)
    alone = LocalExecutor().run(one, [items[3]])
    assert torch.equal(full[3], alone[0])
    # Other batch sizes change only floating-point rounding, never the noise an item gets.
    regrouped = LocalExecutor().run(with_batches(cascade, 5, 4), items)
    assert max((a - b).abs().max().item() for a, b in zip(full, regrouped, strict=True)) < 1e-4


def test_stopping_after_the_base_stage_and_upscaling_later_equals_the_whole_run(cascade):
    items = tiny_items()
    whole = LocalExecutor().run(cascade, items)
    previews = LocalExecutor().run(cascade, items, stop="sr")
    assert previews[0].shape == (1, 8, 8)
    upscaled = LocalExecutor().run(cascade, items, start="sr", inputs=previews)
    assert all(torch.equal(a, b) for a, b in zip(whole, upscaled, strict=True))


def test_guidance_changes_the_output():
    items = tiny_items(2)
    guided = LocalExecutor().run(tiny_cascade(guidance=4.0), items, stop="sr")
    plain = LocalExecutor().run(tiny_cascade(guidance=1.0), items, stop="sr")
    assert not torch.allclose(guided[0], plain[0], atol=1e-3)


def test_stage_seeds_differ_per_stage_and_item():
    seeds = {stage_seed(s, i) for s in range(50) for i in range(4)}
    assert len(seeds) == 200


def test_bad_cascades_and_runs_say_what_to_do(cascade):
    base, sr = cascade.stages
    with pytest.raises(DiffusionError, match="not both"):
        Stage("x", base.denoiser, DDIMScheduler(), steps=2, shape=(1, 8, 8), sr=SuperResolution(space=2))
    with pytest.raises(DiffusionError, match="batch_size=0"):
        Stage("x", base.denoiser, DDIMScheduler(), steps=2, shape=(1, 8, 8), batch_size=0)
    with pytest.raises(DiffusionError, match="must be a base stage"):
        Cascade((sr,))
    with pytest.raises(DiffusionError, match="unique"):
        Cascade((base, sr, sr))
    with pytest.raises(DiffusionError, match="pass inputs="):
        LocalExecutor().run(cascade, tiny_items(), start="sr")
    with pytest.raises(DiffusionError, match="select no stages"):
        LocalExecutor().run(cascade, tiny_items(), start=1, stop=1)
    with pytest.raises(DiffusionError, match="ids must be unique"):
        LocalExecutor().run(cascade, [Item("a", 0), Item("a", 1)])
    with pytest.raises(
        DiffusionError, match=r"fade=1\.5 is a fraction of the prefix; give a value in \[0, 1\]"
    ):
        Item("a", 0, fade=1.5)
    no_text = Stage(
        "b", Denoiser(unet(1, False)), DDIMScheduler(), steps=2, shape=(1, 8, 8), guidance_scale=2.0
    )
    with pytest.raises(DiffusionError, match="guidance_scale needs text"):
        LocalExecutor().run(Cascade((no_text,)), [Item("a", 0)])


def test_a_prefix_is_kept_exactly_up_to_its_fade_and_crossfades_into_the_new_content_over_it(cascade):
    items = tiny_items(2)
    prefix = LocalExecutor().run(cascade, items[:1])[0][..., -8:]  # 8 positions; the base stage keeps 4
    hard, half, whole = (
        LocalExecutor().run(cascade, [replace(items[1], prefix=prefix, fade=fade)])[0]
        for fade in (0.0, 0.5, 1.0)
    )
    assert torch.equal(hard[..., :8], prefix)
    assert torch.equal(half[..., :4], prefix[..., :4])  # before the fade: kept exactly
    assert not torch.equal(half[..., 4:8], prefix[..., 4:8])
    # Over the fade the output moves from the prefix toward the new content: its distance from the prefix
    # grows along the ramp (the first position is 1/9 new, the last 8/9).
    distance = (whole[..., :8] - prefix).abs().mean(dim=(0, 1))
    assert 0 < distance[0] < distance[-1]
    assert distance[:4].mean() < distance[4:].mean()
    # What follows the prefix continues the blend, so it differs from the hard join's continuation too.
    assert not torch.equal(hard[..., 8:], whole[..., 8:])


def test_a_stage_shared_with_another_cascade_loads_from_its_folder_and_is_part_of_its_identity(tmp_path):
    """share_stages: a fast variant that runs the default's SR stage keeps one copy of its weights; it loads,
    generates what the unshared copy did, and the job manifests' model hash follows the shared files."""
    from legato.cascade import LocalExecutor
    from legato.cascade.pretrained import share_stages
    from legato.diffusion import DiffusionError
    from legato.pipelines.jobs import model_hash

    base, sr = tiny_cascade().stages
    default = Cascade((base, sr)).save_pretrained(tmp_path / "default")
    Cascade((base, replace(sr, steps=2))).save_pretrained(tmp_path / "fast")
    before = LocalExecutor().run(Cascade.from_pretrained(tmp_path / "fast"), tiny_items(2))
    other = Cascade((replace(base, denoiser=Denoiser(unet(3, False))), sr)).save_pretrained(
        tmp_path / "other"
    )
    with pytest.raises(DiffusionError, match="is not shared"):  # other base weights: refused, nothing removed
        share_stages(other, default, ["base"])
    assert (other / "base").is_dir()
    share_stages(tmp_path / "fast", default, ["sr"])
    assert not (tmp_path / "fast" / "sr").exists()
    loaded = Cascade.from_pretrained(tmp_path / "fast")
    assert loaded.stages[1].steps == 2
    after = LocalExecutor().run(loaded, tiny_items(2))
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    digest = model_hash(tmp_path / "fast")
    (tmp_path / "fast" / "README.md").write_text("# fast\n\nA card edited after the outputs were made.\n")
    assert model_hash(tmp_path / "fast") == digest  # documentation is not the model
    weights = default / "sr" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    assert model_hash(tmp_path / "fast") != digest


def test_sampling_settings_change_a_copy_and_the_same_scheduler_by_name_changes_nothing(cascade):
    from diffusers import DPMSolverMultistepScheduler

    items = tiny_items(2)
    before = LocalExecutor().run(cascade, items)
    # The stages' in-process DDIMScheduler() by name: every setting carries over, so the bytes are the same.
    same = cascade.with_sampling(scheduler="ddim")
    assert all(torch.equal(a, b) for a, b in zip(before, LocalExecutor().run(same, items), strict=True))
    other = cascade.with_sampling(steps=[6, 2], guidance=2.0, scheduler="dpm++")
    assert [s.steps for s in other.stages] == [6, 2]
    assert other.stages[0].guidance_scale == 2.0
    for stage, original in zip(other.stages, cascade.stages, strict=True):
        assert isinstance(stage.scheduler, DPMSolverMultistepScheduler)
        assert torch.equal(stage.scheduler.alphas_cumprod, original.scheduler.alphas_cumprod)
    assert [s.steps for s in cascade.stages] == [4, 3]  # the cascade itself is untouched
    assert isinstance(cascade.stages[0].scheduler, DDIMScheduler)
    after = LocalExecutor().run(other, items)
    assert not torch.allclose(after[0], before[0], atol=1e-3)
    assert torch.equal(after[0], LocalExecutor().run(other, items)[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": [4]}, "must be 2 positive integers, one per stage"),
        ({"steps": [4, 0]}, "must be 2 positive integers"),
        ({"steps": [4, True]}, "must be 2 positive integers"),
        ({"scheduler": "lms"}, r"unknown scheduler 'lms'; use one of \['ddim'"),
    ],
)
def test_bad_sampling_settings_name_the_value(cascade, kwargs, message):
    with pytest.raises(DiffusionError, match=message):
        cascade.with_sampling(**kwargs)


@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
def test_outputs_stay_on_the_device_between_stages_and_are_the_same(device):
    # LocalExecutor leaves a stage's outputs on its device for a next stage there (keep=True); the values are
    # those of the round trip through the CPU that every stage made before (issue 45)
    from legato.cascade import run_batch

    cascade, items = tiny_cascade(base_batch=2, sr_batch=2), tiny_items(2)
    cascade = replace(cascade, stages=tuple(s.to(device) for s in cascade.stages))
    kept = run_batch(cascade, 0, items, None, keep=True)
    assert kept.device.type == device
    assert kept.dtype == torch.float32
    handed = run_batch(cascade, 0, items, None)
    assert handed.device.type == "cpu"
    assert torch.equal(kept.cpu(), handed)
    final = LocalExecutor().run(cascade, items)
    assert all(out.device.type == "cpu" for out in final)
    assert torch.equal(torch.stack(final), run_batch(cascade, 1, items, handed))


def test_compile_is_a_stage_setting_with_known_modes():
    cascade = tiny_cascade()
    assert [s.compile for s in cascade.with_sampling(compile="reduce-overhead").stages] == [
        "reduce-overhead"
    ] * 2
    with pytest.raises(DiffusionError, match="compile='fast'; use one of"):
        replace(cascade.stages[0], compile="fast")


@pytest.mark.slow  # inductor compiles the two tiny UNets in about a minute on 2 cores
def test_compiled_stages_match_the_eager_ones_within_rounding():
    # Stage.compile: the networks go through torch.compile (in place, static shapes) on first use; the outputs
    # stay the eager ones' within rounding
    cascade, items = tiny_cascade(base_batch=2, sr_batch=2), tiny_items(2)
    eager = torch.stack(LocalExecutor().run(cascade, items))
    compiled = cascade.with_sampling(compile="default")
    out = torch.stack(LocalExecutor().run(compiled, items))
    assert all(s.denoiser.network._compiled_call_impl is not None for s in compiled.stages)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
