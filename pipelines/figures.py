"""Figures without a plotting library: RGB images as NumPy arrays, PNGs written with zlib.

A scatter renderer (the t-SNE figure: points as small discs, one colour per class)
and a confusion-matrix heatmap (one square block of pixels per cell, no text).
Images are (H, W, 3) uint8; files are written atomically through `asar_data.storage`.
"""
from __future__ import annotations

import colorsys
import struct
import zlib

import numpy as np

from asar_data import storage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WHITE = (255, 255, 255)


# -- PNG -----------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(rgb: np.ndarray, level: int = 6) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (H, W, 3) uint8 (no interlace, filter 0 on every row)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"an RGB image is (H, W, 3) with H, W > 0, got {rgb.shape}")
    h, w = rgb.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)   # 8 bits, truecolour, no interlace
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b""))


def write_png(location: str, rgb: np.ndarray) -> None:
    """Write ``rgb`` (H, W, 3) uint8 as a PNG, atomically."""
    storage.write_bytes(location, png_bytes(rgb))


# -- colours -------------------------------------------------------------------------------
def palette(n: int) -> np.ndarray:
    """``n`` distinct categorical colours (n, 3) uint8.

    Hues step by the golden angle so neighbours in class order differ; lightness and
    saturation cycle through three levels so that many classes stay distinguishable.
    """
    i = np.arange(n)
    hue = (i * 0.618033988749895) % 1.0
    light = np.array([0.45, 0.60, 0.32])[i % 3]
    sat = np.array([0.75, 0.95, 0.60])[(i // 3) % 3]
    rgb = [colorsys.hls_to_rgb(h, l, s) for h, l, s in zip(hue, light, sat, strict=True)]
    return (np.array(rgb, np.float64).reshape(n, 3) * 255).round().astype(np.uint8)


def sequential(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> colours (..., 3) uint8 from white to dark blue."""
    v = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)[..., None]
    white, mid, dark = (np.array(c, np.float64) for c in (WHITE, (90, 150, 210), (8, 40, 110)))
    lower = white + (mid - white) * np.minimum(v, 0.5) * 2
    upper = mid + (dark - mid) * (np.maximum(v, 0.5) - 0.5) * 2
    return np.where(v < 0.5, lower, upper).round().astype(np.uint8)


# -- renderers -----------------------------------------------------------------------------
def disc_offsets(radius: int) -> np.ndarray:
    """(k, 2) integer (dy, dx) offsets of the pixels of a disc of ``radius``."""
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    keep = dy**2 + dx**2 <= radius**2 + radius   # a slightly rounder small disc
    return np.stack([dy[keep], dx[keep]], axis=1)


def scatter_image(points: np.ndarray, labels: np.ndarray, size: int = 800, radius: int = 3,
                  margin: int = 16, num_classes: int | None = None) -> np.ndarray:
    """Points (n, 2) coloured by integer labels (n,) on a white square -> (size, size, 3).

    Axes are scaled together (aspect kept) to fill the square within ``margin``; later
    points are drawn over earlier ones.
    """
    points = np.asarray(points, np.float64)
    labels = np.asarray(labels, np.int64)
    colours = palette(num_classes or (int(labels.max()) + 1 if len(labels) else 1))
    img = np.full((size, size, 3), 255, np.uint8)
    if len(points) == 0:
        return img
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = max(float((hi - lo).max()), 1e-12)
    inner = size - 2 * (margin + radius) - 1
    centre = (lo + hi) / 2
    pix = np.round((points - centre) / span * inner + size / 2).astype(np.int64)  # (n, 2) x, y
    rows = size - 1 - pix[:, 1]                                                    # y up
    cols = pix[:, 0]
    off = disc_offsets(radius)                                                     # (k, 2)
    yy = (rows[:, None] + off[None, :, 0]).clip(0, size - 1)                       # (n, k)
    xx = (cols[:, None] + off[None, :, 1]).clip(0, size - 1)
    img[yy.ravel(), xx.ravel()] = np.repeat(colours[labels], len(off), axis=0)
    return img


def confusion_image(confusion: np.ndarray, size: int = 600) -> np.ndarray:
    """Row-normalised confusion matrix (C, C) as a heatmap, each cell a square block.

    Cell side = max(1, size // C) pixels; white is 0, dark blue is 1 (all of a row).
    """
    c = np.asarray(confusion, np.float64)
    rows = c.sum(axis=1, keepdims=True)
    frac = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0)   # (C, C) in [0, 1]
    cell = max(1, size // max(c.shape[0], 1))
    return np.repeat(np.repeat(sequential(frac), cell, axis=0), cell, axis=1)


# -- matplotlib figures ------------------------------------------------------------------------
def run_curves(records: list[dict], title: str) -> bytes:
    """Loss, learning rate and relabel weight (c) per epoch of a pre-training run, as PNG
    bytes; a dashed line marks the first epoch with active sampling.

    records: metrics.jsonl lines (epoch 1-based, loss, lr, relabel_c, active_sampling).
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=100)
    panels = (("loss", "loss"), ("lr", "learning rate"), ("relabel_c", "relabel weight c"))
    active = next((r["epoch"] for r in records if r.get("active_sampling")), None)
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.plot(epochs, [r.get(key) for r in records], marker="." if len(epochs) < 40 else None,
                color="#2a6fdb")
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=11)
        ax.grid(alpha=0.3)
        if key == "lr":
            ax.set_yscale("log")
        if active is not None:
            ax.axvline(active, color="#c06000", linestyle="--", linewidth=1,
                       label="active sampling from here")
    if active is not None:
        axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
