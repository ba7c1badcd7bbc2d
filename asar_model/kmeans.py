"""Euclidean k-means in torch, entirely on the data's device.

The reference's rule: initial centroids are k distinct points drawn at random; each
iteration assigns points to the nearest centroid and moves every centroid to the mean
of its points; it stops once the summed squared centroid move is at most ``tol`` or
after ``max_iter`` iterations, and returns that last iteration's assignment. Here the
loop has a fixed length and converged runs are frozen with ``torch.where``, so nothing
waits on the host; ``check_every`` optionally stops early (one host sync per check).
"""
from __future__ import annotations

import torch


def kmeans(
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    tol: float = 1e-4,
    max_iter: int = 100,
    check_every: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the rows of ``x`` (n, d) into ``k`` clusters (k <= n).

    Returns ``(assign, centroids)``: assign (n,) long in [0, k), the assignment of the
    last iteration run; centroids (k, d), the means after it. An empty cluster keeps its
    centroid. ``check_every`` > 0 tests convergence every that many iterations and stops
    early (a host sync each time; free on the CPU); 0 always runs ``max_iter`` iterations.
    """
    n = x.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"k-means needs 0 < k <= n points, got k={k}, n={n}")
    gen_device = generator.device if generator is not None else x.device
    pick = torch.randperm(n, generator=generator, device=gen_device)[:k].to(x.device)
    centroids = x[pick]                                               # (k, d)
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    done = torch.zeros((), dtype=torch.bool, device=x.device)
    for it in range(max_iter):
        dist = torch.cdist(x, centroids, compute_mode="donot_use_mm_for_euclid_dist")  # (n, k)
        new_assign = dist.argmin(dim=1)                               # (n,)
        onehot = torch.nn.functional.one_hot(new_assign, k).to(x.dtype)  # (n, k)
        counts = onehot.sum(dim=0)[:, None]                           # (k, 1)
        means = (onehot.T @ x) / counts.clamp(min=1)                  # (k, d)
        new_centroids = torch.where(counts > 0, means, centroids)
        shift = (new_centroids - centroids).pow(2).sum()
        assign = torch.where(done, assign, new_assign)
        centroids = torch.where(done, centroids, new_centroids)
        done = done | (shift <= tol)
        if check_every and (it + 1) % check_every == 0 and bool(done):
            break
    return assign, centroids
