"""The batched 50-frame transform: ragged raw samples -> (N, 3, 50, 25, 2) float32.

The same numbers as the reference preprocessing (`shared/bench/reference_downsample.py`;
`shared/spec/DATASETS.md`, "The 50-frame representation"), for a whole batch of ragged
samples at once. Input is the raw store's layout, (F, B, 3, 25): frame, body slot,
coordinate plane, joint. Per sample, with the reference's quirks:

1. `crop_windows`: at most 300 frames - the first 300 ("first", NTU) or the centred
   300 ("centre", PKU-MMD). Nothing is padded: frames past the end are never read.
2. `valid_length`: L = how many of those frames have body 1's joint 1 non-zero
   (a count, not a position).
3. `resize_indices`: the two source frames and the weight of each of the 50 output
   frames, OpenCV INTER_LINEAR over frames [0, L) of the window.
4. `second_body_seen`: body 2 is worked on only in samples where one of those source
   frames holds it; elsewhere it stays zeros, as in the reference (an absent body's
   centred, resized, rotated frames are zeros).
5. Per body ("track": one body of one sample), `shoulder_angles`, then
   `blend_rotate_centre`: only the source frames are gathered, blended a + w (b - a),
   rotated about y so that the shoulders lie along x with the reference's sign rule
   (summed z of the shoulders), and centred on joint 21 (index 20). Rotation and
   centring are linear per frame, so rotating first and subtracting the rotated
   spine is the reference's centre-then-rotate.

Precision. The reference works in float64 and rounds to float32 at the end. Here the
angles (including the sign decision) come from the float32 input in float64 with the
reference's exact operation order, so they match it bit for bit; the bulk arithmetic
(blend, rotation, centring) runs in float32 on torch's CPU kernels, one thread, a few
dozen tracks at a time so that the working arrays stay in cache. The output differs
from the reference by a few float32 rounding steps of the coordinates: below 1e-6 m
on the real NTU files (bodies 2-4 m from the camera), against 1e-4 asked.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch

MAX_FRAMES = 300
OUT_FRAMES = 50
JOINTS = 25
BODIES = 2
SPINE = 20  # joint 21
LEFT_SHOULDER = 4  # joint 5
RIGHT_SHOULDER = 8  # joint 9
CHUNK = 64  # samples per step

LongCrop = Literal["first", "centre"]


def crop_windows(
    offsets: np.ndarray, max_frames: int = MAX_FRAMES, long_crop: LongCrop = "first"
) -> tuple[np.ndarray, np.ndarray]:
    """First row and frame count of each sample's window of at most max_frames frames.

    offsets: (n+1,) int64 rows -> start (n,) int64 rows, count (n,) int64 frames.
    A longer sample keeps its first max_frames frames ("first") or its centred ones,
    from (T - max_frames) // 2 ("centre").
    """
    if long_crop not in ("first", "centre"):
        raise ValueError(f'long_crop must be "first" or "centre", not {long_crop!r}')
    frames = np.diff(offsets)
    count = np.minimum(frames, max_frames)
    start = offsets[:-1] + ((frames - count) // 2 if long_crop == "centre" else 0)
    return start, count


def valid_length(xyz: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """L of each window: how many of its frames have body 1's joint 1 non-zero.

    xyz: (F, B, 3, 25); start, count: (n,) rows of each window -> (n,) int64.
    A count, not a position: a frame with nobody in the middle lowers it. Empty
    windows give 0.
    """
    joint = xyz[:, 0, :, 0]  # (F, 3)
    present = (joint[:, 0] != 0) | (joint[:, 1] != 0) | (joint[:, 2] != 0)
    seen = np.zeros(len(present) + 1, dtype=np.int64)
    np.cumsum(present, out=seen[1:])
    return seen[start + count] - seen[start]


def resize_indices(
    length: np.ndarray, out_frames: int = OUT_FRAMES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source frames of a linear resize of frames [0, L) to out_frames frames.

    length: (n,) int >= 1 -> lo, hi (n, out_frames) int64 frame positions and w
    (n, out_frames) float64, with out[t] = (1 - w) x[lo] + w x[hi]. OpenCV INTER_LINEAR:
    src = (t + 0.5) L / out_frames - 0.5, clamped to [0, L - 1]; hi = min(lo + 1, L - 1).
    """
    length = np.asarray(length, dtype=np.int64)[:, None]
    src = (np.arange(out_frames) + 0.5) * (length / out_frames) - 0.5
    src = np.minimum(np.maximum(src, 0.0), length - 1.0)
    lo = src.astype(np.int64)  # src >= 0: truncation is floor
    return lo, np.minimum(lo + 1, length - 1), src - lo


def bodies_present(xyz: np.ndarray) -> np.ndarray:
    """(F, B) bool: frames and body slots with a non-zero coordinate.

    xyz: (F, B, 3, 25) float32. One sequential pass (a sum of squares per body), which
    also brings the block into cache for the gathers that follow. Only a body whose
    every coordinate is below 1e-19 m reads as absent, which changes its output by
    less. NaN counts as present.
    """
    rows = xyz.reshape(-1, 3 * JOINTS)
    return (np.einsum("ij,ij->i", rows, rows) != 0).reshape(xyz.shape[:2])


def shoulder_vectors(ab: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and z of each output frame's shoulder vector, as the reference computes them.

    ab: (K, T, 2, 3, 25) float32 source frames lo and hi of K tracks (planes x, y, z);
    w: (K, T) float64 weights -> vx, vz (K, T) float64: joint 9 - joint 5 (indices 8,
    4) of the centred, resized frame. Float64 in the reference's operation order, from
    the three joints needed: bit-exact.
    """
    k, t = w.shape
    cols = np.array([LEFT_SHOULDER, RIGHT_SHOULDER, SPINE])
    cols = np.concatenate([cols, 2 * JOINTS + cols])  # x then z planes
    first = 3 * JOINTS * np.arange(k * t * 2).reshape(k, t, 2).transpose(2, 0, 1)
    j = np.take(ab, first + cols[:, None, None, None]).astype(np.float64)  # (6, 2, K, T)
    ends = j[[0, 1, 3, 4]] - j[[2, 2, 5, 5]]  # centred x4 x8 z4 z8 of lo and hi
    r = (1.0 - w) * ends[:, 0] + w * ends[:, 1]
    return r[1] - r[0], r[3] - r[2]


def turned(vx: np.ndarray, vz: np.ndarray) -> np.ndarray:
    """(K, T) bool: tracks whose angles the reference negates (summed v.z >= 0)."""
    # a sum along the contiguous frame axis rounds like the reference's 1-d sum
    return np.broadcast_to(vz.sum(axis=-1, keepdims=True) >= 0, vz.shape)


def shoulder_angles(vx: np.ndarray, vz: np.ndarray) -> np.ndarray:
    """The reference's rotation angle about y: theta (K, T) float64 radians.

    vx, vz: (K, T) shoulder vectors (`shoulder_vectors`); theta = arccos(v.x / (|v| +
    1e-4)), negated in every frame of a track whose summed v.z is >= 0.
    """
    theta = np.arccos(vx / (np.sqrt(vx * vx + vz * vz) + 0.0001))
    return np.negative(theta, out=theta, where=turned(vx, vz))


def rotation(vx: np.ndarray, vz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of `shoulder_angles`, (K, T) float64, without the trigonometry.

    cos(arccos u) = u and sin(arccos u) = sqrt((1 - u)(1 + u)) >= 0, sign flipped with
    theta; equal to the reference's cos and sin to ~1e-16.
    """
    cos = vx / (np.sqrt(vx * vx + vz * vz) + 0.0001)
    sin = np.sqrt((1.0 - cos) * (1.0 + cos))
    return cos, np.negative(sin, out=sin, where=turned(vx, vz))


def blend_centre_rotate(
    a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, cos: torch.Tensor,
    sin: torch.Tensor, p: torch.Tensor, rx: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The output frames of a few tracks: x, y, z planes, each (K, T, 25) float32.

    a, b: (K, T, 3, 25) float32 source frames lo and hi (metres, may be strided);
    w, cos, sin: (K, T, 1) float32 blend weight and rotation of each frame; p:
    (K, T, 3, 25) and rx: (K, T, 25) float32 buffers (the result lives in them).
    Blend p = a + w (b - a); subtract joint 21 (index 20); rotate about y,
    (x, z) -> (x cos - z sin, x sin + z cos).
    """
    torch.lerp(a, b, w.unsqueeze(-1), out=p)
    p.sub_(p[..., SPINE:SPINE + 1].clone())
    x, y, z = p.unbind(2)
    torch.mul(x, cos, out=rx).addcmul_(z, sin, value=-1.0)
    z.mul_(cos).addcmul_(x, sin)
    return rx, y, z


def track_frames(ab: np.ndarray, w: np.ndarray, p: torch.Tensor, rx: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output planes x, y, z (K, T, 25) float32 of K tracks from their source frames.

    ab: (K, T, 2, 3, 25) float32 frames lo and hi; w: (K, T) float64 weights; p, rx:
    buffers as in `blend_centre_rotate`.
    """
    cos, sin = rotation(*shoulder_vectors(ab, w))
    frames = torch.from_numpy(ab)
    return blend_centre_rotate(
        frames[:, :, 0], frames[:, :, 1],
        *(torch.from_numpy(v[..., None].astype(np.float32)) for v in (w, cos, sin)),
        p[:len(ab)], rx[:len(ab)])


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block (small ops; workers own one core each)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def to_frames(
    xyz: np.ndarray,
    offsets: np.ndarray,
    out_frames: int = OUT_FRAMES,
    max_frames: int = MAX_FRAMES,
    long_crop: LongCrop = "first",
    chunk: int = CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Ragged raw samples -> the fixed-length representation the models train on.

    xyz: (F, B>=2, 3, 25) float32 metres (body slots 0 and 1 are used); offsets: (n+1,)
    int64, sample i owns rows offsets[i]:offsets[i+1] of xyz. Offsets are rows of the
    block given, so they may start above 0 (rows outside the samples are never read):
    a caller holding xyz[a:b] of a larger array passes offsets - a.
    Returns data (n, 3, out_frames, 25, 2) float32 and valid_length (n,) int32 (L).
    A sample with L == 0 (body 1 never present; the reference raises) gets all zeros.
    Works `chunk` tracks at a time: no (n, 300, ...) arrays.
    """
    xyz = np.ascontiguousarray(xyz, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0:
        raise ValueError("offsets must be a 1-d array of n + 1 rows")
    if offsets[0] < 0 or offsets[-1] > len(xyz) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"offsets must be non-decreasing rows of xyz (0..{len(xyz)}), "
                         f"got {offsets[0]}..{offsets[-1]}")
    if xyz.ndim != 4 or xyz.shape[1] < BODIES or xyz.shape[2:] != (3, JOINTS):
        raise ValueError(f"xyz must be (F, B>={BODIES}, 3, {JOINTS}), got {xyz.shape}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    n = len(offsets) - 1
    start, count = crop_windows(offsets, max_frames, long_crop)
    length = valid_length(xyz, start, count)
    data = np.empty((n, 3, out_frames, JOINTS, BODIES), dtype=np.float32)
    used = np.flatnonzero(length > 0)
    data[length == 0] = 0.0
    if len(used) == 0:
        return data, length.astype(np.int32)
    lo, hi, w = resize_indices(length[used], out_frames)
    lo += start[used, None]
    hi += start[used, None]
    second = bodies_present(xyz[:, :BODIES])[:, 1]
    two = (second[lo] | second[hi]).any(axis=1)  # samples whose body 2 is used
    rows = [torch.from_numpy(xyz[:, b]).view(len(xyz), -1) for b in range(BODIES)]
    frames = torch.from_numpy(np.stack([lo, hi], axis=-1))  # (n, T, 2) rows, file order
    m = min(chunk, len(used))
    buffer = torch.empty(m * out_frames * 2 * 3 * JOINTS)
    p = torch.empty((m, out_frames, 3, JOINTS))
    rx = torch.empty((m, out_frames, JOINTS))
    pairs = data.view(np.uint64)[..., 0]  # (n, 3, T, 25): body 1 in the low half, body 2 high
    with one_thread():
        for body, picked in enumerate((np.arange(len(used)), np.flatnonzero(two))):
            for c0 in range(0, len(picked), chunk):
                k = picked[c0:c0 + chunk]
                s = used[k]
                rows_k = frames[k].view(-1)
                ab = buffer[:len(rows_k) * 3 * JOINTS].view(len(k), out_frames, 2, 3, JOINTS)
                torch.index_select(rows[body], 0, rows_k, out=ab.view(len(rows_k), -1))
                planes = track_frames(ab.numpy(), w[k], p, rx)
                if body == 1:
                    data[s, :, :, :, 1] = np.stack([q.numpy() for q in planes], 1)
                    continue
                run = slice(s[0], s[-1] + 1) if s[-1] - s[0] == len(s) - 1 else s
                for c, plane in enumerate(planes):
                    # one pass writes body 1 and zeros for body 2 (little-endian pairs)
                    bits = plane.numpy().view(np.uint32)
                    if isinstance(run, slice):
                        np.copyto(pairs[run, c], bits, casting="unsafe")
                    else:
                        pairs[run, c] = bits
    return data, length.astype(np.int32)
