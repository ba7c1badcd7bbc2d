"""The NTU RGB+D 25-joint skeleton graph and its ST-GCN adjacency partitions.

Edges and bones are data (1-based as in the specs, 0-based for code). The adjacency
follows ST-GCN's construction: hop distances capped at ``max_hop`` (farther pairs are
infinitely far), a column-normalised adjacency, and the "spatial" partition into
root / closer-to-centre / farther-from-centre subsets. With max hop 1 most joints are
"infinitely" far from the centre joint, so an edge between two such joints counts as
"root" (inf == inf); this is what the reference computes and what its weights expect.
"""
from __future__ import annotations

import numpy as np

from asar_data.skeleton import (  # noqa: F401 - re-exported for the graph's users
    BONES,
    BONES_1BASED,
    CENTER,
    EDGES,
    EDGES_1BASED,
    NUM_JOINTS,
    PARENTS,
)


def hop_distance(num_node: int, edges: tuple[tuple[int, int], ...], max_hop: int = 1) -> np.ndarray:
    """Shortest-path hop counts (V, V), ``inf`` beyond ``max_hop``; self-links are 0."""
    a = np.eye(num_node, dtype=bool)
    for i, j in edges:
        a[i, j] = a[j, i] = True
    hop = np.full((num_node, num_node), np.inf)
    reach = np.eye(num_node, dtype=bool)
    for d in range(max_hop + 1):
        hop[reach & np.isinf(hop)] = d
        reach = (reach.astype(np.int64) @ a.astype(np.int64)) > 0
    return hop


def normalize_columns(a: np.ndarray) -> np.ndarray:
    """Divide each column of ``a`` (V, V) by its sum (zero columns stay zero)."""
    col = a.sum(axis=0)
    return a / np.where(col > 0, col, 1.0)[None, :]


def adjacency(
    strategy: str = "spatial",
    max_hop: int = 1,
    dilation: int = 1,
    num_node: int = NUM_JOINTS,
    edges: tuple[tuple[int, int], ...] = EDGES,
    center: int = CENTER,
) -> np.ndarray:
    """ST-GCN adjacency partitions (K, V, V), float64; (3, 25, 25) for NTU "spatial"."""
    hop = hop_distance(num_node, edges, max_hop)
    valid = range(0, max_hop + 1, dilation)
    norm = normalize_columns(np.isin(hop, list(valid)).astype(np.float64))
    if strategy == "uniform":
        return norm[None]
    if strategy == "distance":
        return np.stack([np.where(hop == h, norm, 0.0) for h in valid])
    if strategy != "spatial":
        raise ValueError(f"unknown graph strategy {strategy!r}: use spatial, uniform or distance")
    # Entry [j, i]: j's and i's distances to the centre decide the subset.
    dj, di = hop[:, center][:, None], hop[:, center][None, :]
    parts = []
    for h in valid:
        on = hop == h
        root = np.where(on & (dj == di), norm, 0.0)
        close = np.where(on & (dj > di), norm, 0.0)
        far = np.where(on & (dj < di), norm, 0.0)
        parts += [root] if h == 0 else [root + close, far]
    return np.stack(parts)


class Graph:
    """The reference ``Graph(layout, strategy, max_hop, dilation)``: ``.A`` is (K, V, V)."""

    def __init__(self, layout: str = "ntu-rgb+d", strategy: str = "spatial",
                 max_hop: int = 1, dilation: int = 1) -> None:
        if layout != "ntu-rgb+d":
            raise ValueError(f"unknown graph layout {layout!r}: only 'ntu-rgb+d' is provided")
        self.num_node, self.edge, self.center = NUM_JOINTS, EDGES, CENTER
        self.hop_dis = hop_distance(NUM_JOINTS, EDGES, max_hop)
        self.A = adjacency(strategy, max_hop, dilation)
