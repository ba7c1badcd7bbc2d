"""Exact t-SNE in torch (van der Maaten and Hinton, 2008), for a few thousand points.

Affinities: Gaussian conditionals over each point's 3 x perplexity nearest neighbours
(the usual truncation; farther weights are negligible), bandwidths found by bisection
for all rows at once, symmetrised and normalised. Embedding: the exact gradient over
all pairs (dense Student-t similarities, no Barnes-Hut), momentum, per-coordinate gains
and early exaggeration. ~2000 points x 750 iterations take ~6 s on 2 busy CPU cores.
Deterministic for a seed (PCA initialisation uses no randomness at all).
"""
from __future__ import annotations

import math

import torch


def pca(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Project centred x (n, d) on its top ``dims`` principal axes -> (n, min(dims, d)).

    Signs are fixed (largest loading of each axis positive) so the result is reproducible.
    """
    x = x - x.mean(dim=0)
    _, _, vt = torch.linalg.svd(x, full_matrices=False)                  # vt (r, d)
    axes = vt[:dims]
    sign = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    return x @ (axes * sign).T


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """(n, n) squared Euclidean distances of the rows of x (n, d), clamped at 0."""
    sq = (x * x).sum(dim=1)
    return torch.addmm(sq[:, None] + sq[None, :], x, x.T, alpha=-2.0).clamp_min_(0.0)


def conditional_affinities(d2: torch.Tensor, perplexity: float, iters: int = 64
                           ) -> torch.Tensor:
    """Row-stochastic P(j|i) over each row's candidates, entropy = log(perplexity).

    d2 (n, k) squared distances from each point to its k candidate neighbours (float64
    advised) -> (n, k). Bisection on log beta (beta = 1 / (2 sigma^2)), all rows at once.
    """
    target = math.log(perplexity)
    d2 = d2 / d2.median().clamp_min(1e-12)                               # scale-free bounds
    lo = torch.full((d2.shape[0], 1), -50.0, dtype=d2.dtype, device=d2.device)
    hi = torch.full_like(lo, 50.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        neg = -d2 * mid.exp()                                             # (n, k)
        lse = neg.logsumexp(dim=1, keepdim=True)
        entropy = lse - (torch.softmax(neg, dim=1) * neg).sum(dim=1, keepdim=True)
        too_flat = entropy > target                                       # beta must grow
        lo = torch.where(too_flat, mid, lo)
        hi = torch.where(too_flat, hi, mid)
    return torch.softmax(-d2 * ((lo + hi) / 2).exp(), dim=1)


def joint_affinities(x: torch.Tensor, perplexity: float) -> torch.Tensor:
    """Symmetric P (n, n) summing to 1: (P(j|i) + P(i|j)) / 2n.

    P(j|i) is computed over the 3 * perplexity nearest neighbours of i (the usual
    truncation: farther points get weights below e^-(a few dozen)); 0 elsewhere.
    """
    n = x.shape[0]
    perplexity = min(perplexity, (n - 1) / 3)
    k = min(n - 1, int(3 * perplexity) + 1)
    d2 = squared_distances(x.double()).fill_diagonal_(math.inf)
    near_d2, near = d2.topk(k, dim=1, largest=False)                      # (n, k)
    cond = conditional_affinities(near_d2, perplexity)
    p = torch.zeros(n, n, dtype=torch.float64, device=x.device).scatter_(1, near, cond)
    return ((p + p.T) / (2 * n)).float()


def kl_gradient(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dKL(P || Q)/dy (n, 2) for the Student-t similarities Q of y (n, 2).

    With num_ij = 1 / (1 + |y_i - y_j|^2) and Z = sum_{i != j} num_ij:
    grad_i = 4 sum_j num_ij (p_ij - num_ij / Z) (y_i - y_j). Diagonal terms vanish
    (y_i - y_i = 0), so only Z needs the diagonal left out.
    """
    n = y.shape[0]
    num = squared_distances(y).add_(1.0).reciprocal_()                    # (n, n)
    z = float(num.sum()) - n
    w = (num * p).addcmul_(num, num, value=-1.0 / z)                      # (n, n)
    return 4.0 * (w.sum(dim=1, keepdim=True) * y - w @ y)


def kl_divergence(p: torch.Tensor, y: torch.Tensor) -> float:
    """KL(P || Q) of an embedding y (n, 2): the t-SNE cost (for checks, not the loop)."""
    num = squared_distances(y).add_(1.0).reciprocal_().fill_diagonal_(0.0)
    q = num / num.sum()
    mask = p > 0
    return float((p[mask] * (p[mask] / q[mask].clamp_min(1e-30)).log()).sum())


def tsne(
    x: torch.Tensor,
    perplexity: float = 30.0,
    iterations: int = 750,
    init: str = "pca",
    seed: int = 0,
    exaggeration: float = 12.0,
    exaggeration_iters: int = 250,
    learning_rate: float | None = None,
    pca_dims: int = 50,
) -> torch.Tensor:
    """2-D t-SNE embedding of x (n, d) -> (n, 2) float32 on x's device.

    ``init``: "pca" (first two principal components, scaled to std 1e-4) or "random"
    (N(0, 1e-4^2) from ``seed``). ``learning_rate`` None: max(n / exaggeration / 4, 50).
    Inputs wider than ``pca_dims`` are first reduced with PCA, as is customary.
    """
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    x = x.float()
    if x.shape[1] > pca_dims:
        x = pca(x, pca_dims)
    p = joint_affinities(x, perplexity)
    y = initial_embedding(x, init, seed)
    lr = learning_rate or max(n / exaggeration / 4.0, 50.0)
    p_early = p * exaggeration
    update = torch.zeros_like(y)
    gains = torch.ones_like(y)
    for it in range(iterations):
        early = it < exaggeration_iters
        grad = kl_gradient(p_early if early else p, y)
        steady = update * grad < 0                                        # still going downhill
        gains = torch.where(steady, gains + 0.2, gains * 0.8).clamp_min_(0.01)
        update = (0.5 if early else 0.8) * update - lr * gains * grad
        y = y + update
    return y - y.mean(dim=0)


def initial_embedding(x: torch.Tensor, init: str, seed: int) -> torch.Tensor:
    """Starting points (n, 2): PCA scaled to std 1e-4, or seeded N(0, 1e-4^2)."""
    if init == "pca":
        y = pca(x, 2)
        return y / y[:, 0].std().clamp_min(1e-12) * 1e-4
    if init == "random":
        gen = torch.Generator().manual_seed(seed)
        return (torch.randn(x.shape[0], 2, generator=gen) * 1e-4).to(x.device)
    raise ValueError(f"t-SNE init must be 'pca' or 'random', not {init!r}")
