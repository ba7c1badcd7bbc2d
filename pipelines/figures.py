"""Figures with matplotlib (Agg, imported lazily): confusion matrix, t-SNE, training curves.

Each figure has a builder that returns the matplotlib Figure (tests read its labels
before anything is drawn) and a writer that renders it to PNG bytes and stores them
atomically through `asar_data.storage`. Inputs are plain arrays, names and title strings.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from asar_data import storage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 110
MANY = 20            # more classes than this: the compact layouts
NAME_WIDTH = 34      # longest action name shown in full on an axis or in a legend


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def short(name: str, width: int = NAME_WIDTH) -> str:
    """A name that fits ``width`` characters: parenthesised details dropped first, then cut."""
    if len(name) <= width:
        return name
    plain = " ".join(name.split("(")[0].split()) if "(" in name else name
    return plain if len(plain) <= width else plain[:width - 1].rstrip() + "\u2026"


def png_bytes(fig: Any) -> bytes:
    """Render a Figure to PNG bytes and close it."""
    plt = _pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buf.getvalue()


def write_figure(location: str, fig: Any) -> int:
    """Write a Figure as a PNG, atomically; returns its size in bytes."""
    data = png_bytes(fig)
    storage.write_bytes(location, data)
    return len(data)


def title_line(run: str = "", dataset: str = "", benchmark: str = "", protocol: str = "",
               top1: float | None = None) -> str:
    """'run - dataset benchmark - protocol - top-1 81.2%' from the fields that are given."""
    parts = [run, " ".join(p for p in (dataset, benchmark) if p), protocol,
             "" if top1 is None else f"top-1 {top1:.1f}%"]
    return "  \u00b7  ".join(p for p in parts if p)


# -- confusion matrix ----------------------------------------------------------------------
def most_confused(confusion: np.ndarray, count: int) -> list[tuple[int, int, int, float]]:
    """The ``count`` largest off-diagonal cells of a (C, C) count matrix (rows true,
    columns predicted): (true, predicted, samples, share of the true class), largest first."""
    c = np.asarray(confusion, np.int64)
    off = c.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:count]
    rows = c.sum(axis=1)
    return [(int(t), int(p), int(off[t, p]), float(off[t, p] / rows[t]))
            for t, p in zip(*np.unravel_index(order, c.shape), strict=True) if off[t, p] > 0]


def confusion_figure(confusion: np.ndarray, names: Sequence[str], title: str = "",
                     pairs: int = 15) -> Any:
    """A row-normalised confusion matrix (C, C) counts (rows true, columns predicted).

    Only the classes present (with a test sample or a prediction) are shown, named on
    both axes. Up to MANY classes every cell carries its count; beyond, ticks are small
    and the ``pairs`` most confused (true -> predicted) pairs are listed beside it.
    """
    plt = _pyplot()
    c = np.asarray(confusion, np.int64)
    keep = np.flatnonzero((c.sum(axis=0) + c.sum(axis=1)) > 0)
    c = c[np.ix_(keep, keep)]
    labels = [short(names[i]) for i in keep]
    rows = c.sum(axis=1, keepdims=True)
    share = np.divide(c, rows, out=np.zeros(c.shape), where=rows > 0) * 100
    k = len(keep)
    many = k > MANY
    side = max(4.5, min(0.17 * k + 2.8, 22.0))          # inches of matrix and labels
    fig = plt.figure(figsize=(side + (6.2 if many else 1.6), side + 0.9), layout="constrained")
    if many:
        grid = fig.add_gridspec(1, 2, width_ratios=(side + 0.6, 5.6))
        ax, panel = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    else:
        ax, panel = fig.add_subplot(), None
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    font = 9 if k <= 12 else 7 if k <= MANY else max(3.5, min(6.5, 330 / k))
    ax.set_xticks(range(k), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(k), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.tick_params(length=2 if many else 3.5)
    if not many:
        for (t, p), n in np.ndenumerate(c):
            if n:
                ax.text(p, t, str(n), ha="center", va="center", fontsize=font - 1,
                        color="white" if share[t, p] > 60 else "black")
    fig.colorbar(im, ax=ax, fraction=0.035, pad=0.015).set_label("% of the true class")
    fig.suptitle(title or "confusion matrix", fontsize=11)
    ax.set_title(f"{int(c.sum())} test samples, {k} classes; colour: share of the true class",
                 fontsize=8, color="0.3")
    if panel is not None:
        panel.axis("off")
        worst = most_confused(c, pairs)
        lines = [f"{n:4d} {s * 100:3.0f}%  {short(names[keep[t]], 24)} → "
                 f"{short(names[keep[p]], 24)}" for t, p, n, s in worst]
        panel.text(0.0, 0.98, f"{len(worst)} most confused pairs (true → predicted):\n"
                   "samples, % of the true class\n\n" + "\n".join(lines or ["none"]),
                   transform=panel.transAxes, va="top", ha="left", fontsize=7.2,
                   family="monospace", linespacing=1.5)
    return fig


def confusion_png(confusion: np.ndarray, names: Sequence[str], title: str = "") -> bytes:
    """PNG bytes of `confusion_figure`."""
    return png_bytes(confusion_figure(confusion, names, title))


def write_confusion(location: str, confusion: np.ndarray, names: Sequence[str],
                    title: str = "") -> int:
    """Write `confusion_figure` as a PNG, atomically; returns its size in bytes."""
    return write_figure(location, confusion_figure(confusion, names, title))


# -- t-SNE ---------------------------------------------------------------------------------
def class_colours(k: int) -> np.ndarray:
    """``k`` categorical RGBA colours: tab10 / tab20, or tab20 + tab20b + tab20c (60), then
    cycled with varying lightness."""
    plt = _pyplot()
    if k <= 10:
        return plt.get_cmap("tab10")(np.arange(k))
    if k <= 20:
        return plt.get_cmap("tab20")(np.arange(k))
    base = np.concatenate([plt.get_cmap(m)(np.arange(20)) for m in ("tab20", "tab20b", "tab20c")])
    out = base[np.arange(k) % 60].copy()
    darker = (np.arange(k) // 60) % 2 == 1
    out[darker, :3] *= 0.6
    return out


def tsne_figure(points: np.ndarray, labels: np.ndarray, names: Sequence[str],
                title: str = "", seed: int = 0) -> Any:
    """A scatter of 2-D points (N, 2) coloured by integer labels (N,), with a legend of the
    action names ``names[label]``. Points are drawn in a seeded random order (no class
    on top of all others). Beyond MANY classes each class's number (label + 1, as NTU's
    A-numbers) is written at its median point and the legend lists "number name" in
    several columns.
    """
    plt = _pyplot()
    points = np.asarray(points, np.float64)
    labels = np.asarray(labels, np.int64)
    present = np.unique(labels)
    k = len(present)
    many = k > MANY
    colours = class_colours(k)
    index = np.searchsorted(present, labels)                  # position among present
    order = np.random.default_rng(seed).permutation(len(points))
    cols = 1 if k <= MANY else 2 if k <= 40 else 3
    legend_width = {1: 3.2, 2: 6.0, 3: 9.0}[cols]
    size = 8.0
    fig = plt.figure(figsize=(size + legend_width, size + 0.6))
    ax = fig.add_axes((0.6 / (size + legend_width), 0.4 / (size + 0.6),
                       (size - 0.8) / (size + legend_width), (size - 0.5) / (size + 0.6)))
    marker = max(1.0, min(12.0, 6000.0 / max(len(points), 1)))
    ax.scatter(points[order, 0], points[order, 1], c=colours[index[order]], s=marker,
               linewidths=0, rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    handles = []
    for j, label in enumerate(present):
        text = short(names[label], 30 if many else NAME_WIDTH)
        handles.append(plt.Line2D([], [], ls="", marker="o", ms=5, color=colours[j],
                                  label=f"{label + 1:>3} {text}" if many else text))
        if many:
            at = np.median(points[labels == label], axis=0)
            ax.text(at[0], at[1], str(label + 1), fontsize=6.5, ha="center", va="center",
                    weight="bold", color="black",
                    bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": colours[j],
                          "lw": 0.8, "alpha": 0.8})
    fig.legend(handles=handles, loc="upper left", ncols=cols, frameon=False,
               bbox_to_anchor=((size - 0.1) / (size + legend_width), 1 - 0.5 / (size + 0.6)),
               fontsize=8 if not many else 6.2, handletextpad=0.2, columnspacing=0.8,
               labelspacing=0.35 if many else 0.5, prop={"family": "monospace"} if many else None)
    fig.suptitle(title or "t-SNE", fontsize=11, y=1 - 0.2 / (size + 0.6))
    ax.set_title(f"{len(points)} samples, {k} classes", fontsize=8, color="0.3")
    return fig


def write_tsne(location: str, points: np.ndarray, labels: np.ndarray, names: Sequence[str],
               sample_names: Sequence[str], title: str = "", seed: int = 0) -> dict[str, Any]:
    """The t-SNE PNG at ``location`` and, beside it, ``<stem>.npy`` (N, 2) float32 (the
    coordinates, readable with allow_pickle=False) and ``<stem>.names.txt`` (the N sample
    names, one a line, in the same order). Each written atomically. Returns the paths
    and the PNG's size."""
    points = np.asarray(points, np.float32)
    if len(sample_names) != len(points) or any("\n" in s for s in sample_names):
        raise ValueError("one sample name (without a newline) is needed per point")
    stem = location[:-4] if location.lower().endswith(".png") else location
    buf = io.BytesIO()
    np.save(buf, points, allow_pickle=False)
    storage.write_bytes(f"{stem}.npy", buf.getvalue())
    storage.write_text(f"{stem}.names.txt", "".join(f"{s}\n" for s in sample_names))
    size = write_figure(location, tsne_figure(points, labels, names, title, seed))
    return {"png": location, "png_bytes": size, "coordinates": f"{stem}.npy",
            "names": f"{stem}.names.txt"}


def read_tsne(stem: str) -> tuple[np.ndarray, list[str]]:
    """The coordinates (N, 2) float32 and sample names written by `write_tsne`."""
    points = np.load(io.BytesIO(storage.read_bytes(f"{stem}.npy")), allow_pickle=False)
    return points, storage.read_text(f"{stem}.names.txt").splitlines()


# -- training curves -----------------------------------------------------------------------
CURVES = (("loss", "loss", False), ("lr", "learning rate", True),
          ("relabel_c", "relabel weight c", False))


def curves_figure(records: Sequence[Mapping[str, Any]], title: str = "") -> Any:
    """Loss, learning rate and relabel weight per epoch of one pre-training run, from
    its metrics.jsonl records (dicts with epoch, loss, lr, relabel_c, active_sampling),
    the first active-sampling epoch marked on each panel."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(CURVES), 1, figsize=(7.5, 6.8), sharex=True,
                             layout="constrained")
    epochs = np.array([r["epoch"] for r in records], np.float64)
    active = [r["epoch"] for r in records if r.get("active_sampling")]
    for ax, (key, label, log) in zip(axes, CURVES, strict=True):
        values = np.array([np.nan if r.get(key) is None else r[key] for r in records],
                          np.float64)
        ax.plot(epochs, values, marker="o" if len(records) <= 30 else None, ms=3, lw=1.4)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if log and np.all(values[np.isfinite(values)] > 0) and np.isfinite(values).any():
            ax.set_yscale("log")
        if active:
            ax.axvline(active[0], color="tab:red", ls="--", lw=1)
    if active:
        axes[0].annotate(f"active sampling from epoch {active[0]}", xy=(active[0], 1),
                         xycoords=("data", "axes fraction"), xytext=(4, -12),
                         textcoords="offset points", color="tab:red", fontsize=8)
    axes[-1].set_xlabel("epoch")
    fig.suptitle(title or "pre-training", fontsize=11)
    return fig


def write_curves(location: str, records: Sequence[Mapping[str, Any]], title: str = "") -> int:
    """Write `curves_figure` as a PNG, atomically; returns its size in bytes."""
    return write_figure(location, curves_figure(records, title))
