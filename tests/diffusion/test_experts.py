"""Noise-level experts: routing, and sampling through the one loop unchanged."""

import pytest
import torch
from diffusers import DDIMScheduler
from torch import nn

from legato.diffusion import Conditioning, Denoiser, DiffusionError, NoiseLevelExperts, expert_ranges, sample
from legato.diffusion.models import MLP


class Constant(nn.Module):
    """A denoiser that answers with one number, to see who answered."""

    output_type = "epsilon"

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x, t, cond=None):
        return torch.full_like(x, self.value)


def test_ranges_and_routing():
    assert expert_ranges([300, 700]) == [(0.0, 299.0), (300.0, 699.0), (700.0, 999.0)]
    experts = NoiseLevelExperts([Constant(0.0), Constant(1.0), Constant(2.0)], [300, 700])
    t = torch.tensor([0, 299, 300, 699, 700, 999])
    out = experts(torch.zeros(6, 2, 1, 1), t, Conditioning(labels=torch.arange(6)))
    assert out[:, 0, 0, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]


def test_composite_samples_through_the_loop_and_uses_each_expert():
    torch.manual_seed(0)
    low, high = Denoiser(MLP(hidden=16)), Denoiser(MLP(hidden=16))
    calls = {"low": 0, "high": 0}
    low.register_forward_hook(lambda *a: calls.__setitem__("low", calls["low"] + 1))
    high.register_forward_hook(lambda *a: calls.__setitem__("high", calls["high"] + 1))
    out = sample(NoiseLevelExperts([low, high], [500]), DDIMScheduler(), torch.randn(4, 2, 1, 1), steps=10)
    assert out.shape == (4, 2, 1, 1)
    assert calls == {"low": 5, "high": 5}


def test_bad_experts():
    with pytest.raises(DiffusionError, match="3 experts need 2 boundaries"):
        NoiseLevelExperts([Constant(0)] * 3, [500])
    with pytest.raises(DiffusionError, match="ascending"):
        NoiseLevelExperts([Constant(0)] * 3, [700, 300])
