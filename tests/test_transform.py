"""The compiled 50-frame transform against the per-sample reference: bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from asar_data.transform import (
    crop_window,
    pairwise_sum,
    resize_source,
    rotation_trig,
    scan_window,
    shoulder_cosines,
    to_frames,
)


def _body(rng, t: int) -> np.ndarray:
    """(t, 25, 3) float32: a person 2-4 m from the camera, swaying and turning."""
    base = rng.normal(0.0, 0.25, size=(1, 25, 3)) + [rng.uniform(-1, 1), 0.0, rng.uniform(2, 4)]
    drift = np.cumsum(rng.normal(0.0, 0.01, size=(t, 25, 3)), axis=0)
    return (base + drift).astype(np.float32)


def _ragged(samples: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(T_i, B, 25, 3) samples -> xyz (F, B, 3, 25) and offsets (the raw store layout)."""
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in samples])]).astype(np.int64)
    return _planar(np.concatenate(samples)), offsets


def _planar(x: np.ndarray) -> np.ndarray:
    """(..., 25, 3) joints -> (..., 3, 25) coordinate planes, float32 C-order."""
    return np.ascontiguousarray(np.swapaxes(x, -1, -2), dtype=np.float32)


def _reference(reference_downsample, sample: np.ndarray, out_frames: int = 50) -> np.ndarray:
    """The reference transform of one (T, B, 25, 3) sample, or zeros where it raises."""
    try:
        return reference_downsample.transform(sample[:, :2].transpose(3, 0, 2, 1), out_frames)
    except ValueError:
        return np.zeros((3, out_frames, 25, 2), dtype=np.float32)


def assert_same_bits(actual: np.ndarray, expected: np.ndarray, err_msg: str = "") -> None:
    """Equal float32 arrays, bit for bit (signs of zero and NaNs included)."""
    assert actual.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(actual.view(np.uint32), expected.view(np.uint32),
                                  err_msg=err_msg)


def _random_samples(rng, n: int) -> list[np.ndarray]:
    """Ragged samples of 1-400 frames with the reference's quirks: a second body in some
    frames only, gaps where nobody is seen, body 1 missing in scattered frames."""
    samples = []
    for i in range(n):
        t = int(rng.integers(1, 401))
        s = np.zeros((t, 2, 25, 3), dtype=np.float32)
        s[:, 0] = _body(rng, t)
        kind = i % 4
        if kind == 1:  # second body in some frames only
            lo, hi = sorted(rng.integers(0, t + 1, size=2))
            s[lo:hi, 1] = _body(rng, hi - lo)
        elif kind == 2:  # two people throughout, with a gap where nobody is seen
            s[:, 1] = _body(rng, t)
            lo = int(rng.integers(0, t))
            s[lo:lo + int(rng.integers(1, 20))] = 0.0
        elif kind == 3:  # body 1 missing in scattered frames
            s[rng.random(t) < 0.2, 0] = 0.0
        samples.append(s)
    return samples


def test_random_ragged_batch_equals_the_reference_bit_for_bit(reference_downsample):
    rng = np.random.default_rng(0)
    samples = _random_samples(rng, 96)
    xyz, offsets = _ragged(samples)
    data, length = to_frames(xyz, offsets)
    assert data.shape == (96, 3, 50, 25, 2) and data.dtype == np.float32
    assert length.dtype == np.int32
    for i, sample in enumerate(samples):
        assert length[i] == (sample[:300, 0, 0] != 0).any(axis=-1).sum()
        assert_same_bits(data[i], _reference(reference_downsample, sample))


def test_every_real_ntu_file_equals_the_reference_bit_for_bit(real_dir, reference_parse,
                                                              reference_downsample):
    paths = sorted((real_dir / "ntu").glob("*.skeleton"))
    assert paths
    samples = [reference_parse.read_xyz(str(p)).transpose(1, 3, 2, 0) for p in paths]
    xyz, offsets = _ragged(samples)
    data, _ = to_frames(xyz, offsets)
    for i, sample in enumerate(samples):
        ref = reference_downsample.transform(sample.transpose(3, 0, 2, 1))
        assert_same_bits(data[i], ref, err_msg=paths[i].name)


@pytest.mark.parametrize("out_frames", [1, 20, 150])
def test_other_output_lengths_equal_the_reference(reference_downsample, out_frames):
    # 150 frames: the summed z of the sign rule is split in two blocks, as numpy sums
    rng = np.random.default_rng(10 + out_frames)
    samples = _random_samples(rng, 24)
    data, _ = to_frames(*_ragged(samples), out_frames=out_frames)
    for i, sample in enumerate(samples):
        assert_same_bits(data[i], _reference(reference_downsample, sample,
                                                          out_frames))


def test_valid_length_counts_frames_not_positions(reference_downsample):
    rng = np.random.default_rng(1)
    full = np.zeros((80, 2, 25, 3), dtype=np.float32)
    full[:, 0] = _body(rng, 80)
    gap = full.copy()
    gap[30:40] = 0.0  # nobody in the middle
    xyz, offsets = _ragged([full, gap])
    bits = xyz.view(np.uint32)
    assert scan_window(bits, *crop_window(offsets[1], offsets[2], 300, False)) == (70, False)
    data, length = to_frames(xyz, offsets)
    assert length.tolist() == [80, 70]
    # the reference resizes the first 70 positions, gap included
    assert_same_bits(data[1], _reference(reference_downsample, gap))
    assert np.abs(data[1] - data[0]).max() > 1e-2


def test_absent_second_body_stays_zero():
    rng = np.random.default_rng(2)
    s = np.zeros((60, 2, 25, 3), dtype=np.float32)
    s[:, 0] = _body(rng, 60)
    data, _ = to_frames(*_ragged([s]))
    assert np.all(data[0, ..., 1] == 0) and np.any(data[0, ..., 0] != 0)


def test_second_body_is_seen_by_any_non_zero_coordinate_in_the_window():
    s = np.zeros((30, 2, 3, 25), dtype=np.float32)
    s[:, 0, :, 0] = 1.0
    for value in (1e-30, -0.5, np.nan, -np.inf):
        t = s.copy()
        t[29, 1, 2, 24] = value
        assert scan_window(t.view(np.uint32), 0, 30) == (30, True)
        assert scan_window(t.view(np.uint32), 0, 29) == (29, False)  # outside the window
    s[10, 1, 1, 3] = -0.0
    s[12, 0] = 0.0  # body 1 missing: a lower count
    assert scan_window(s.view(np.uint32), 0, 30) == (29, False)


def test_second_body_only_in_unused_frames_stays_zero(reference_downsample):
    rng = np.random.default_rng(9)
    s = np.zeros((200, 4, 25, 3), dtype=np.float32)  # four slots, as the raw store keeps
    s[:, 0] = _body(rng, 200)
    s[3, 1] = _body(rng, 1)[0]  # 200 -> 50 frames reads frames 1-2, 5-6, ...: not 3
    s[:, 2:] = 7.0  # slots past the second are never read
    data, _ = to_frames(*_ragged([s]))
    assert not data[0, ..., 1].any()
    assert_same_bits(data[0], _reference(reference_downsample, s))


def test_second_body_with_one_tiny_or_nan_coordinate_is_worked_on(reference_downsample):
    rng = np.random.default_rng(11)
    s = np.zeros((100, 2, 25, 3), dtype=np.float32)
    s[:, 0] = _body(rng, 100)
    tiny, nan = s.copy(), s.copy()
    tiny[10:20, 1, 7, 2] = 1e-30  # non-zero: the reference centres, resizes, rotates it
    nan[10, 1, 7, 0] = np.nan
    data, _ = to_frames(*_ragged([tiny, nan]))
    assert_same_bits(data[0], _reference(reference_downsample, tiny))
    assert_same_bits(data[1], _reference(reference_downsample, nan))
    assert data[0, ..., 1].any() and np.isnan(data[1, ..., 1]).any()


def test_rotation_sign_follows_summed_z(reference_downsample):
    rng = np.random.default_rng(3)
    s = np.stack([_body(rng, 90), _body(rng, 90)], axis=1)
    mirrored = s.copy()
    mirrored[..., 2] *= -1
    xyz, offsets = _ragged([s, mirrored])
    lo, hi, w = np.zeros(50, np.int64), np.zeros(50, np.int64), np.zeros(50)
    resize_source(90, lo, hi, w)
    u, vz = np.zeros((2, 50)), np.zeros(50)
    turned = [shoulder_cosines(xyz, 0, lo + k * 90, hi + k * 90, w, u[k], vz) for k in (0, 1)]
    assert turned[0] != turned[1] and np.array_equal(u[0], u[1])
    # end to end: mirroring z negates theta, which leaves x and y and negates z
    data, _ = to_frames(xyz, offsets)
    np.testing.assert_allclose(data[1, :2], data[0, :2], atol=1e-6)
    np.testing.assert_allclose(data[1, 2], -data[0, 2], atol=1e-6)
    assert_same_bits(data[1], _reference(reference_downsample, mirrored))


def test_shoulder_cosines_and_sign_are_the_references(reference_downsample):
    rng = np.random.default_rng(7)
    s = np.stack([_body(rng, 137), _body(rng, 137)], axis=1)
    s[40:45] = 0.0
    xyz, _ = _ragged([s])
    length, second = scan_window(xyz.view(np.uint32), 0, 137)
    assert length == 132 and second
    lo, hi, w = np.zeros(50, np.int64), np.zeros(50, np.int64), np.zeros(50)
    resize_source(length, lo, hi, w)
    x = reference_downsample.centre(s.transpose(3, 0, 2, 1).astype(np.float64))
    x = reference_downsample.resize_time(x, length, 50)
    for m in range(2):  # the reference's rotate_y, up to theta
        u, vz = np.zeros(50), np.zeros(50)
        turned = shoulder_cosines(xyz, m, lo, hi, w, u, vz)
        vec = x[:, :, 8, m] - x[:, :, 4, m]
        vec[1] = 0
        assert np.array_equal(u, vec[0] / (np.sqrt(np.square(vec).sum(axis=0)) + 0.0001))
        assert turned == (vec[2].sum() >= 0)


def test_rotation_trig_negates_turned_tracks_and_leaves_unseen_ones_zero():
    rng = np.random.default_rng(8)
    u = rng.uniform(-1, 1, size=(3, 2, 50))
    seen = np.array([[True, True], [True, False], [False, False]])
    turned = np.array([[True, False], [False, True], [True, True]])
    cos, sin = rotation_trig(u, seen, turned)
    theta = np.arccos(u[0, 0])
    assert np.array_equal(cos[0, 0], np.cos(-theta)) and np.array_equal(sin[0, 0], np.sin(-theta))
    assert np.array_equal(sin[1, 0], np.sin(np.arccos(u[1, 0])))
    assert not cos[~seen].any() and not sin[~seen].any()


def test_pairwise_sum_rounds_like_numpy():
    rng = np.random.default_rng(12)
    for n in [0, 1, 7, 8, 9, 50, 127, 128, 129, 150, 300, 1000, 4099]:
        a = rng.normal(size=n) * 10.0 ** rng.integers(-4, 4, size=n)
        assert pairwise_sum(a) == a.sum(), n


def test_long_sample_keeps_first_or_centred_300_frames(reference_downsample):
    rng = np.random.default_rng(4)
    s = np.zeros((420, 2, 25, 3), dtype=np.float32)
    s[:, 0] = _body(rng, 420)
    s[:, 1] = _body(rng, 420)
    xyz, offsets = _ragged([s])
    assert crop_window(0, 420, 300, False) == (0, 300)
    assert crop_window(0, 420, 300, True) == (60, 300)
    assert crop_window(5, 100, 300, True) == (5, 95)
    first, _ = to_frames(xyz, offsets, long_crop="first")
    centre, _ = to_frames(xyz, offsets, long_crop="centre")
    assert_same_bits(first[0], reference_downsample.transform(
        s[:300].transpose(3, 0, 2, 1)))
    assert_same_bits(centre[0], reference_downsample.transform(
        s[60:360].transpose(3, 0, 2, 1)))


def test_sample_without_body_one_is_all_zero_with_length_zero():
    rng = np.random.default_rng(5)
    nobody = np.zeros((40, 2, 25, 3), dtype=np.float32)
    only_second = nobody.copy()
    only_second[:, 1] = _body(rng, 40)
    empty = nobody[:0]
    ok = nobody.copy()
    ok[:, 0] = _body(rng, 40)
    data, length = to_frames(*_ragged([ok, nobody, only_second, empty, ok]))
    assert length.tolist() == [40, 0, 0, 0, 40]
    assert not data[1:4].any() and data[0].any()
    assert np.array_equal(data[4], data[0])  # samples on both sides of the empty ones


def test_offsets_may_start_above_zero_and_batching_changes_nothing():
    rng = np.random.default_rng(6)
    samples = _random_samples(rng, 9)
    xyz, offsets = _ragged(samples)
    base, length = to_frames(xyz, offsets)
    padded = np.concatenate([np.full((7, 2, 3, 25), 9.0, np.float32), xyz])
    shifted, shifted_length = to_frames(padded, offsets + 7)
    assert np.array_equal(shifted, base) and np.array_equal(shifted_length, length)
    one_by_one = [to_frames(xyz, offsets[i:i + 2])[0] for i in range(9)]
    assert np.array_equal(np.concatenate(one_by_one), base)
    with pytest.raises(ValueError, match="offsets"):
        to_frames(xyz, offsets + 1)
    with pytest.raises(ValueError, match="long_crop"):
        to_frames(xyz, offsets, long_crop="middle")


def test_resize_source_follows_opencv_half_pixel_rule():
    def source(length):
        lo, hi, w = np.zeros(50, np.int64), np.zeros(50, np.int64), np.zeros(50)
        resize_source(length, lo, hi, w)
        return lo, hi, w

    t = np.arange(50)
    lo, hi, w = source(100)
    assert np.array_equal(lo, 2 * t) and np.array_equal(hi, 2 * t + 1)
    np.testing.assert_allclose(w, 0.5)
    lo, hi, w = source(50)
    assert np.array_equal(lo, t) and not w.any()
    lo, hi, w = source(20)
    src = np.clip((t + 0.5) * 20 / 50 - 0.5, 0, 19)  # upsampling: clamped at both ends
    np.testing.assert_allclose(lo + w, src)
    assert hi.max() == 19 and lo[0] == 0 and w[0] == 0
    lo, hi, w = source(1)
    assert not lo.any() and not hi.any() and not w.any()
