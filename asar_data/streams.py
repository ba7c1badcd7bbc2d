"""Joint, motion and bone streams of skeleton data.

Work on torch tensors or NumPy arrays shaped (..., C, T, V, M): a batch (N, C, T, V, M)
or one sample (C, T, V, M).
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from asar_data.skeleton import PARENTS

Array = TypeVar("Array", np.ndarray, torch.Tensor)
STREAMS = ("joint", "motion", "bone")


def joint(x: Array) -> Array:
    """The data as it is."""
    return x


def motion(x: Array) -> Array:
    """x[t + 1] - x[t] along T; the last frame is 0."""
    out = torch.zeros_like(x) if isinstance(x, torch.Tensor) else np.zeros_like(x)
    out[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    return out


def bone(x: Array) -> Array:
    """Each joint minus its parent (pairs in ``asar_data.skeleton.BONES``); joint 21 gives 0."""
    return x - x[..., list(PARENTS), :]


def to_stream(x: Array, stream: str) -> Array:
    """``joint``, ``motion`` or ``bone`` of x (..., C, T, V, M)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}: expected one of {', '.join(STREAMS)}")
    return {"joint": joint, "motion": motion, "bone": bone}[stream](x)
