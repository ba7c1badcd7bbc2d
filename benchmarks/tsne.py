"""t-SNE at the reference's scale: FFT-accelerated vs the exact O(n^2) gradient.

    python benchmarks/tsne.py [--points 18932] [--subset 2000] [--dims 256] [--classes 60]

Data: ``--points`` synthetic 256-d features in ``--classes`` Gaussian clusters (unit
class centres, noise 0.9 a coordinate: overlapping at their edges), the size of the
NTU-60 xview test split. One run:

- fft, all points: `asar_model.tsne.tsne(method="fft")`, the default for more than
  EXACT_UP_TO points: seconds (wall and this process's CPU), and the 2-D k-NN purity
  (share of each point's 10 nearest embedded neighbours of its own class).
- the same ``--subset`` points (seeded) by both methods: seconds and their ratio, the
  t-SNE cost KL(P || Q) of each embedding under the same exact P (lower is better), and
  the purity. "exact" is the dense float32 gradient the stage used before; its time on
  all the points is extrapolated (n^2), not run.

The machine's load average is printed first: on a shared machine the CPU seconds are
the steadier figure.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from asar_model.tsne import joint_affinities, kl_divergence, nearest_neighbours, pca, tsne


def clustered(points: int, dims: int, classes: int, seed: int = 0
              ) -> tuple[torch.Tensor, np.ndarray]:
    """(points, dims) float32 features around ``classes`` centres, and their labels."""
    g = np.random.default_rng(seed)
    labels = g.integers(0, classes, points)
    centres = g.normal(size=(classes, dims))
    x = centres[labels] + g.normal(scale=0.9, size=(points, dims))
    return torch.from_numpy(x.astype(np.float32)), labels


def purity(emb: torch.Tensor, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest neighbours in the embedding with its label."""
    _, near = nearest_neighbours(emb, k)
    return float((labels[near.numpy()] == labels[:, None]).mean())


def timed(x: torch.Tensor, method: str) -> tuple[torch.Tensor, float, float]:
    """(embedding, wall seconds, CPU seconds of this process) of one t-SNE."""
    t0, c0 = time.perf_counter(), time.process_time()
    emb = tsne(x, method=method)
    return emb, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=18932)
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--dims", type=int, default=256)
    ap.add_argument("--classes", type=int, default=60)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"torch threads {torch.get_num_threads()}")
    x, labels = clustered(args.points, args.dims, args.classes)
    tsne(x[:200], iterations=1, method="fft")                   # numba compile/cache load
    emb, fft_wall, cpu = timed(x, "fft")
    print(f"fft   {args.points} x {args.dims}: {fft_wall:6.1f} s wall, {cpu:6.1f} s CPU, "
          f"k-NN purity {purity(emb, labels):.3f}")
    pick = np.sort(np.random.default_rng(1).permutation(args.points)[:args.subset])
    sub, sub_labels = x[pick], labels[pick]
    p = joint_affinities(pca(sub, 50), 30.0)
    rows = {}
    for method in ("exact", "fft"):
        emb, wall, cpu = timed(sub, method)
        rows[method] = wall
        print(f"{method:5s} {args.subset} x {args.dims}: {wall:6.1f} s wall, {cpu:6.1f} s CPU, "
              f"KL {kl_divergence(p, emb):.3f}, k-NN purity {purity(emb, sub_labels):.3f}")
    print(f"exact / fft on {args.subset} points: {rows['exact'] / rows['fft']:.1f}x")
    scale = (args.points / args.subset) ** 2
    print(f"exact on {args.points} points, extrapolated (n^2): about "
          f"{rows['exact'] * scale:.0f} s and {8 * args.points ** 2 / 2 ** 30:.1f} GiB a dense "
          f"(n, n) float64 matrix; fft measured: {fft_wall:.1f} s")


if __name__ == "__main__":
    main()
