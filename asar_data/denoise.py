"""`--bodies denoise`: pick two actors per sample by tracking body IDs.

Our own implementation of the behaviour of CTR-GCN's NTU preprocessing, for whole
batches of ragged samples (rows of a raw store block, see docs/DESIGN.md):

- a track is every (frame, slot) entry of one sample with the same non-zero body ID;
- tracks of `min_track_frames` frames or fewer are dropped, and tracks whose x-spread
  exceeds `spread_ratio` times their y-spread in at least `noisy_fraction` of their
  frames ("lying", horizontal noise). As in CTR-GCN: a sample with a single track is
  kept as is, the spread rule only runs while two or more tracks remain, and it never
  drops the last one (if every remaining track is noisy, the last one to appear stays);
- motion = sum over x, y, z of the variance over the track's frames and joints; when
  some frames are spread-noisy, the smaller of that and the same over the clean frames;
- in decreasing motion (ties: first to appear first): the first track is actor 1; a
  later track that does not overlap actor 1's interval joins actor 1 (the same person
  detected again under a new ID) and widens it; else one that does not overlap actor
  2's interval joins actor 2; else it is dropped. Intervals are [first, last] frame;
  sharing only an end frame is not an overlap, and actor 2's interval starts as the
  virtual [0, 0] (so it always begins at frame 0), both as in CTR-GCN. Where tracks
  share a frame, the later one in this order wins it.

Unlike CTR-GCN, no frame is removed (frames without an actor are zeros), and a sample
whose tracks are all dropped keeps its first two body slots, so no sample is lost.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

MIN_TRACK_FRAMES = 11
SPREAD_RATIO = 0.8
NOISY_FRACTION = 0.69754


class Tracks(NamedTuple):
    """Body-ID tracks of a block; entries are sorted by track, then by frame and slot."""

    row: np.ndarray  # (E,) int64 row of each entry
    slot: np.ndarray  # (E,) int64 body slot of each entry
    track: np.ndarray  # (E,) int64 track of each entry
    sample: np.ndarray  # (K,) int64 sample of each track
    first: np.ndarray  # (K,) int64 first row of each track
    last: np.ndarray  # (K,) int64 last row of each track
    frames: np.ndarray  # (K,) int64 entries (frames) of each track
    appear: np.ndarray  # (K,) int64 row * B + slot of the first entry: file order


def sample_of_rows(offsets: np.ndarray, rows: int) -> np.ndarray:
    """(rows,) int64: the sample owning each row, -1 for rows outside every sample."""
    owner = np.full(rows, -1, dtype=np.int64)
    owner[offsets[0]:offsets[-1]] = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return owner


def body_tracks(body_id: np.ndarray, offsets: np.ndarray) -> Tracks:
    """Group the non-zero (frame, slot) entries of each sample by body ID.

    body_id: (F, B) uint64, 0 = empty slot; offsets: (n+1,) rows -> Tracks.
    """
    owner = sample_of_rows(offsets, len(body_id))
    row, slot = np.nonzero((body_id != 0) & (owner >= 0)[:, None])  # file order
    ids = body_id[row, slot]
    appear = row * body_id.shape[1] + slot
    order = np.lexsort((appear, ids, owner[row]))  # within a track: file order
    row, slot, ids = row[order], slot[order], ids[order]
    sample = owner[row]
    new = np.ones(len(row), dtype=bool)
    new[1:] = (sample[1:] != sample[:-1]) | (ids[1:] != ids[:-1])
    head = np.flatnonzero(new)
    frames = np.diff(np.append(head, len(row)))
    return Tracks(row=row, slot=slot, track=np.cumsum(new) - 1, sample=sample[head],
                  first=row[head], last=row[head + frames - 1], frames=frames,
                  appear=appear[order][head])


def spread_noisy(planes: np.ndarray, spread_ratio: float = SPREAD_RATIO) -> np.ndarray:
    """(C=3, V=25, E) float32 metres -> (E,) bool: x-spread > spread_ratio * y-spread.

    Spreads are max - min over the 25 joints in float32, compared in float64: what
    CTR-GCN's float32 scalars times a Python float gave under NumPy 1.
    """
    spread = planes[:2].max(axis=1) - planes[:2].min(axis=1)  # (2, E)
    return ~(spread[0] <= spread_ratio * spread[1].astype(np.float64))


def body_rows(xyz: np.ndarray) -> np.ndarray:
    """(F * B, 3 * 25) view of xyz (F, B, 3, 25): one row per (frame, slot), f * B + b.

    Gathering whole rows by one index is numpy's fast path (two index arrays are not).
    """
    return np.ascontiguousarray(xyz).reshape(len(xyz) * xyz.shape[1], np.prod(xyz.shape[2:]))


def entry_frames(xyz: np.ndarray, t: Tracks) -> np.ndarray:
    """(E, 3, 25) float32: the joints of every entry of the tracks, in entry order.

    Gathered once: the noise rules and the placing both read them.
    """
    rows = body_rows(xyz)[t.row * xyz.shape[1] + t.slot]
    return rows.reshape((len(rows),) + xyz.shape[2:])


class EntryStats(NamedTuple):
    """Per entry: spread-noisy flag and per-coordinate sums over its 25 joints."""

    noisy: np.ndarray  # (E,) bool
    sums: np.ndarray  # (3, E) float64, sum of x, y, z
    squares: np.ndarray  # (3, E) float64, sum of squares


def entry_stats(frames: np.ndarray, spread_ratio: float = SPREAD_RATIO, chunk: int = 1024
                ) -> EntryStats:
    """Spread flags and joint sums of entries, frames (E, 3, 25) float32 metres.

    Works `chunk` entries at a time, joints as the middle axis, so every reduction
    runs over long contiguous rows of entries.
    """
    noisy = np.empty(len(frames), dtype=bool)
    sums = np.empty((3, len(frames)))
    squares = np.empty((3, len(frames)))
    for e0 in range(0, len(frames), chunk):
        e = slice(e0, e0 + chunk)
        planes = np.ascontiguousarray(frames[e].transpose(1, 2, 0))  # (3, 25, c)
        noisy[e] = spread_noisy(planes, spread_ratio)
        planes = planes.astype(np.float64)
        sums[:, e] = planes.sum(axis=1)
        squares[:, e] = np.square(planes, out=planes).sum(axis=1)
    return EntryStats(noisy, sums, squares)


def track_motion(stats: EntryStats, track: np.ndarray, tracks: int,
                 use: np.ndarray | None = None, joints: int = 25) -> np.ndarray:
    """Sum over x, y, z of the variance over each track's frames and joints.

    stats: per-entry sums; track: (E,) ids; use: (E,) bool frames to count (all by
    default) -> (tracks,) float64, NaN for a track with no frame used.
    """
    weight = np.ones(len(track)) if use is None else use.astype(np.float64)
    n = np.bincount(track, weight, minlength=tracks) * joints

    def per_track(values: np.ndarray) -> np.ndarray:  # (3, E) -> (3, tracks) means
        return np.stack([np.bincount(track, v * weight, minlength=tracks) for v in values]) / n

    mean = per_track(stats.sums)
    # E[x^2] - E[x]^2 is fine in float64 for metres (variances ~1e-2 of values ~10)
    return (per_track(stats.squares) - mean * mean).sum(axis=0)


def kept_tracks(t: Tracks, noisy: np.ndarray, samples: int,
                min_track_frames: int = MIN_TRACK_FRAMES,
                noisy_fraction: float = NOISY_FRACTION) -> np.ndarray:
    """(K,) bool: tracks that survive the length and spread rules.

    noisy: (E,) spread-noisy entries. A sample with one track keeps it; the spread rule
    runs where >= 2 tracks survive the length rule and never drops the last one: if all
    are noisy, the last to appear stays (CTR-GCN drops them in file order and stops at
    one).
    """
    per_sample = np.bincount(t.sample, minlength=samples)
    keep = (t.frames > min_track_frames) | (per_sample[t.sample] == 1)
    left = np.bincount(t.sample, keep, minlength=samples)[t.sample]
    ratio = np.bincount(t.track, noisy, minlength=len(t.frames)) / t.frames
    drop = keep & (left >= 2) & (ratio >= noisy_fraction)
    all_noisy = np.bincount(t.sample, drop, minlength=samples)[t.sample] == left
    last_appear = np.full(samples, -1, dtype=np.int64)
    np.maximum.at(last_appear, t.sample[keep], t.appear[keep])
    last_kept = keep & (t.appear == last_appear[t.sample])
    return keep & ~(drop & ~(all_noisy & last_kept))


def assign_actors(t: Tracks, keep: np.ndarray, motion: np.ndarray,
                  sample_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Actor (0, 1, or -1 dropped) and placing order of each track.

    keep, motion: (K,); sample_start: (n,) first row of each sample (actor 2's virtual
    [0, 0] interval) -> actor (K,) int64, rank (K,) int64 (order within the sample,
    by decreasing motion, ties in file order). The greedy loop runs over ranks only.
    """
    actor = np.full(len(keep), -1, dtype=np.int64)
    rank = np.full(len(keep), -1, dtype=np.int64)
    order = np.flatnonzero(keep)
    order = order[np.lexsort((t.appear[order], -motion[order], t.sample[order]))]
    if len(order) == 0:
        return actor, rank
    head = np.ones(len(order), dtype=bool)
    head[1:] = t.sample[order[1:]] != t.sample[order[:-1]]
    group_start = np.maximum.accumulate(np.where(head, np.arange(len(order)), 0))
    rank[order] = np.arange(len(order)) - group_start
    start1 = np.zeros_like(sample_start)
    end1 = np.zeros_like(sample_start)
    start2 = sample_start.copy()
    end2 = sample_start.copy()
    for r in range(int(rank.max()) + 1):
        k = order[rank[order] == r]
        s, first, last = t.sample[k], t.first[k], t.last[k]
        if r == 0:
            start1[s], end1[s] = first, last
            actor[k] = 0
            continue
        to1 = np.minimum(end1[s], last) - np.maximum(start1[s], first) <= 0
        to2 = ~to1 & (np.minimum(end2[s], last) - np.maximum(start2[s], first) <= 0)
        for to, start, end in ((to1, start1, end1), (to2, start2, end2)):
            start[s[to]] = np.minimum(start[s[to]], first[to])
            end[s[to]] = np.maximum(end[s[to]], last[to])
        actor[k] = np.where(to1, 0, np.where(to2, 1, -1))
    return actor, rank


def denoise(
    xyz: np.ndarray,
    body_id: np.ndarray,
    offsets: np.ndarray,
    min_track_frames: int = MIN_TRACK_FRAMES,
    spread_ratio: float = SPREAD_RATIO,
    noisy_fraction: float = NOISY_FRACTION,
) -> np.ndarray:
    """Two actors per frame chosen by body-ID tracking (see the module docstring).

    xyz: (F, B>=2, 3, 25) float32 metres (frame, body slot, coordinate, joint, as in
    the raw store); body_id: (F, B) uint64, 0 = empty slot; offsets: (n+1,) int64 rows
    of the block, as in `transform.to_frames` (they may start above 0) -> (F, 2, 3, 25)
    float32 for the same offsets: slot 0 = actor 1, slot 1 = actor 2, zeros where an
    actor is absent and on rows outside every sample. A sample whose tracks are all
    dropped keeps its first two slots.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    xyz = np.asarray(xyz)
    body_id = np.asarray(body_id)
    if offsets[0] < 0 or offsets[-1] > len(xyz) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"offsets must be non-decreasing rows of xyz (0..{len(xyz)})")
    samples = len(offsets) - 1
    out = np.zeros((len(xyz), 2) + xyz.shape[2:], dtype=np.float32)
    if samples == 0:
        return out
    t = body_tracks(body_id, offsets)
    frames = entry_frames(xyz, t)
    stats = entry_stats(frames, spread_ratio)
    noisy = stats.noisy
    keep = kept_tracks(t, noisy, samples, min_track_frames, noisy_fraction)
    tracks = len(t.frames)
    with np.errstate(invalid="ignore", divide="ignore"):
        motion = track_motion(stats, t.track, tracks)
        clean = track_motion(stats, t.track, tracks, use=~noisy)
    noisy_tracks = np.bincount(t.track, noisy, minlength=tracks) > 0
    motion = np.where(noisy_tracks, np.fmin(motion, clean), motion)
    actor, rank = assign_actors(t, keep, motion, offsets[:-1])

    placed = np.flatnonzero(actor[t.track] >= 0)
    placed = placed[np.argsort(rank[t.track[placed]], kind="stable")]  # later ranks win
    body_rows(out)[t.row[placed] * 2 + actor[t.track[placed]]] = frames[placed].reshape(
        len(placed), np.prod(frames.shape[1:]))
    owner = sample_of_rows(offsets, len(xyz))
    fallback = np.bincount(t.sample, actor >= 0, minlength=samples) == 0
    rows = np.flatnonzero((owner >= 0) & fallback[owner])  # owner -1: masked anyway
    out[rows] = xyz[rows, :2]
    return out
