"""The one Fréchet distance, and the conditioning helpers generation shares: stacking items, the guidance null."""

import pytest
import torch

from legato.diffusion import Conditioning, DiffusionError, frechet_distance


def test_frechet_distance_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 4, generator=g)
    b = torch.randn(4000, 4, generator=g) * 2 + torch.tensor([1.0, 0, 0, 0])
    # N(0, I) vs N(m, 4I): |m|^2 + tr(I + 4I - 2 * 2I) = 1 + 4
    assert frechet_distance(a, b) == pytest.approx(5.0, abs=0.25)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # few samples (N <= D): singular covariances stay finite
    assert frechet_distance(a[:3], b[:3]) >= 0.0
    with pytest.raises(DiffusionError, match=r"\(N >= 2, D\) embeddings of equal D"):
        frechet_distance(a, b[:, :3])


def test_stack_batches_items_and_null_is_zero_text_of_one_row():
    items = [Conditioning(text=torch.full((3, 4), float(i)), pooled=torch.ones(4)) for i in range(2)]
    batch = Conditioning.stack(items)
    assert batch.text.shape == (2, 3, 4)
    assert batch.pooled.shape == (2, 4)
    assert torch.equal(batch.text[1], items[1].text)
    null = batch.null()
    assert null.text.shape == (1, 3, 4)
    assert not null.text.any()
    assert null.pooled.shape == (1, 4)
    assert not null.pooled.any()
    with pytest.raises(DiffusionError, match="give every item the same fields"):
        Conditioning.stack([items[0], Conditioning(text=torch.zeros(3, 4))])
    with pytest.raises(DiffusionError, match="needs text conditioning"):
        Conditioning(labels=torch.zeros(2, dtype=torch.long)).null()
