import math

import pytest
import torch

from asar_model.tsne import (
    conditional_affinities,
    joint_affinities,
    kl_divergence,
    kl_gradient,
    squared_distances,
    tsne,
)


def blobs(n: int = 60, dim: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return torch.randn(n, dim, generator=gen) + 6.0 * y[:, None], y


def test_bandwidths_give_every_row_the_asked_perplexity():
    x, _ = blobs()
    d2 = squared_distances(x.double()).fill_diagonal_(math.inf)
    near_d2, _ = d2.topk(31, dim=1, largest=False)
    p = conditional_affinities(near_d2, perplexity=10.0)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(dim=1)
    torch.testing.assert_close(entropy, torch.full_like(entropy, math.log(10.0)),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(60, dtype=torch.float64))


def test_joint_affinities_are_symmetric_and_sum_to_one():
    x, _ = blobs()
    p = joint_affinities(x, 10.0)
    torch.testing.assert_close(p, p.T)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_fused_gradient_equals_autograd_of_the_kl_cost():
    x, _ = blobs(30)
    p = joint_affinities(x, 5.0).double()
    y = torch.randn(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    leaf = y.clone().requires_grad_(True)
    num = 1.0 / (1.0 + torch.cdist(leaf, leaf) ** 2)
    num = num * (1 - torch.eye(30, dtype=torch.float64))
    q = num / num.sum()
    mask = p > 0
    kl = (p[mask] * (p[mask] / q[mask]).log()).sum()
    kl.backward()
    torch.testing.assert_close(kl_gradient(p, y), leaf.grad)
    assert kl_divergence(p, y) == pytest.approx(kl.item())


def test_tsne_is_deterministic_for_a_seed():
    x, _ = blobs()
    for init in ("pca", "random"):
        a = tsne(x, perplexity=10, iterations=200, init=init, seed=3)
        b = tsne(x, perplexity=10, iterations=200, init=init, seed=3)
        assert torch.equal(a, b)
    c = tsne(x, perplexity=10, iterations=200, init="random", seed=4)
    assert not torch.equal(a, c)


def test_tsne_separates_two_blobs():
    x, y = blobs(80)
    emb = tsne(x, perplexity=10, iterations=500, seed=0)
    a, b = emb[y == 0], emb[y == 1]
    between = torch.cdist(a, b).min()                       # closest pair across the blobs
    within = torch.cdist(emb, emb).fill_diagonal_(math.inf).min(dim=1).values.max()
    assert between > 2 * within                             # a clear gap between the blobs
    nearest = torch.cdist(emb, torch.stack([a.mean(0), b.mean(0)])).argmin(dim=1)
    assert torch.equal(nearest, y)


def test_tsne_refuses_too_few_points_and_unknown_init():
    with pytest.raises(ValueError, match="at least 4"):
        tsne(torch.randn(3, 5))
    with pytest.raises(ValueError, match="init"):
        tsne(torch.randn(10, 5), init="spectral")
