"""The 50-frame transform: ragged raw samples -> (N, 3, 50, 25, 2) float32, bit-exact.

The reference preprocessing (`shared/bench/reference_downsample.py`; `shared/spec/
DATASETS.md`, "The 50-frame representation") for a whole batch of ragged samples, with
the same bits: every step works in float64 from the float32 input, in the
reference's operation order, and rounds to float32 once at the end. Input is the raw
store's layout, (F, B, 3, 25): frame, body slot, coordinate plane, joint. Per sample:

1. `crop_window`: at most 300 frames - the first 300 ("first", NTU) or the centred
   300 ("centre", PKU-MMD). Nothing is padded: frames past the end are never read.
2. `scan_window`: L = how many of those frames have body 1's joint 1 non-zero (a
   count, not a position), and whether body 2 is seen in the window. Where it is not,
   it stays zeros without any work, as in the reference (an absent body's centred,
   resized, rotated frames are zeros). Most samples have one person.
3. `resize_source`: the two source frames and the weight of each output frame,
   OpenCV INTER_LINEAR over frames [0, L) of the window.
4. Per body ("track": one body of one sample), `shoulder_cosines`: the cosine of each
   output frame's rotation about y, u = v.x / (|v| + 1e-4) with v = joint 9 - joint 5
   (indices 8, 4) of the centred (`centred`), resized (`blended`) frame, and the sign
   rule: the angles are negated when the summed v.z is >= 0 (summed as numpy sums:
   `pairwise_sum`).
5. `rotation_trig`: theta = arccos(u) (negated by the rule), cos and sin - numpy's
   own functions, over the whole batch, as the reference calls them (numpy's arccos
   is not the C library's everywhere: with AVX-512 about 10% of results are 1 ulp
   apart, so compiled code could not match it).
6. `rotate_frame`: each output frame blended (1 - w) a + w b from the centred source
   frames and rotated about y, summed as the reference's matrix product sums (zero
   terms included: NaNs and signs of zero come out the same); `store_pair` writes
   both bodies' values of a frame at once.

Steps 1-4 and 6 are compiled (numba; `cache=True` keeps the machine code on disk, so
only the first use ever compiles, `nogil=True` lets threads run them side by side)
and run one sample at a time over the batch: `shoulder_pass` (steps 1-4), then
`frames_pass` (step 6). Only the window's rows are read and only the output is
written; a sample's first pass reads its rows in order (`scan_window`), which brings
them into cache for the rest.
"""
from __future__ import annotations

import sys
from typing import Literal

import numpy as np
from numba import njit

MAX_FRAMES = 300
OUT_FRAMES = 50
JOINTS = 25
BODIES = 2
SPINE = 20  # joint 21
LEFT_SHOULDER = 4  # joint 5
RIGHT_SHOULDER = 8  # joint 9
X, Y, Z = 0, 1, 2  # coordinate planes
PAIRWISE_BLOCK = 128  # numpy's pairwise summation: blocks of up to 128, 8 accumulators

LongCrop = Literal["first", "centre"]

jit = njit(cache=True, nogil=True)  # compiled on first use, cached on disk; no GIL held


@jit
def crop_window(first: int, stop: int, max_frames: int, centre: bool) -> tuple[int, int]:
    """Rows [start, start + count) of a sample's window over its rows [first, stop).

    At most max_frames frames: the first ones, or the centred ones from (T - max_frames)
    // 2 (`centre`). -> start, count (rows of xyz).
    """
    frames = stop - first
    count = min(frames, max_frames)
    return first + ((frames - count) // 2 if centre else 0), count


@jit
def is_set(bits: int) -> bool:
    """Whether a float32's bit pattern is non-zero, NaN included (any bit but the sign)."""
    return (bits & np.uint32(0x7FFFFFFF)) != 0


@jit
def scan_window(bits: np.ndarray, start: int, count: int) -> tuple[int, bool]:
    """L and whether body 2 is seen, in one sequential pass over rows [start, start + count).

    bits: (F, B, 3, 25) uint32, the float32 xyz's bit patterns. L (`valid_length`):
    frames where body 1's joint 1 is non-zero (a count, not a position; NaN counts, as
    in the reference's |x| + |y| + |z| != 0). Body 2 is seen when any of its
    coordinates is non-zero in the window; where it is not, its output is zeros (an
    absent body's centred, resized, rotated frames are). Reading each row whole, in
    order, also brings the sample into cache for the passes that follow.
    """
    length = 0
    second = np.uint32(0)
    for r in range(start, start + count):
        if is_set(bits[r, 0, X, 0]) or is_set(bits[r, 0, Y, 0]) or is_set(bits[r, 0, Z, 0]):
            length += 1
        for m in range(BODIES):
            row = np.uint32(0)
            for c in range(3):
                for j in range(JOINTS):
                    row |= bits[r, m, c, j]
            if m == 1:
                second |= row
    return length, is_set(second)


@jit
def resize_source(length: int, lo: np.ndarray, hi: np.ndarray, w: np.ndarray) -> None:
    """Source frames of a linear resize of frames [0, L) to len(lo) frames.

    Fills lo, hi (T,) int64 frame positions and w (T,) float64 weights, with
    out[t] = (1 - w) x[lo] + w x[hi]. OpenCV INTER_LINEAR: src = (t + 0.5) L / T -
    0.5, clamped to [0, L - 1]; hi = min(lo + 1, L - 1). L >= 1.
    """
    scale = length / len(lo)
    for t in range(len(lo)):
        src = min(max((t + 0.5) * scale - 0.5, 0.0), length - 1.0)
        lo[t] = int(src)  # src >= 0: truncation is floor
        hi[t] = min(lo[t] + 1, length - 1)
        w[t] = src - lo[t]


@jit
def centred(xyz: np.ndarray, r: int, m: int, c: int, j: int) -> float:
    """Joint j minus joint 21 (index 20) on plane c of body m in row r, float64."""
    return np.float64(xyz[r, m, c, j]) - np.float64(xyz[r, m, c, SPINE])


@jit
def blended(xyz: np.ndarray, ra: int, rb: int, m: int, w: float, c: int, j: int) -> float:
    """(1 - w) a + w b of the centred joint j (plane c, body m) of rows ra and rb: one
    coordinate of a resized frame, float64."""
    return (1.0 - w) * centred(xyz, ra, m, c, j) + w * centred(xyz, rb, m, c, j)


@jit
def block_sum(a: np.ndarray, first: int, n: int) -> float:
    """a[first:first + n], n <= 128, summed as numpy sums one block (same rounding).

    Fewer than 8 values one by one; otherwise 8 interleaved accumulators over the
    multiple of 8, combined pairwise, then the rest one by one.
    """
    total = 0.0
    if n < 8:
        for i in range(first, first + n):
            total += a[i]
        return total
    r = a[first:first + 8].copy()
    end = first + n - n % 8
    for i in range(first + 8, end, 8):
        for k in range(8):
            r[k] += a[i + k]
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(end, first + n):
        total += a[i]
    return total


@jit
def pairwise_sum(a: np.ndarray) -> float:
    """a (n,) float64 summed as numpy sums a contiguous array: bit-equal to a.sum().

    numpy's pairwise summation: runs of up to 128 values by `block_sum`; a longer run
    is split at half its length (rounded down to a multiple of 8) and its halves'
    sums added. Walked with a stack rather than recursion (numba cannot cache a
    recursive function): a run longer than a block is pushed back as "split" under
    its two halves; when it comes up again, the two sums on top are its halves'.
    """
    first = np.empty(192, np.int64)  # 3 entries per level, 64 levels at most
    size = np.empty(192, np.int64)
    split = np.empty(192, np.bool_)
    sums = np.empty(65, np.float64)
    first[0], size[0], split[0] = 0, len(a), False
    top, done = 1, 0
    while top:
        top -= 1
        f, n = first[top], size[top]
        if n <= PAIRWISE_BLOCK:
            sums[done] = block_sum(a, f, n)
            done += 1
        elif split[top]:
            done -= 1
            sums[done - 1] += sums[done]
        else:
            half = n // 2 - (n // 2) % 8
            for g, m, s in ((f, n, True), (f + half, n - half, False), (f, half, False)):
                first[top], size[top], split[top] = g, m, s
                top += 1
    return sums[0]


@jit
def shoulder_cosines(xyz: np.ndarray, m: int, lo: np.ndarray, hi: np.ndarray,
                     w: np.ndarray, u: np.ndarray, vz: np.ndarray) -> bool:
    """The rotation of one track (body m), up to the arccos: u (T,) and the sign rule.

    xyz: (F, B, 3, 25) float32; lo, hi (T,) rows and w (T,) weights of the output
    frames (`resize_source`, rows of xyz). Fills u with v.x / (|v| + 1e-4), v =
    joint 9 - joint 5 (indices 8, 4) of each centred, resized frame with its y set to
    0, and vz (T,) scratch with v.z. Returns whether the angles are negated (summed
    v.z >= 0). Float64 in the reference's operation order: bit-exact.
    """
    for t in range(len(lo)):
        ra, rb, wt = lo[t], hi[t], w[t]
        vx = (blended(xyz, ra, rb, m, wt, X, RIGHT_SHOULDER)
              - blended(xyz, ra, rb, m, wt, X, LEFT_SHOULDER))
        vz[t] = (blended(xyz, ra, rb, m, wt, Z, RIGHT_SHOULDER)
                 - blended(xyz, ra, rb, m, wt, Z, LEFT_SHOULDER))
        u[t] = vx / (np.sqrt(vx * vx + vz[t] * vz[t]) + 0.0001)
    return pairwise_sum(vz) >= 0.0


@jit
def rotated(cx: float, cy: float, cz: float, x: float, y: float, z: float) -> float:
    """One row (cx, cy, cz) of the rotation matrix times (x, y, z), as numpy's matrix
    product sums it: ((0 + cx x) + cy y) + cz z. The zero terms count (0 * NaN is NaN,
    signs of zero), so every bit is the reference's."""
    return ((0.0 + cx * x) + cy * y) + cz * z


@jit
def rotate_frame(xyz: np.ndarray, ra: int, rb: int, m: int, w: float, cos: float,
                 sin: float, out: np.ndarray) -> None:
    """One output frame of body m: out (3, 25) float32 from rows ra, rb of xyz.

    Each coordinate is `blended` (the centred source joints, (1 - w) a + w b; written
    out here with the spine and weights read once, which the compiler vectorises),
    then rotated about y by the reference's matrix [[cos, 0, -sin], [0, 1, 0], [sin,
    0, cos]] (`rotated`); float64 throughout, rounded to float32 once.
    """
    a, b = xyz[ra, m], xyz[rb, m]
    keep = 1.0 - w
    ax, ay, az = np.float64(a[X, SPINE]), np.float64(a[Y, SPINE]), np.float64(a[Z, SPINE])
    bx, by, bz = np.float64(b[X, SPINE]), np.float64(b[Y, SPINE]), np.float64(b[Z, SPINE])
    for j in range(JOINTS):
        x = keep * (np.float64(a[X, j]) - ax) + w * (np.float64(b[X, j]) - bx)
        y = keep * (np.float64(a[Y, j]) - ay) + w * (np.float64(b[Y, j]) - by)
        z = keep * (np.float64(a[Z, j]) - az) + w * (np.float64(b[Z, j]) - bz)
        out[X, j] = rotated(cos, 0.0, -sin, x, y, z)
        out[Y, j] = rotated(0.0, 1.0, 0.0, x, y, z)
        out[Z, j] = rotated(sin, 0.0, cos, x, y, z)


@jit
def store_pair(first: np.ndarray, second: np.ndarray, pairs: np.ndarray, i: int, t: int
               ) -> None:
    """Frame t of sample i's output from the two bodies' frames: pairs[i, c, t, j] =
    first[c, j] | second[c, j] << 32 (uint32 bits of (3, 25) float32 frames), i.e.
    data[i, c, t, j] = (body 1, body 2) on a little-endian machine."""
    for c in range(3):
        for j in range(JOINTS):
            pairs[i, c, t, j] = np.uint64(first[c, j]) | (np.uint64(second[c, j]) << 32)


@jit
def store_single(first: np.ndarray, pairs: np.ndarray, i: int, t: int) -> None:
    """`store_pair` with body 2 absent: pairs[i, c, t, j] = first[c, j] (high half 0)."""
    for c in range(3):
        for j in range(JOINTS):
            pairs[i, c, t, j] = np.uint64(first[c, j])


@jit
def shoulder_pass(xyz: np.ndarray, bits: np.ndarray, offsets: np.ndarray, out_frames: int,
                  max_frames: int, centre: bool):
    """Steps 1-4 for every sample: everything but the trigonometry and the output.

    xyz: (F, B>=2, 3, 25) float32 and bits, the same viewed as uint32; offsets: (n+1,)
    int64 rows. -> length (n,) int32 (L); lo, hi (n, T) int64 source rows and w (n, T)
    float64 weights; u (n, 2, T) float64 (`shoulder_cosines`; 0 for tracks not seen);
    seen, turned (n, 2) bool: tracks worked on (body 1 where L > 0, body 2 where it is
    seen in the window too) and tracks whose angles are negated.
    """
    n = len(offsets) - 1
    length = np.zeros(n, np.int32)
    lo = np.zeros((n, out_frames), np.int64)
    hi = np.zeros((n, out_frames), np.int64)
    w = np.zeros((n, out_frames), np.float64)
    u = np.zeros((n, BODIES, out_frames), np.float64)
    seen = np.zeros((n, BODIES), np.bool_)
    turned = np.zeros((n, BODIES), np.bool_)
    vz = np.empty(out_frames, np.float64)
    for i in range(n):
        start, count = crop_window(offsets[i], offsets[i + 1], max_frames, centre)
        length[i], second = scan_window(bits, start, count)
        if length[i] == 0:
            continue
        resize_source(length[i], lo[i], hi[i], w[i])
        lo[i] += start
        hi[i] += start
        for m in range(BODIES):
            if m == 0 or second:
                seen[i, m] = True
                turned[i, m] = shoulder_cosines(xyz, m, lo[i], hi[i], w[i], u[i, m], vz)
    return length, lo, hi, w, u, seen, turned


@jit
def frames_pass(xyz: np.ndarray, lo: np.ndarray, hi: np.ndarray, w: np.ndarray,
                cos: np.ndarray, sin: np.ndarray, seen: np.ndarray, pairs: np.ndarray) -> None:
    """Step 6 for every sample: the output, zeros for tracks not seen.

    lo, hi, w (n, T) from `shoulder_pass`; cos, sin (n, 2, T) from `rotation_trig`;
    pairs: (n, 3, T, 25) uint64, the (n, 3, T, 25, 2) float32 output viewed as pairs.
    Frame by frame: each body's frame (`rotate_frame`) into a small buffer, then both
    into the output at once (`store_pair`, or `store_single` with zeros for body 2).
    """
    first = np.zeros((3, JOINTS), np.float32)  # the current output frame of each body
    second = np.zeros((3, JOINTS), np.float32)
    first_bits, second_bits = first.view(np.uint32), second.view(np.uint32)
    for i in range(len(pairs)):
        if not seen[i, 0]:
            pairs[i] = 0
            continue
        for t in range(lo.shape[1]):
            rotate_frame(xyz, lo[i, t], hi[i, t], 0, w[i, t], cos[i, 0, t], sin[i, 0, t],
                         first)
            if seen[i, 1]:
                rotate_frame(xyz, lo[i, t], hi[i, t], 1, w[i, t], cos[i, 1, t],
                             sin[i, 1, t], second)
                store_pair(first_bits, second_bits, pairs, i, t)
            else:
                store_single(first_bits, pairs, i, t)


def rotation_trig(u: np.ndarray, seen: np.ndarray, turned: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the reference's angles about y, (n, 2, T) float64 (0 where not seen).

    u: (n, 2, T) `shoulder_cosines`; seen, turned: (n, 2) bool. theta = arccos(u),
    negated in every frame of a turned track; numpy's arccos, cos and sin, element by
    element as the reference's calls (the same results in any batch).
    """
    theta = np.arccos(u[seen])  # (K, T)
    np.negative(theta, out=theta, where=turned[seen][:, None])
    cos, sin = np.zeros_like(u), np.zeros_like(u)
    cos[seen], sin[seen] = np.cos(theta), np.sin(theta)
    return cos, sin


def pairs(data: np.ndarray) -> np.ndarray:
    """(n, 3, T, 25, 2) float32 -> (n, 3, T, 25) uint64 view: bodies 1 and 2 as the low
    and high halves of one 64-bit word (little-endian)."""
    if sys.byteorder != "little":
        raise NotImplementedError("the transform writes body pairs as little-endian words")
    return data.view(np.uint64)[..., 0]


def check_batch(xyz: np.ndarray, offsets: np.ndarray) -> None:
    """Raise ValueError unless xyz is (F, B>=2, 3, 25) and offsets are (n+1,) rows of it."""
    if offsets.ndim != 1 or len(offsets) == 0:
        raise ValueError("offsets must be a 1-d array of n + 1 rows")
    if offsets[0] < 0 or offsets[-1] > len(xyz) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"offsets must be non-decreasing rows of xyz (0..{len(xyz)}), "
                         f"got {offsets[0]}..{offsets[-1]}")
    if xyz.ndim != 4 or xyz.shape[1] < BODIES or xyz.shape[2:] != (3, JOINTS):
        raise ValueError(f"xyz must be (F, B>={BODIES}, 3, {JOINTS}), got {xyz.shape}")


def to_frames(
    xyz: np.ndarray,
    offsets: np.ndarray,
    out_frames: int = OUT_FRAMES,
    max_frames: int = MAX_FRAMES,
    long_crop: LongCrop = "first",
) -> tuple[np.ndarray, np.ndarray]:
    """Ragged raw samples -> the fixed-length representation the models train on.

    xyz: (F, B>=2, 3, 25) float32 metres (body slots 0 and 1 are used); offsets: (n+1,)
    int64, sample i owns rows offsets[i]:offsets[i+1] of xyz. Offsets are rows of the
    block given, so they may start above 0 (rows outside the samples are not read):
    a caller holding xyz[a:b] of a larger array passes offsets - a.
    Returns data (n, 3, out_frames, 25, 2) float32, equal to the reference's, and
    valid_length (n,) int32 (L). A sample with L == 0 (body 1 never present; the
    reference raises) gets all zeros.
    """
    if long_crop not in ("first", "centre"):
        raise ValueError(f'long_crop must be "first" or "centre", not {long_crop!r}')
    if out_frames < 1 or max_frames < 1:
        raise ValueError(f"out_frames and max_frames must be >= 1, got {out_frames}, "
                         f"{max_frames}")
    xyz = np.ascontiguousarray(xyz, dtype=np.float32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    check_batch(xyz, offsets)
    length, lo, hi, w, u, seen, turned = shoulder_pass(
        xyz, xyz.view(np.uint32), offsets, out_frames, max_frames, long_crop == "centre")
    cos, sin = rotation_trig(u, seen, turned)
    data = np.empty((len(length), 3, out_frames, JOINTS, BODIES), np.float32)
    frames_pass(xyz, lo, hi, w, cos, sin, seen, pairs(data))
    return data, length
