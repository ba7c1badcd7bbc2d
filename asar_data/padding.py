"""The reference tools' padded layout: ragged samples -> (n, 3, 300, 25, 2) float32."""
from __future__ import annotations

import numpy as np

MAX_FRAMES = 300


def pad_to_reference(
    xyz: np.ndarray, offsets: np.ndarray, long_crop: str, max_frames: int = MAX_FRAMES
) -> np.ndarray:
    """Ragged samples -> (n, 3, max_frames, 25, 2) float32, zero-padded, first two bodies.

    xyz: (F, B, 3, 25) frames of n samples, metres; offsets: (n+1,) from 0. A sample longer
    than max_frames keeps its first frames (`first`) or its centred ones (`centre`).
    """
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    kept = np.minimum(lengths, max_frames)
    skip = (lengths - kept) // 2 if long_crop == "centre" else np.zeros_like(lengths)
    out = np.zeros((n, max_frames, 2, 3, 25), np.float32)
    sample = np.repeat(np.arange(n), kept)
    t = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    src = np.repeat(offsets[:-1] + skip, kept) + t
    out[sample, t] = xyz[src, :2]
    return out.transpose(0, 3, 1, 4, 2)
