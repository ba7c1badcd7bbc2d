"""t-SNE in torch (van der Maaten and Hinton, 2008), exact or FFT-accelerated.

Affinities: Gaussian conditionals over each point's 3 x perplexity exact nearest
neighbours (the usual truncation; farther weights are negligible), bandwidths found by
bisection for all rows at once, symmetrised and normalised into a sparse P.

Gradient, two ways:
- "exact": dense Student-t similarities over all pairs, O(n^2) time and memory; used for
  small inputs and as the reference the approximation is tested against.
- "fft": the attractive term over P's nonzeros only, the repulsive term and the
  normaliser Z by FFT-accelerated interpolation (FIt-SNE, Linderman et al. 2019): the
  points' charges are spread onto an equispaced grid by Lagrange interpolation (3 nodes a
  box, boxes 1 unit wide), convolved with the kernels by FFT and read back
  (`asar_model.tsne_fft`). About O(n) a step, plus an FFT whose size grows with the
  embedding's spread; the full NTU-60 xview test split (18,932 points) takes well under
  two minutes on 2 CPU cores (`benchmarks/tsne.py`). The forces are about 1e-2 off
  (as openTSNE's, with the same grid), which leaves the final KL a little above the
  exact gradient's.

Optimisation as usual: PCA initialisation, early exaggeration, momentum and
per-coordinate gains; the learning rate n / exaggeration then n (in the usual units),
steps clipped, as openTSNE does: on 2,000 clustered points this lowers the final KL by
a fifth to a quarter for either gradient against a fixed rate. Deterministic for a seed
(the PCA initialisation uses no randomness at all).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

EXACT_UP_TO = 1000          # "auto" uses the exact gradient up to this many points


# -- affinities ----------------------------------------------------------------------------
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


def nearest_neighbours(x: torch.Tensor, k: int, block: int = 2048
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k exact nearest neighbours of each row of x (n, d), itself excluded.

    Returns (squared distances (n, k) float64, ascending; indices (n, k) int64). Rows are
    done ``block`` at a time (memory block x n); the chosen distances are recomputed as
    sums of squared differences, so the cancellation in the search's |a|^2 + |b|^2 - 2ab
    does not reach the affinities.
    """
    x = x.float()
    n = x.shape[0]
    sq = (x * x).sum(dim=1)
    idx = torch.empty(n, k, dtype=torch.int64)
    for s in range(0, n, block):
        rows = torch.arange(s, min(s + block, n))
        d2 = torch.addmm(sq[rows, None] + sq[None, :], x[rows], x.T, alpha=-2.0)
        d2[torch.arange(len(rows)), rows] = math.inf
        idx[rows] = d2.topk(k, dim=1, largest=False).indices
    d2 = torch.cat([((x[s:s + block, None, :] - x[idx[s:s + block]]) ** 2).sum(dim=2)
                    for s in range(0, n, block)]).double()
    d2, order = d2.sort(dim=1, stable=True)
    return d2, idx.gather(1, order)


def conditional_affinities(d2: torch.Tensor, perplexity: float, iters: int = 48
                           ) -> torch.Tensor:
    """Row-stochastic P(j|i) over each row's candidates, entropy = log(perplexity).

    d2 (n, k) squared distances from each point to its k candidate neighbours (float64
    advised) -> (n, k). Bisection on log beta (beta = 1 / (2 sigma^2)), all rows at once;
    each row's smallest distance is subtracted first (P and the entropy do not change), so
    exp never overflows and one exp a step suffices.
    """
    target = math.log(perplexity)
    d2 = d2 - d2.min(dim=1, keepdim=True).values
    d2 = d2 / d2.median().clamp_min(1e-12)                               # scale-free bounds
    lo = torch.full((d2.shape[0], 1), -50.0, dtype=d2.dtype, device=d2.device)
    hi = torch.full_like(lo, 50.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        beta = mid.exp()
        e = (-d2 * beta).exp_()                                           # (n, k)
        total = e.sum(dim=1, keepdim=True)
        entropy = total.log() + beta * (d2 * e).sum(dim=1, keepdim=True) / total
        too_flat = entropy > target                                       # beta must grow
        lo = torch.where(too_flat, mid, lo)
        hi = torch.where(too_flat, hi, mid)
    e = (-d2 * ((lo + hi) / 2).exp()).exp_()
    return e / e.sum(dim=1, keepdim=True)


def sparse_affinities(x: torch.Tensor, perplexity: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric P as (rows, cols, values), sorted by (row, col), values summing to 1.

    P = (P(j|i) + P(i|j)) / 2n with P(j|i) over the 3 * perplexity nearest neighbours of
    i (0 elsewhere). Rows and cols int64 (nnz,), values float64 (nnz,).
    """
    n = x.shape[0]
    perplexity = min(perplexity, (n - 1) / 3)
    k = min(n - 1, int(3 * perplexity) + 1)
    near_d2, near = nearest_neighbours(x, k)
    cond = conditional_affinities(near_d2, perplexity).flatten()
    rows = torch.arange(n).repeat_interleave(k)
    cols = near.flatten()
    key = torch.cat([rows * n + cols, cols * n + rows])
    unique, inverse = torch.unique(key, sorted=True, return_inverse=True)
    values = torch.zeros(len(unique), dtype=torch.float64).index_add_(
        0, inverse, torch.cat([cond, cond]))
    return unique // n, unique % n, values / (2 * n)


def joint_affinities(x: torch.Tensor, perplexity: float) -> torch.Tensor:
    """The dense symmetric P (n, n) float32 of `sparse_affinities` (small n only)."""
    n = x.shape[0]
    rows, cols, values = sparse_affinities(x, perplexity)
    p = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    p[rows, cols] = values
    return p.float()


# -- gradients -----------------------------------------------------------------------------
def kl_gradient(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact dKL(P || Q)/dy (n, 2) for the Student-t similarities Q of y (n, 2).

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


# -- the optimisation ----------------------------------------------------------------------
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
    method: str = "auto",
    on_iteration: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """2-D t-SNE embedding of x (n, d) -> (n, 2) float32 (CPU), centred.

    ``init``: "pca" (first two principal components, scaled to std 1e-4) or "random"
    (N(0, 1e-4^2) from ``seed``). ``learning_rate`` None: max(n / exaggeration / 4, 50)
    while exaggerated, then max(n / 4, 50) (Belkina et al. 2019, as openTSNE; the 4 is in
    our gradient), each point's step clipped to 5 units.
    Inputs wider than ``pca_dims`` are first reduced with PCA, as is customary.
    ``method``: "exact", "fft", or "auto" (exact up to EXACT_UP_TO points).
    ``on_iteration(done, total)`` is called after each step (a progress bar).
    """
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    if method not in ("auto", "exact", "fft"):
        raise ValueError(f"t-SNE method must be auto, exact or fft, not {method!r}")
    if init not in ("pca", "random"):
        raise ValueError(f"t-SNE init must be 'pca' or 'random', not {init!r}")
    exact = method == "exact" or (method == "auto" and n <= EXACT_UP_TO)
    x = x.detach().float().cpu()
    if x.shape[1] > pca_dims:
        x = pca(x, pca_dims)
    rows, cols, values = sparse_affinities(x, perplexity)
    y = initial_embedding(x, init, seed).numpy()
    if exact:                                       # dense (n, n), float32
        p = torch.zeros(n, n, dtype=torch.float64)
        p[rows, cols] = values
        p = p.float()

        def gradient(y: np.ndarray, ex: float) -> np.ndarray:
            return kl_gradient(p * ex, torch.from_numpy(y)).numpy()
    else:                                           # sparse P, float64
        from asar_model import tsne_fft

        indptr = np.zeros(n + 1, np.int64)
        indptr[1:] = np.cumsum(np.bincount(rows.numpy(), minlength=n))
        csr = (indptr, cols.numpy(), values.numpy())
        y = y.astype(np.float64)

        def gradient(y: np.ndarray, ex: float) -> np.ndarray:
            return tsne_fft.gradient(*csr, y, ex)
    y = descend(y, gradient, iterations, exaggeration, exaggeration_iters,
                learning_rate or max(n / exaggeration / 4.0, 50.0),
                learning_rate or max(n / 4.0, 50.0), on_iteration)
    return torch.from_numpy((y - y.mean(axis=0)).astype(np.float32))


def descend(y: np.ndarray, gradient: Callable[[np.ndarray, float], np.ndarray],
            iterations: int, exaggeration: float, exaggeration_iters: int,
            lr_early: float, lr_late: float,
            on_iteration: Callable[[int, int], None] | None = None,
            max_step: float = 5.0) -> np.ndarray:
    """Gradient descent with momentum (0.5 while P is exaggerated, then 0.8), per-coordinate
    gains (+0.2 while the step keeps its direction, else x0.8, >= 0.01), the learning rate
    ``lr_early`` then ``lr_late``, each point's step at most ``max_step`` long.
    NumPy on the host: (n, 2) arrays are too small for threads to pay."""
    update = np.zeros_like(y)
    gains = np.ones_like(y)
    for it in range(iterations):
        early = it < exaggeration_iters
        grad = gradient(y, exaggeration if early else 1.0)
        steady = update * grad < 0                                        # still going downhill
        gains = np.maximum(np.where(steady, gains + 0.2, gains * 0.8), 0.01)
        update = (0.5 if early else 0.8) * update - (lr_early if early else lr_late) * gains * grad
        norm = np.sqrt((update * update).sum(axis=1, keepdims=True))
        update *= np.minimum(1.0, max_step / np.maximum(norm, 1e-300))
        y = y + update
        if on_iteration is not None:
            on_iteration(it + 1, iterations)
    return y


def initial_embedding(x: torch.Tensor, init: str, seed: int) -> torch.Tensor:
    """Starting points (n, 2): PCA scaled to std 1e-4, or seeded N(0, 1e-4^2)."""
    if init == "pca":
        y = pca(x, 2)
        return y / y[:, 0].std().clamp_min(1e-12) * 1e-4
    if init == "random":
        gen = torch.Generator().manual_seed(seed)
        return (torch.randn(x.shape[0], 2, generator=gen) * 1e-4).to(x.device)
    raise ValueError(f"t-SNE init must be 'pca' or 'random', not {init!r}")
