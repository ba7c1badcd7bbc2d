import numpy as np
import torch

from asar_data.augment import (
    apply_shear,
    apply_temporal_crop,
    crop_starts,
    normal_augment,
    shear,
    shear_matrices,
    temporal_crop,
)


def reference_crop(sample: np.ndarray, start: int, ratio: int = 6) -> np.ndarray:
    """The reference per-sample formula, (C, T, V, M), with a given window start."""
    t = sample.shape[1]
    p = t // ratio
    padded = np.concatenate((sample[:, :p][:, ::-1], sample, sample[:, -p:][:, ::-1]), axis=1)
    return padded[:, start:start + t]


def reference_shear(sample: np.ndarray, s1: list, s2: list) -> np.ndarray:
    """The reference per-sample formula, (C, T, V, M), with given off-diagonal draws."""
    r = np.array([[1, s1[0], s2[0]], [s1[1], 1, s2[1]], [s1[2], s2[2], 1]])
    return np.dot(sample.transpose([1, 2, 3, 0]), r.transpose()).transpose(3, 0, 1, 2)


def data(n: int = 5, t: int = 50) -> torch.Tensor:
    return torch.randn(n, 3, t, 25, 2, generator=torch.Generator().manual_seed(0))


def test_temporal_crop_equals_the_reference_formula_per_sample():
    x = data()
    starts = torch.tensor([0, 3, 8, 16, 12])          # p = 8: starts in [0, 16]
    got = apply_temporal_crop(x, starts).numpy()
    for i, s in enumerate(starts.tolist()):
        np.testing.assert_array_equal(got[i], reference_crop(x[i].numpy(), s))


def test_crop_starts_are_uniform_over_0_to_2p():
    starts = crop_starts(5000, 50, torch.Generator().manual_seed(0))
    assert starts.min() == 0 and starts.max() == 16 and len(starts.unique()) == 17


def test_shear_equals_the_reference_formula_per_sample():
    x = data()
    r = shear_matrices(5, torch.Generator().manual_seed(1))
    got = apply_shear(x, r).numpy()
    for i in range(5):
        s1 = [r[i, 0, 1], r[i, 1, 0], r[i, 2, 0]]
        s2 = [r[i, 0, 2], r[i, 1, 2], r[i, 2, 1]]
        want = reference_shear(x[i].double().numpy(), [float(v) for v in s1],
                               [float(v) for v in s2])
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)


def test_shear_matrices_have_unit_diagonal_and_bounded_off_diagonal():
    r = shear_matrices(1000, torch.Generator().manual_seed(0), amplitude=0.3)
    assert torch.equal(r.diagonal(dim1=1, dim2=2), torch.ones(1000, 3))
    off = r[:, ~torch.eye(3, dtype=torch.bool)]
    assert off.abs().max() <= 0.3 and off.abs().max() > 0.29


def test_shapes_and_determinism_for_a_seed():
    x = data()
    a = normal_augment(x, torch.Generator().manual_seed(4))
    b = normal_augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, normal_augment(x, torch.Generator().manual_seed(5)))


def test_normal_augment_is_crop_then_shear():
    x = data()
    g = torch.Generator().manual_seed(6)
    want = shear(temporal_crop(x, g), g)
    torch.testing.assert_close(normal_augment(x, torch.Generator().manual_seed(6)), want)


def test_short_sequences_without_padding_are_unchanged_by_the_crop():
    x = data(t=5)                                     # T // 6 = 0 frames of padding
    assert torch.equal(temporal_crop(x, torch.Generator().manual_seed(0)), x)
