"""Cold Diffusion on the bars data: the same Trainer and sampling loop with a blur or a mask for noise."""

import pytest
import torch
from diffusers import DDPMScheduler

from legato.diffusion import Denoiser, DiffusionError, VPSchedule, sample
from legato.diffusion.cold_diffusion import ColdObjective, ColdScheduler
from legato.diffusion.training import TensorItems, TrainConfig, Trainer

from .conftest import bars, tiny_unet


def test_degradations_are_deterministic_and_grow_with_t():
    x0, _ = bars(4, torch.Generator().manual_seed(0))
    for kind in ("blur", "mask"):
        cold = ColdScheduler(num_train_timesteps=10, degradation=kind)
        assert torch.equal(cold.degrade(x0, torch.zeros(4)), x0)
        errors = [float((cold.degrade(x0, torch.full((4,), t)) - x0).abs().mean()) for t in (2, 5, 10)]
        assert errors[0] < errors[1] < errors[2]
        assert torch.equal(cold.degrade(x0, torch.full((4,), 5)), cold.degrade(x0, torch.full((4,), 5)))


# Measured: blur from full severity: degraded 0.516, naive 0.121, improved 0.021 RMSE. Masking starts from
# half the pixels hidden (all hidden leaves nothing to restore), through sample()'s init/strength path.
@pytest.mark.parametrize(("kind", "strength"), [("blur", 1.0), ("mask", 0.5)])
def test_restoration_through_the_one_loop_beats_the_degraded_input(tmp_path, kind, strength):
    # Train a tiny UNet to undo the degradation, then restore degraded held-out bars with sample().
    cold = ColdScheduler(num_train_timesteps=10, degradation=kind, blur_sigma_max=2.0)
    gen = torch.Generator().manual_seed(0)
    data, _ = bars(1024, gen)
    torch.manual_seed(0)
    config = TrainConfig(steps=250, batch_size=32, learning_rate=3e-3, ema_decay=0.95, progress=False)
    trainer = Trainer(tiny_unet(in_channels=1, out_channels=1), VPSchedule.from_scheduler(DDPMScheduler()),
                      ColdObjective(cold), TensorItems(data), config, tmp_path)  # fmt: skip
    result = trainer.fit()
    assert sum(result.losses[-25:]) < 0.6 * sum(result.losses[:25])

    held_out, _ = bars(16, torch.Generator().manual_seed(99))
    degraded = cold.degrade(held_out, torch.full((16,), round(10 * strength)))
    denoiser = Denoiser(trainer.trained_network(), "sample")
    start = {"init": held_out, "strength": strength} if strength < 1 else {}
    improved = sample(denoiser, cold, degraded, steps=10, **start)
    naive_cold = ColdScheduler.from_config(cold.config, algorithm="naive")
    naive = sample(denoiser, naive_cold, degraded, steps=10, **start)

    def rmse(x):
        return float((x - held_out).pow(2).mean().sqrt())

    assert rmse(improved) < 0.7 * rmse(degraded)
    print(f"{kind}: degraded {rmse(degraded):.3f}, naive {rmse(naive):.3f}, improved {rmse(improved):.3f}")


def test_cold_scheduler_refuses_noise_predictions():
    with pytest.raises(DiffusionError, match="must predict 'sample'"):
        ColdScheduler(prediction_type="epsilon")
    with pytest.raises(DiffusionError, match="degradation='snow'"):
        ColdScheduler(degradation="snow")
