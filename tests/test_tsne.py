import math

import numpy as np
import pytest
import torch

from asar_model import tsne_fft
from asar_model.tsne import (
    conditional_affinities,
    joint_affinities,
    kl_divergence,
    kl_gradient,
    nearest_neighbours,
    sparse_affinities,
    squared_distances,
    tsne,
)


def blobs(n: int = 60, dim: int = 20, classes: int = 2, seed: int = 0
          ) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, dim, generator=gen) * 4.0
    return centres[y] + torch.randn(n, dim, generator=gen), y


def purity(emb: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Share of each point's k nearest neighbours in the embedding with its label."""
    _, near = nearest_neighbours(emb, k)
    return float((labels[near] == labels[:, None]).float().mean())


def test_bandwidths_give_every_row_the_asked_perplexity():
    x, _ = blobs()
    d2 = squared_distances(x.double()).fill_diagonal_(math.inf)
    near_d2, _ = d2.topk(31, dim=1, largest=False)
    p = conditional_affinities(near_d2, perplexity=10.0)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(dim=1)
    torch.testing.assert_close(entropy, torch.full_like(entropy, math.log(10.0)),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(60, dtype=torch.float64))


def test_nearest_neighbours_are_the_exact_ones_in_blocks():
    x, _ = blobs(50)
    d2, idx = nearest_neighbours(x, 7, block=16)
    want = squared_distances(x.double()).fill_diagonal_(math.inf).topk(7, largest=False)
    assert torch.equal(idx, want.indices)
    torch.testing.assert_close(d2, want.values, rtol=1e-5, atol=1e-4)


def test_joint_affinities_are_symmetric_and_sum_to_one():
    x, _ = blobs()
    p = joint_affinities(x, 10.0)
    torch.testing.assert_close(p, p.T)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    rows, cols, values = sparse_affinities(x, 10.0)
    assert torch.equal(p[rows, cols], values.float())


def test_exact_gradient_equals_autograd_of_the_kl_cost():
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


def csr(x: torch.Tensor, perplexity: float) -> tuple[tuple, torch.Tensor]:
    n = x.shape[0]
    rows, cols, values = sparse_affinities(x, perplexity)
    p = torch.zeros(n, n, dtype=torch.float64)
    p[rows, cols] = values
    indptr = np.zeros(n + 1, np.int64)
    indptr[1:] = np.cumsum(np.bincount(rows.numpy(), minlength=n))
    return (indptr, cols.numpy(), values.numpy()), p


@pytest.mark.parametrize("spread", [1e-3, 2.0, 10.0])
def test_fft_gradient_is_close_to_the_exact_one(spread):
    x, _ = blobs(400, classes=4)
    sparse, p = csr(x, 20.0)
    g = np.random.default_rng(0)
    y = g.normal(size=(400, 2)) * spread + g.normal(size=(4, 2))[np.arange(400) % 4] * spread
    exact = kl_gradient(p, torch.from_numpy(y)).numpy()
    approx = tsne_fft.gradient(*sparse, y)
    # the grid interpolation is a few per cent off where points are sparse (FIt-SNE too)
    assert np.linalg.norm(approx - exact) / np.linalg.norm(exact) < 0.08


def test_fft_repulsion_is_exact_for_points_on_the_grid_nodes():
    g = np.random.default_rng(1)
    nodes = g.integers(0, 3 * 60, size=(300, 2))
    nodes[:2] = [[0, 0], [179, 179]]                  # span 59 2/3: 60 boxes of width 1
    y = (nodes + 0.5) / 3.0
    rep, z = tsne_fft.repulsion(y)
    yt = torch.from_numpy(y)
    num = squared_distances(yt).add_(1.0).reciprocal_()
    want = ((num ** 2).sum(1, keepdim=True) * yt - (num ** 2) @ yt).numpy()
    # only the float32 FFTs' rounding is left (elsewhere the interpolation's 1e-2 dominates)
    assert np.linalg.norm(rep - want) / np.linalg.norm(want) < 1e-4
    assert z == pytest.approx(float(num.sum()) - 300, rel=1e-6)


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_tsne_separates_well_separated_clusters(method):
    x, y = blobs(240, classes=6)
    emb = tsne(x, perplexity=15, iterations=400, method=method)
    assert emb.shape == (240, 2) and emb.dtype == torch.float32
    assert purity(emb, y) > 0.98


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_tsne_is_deterministic_for_a_seed(method):
    x, _ = blobs(80)
    for init in ("pca", "random"):
        a = tsne(x, perplexity=10, iterations=120, init=init, seed=3, method=method)
        b = tsne(x, perplexity=10, iterations=120, init=init, seed=3, method=method)
        assert torch.equal(a, b)
    c = tsne(x, perplexity=10, iterations=120, init="random", seed=4, method=method)
    assert not torch.equal(a, c)


def test_tsne_reports_each_iteration():
    seen = []
    tsne(blobs()[0], perplexity=5, iterations=7, on_iteration=lambda d, n: seen.append((d, n)))
    assert seen == [(i, 7) for i in range(1, 8)]


def test_tsne_refuses_too_few_points_and_unknown_options():
    with pytest.raises(ValueError, match="at least 4"):
        tsne(torch.randn(3, 5))
    with pytest.raises(ValueError, match="init"):
        tsne(torch.randn(10, 5), init="spectral")
    with pytest.raises(ValueError, match="method"):
        tsne(torch.randn(10, 5), method="bh")
