"""The batched 50-frame transform against the per-sample reference."""
from __future__ import annotations

import numpy as np
import pytest

from asar_data.transform import (
    crop_windows,
    resize_indices,
    shoulder_angles,
    to_frames,
    valid_length,
)

TOL = 1e-6  # metres; float32 bulk arithmetic, measured max ~5e-7


def _body(rng, t: int) -> np.ndarray:
    """(t, 25, 3) float32: a person 2-4 m from the camera, swaying and turning."""
    base = rng.normal(0.0, 0.25, size=(1, 25, 3)) + [rng.uniform(-1, 1), 0.0, rng.uniform(2, 4)]
    drift = np.cumsum(rng.normal(0.0, 0.01, size=(t, 25, 3)), axis=0)
    return (base + drift).astype(np.float32)


def _ragged(samples: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(T_i, B, 25, 3) samples -> concatenated xyz and offsets (the raw store layout)."""
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in samples])]).astype(np.int64)
    return np.concatenate(samples).astype(np.float32), offsets


def _reference(reference_downsample, sample: np.ndarray) -> np.ndarray:
    """The reference transform of one (T, B, 25, 3) sample, or zeros where it raises."""
    try:
        return reference_downsample.transform(sample[:, :2].transpose(3, 0, 2, 1))
    except ValueError:
        return np.zeros((3, 50, 25, 2), dtype=np.float32)


def _random_samples(rng, n: int) -> list[np.ndarray]:
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


def test_matches_reference_on_random_ragged_batch(reference_downsample):
    rng = np.random.default_rng(0)
    samples = _random_samples(rng, 48)
    xyz, offsets = _ragged(samples)
    data, length = to_frames(xyz, offsets)
    assert data.shape == (48, 3, 50, 25, 2) and data.dtype == np.float32
    assert length.dtype == np.int32
    for i, sample in enumerate(samples):
        assert length[i] == (sample[:300, 0, 0] != 0).any(axis=-1).sum()
        np.testing.assert_allclose(data[i], _reference(reference_downsample, sample), atol=TOL)


def test_matches_reference_on_every_real_ntu_file(real_dir, reference_parse,
                                                  reference_downsample):
    paths = sorted((real_dir / "ntu").glob("*.skeleton"))
    assert paths
    samples = [reference_parse.read_xyz(str(p)).transpose(1, 3, 2, 0) for p in paths]
    xyz, offsets = _ragged(samples)
    data, _ = to_frames(xyz, offsets)
    for i, sample in enumerate(samples):
        ref = reference_downsample.transform(sample.transpose(3, 0, 2, 1))
        np.testing.assert_allclose(data[i], ref, atol=TOL, err_msg=paths[i].name)


def test_valid_length_counts_frames_not_positions(reference_downsample):
    rng = np.random.default_rng(1)
    full = np.zeros((80, 2, 25, 3), dtype=np.float32)
    full[:, 0] = _body(rng, 80)
    gap = full.copy()
    gap[30:40] = 0.0  # nobody in the middle
    xyz, offsets = _ragged([full, gap])
    start, count = crop_windows(offsets)
    assert valid_length(xyz, start, count).tolist() == [80, 70]
    data, length = to_frames(xyz, offsets)
    assert length.tolist() == [80, 70]
    # the reference resizes the first 70 positions, gap included
    np.testing.assert_allclose(data[1], _reference(reference_downsample, gap), atol=TOL)
    assert np.abs(data[1] - data[0]).max() > 1e-2


def test_absent_second_body_stays_zero():
    rng = np.random.default_rng(2)
    s = np.zeros((60, 2, 25, 3), dtype=np.float32)
    s[:, 0] = _body(rng, 60)
    data, _ = to_frames(*_ragged([s]))
    assert np.all(data[0, ..., 1] == 0) and np.any(data[0, ..., 0] != 0)


def test_rotation_sign_follows_summed_z():
    rng = np.random.default_rng(3)
    a = np.stack([_body(rng, 50), _body(rng, 50)], axis=1)[None]  # (1, 50, 2, 25, 3)
    b = a + rng.normal(0, 0.01, size=a.shape).astype(np.float32)
    w = rng.random((1, 50))
    mirrored_a, mirrored_b = a.copy(), b.copy()
    mirrored_a[..., 2] *= -1
    mirrored_b[..., 2] *= -1
    theta = shoulder_angles(a, b, w)
    assert np.array_equal(shoulder_angles(mirrored_a, mirrored_b, w), -theta)
    # end to end: mirroring z negates theta, which leaves x and y and negates z
    s = np.stack([_body(rng, 90), _body(rng, 90)], axis=1)
    m = s.copy()
    m[..., 2] *= -1
    data, _ = to_frames(*_ragged([s, m]))
    np.testing.assert_allclose(data[1, :2], data[0, :2], atol=TOL)
    np.testing.assert_allclose(data[1, 2], -data[0, 2], atol=TOL)


def test_shoulder_angles_are_bit_exact(reference_downsample):
    rng = np.random.default_rng(7)
    s = np.stack([_body(rng, 137), _body(rng, 137)], axis=1)
    s[40:45] = 0.0
    xyz, offsets = _ragged([s])
    length = valid_length(xyz, *crop_windows(offsets))
    lo, hi, w = resize_indices(length)
    theta = shoulder_angles(xyz[lo], xyz[hi], w)[0]  # (50, 2)
    x = reference_downsample.centre(s.transpose(3, 0, 2, 1).astype(np.float64))
    x = reference_downsample.resize_time(x, int(length[0]), 50)
    for m in range(2):  # the reference's rotate_y, up to theta
        vec = x[:, :, 8, m] - x[:, :, 4, m]
        vec[1] = 0
        ref = np.arccos(vec[0] / (np.sqrt(np.square(vec).sum(axis=0)) + 0.0001))
        assert np.array_equal(theta[:, m], -ref if vec[2].sum() >= 0 else ref)


def test_long_sample_keeps_first_or_centred_300_frames(reference_downsample):
    rng = np.random.default_rng(4)
    s = np.zeros((420, 2, 25, 3), dtype=np.float32)
    s[:, 0] = _body(rng, 420)
    s[:, 1] = _body(rng, 420)
    xyz, offsets = _ragged([s])
    assert crop_windows(offsets, long_crop="first")[0].tolist() == [0]
    assert crop_windows(offsets, long_crop="centre")[0].tolist() == [60]
    first, _ = to_frames(xyz, offsets, long_crop="first")
    centre, _ = to_frames(xyz, offsets, long_crop="centre")
    np.testing.assert_allclose(first[0], reference_downsample.transform(
        s[:300].transpose(3, 0, 2, 1)), atol=TOL)
    np.testing.assert_allclose(centre[0], reference_downsample.transform(
        s[60:360].transpose(3, 0, 2, 1)), atol=TOL)


def test_sample_without_body_one_is_all_zero_with_length_zero():
    rng = np.random.default_rng(5)
    nobody = np.zeros((40, 2, 25, 3), dtype=np.float32)
    only_second = nobody.copy()
    only_second[:, 1] = _body(rng, 40)
    empty = nobody[:0]
    ok = nobody.copy()
    ok[:, 0] = _body(rng, 40)
    data, length = to_frames(*_ragged([nobody, only_second, empty, ok]))
    assert length.tolist() == [0, 0, 0, 40]
    assert not data[:3].any() and data[3].any()


def test_offsets_may_start_above_zero_and_chunking_changes_nothing():
    rng = np.random.default_rng(6)
    samples = _random_samples(rng, 9)
    xyz, offsets = _ragged(samples)
    base, length = to_frames(xyz, offsets)
    padded = np.concatenate([np.full((7, 2, 25, 3), 9.0, np.float32), xyz])
    shifted, shifted_length = to_frames(padded, offsets + 7, chunk=2)
    assert np.array_equal(shifted, base) and np.array_equal(shifted_length, length)
    assert np.array_equal(to_frames(xyz, offsets, chunk=1)[0], base)
    with pytest.raises(ValueError, match="offsets"):
        to_frames(xyz, offsets + 1)


def test_resize_indices_follow_opencv_half_pixel_rule():
    lo, hi, w = resize_indices(np.array([100, 50, 20, 1]))
    t = np.arange(50)
    assert np.array_equal(lo[0], 2 * t) and np.array_equal(hi[0], 2 * t + 1)
    np.testing.assert_allclose(w[0], 0.5)
    assert np.array_equal(lo[1], t) and not w[1].any()
    src = np.clip((t + 0.5) * 20 / 50 - 0.5, 0, 19)  # upsampling: clamped at both ends
    np.testing.assert_allclose(lo[2] + w[2], src)
    assert hi[2].max() == 19 and lo[2][0] == 0 and w[2][0] == 0
    assert not lo[3].any() and not hi[3].any() and not w[3].any()
