import numpy as np
import pytest
import torch

from asar_data.streams import bone, joint, motion, to_stream
from asar_model.graph import BONES_1BASED


def loop_bone(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for v1, v2 in BONES_1BASED:
        out[:, :, :, v1 - 1] = x[:, :, :, v1 - 1] - x[:, :, :, v2 - 1]
    return out


def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, 3, 6, 25, 2)).astype(np.float32)


def test_bone_is_joint_minus_parent_for_arrays_and_tensors():
    x = data()
    np.testing.assert_array_equal(bone(x), loop_bone(x))
    np.testing.assert_array_equal(bone(torch.from_numpy(x)).numpy(), loop_bone(x))
    assert (bone(x)[:, :, :, 20] == 0).all()


def test_motion_is_the_next_frame_difference_with_a_zero_last_frame():
    x = data()
    for m in (motion(x), motion(torch.from_numpy(x)).numpy()):
        np.testing.assert_array_equal(m[:, :, :-1], x[:, :, 1:] - x[:, :, :-1])
        assert (m[:, :, -1] == 0).all()


def test_single_samples_and_joint_stream():
    x = data()
    np.testing.assert_array_equal(motion(x[0]), motion(x)[0])
    np.testing.assert_array_equal(bone(x[0]), bone(x)[0])
    assert to_stream(x, "joint") is joint(x) is x
    with pytest.raises(ValueError, match="unknown stream"):
        to_stream(x, "velocity")
