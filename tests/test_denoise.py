"""Multi-body denoising: body-ID tracks, noise rules and the two-actor assignment."""
from __future__ import annotations

import numpy as np

from asar_data.denoise import denoise

SHAPE = np.random.default_rng(0).normal(0.0, 0.08, size=(25, 3)) + np.stack(
    [np.zeros(25), np.linspace(-0.8, 0.8, 25), np.zeros(25)], axis=1)  # 1.6 m tall


def _upright(t: int, activity: float, x: float = 0.0) -> np.ndarray:
    """(t, 3, 25) float32 planes: a standing person swaying along x by `activity` metres."""
    sway = activity * np.sin(np.arange(t) / 3.0)[:, None, None] * np.array([1.0, 0.0, 0.3])
    return np.ascontiguousarray((SHAPE + [x, 0.0, 3.0] + sway).astype(np.float32)
                                .transpose(0, 2, 1))


def _lying(t: int, activity: float) -> np.ndarray:
    """(t, 3, 25) float32: wide rather than tall (x-spread > 0.8 y-spread)."""
    return _upright(t, activity)[:, [1, 0, 2]]


def _scene(frames: int, tracks: list, slots: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """tracks: (body_id, first, joints) in file order -> xyz (F, slots, 3, 25), body_id.

    Like the raw store, a frame keeps its first `slots` bodies.
    """
    xyz = np.zeros((frames, slots, 3, 25), dtype=np.float32)
    ids = np.zeros((frames, slots), dtype=np.uint64)
    used = np.zeros(frames, dtype=int)
    for body, first, joints in tracks:
        for f in range(first, first + len(joints)):
            if used[f] == slots:
                continue
            xyz[f, used[f]] = joints[f - first]
            ids[f, used[f]] = 72057594037931000 + body
            used[f] += 1
    return xyz, ids


def _denoise_one(xyz, ids):
    return denoise(xyz, ids, np.array([0, len(xyz)]))


def test_short_noisy_track_is_dropped_and_twelve_frames_are_enough():
    a, flicker, short = _upright(60, 0.05), _upright(11, 0.5, x=1), _upright(12, 0.02, x=-1)
    xyz, ids = _scene(60, [(1, 0, a), (2, 10, flicker), (3, 30, short)])
    out = _denoise_one(xyz, ids)
    assert np.array_equal(out[:, 0], a)
    assert np.array_equal(out[30:42, 1], short) and not out[:30, 1].any()


def test_wide_spread_lying_track_is_dropped():
    a, lying = _upright(60, 0.05), _lying(60, 0.3)
    xyz, ids = _scene(60, [(1, 0, lying), (2, 0, a)])
    out = _denoise_one(xyz, ids)
    assert np.array_equal(out[:, 0], a) and not out[:, 1].any()


def test_spread_rule_keeps_the_last_track_when_all_are_noisy():
    first, last = _lying(60, 0.3), _lying(60, 0.01)
    out = _denoise_one(*_scene(60, [(1, 0, first), (2, 0, last)]))
    assert np.array_equal(out[:, 0], last) and not out[:, 1].any()


def test_redetected_person_is_merged_into_actor_one():
    a, again, other = _upright(40, 0.5), _upright(40, 0.02), _upright(80, 0.1, x=1)
    # frames 0-39: other, a; frames 40-79: again (a under a new ID), other
    xyz, ids = _scene(80, [(3, 0, other[:40]), (1, 0, a), (2, 40, again)])
    xyz[40:, 1], ids[40:, 1] = other[40:], ids[0, 0]
    out = _denoise_one(xyz, ids)
    assert np.array_equal(out[:40, 0], a) and np.array_equal(out[40:, 0], again)
    assert np.array_equal(out[:, 1], other)


def test_tracks_sharing_only_an_end_frame_do_not_overlap():
    a, again = _upright(40, 0.5), _upright(41, 0.02)
    out = _denoise_one(*_scene(80, [(1, 0, a), (2, 39, again)]))
    assert np.array_equal(out[:39, 0], a[:39])
    assert np.array_equal(out[39:, 0], again)  # the later track wins the shared frame
    assert not out[:, 1].any()


def test_two_overlapping_people_become_actors_in_order_of_motion():
    calm, busy = _upright(60, 0.02), _upright(60, 0.3, x=1)
    out = _denoise_one(*_scene(60, [(1, 0, calm), (2, 0, busy)]))
    assert np.array_equal(out[:, 0], busy) and np.array_equal(out[:, 1], calm)


def test_third_overlapping_body_is_dropped():
    c, b, a = _upright(60, 0.02), _upright(60, 0.1, x=1), _upright(60, 0.3, x=-1)
    out = _denoise_one(*_scene(60, [(3, 0, c), (2, 0, b), (1, 0, a)]))
    assert np.array_equal(out[:, 0], a) and np.array_equal(out[:, 1], b)


def test_actor_two_interval_starts_at_frame_zero_as_in_ctr_gcn():
    a, b, c = _upright(60, 0.3), _upright(30, 0.1, x=1), _upright(21, 0.05, x=-1)
    # b (frames 30-59) becomes actor 2 with the interval [0, 59], so c (frames 0-20),
    # which overlaps actor 1 but not b itself, is dropped
    out = _denoise_one(*_scene(60, [(1, 0, a), (2, 30, b), (3, 0, c)]))
    assert np.array_equal(out[:, 0], a)
    assert np.array_equal(out[30:, 1], b) and not out[:30, 1].any()


def test_clean_two_body_sample_with_stable_ids_is_unchanged():
    xyz, ids = _scene(60, [(1, 0, _upright(60, 0.3)), (2, 0, _upright(60, 0.05, x=1))])
    assert np.array_equal(_denoise_one(xyz, ids), xyz[:, :2])


def test_sample_whose_tracks_are_all_dropped_keeps_its_first_two_slots():
    xyz, ids = _scene(8, [(1, 0, _upright(5, 0.1)), (2, 2, _upright(6, 0.2, x=1))])
    assert np.array_equal(_denoise_one(xyz, ids), xyz[:, :2])


def test_single_track_sample_is_kept_even_if_short_or_wide():
    lying = _lying(5, 0.1)
    out = _denoise_one(*_scene(5, [(1, 0, lying)]))
    assert np.array_equal(out[:, 0], lying) and not out[:, 1].any()


def test_batch_equals_each_sample_alone():
    scenes = [
        _scene(60, [(1, 0, _upright(60, 0.02)), (2, 0, _upright(60, 0.3, x=1))]),
        _scene(8, [(1, 0, _upright(5, 0.1)), (2, 2, _upright(6, 0.2, x=1))]),
        _scene(60, [(1, 0, _lying(60, 0.3)), (2, 0, _upright(60, 0.05))]),
        _scene(0, []),
        _scene(60, [(1, 0, _upright(60, 0.05)), (2, 10, _upright(11, 0.5)),
                    (3, 30, _upright(12, 0.02))]),
    ]
    junk = np.full((3, 3, 3, 25), 7.0, dtype=np.float32)
    xyz = np.concatenate([junk] + [s[0] for s in scenes])
    ids = np.concatenate([np.full((3, 3), 5, dtype=np.uint64)] + [s[1] for s in scenes])
    offsets = 3 + np.concatenate([[0], np.cumsum([len(s[0]) for s in scenes])])
    out = denoise(xyz, ids, offsets)
    assert not out[:3].any()
    for i, (x, b) in enumerate(scenes):
        assert np.array_equal(out[offsets[i]:offsets[i + 1]], _denoise_one(x, b))


def _one_by_one(xyz, ids):
    """A plain per-sample loop over tracks, dicts in file order, as CTR-GCN reads."""
    tracks: dict[int, list] = {}
    for f, s in zip(*np.nonzero(ids), strict=True):
        tracks.setdefault(int(ids[f, s]), []).append((f, s))

    def joints(i):
        return np.stack([xyz[f, s] for f, s in tracks[i]])

    def motion(j):  # j: (frames, 3, 25)
        return np.var(j.transpose(0, 2, 1).reshape(-1, 3).astype(np.float64), axis=0).sum()

    alive = {i: motion(joints(i)) for i in tracks}
    if len(alive) > 1:
        alive = {i: m for i, m in alive.items() if len(tracks[i]) > 11}
    if len(alive) > 1:
        for i in list(alive):
            if len(alive) == 1:
                break
            j = joints(i)
            spread = j.max(axis=2) - j.min(axis=2)
            clean = spread[:, 0] <= 0.8 * spread[:, 1].astype(np.float64)
            if clean.all():
                continue
            if (~clean).sum() / len(j) >= 0.69754:
                del alive[i]
            else:
                alive[i] = min(alive[i], motion(j[clean]))
    if not alive:
        return xyz[:, :2].copy()
    out = np.zeros((len(xyz), 2, 3, 25), dtype=np.float32)
    intervals = [[0, 0], [0, 0]]
    for k, i in enumerate(sorted(alive, key=alive.get, reverse=True)):
        first, last = tracks[i][0][0], tracks[i][-1][0]
        for actor, (start, end) in enumerate(intervals):
            if k == 0 or min(end, last) - max(start, first) <= 0:
                for f, s in tracks[i]:
                    out[f, actor] = xyz[f, s]
                intervals[actor] = [first, last] if k == 0 else [min(start, first),
                                                                max(end, last)]
                break
    return out


def test_batch_matches_a_per_sample_loop_on_random_scenes():
    rng = np.random.default_rng(1)
    scenes = []
    for _ in range(60):
        frames = int(rng.integers(1, 90))
        tracks = []
        for body in rng.choice(9, size=int(rng.integers(1, 6)), replace=False):
            first = int(rng.integers(0, frames))
            t = int(rng.integers(1, frames - first + 1))
            joints = _upright(t, float(rng.uniform(0.01, 0.5)), x=float(rng.uniform(-1, 1)))
            wide = rng.random(t) < rng.choice([0.0, 0.5, 0.9])
            joints[wide] = joints[wide][:, [1, 0, 2]]
            tracks.append((int(body), first, joints))
        scenes.append(_scene(frames, tracks, slots=3))
    xyz = np.concatenate([s[0] for s in scenes])
    ids = np.concatenate([s[1] for s in scenes])
    offsets = np.concatenate([[0], np.cumsum([len(s[0]) for s in scenes])])
    out = denoise(xyz, ids, offsets)
    for i, (x, b) in enumerate(scenes):
        assert np.array_equal(out[offsets[i]:offsets[i + 1]], _one_by_one(x, b)), i


def _read_with_ids(path, slots: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """xyz and exact 17-digit body IDs of an NTU file (float would round the IDs)."""
    lines = iter(path.read_text().split("\n"))
    frames = int(next(lines))
    xyz = np.zeros((frames, slots, 3, 25), dtype=np.float32)
    ids = np.zeros((frames, slots), dtype=np.uint64)
    for f in range(frames):
        for b in range(int(next(lines))):
            body = int(next(lines).split()[0])
            joints = [next(lines).split()[:3] for _ in range(int(next(lines)))]
            if b < slots:
                xyz[f, b], ids[f, b] = np.array(joints, dtype=np.float64).T, body
    return xyz, ids


def test_real_ntu_files_keep_their_bodies(real_dir):
    paths = sorted((real_dir / "ntu").glob("*.skeleton"))
    samples = [_read_with_ids(p) for p in paths]
    xyz = np.concatenate([s[0] for s in samples])
    ids = np.concatenate([s[1] for s in samples])
    offsets = np.concatenate([[0], np.cumsum([len(s[0]) for s in samples])])
    out = denoise(xyz, ids, offsets)
    for i, path in enumerate(paths):
        got, first_two = out[offsets[i]:offsets[i + 1]], xyz[offsets[i]:offsets[i + 1], :2]
        assert (np.array_equal(got, first_two)
                or np.array_equal(got, first_two[:, ::-1])), path.name
