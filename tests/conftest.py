"""Fixtures shared by every member's tests."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from legato.diffusion import Conditioning, forward_network

InputsFn = Callable[[int], tuple[torch.Tensor, torch.Tensor, Conditioning]]


def check_model_contract(
    make: Callable[[], nn.Module], inputs: InputsFn, out_channels: int, tmp_path: Path
) -> None:
    """The contract every Legato denoising network passes.

    - shapes: the prediction has the sample's batch and size and ``out_channels`` channels;
    - determinism: the same seed builds the same weights, and the same input gives the same bytes;
    - save/load: save_pretrained writes safetensors (no pickle) and from_pretrained gives the same forward;
    - learning: one optimiser step on a fixed batch lowers the loss on that batch.
    """
    torch.manual_seed(0)
    net = make().eval()
    torch.manual_seed(0)
    twin = make().eval()
    x, t, cond = inputs(2)
    with torch.no_grad():
        out = forward_network(net, x, t, cond)
        assert out.shape == (x.shape[0], out_channels, *x.shape[2:])
        assert torch.equal(out, forward_network(net, x, t, cond))
        assert torch.equal(out, forward_network(twin, x, t, cond))

    net.save_pretrained(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "diffusion_pytorch_model.safetensors" in names, names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".ckpt"))], names
    loaded = type(net).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(out, forward_network(loaded, x, t, cond))

    net.train()
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        loss = torch.nn.functional.mse_loss(forward_network(net, x, t, cond), target)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[1] < losses[0]


@pytest.fixture
def model_contract() -> Callable[..., None]:
    return check_model_contract
