"""The approximate t-SNE gradient: sparse attraction and FFT-interpolated repulsion.

FIt-SNE (Linderman et al., 2019) in two dimensions. With num_ij = 1 / (1 + |y_i - y_j|^2),
the repulsion sum_j num_ij^2 (y_i - y_j) = y_i sum_j num_ij^2 - sum_j num_ij^2 y_j and
the normaliser Z = sum_{i != j} num_ij are convolutions of the charges (1, y_j1, y_j2)
with the kernel num^2 and of the charge 1 with num. The charges are spread onto an
equispaced square grid by Lagrange interpolation (NODES nodes per box and dimension,
boxes BOX_WIDTH wide, at least MIN_BOXES a side), convolved with the kernels by FFT
(zero-padded to twice the grid, so not circular) and interpolated back to the points:
3 forward and 4 inverse FFTs a step. Coordinates are centred first (less to cancel).
Once the boxes have their fixed width the kernels' spectra depend on the grid size
only, so they are reused from step to step.

Accuracy: forces about 1e-2 off where points are tight, like openTSNE's with the same
grid (Z here from num directly, rather than from num^2 with a |y|^2 charge, is a few
times closer). FFTs in float32 (NumPy >= 2; float64 before): their rounding, about 1e-5
of the forces, is far below the interpolation's.

The per-point loops are numba kernels (the spreading one sequential, so results do not
depend on thread timing); the FFTs are NumPy's (pocketfft: several times faster here
than torch's inverse real FFT).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

NODES = 3           # Lagrange interpolation nodes per box and dimension
MIN_BOXES = 50      # boxes a side at least (FIt-SNE's default)
BOX_WIDTH = 1.0     # target box width in embedding units
DTYPE = np.float32


@njit(cache=True, nogil=True, inline="always")
def _locate(v: float, lo: float, width: float, boxes: int) -> tuple[int, float, float, float]:
    """v's box along one axis: (its first grid node, the Lagrange weights of its NODES = 3
    nodes at u = 1/6, 1/2, 5/6 of the box)."""
    pos = (v - lo) / width
    box = min(max(int(math.floor(pos)), 0), boxes - 1)
    u = pos - box
    a, b, c = u - 1.0 / 6.0, u - 0.5, u - 5.0 / 6.0
    return box * NODES, 4.5 * b * c, -9.0 * a * c, 4.5 * a * b


@njit(cache=True, nogil=True)
def spread_points(y: np.ndarray, lo: float, width: float, boxes: int) -> np.ndarray:
    """Grid (3, m, m) of the charges (1, y_1, y_2) of points y (n, 2), m = boxes * NODES;
    the grid's boxes are ``width`` wide from ``lo`` on both axes."""
    m = boxes * NODES
    grid = np.zeros((3, m, m), DTYPE)
    for i in range(y.shape[0]):
        gx, x0, x1, x2 = _locate(y[i, 0], lo, width, boxes)
        gy, y0, y1, y2 = _locate(y[i, 1], lo, width, boxes)
        wx = (x0, x1, x2)
        wy = (y0, y1, y2)
        for a in range(NODES):
            for b in range(NODES):
                w = wx[a] * wy[b]
                grid[0, gx + a, gy + b] += w
                grid[1, gx + a, gy + b] += w * y[i, 0]
                grid[2, gx + a, gy + b] += w * y[i, 1]
    return grid


@njit(cache=True, nogil=True)
def gather_potentials(y: np.ndarray, lo: float, width: float, boxes: int,
                      pot: np.ndarray) -> np.ndarray:
    """The potentials pot (c, m, m) interpolated at the points y (n, 2) -> (n, c) float64."""
    n, c = y.shape[0], pot.shape[0]
    out = np.zeros((n, c))
    for i in range(n):
        gx, x0, x1, x2 = _locate(y[i, 0], lo, width, boxes)
        gy, y0, y1, y2 = _locate(y[i, 1], lo, width, boxes)
        wx = (x0, x1, x2)
        for k in range(c):
            acc = 0.0
            for a in range(NODES):
                acc += wx[a] * (y0 * pot[k, gx + a, gy] + y1 * pot[k, gx + a, gy + 1]
                                + y2 * pot[k, gx + a, gy + 2])
            out[i, k] = acc
    return out


@njit(cache=True, nogil=True, parallel=True)
def attraction(indptr: np.ndarray, cols: np.ndarray, values: np.ndarray,
               y: np.ndarray) -> np.ndarray:
    """sum_j p_ij num_ij (y_i - y_j) (n, 2) over a sparse P in CSR form (indptr (n+1,),
    cols (nnz,), values (nnz,))."""
    n = y.shape[0]
    out = np.zeros((n, 2))
    for i in prange(n):
        f0 = 0.0
        f1 = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            j = cols[e]
            d0 = y[i, 0] - y[j, 0]
            d1 = y[i, 1] - y[j, 1]
            w = values[e] / (1.0 + d0 * d0 + d1 * d1)
            f0 += w * d0
            f1 += w * d1
        out[i, 0] = f0
        out[i, 1] = f1
    return out


def smooth_size(count: int) -> int:
    """The smallest integer >= count whose prime factors are 2, 3 and 5 (a fast FFT)."""
    while True:
        rest = count
        for f in (2, 3, 5):
            while rest % f == 0:
                rest //= f
        if rest == 1:
            return count
        count += 1


@functools.lru_cache(maxsize=4)
def kernel_spectra(m: int, step: float) -> np.ndarray:
    """rfft2 (2, 2m, m + 1) of the kernels num^2 and num on the (2m, 2m) circulant grid of
    node offsets, nodes ``step`` apart."""
    off = np.arange(2 * m, dtype=DTYPE)
    off = np.where(off < m, off, off - 2 * m) * DTYPE(step)             # signed offsets
    num = 1.0 / (1.0 + off[:, None] ** 2 + off[None, :] ** 2)
    return np.fft.rfft2(np.stack([num * num, num]))


def repulsion(y: np.ndarray) -> tuple[np.ndarray, float]:
    """(sum_j num_ij^2 (y_i - y_j) (n, 2), Z) for points y (n, 2) float64, by interpolation.

    The grid is square and centred on the points' span, its boxes BOX_WIDTH wide, or
    narrower while the span is under MIN_BOXES * BOX_WIDTH (the early steps): then the
    widest power of 2^(1/4) that gives MIN_BOXES boxes at least (a few distinct widths, so
    that the kernels' spectra are reused).
    """
    lo, hi = y.min(axis=0), y.max(axis=0)
    y = y - (lo + hi) / 2                         # centred: smaller charges y, less to cancel
    span = max(float((hi - lo).max()), 1e-12) * (1 + 1e-9)
    width = min(BOX_WIDTH, 2.0 ** (math.floor(4 * math.log2(span / MIN_BOXES)) / 4))
    boxes = smooth_size(math.ceil(span / width))
    start = -boxes * width / 2
    m = boxes * NODES
    charges = np.fft.rfft2(spread_points(y, start, width, boxes), s=(2 * m, 2 * m))
    kernels = kernel_spectra(m, width / NODES)
    pot = np.fft.irfft2(np.concatenate([charges * kernels[:1], charges[:1] * kernels[1:]]),
                        s=(2 * m, 2 * m))
    phi = gather_potentials(y, start, width, boxes, np.ascontiguousarray(pot[:, :m, :m]))
    return y * phi[:, :1] - phi[:, 1:3], float(phi[:, 3].sum()) - y.shape[0]


def gradient(indptr: np.ndarray, cols: np.ndarray, values: np.ndarray, y: np.ndarray,
             exaggeration: float = 1.0) -> np.ndarray:
    """Approximate dKL(P || Q)/dy (n, 2), P (CSR, summing to 1) times ``exaggeration``."""
    rep, z = repulsion(y)
    return 4.0 * (exaggeration * attraction(indptr, cols, values, y) - rep / z)
