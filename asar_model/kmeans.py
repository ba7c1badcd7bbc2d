"""Euclidean k-means in torch with the reference's update and stop rule, on the data's device.

The reference's rule: initial centroids are k distinct points drawn at random; each
iteration assigns every point to its nearest centroid (the largest of the reference's
score 2 x.c - |x|^2 - |c|^2, one matmul; ties: the lowest index) and
computes each cluster's new centroid, the mean of its points or the ZERO vector for a
cluster without points; the error is the summed squared move over all k clusters (empty
ones included). When the error is at most ``tol`` it stops and returns THIS iteration's
assignment (the centroids are not replaced); otherwise the new centroids replace the
old. After ``max_iter`` iterations the last assignment is returned.

Here the loop has a fixed length and a run that has stopped is frozen with
``torch.where``, so nothing waits on the host and the result is the loop-with-break's;
``check_every`` optionally leaves the loop early (one host sync per check, free on the CPU).
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
    pick: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cluster the rows of ``x`` (n, d) into ``k`` clusters (k <= n).

    ``pick`` (k,) long: the rows taken as initial centroids; None draws k distinct rows
    with ``generator`` (``randperm(n)[:k]``). Returns ``(assign, centroids, iterations)``:
    assign (n,) long in [0, k), the assignment of the iteration that stopped (or of the
    last one); centroids (k, d), the centroids that assignment was made against when it
    stopped, else the last update; iterations, a 0-d long tensor, the number of
    iterations the loop-with-break runs (1 to ``max_iter``). ``check_every`` > 0 tests
    every that many iterations whether the run has stopped and leaves the loop (a host
    sync each time); 0 always runs ``max_iter`` iterations (frozen once stopped).
    """
    n = x.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"k-means needs 0 < k <= n points, got k={k}, n={n}")
    if pick is None:
        gen_device = generator.device if generator is not None else x.device
        pick = torch.randperm(n, generator=generator, device=gen_device)[:k]
    centroids = x[pick.to(x.device)]                                   # (k, d)
    x_sq = x.pow(2).sum(dim=1, keepdim=True)                           # (n, 1)
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    done = torch.zeros((), dtype=torch.bool, device=x.device)
    iterations = torch.zeros((), dtype=torch.long, device=x.device)
    for it in range(max_iter):
        # the reference's nearness score, -|x - c|^2 through one matmul; ties: lowest index
        score = 2 * x @ centroids.T - x_sq - centroids.pow(2).sum(dim=1)  # (n, k)
        new_assign = score.argmax(dim=1)                                # (n,)
        onehot = torch.nn.functional.one_hot(new_assign, k).to(x.dtype)  # (n, k)
        counts = onehot.sum(dim=0)[:, None]                             # (k, 1)
        means = (onehot.T @ x) / counts.clamp(min=1)                    # (k, d), 0 if empty
        stop = (means - centroids).pow(2).sum() <= tol
        assign = torch.where(done, assign, new_assign)
        iterations = iterations + (~done).long()
        centroids = torch.where(done | stop, centroids, means)
        done = done | stop
        if check_every and (it + 1) % check_every == 0 and bool(done):
            break
    return assign, centroids, iterations
