"""Batch augmentations on torch tensors (N, C, T, V, M), on any device.

The reference augments one sample at a time in NumPy; these draw one parameter set
per sample from a passed ``torch.Generator`` and transform the whole batch at once.
Each augmentation is split into drawing its parameters and applying them, so tests
can feed the same parameters to a per-sample implementation of the reference formulas.
"""
from __future__ import annotations

import torch


def _uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    """U(low, high) draws made on the generator's device, returned on ``device``."""
    where = gen.device if gen is not None else device
    return (low + (high - low) * torch.rand(shape, generator=gen, device=where)).to(device)


def crop_starts(n: int, frames: int, gen: torch.Generator | None = None,
                padding_ratio: int = 6, device: torch.device | str = "cpu") -> torch.Tensor:
    """Window starts (n,) long, uniform in [0, 2p] with p = frames // padding_ratio."""
    p = frames // padding_ratio
    where = gen.device if gen is not None else torch.device(device)
    return torch.randint(0, 2 * p + 1, (n,), generator=gen, device=where).to(device)


def apply_temporal_crop(x: torch.Tensor, starts: torch.Tensor,
                        padding_ratio: int = 6) -> torch.Tensor:
    """Pad p = T // padding_ratio mirrored edge frames on each side; keep T frames from ``starts``.

    The reference pads with ``x[:p][::-1]`` and ``x[-p:][::-1]``, so the edge frame is
    repeated (symmetric padding). x (N, C, T, V, M), starts (N,) in [0, 2p] -> same shape.
    """
    t = x.shape[2]
    p = t // padding_ratio
    u = starts.to(x.device)[:, None] + torch.arange(t, device=x.device) - p   # (N, T), unpadded
    src = torch.where(u < 0, -1 - u, torch.where(u >= t, 2 * t - 1 - u, u))  # mirror at the edges
    index = src[:, None, :, None, None].expand(-1, x.shape[1], -1, x.shape[3], x.shape[4])
    return torch.gather(x, 2, index)


def temporal_crop(x: torch.Tensor, gen: torch.Generator | None = None,
                  padding_ratio: int = 6) -> torch.Tensor:
    """Random temporal crop of each sample: (N, C, T, V, M) -> same shape."""
    starts = crop_starts(x.shape[0], x.shape[2], gen, padding_ratio, x.device)
    return apply_temporal_crop(x, starts, padding_ratio)


def shear_matrices(n: int, gen: torch.Generator | None = None, amplitude: float = 0.5,
                   device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Shear matrices R (n, 3, 3): ones on the diagonal, off-diagonal entries U(-a, a).

    Layout as the reference: s1 = (R01, R10, R20), s2 = (R02, R12, R21), drawn s1 then s2.
    """
    s = _uniform((n, 6), -amplitude, amplitude, gen, torch.device(device)).to(dtype)  # (n, 6)
    r = torch.eye(3, dtype=dtype, device=device).repeat(n, 1, 1)
    r[:, 0, 1], r[:, 1, 0], r[:, 2, 0] = s[:, 0], s[:, 1], s[:, 2]
    r[:, 0, 2], r[:, 1, 2], r[:, 2, 1] = s[:, 3], s[:, 4], s[:, 5]
    return r


def apply_shear(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """xyz' = R xyz for every frame, joint and body (the reference's ``data^T . R^T``).

    x (N, 3, T, V, M), r (N, 3, 3) -> (N, 3, T, V, M).
    """
    n, c = x.shape[:2]
    out = torch.bmm(r.to(x), x.reshape(n, c, -1))                            # (N, 3, T*V*M)
    return out.view(x.shape)


def shear(x: torch.Tensor, gen: torch.Generator | None = None,
          amplitude: float = 0.5) -> torch.Tensor:
    """Random shear of each sample: (N, 3, T, V, M) -> same shape."""
    return apply_shear(x, shear_matrices(x.shape[0], gen, amplitude, x.device, x.dtype))


def normal_augment(x: torch.Tensor, gen: torch.Generator | None = None,
                   padding_ratio: int = 6, shear_amplitude: float = 0.5) -> torch.Tensor:
    """The reference's "normal" augmentation: temporal crop, then shear (each skipped at 0)."""
    if padding_ratio > 0:
        x = temporal_crop(x, gen, padding_ratio)
    if shear_amplitude > 0:
        x = shear(x, gen, shear_amplitude)
    return x
