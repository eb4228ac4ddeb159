"""The trainer: exact resume, torn checkpoints, learning on a 2-D toy and on images, options."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from safetensors.torch import load_file

from legato.diffusion import DiffusionError, VPSchedule, generators, randn, sample
from legato.diffusion.models import MLP
from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer, shifted_betas
from legato.diffusion.training import checkpoint as ckpt
from legato.diffusion.two_moons import sliced_wasserstein, two_moons, two_moons_labelled

from .conftest import bars, tiny_unet

SCHEDULE = VPSchedule.from_scheduler(DDPMScheduler())


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(next((directory / "model").glob("*.safetensors")))


def toy_trainer(out: Path, steps: int, preview=None, **config) -> Trainer:
    torch.manual_seed(0)
    cfg = TrainConfig(steps=steps, batch_size=64, learning_rate=2e-3, lr_schedule="cosine", warmup_steps=5,
                      ema_decay=0.9, progress=False, log_every=5, **config)  # fmt: skip
    return Trainer(
        MLP(hidden=32, depth=2), SCHEDULE, Objective("v_prediction"), TensorItems(two_moons(512, 0)), cfg, out,
        preview=preview,
    )  # fmt: skip


def test_resume_continues_exactly(tmp_path):
    # 2N straight == N, stop, resume N: model, EMA, optimizer, LR, data order and RNG all restored. Equal bytes.
    straight = toy_trainer(tmp_path / "straight", 40)
    straight.fit()
    first = toy_trainer(tmp_path / "split", 40)
    assert first.fit(stop_at=20).step == 20
    second = toy_trainer(tmp_path / "split", 40)  # a fresh process would build exactly this
    result = second.fit()
    assert result.resumed_from == 20
    a = ckpt.latest(tmp_path / "straight" / "checkpoints")
    b = ckpt.latest(tmp_path / "split" / "checkpoints")
    assert a.step == b.step == 40
    for name, tensor in weights(a.path).items():
        assert torch.equal(tensor, weights(b.path)[name]), name
    ema_a, _ = ckpt.read(a)
    ema_b, _ = ckpt.read(b)
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a if k.startswith(("ema.", "optimizer.")))
    lines = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(5, 41, 5))  # no step logged twice


def test_compiled_training_takes_the_eager_steps_and_saves_the_plain_network(tmp_path):
    # torch.compile fuses kernels (rounding may differ in the last bits) but must not change what is trained,
    # checkpointed or exported; a run started eager resumes compiled (a curriculum phase that turns it on).
    losses = toy_trainer(tmp_path / "eager", 20).fit().losses
    assert toy_trainer(tmp_path / "mixed", 20).fit(stop_at=10).losses == losses[:10]
    compiled = toy_trainer(tmp_path / "mixed", 20, compile=True)
    assert compiled.model is not compiled.network
    assert compiled.fit().losses == pytest.approx(losses[10:], rel=1e-4)
    plain, fused = (weights(ckpt.latest(tmp_path / run / "checkpoints").path) for run in ("eager", "mixed"))
    assert plain.keys() == fused.keys()  # no torch.compile "_orig_mod." prefixes
    for name, tensor in plain.items():
        torch.testing.assert_close(fused[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert weights(compiled.export().parent).keys() == plain.keys()
    # Checkpoints leave the live config as it was: diffusers' save_pretrained adds keys to it in place, and a
    # compiled forward that reads self.config (diffusers' UNet2DModel does) would recompile at every one.
    assert dict(compiled.network.config) == dict(toy_trainer(tmp_path / "fresh", 1).network.config)


SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from diffusers import DDPMScheduler
    from legato.diffusion import VPSchedule
    from legato.diffusion.models import MLP
    from legato.diffusion.two_moons import two_moons
    from legato.diffusion.training import Objective, TensorItems, TrainConfig, Trainer
    torch.manual_seed(0)
    cfg = TrainConfig(steps=int(sys.argv[2]), batch_size=64, learning_rate=2e-3, checkpoint_every=2,
                      keep_checkpoints=2, progress=False, ema_decay=0.9)
    net = MLP(hidden=256, depth=4)  # large enough that writing a checkpoint takes a while
    Trainer(net, VPSchedule.from_scheduler(DDPMScheduler()), Objective("epsilon"),
            TensorItems(two_moons(512, 0)), cfg, sys.argv[1]).fit()
    """
)


def run_script(out: Path, steps: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(steps)])


def test_killed_mid_run_resumes_to_the_same_weights_and_never_loads_a_torn_checkpoint(tmp_path):
    straight = run_script(tmp_path / "straight", 60)
    assert straight.wait(timeout=300) == 0
    victim = run_script(tmp_path / "killed", 60)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline:
        found = ckpt.latest(checkpoints)
        if found is not None and found.step >= 20:
            break
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # wherever it is: mid-step or mid-checkpoint
    victim.wait()
    # A torn write is only ever a hidden temporary folder; plant one more, and a folder without state.json.
    (checkpoints / ".step-00000099.tmp-planted").mkdir()
    (checkpoints / "step-00000098").mkdir()
    (checkpoints / "step-00000098" / "state.safetensors").write_bytes(b"torn")
    assert ckpt.latest(checkpoints).step < 60
    resumed = run_script(tmp_path / "killed", 60)
    assert resumed.wait(timeout=300) == 0
    a = ckpt.latest(tmp_path / "straight" / "checkpoints")
    b = ckpt.latest(checkpoints)
    assert a.step == b.step == 60
    for name, tensor in weights(a.path).items():
        assert torch.equal(tensor, weights(b.path)[name]), name


def test_learning_on_a_2d_toy_beats_the_untrained_model(tmp_path):
    test = two_moons(2048, 1)
    trainer = toy_trainer(tmp_path, 600)
    result = trainer.fit()
    first, last = sum(result.losses[:50]) / 50, sum(result.losses[-50:]) / 50
    assert last < 0.9 * first
    noise = randn((2048, 2, 1, 1), generators(range(2048)))
    objective = Objective("v_prediction")
    trained = sample(
        objective.denoiser(trainer.trained_network(), SCHEDULE),
        DDIMScheduler(clip_sample=False),
        noise,
        steps=30,
    )
    untrained = sample(
        objective.denoiser(MLP(hidden=32, depth=2), SCHEDULE),
        DDIMScheduler(clip_sample=False),
        noise,
        steps=30,
    )
    sw_trained, sw_untrained = sliced_wasserstein(trained, test), sliced_wasserstein(untrained, test)
    assert sw_trained < 0.5 * sw_untrained
    assert sw_trained < 0.25  # pure Gaussian noise scores 0.25 against this set; two true samples 0.04


@pytest.mark.parametrize(
    "objective", [Objective("epsilon", "min_snr"), Objective("sample"), Objective("edm")]
)
def test_every_objective_trains(tmp_path, objective):
    torch.manual_seed(0)
    cfg = TrainConfig(steps=150, batch_size=128, learning_rate=3e-3, progress=False, ema_decay=None)
    result = Trainer(
        MLP(hidden=64), SCHEDULE, objective, TensorItems(two_moons(1024, 0)), cfg, tmp_path
    ).fit()
    assert sum(result.losses[-20:]) < 0.9 * sum(result.losses[:20])


def test_images_of_two_sizes_train_one_unet_with_bf16_dropout_and_accumulation(tmp_path):
    gen = torch.Generator().manual_seed(0)
    squares, labels_a = bars(64, gen)
    wide = torch.cat([squares, squares], dim=-1)  # (1, 16, 32): a second aspect ratio
    samples = [*squares[:, :1].repeat(1, 2, 1, 1), *wide.repeat(1, 2, 1, 1)]
    labels = torch.cat([labels_a, labels_a])
    cfg = TrainConfig(steps=40, batch_size=16, grad_accum=2, learning_rate=2e-3, mixed_precision="bf16",
                      cond_dropout=0.2, null_label=2, progress=False)  # fmt: skip
    torch.manual_seed(0)
    trainer = Trainer(
        tiny_unet(num_class_embeds=3),
        SCHEDULE,
        Objective("epsilon"),
        TensorItems(samples, labels=labels),
        cfg,
        tmp_path,
    )
    result = trainer.fit()
    assert sum(result.losses[-10:]) < 0.7 * sum(result.losses[:10])
    exported = trainer.export()
    assert (exported / "diffusion_pytorch_model.safetensors").exists()
    assert (exported / "config.json").exists()


def test_shifted_schedule_moves_log_snr_by_the_resolution_ratio():
    scheduler = DDPMScheduler()
    shifted = DDPMScheduler(trained_betas=shifted_betas(scheduler.alphas_cumprod, 2.0))
    base = VPSchedule.from_scheduler(scheduler).log_snr
    moved = VPSchedule.from_scheduler(shifted).log_snr
    inner = slice(1, 990)  # away from the clamped ends
    assert torch.allclose(
        moved[inner] - base[inner], torch.full_like(base[inner], -2 * torch.log(torch.tensor(2.0))), atol=1e-3
    )


def test_bad_configs_and_data():
    with pytest.raises(DiffusionError, match="steps=0"):
        TrainConfig(steps=0)
    with pytest.raises(DiffusionError, match=r"cond_dropout=1\.5"):
        TrainConfig(steps=1, cond_dropout=1.5)
    with pytest.raises(DiffusionError, match="edm weighting goes with"):
        Objective("epsilon", "edm")
    with pytest.raises(DiffusionError, match="no bucket holds a full batch of 64"):
        Trainer(
            MLP(),
            SCHEDULE,
            Objective(),
            TensorItems(two_moons(10, 0)),
            TrainConfig(steps=1, batch_size=64),
            "/tmp/unused",
        )
    points, labels = two_moons_labelled(64, 0)
    with pytest.raises(DiffusionError, match="null_label="):
        Trainer(MLP(num_classes=2), SCHEDULE, Objective(), TensorItems(points, labels=labels),
                TrainConfig(steps=1, batch_size=8, cond_dropout=0.5, progress=False), "/tmp/unused").fit(resume=False)  # fmt: skip


def test_preview_grids_are_written_during_training(tmp_path):
    from PIL import Image

    def preview(network):
        denoiser = Objective("v_prediction").denoiser(network, SCHEDULE)
        points = sample(
            denoiser, DDIMScheduler(clip_sample=False), randn((9, 2, 1, 1), generators(range(9))), steps=4
        )
        return points.view(9, 1, 1, 2).expand(9, 1, 4, 2)  # 9 tiny "images" of the two coordinates

    toy_trainer(tmp_path, 20, preview=preview, sample_every=10).fit()
    grids = sorted((tmp_path / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step-00000010.png", "step-00000020.png"]
    with Image.open(grids[0]) as grid:
        assert grid.size == (3 * 2, 3 * 4)  # a 3x3 grid of 4x2 images
    with pytest.raises(DiffusionError, match=r"needs Trainer\(preview=\.\.\.\)"):
        toy_trainer(tmp_path / "x", 20, sample_every=10)
