"""What a Kinect v2 adds to true joint positions: jitter, inferred joints, body records.

Everything here works on one body seen by one camera over T frames and returns
arrays of the file's fields; `ntu.py` lays them out as text.
"""
from __future__ import annotations

import numpy as np

from .scene import Camera, project
from .skeleton import BONE_FRAME, NUM_JOINTS, quaternions

# Share of frames in which each joint is only inferred (trackingState 1), roughly
# 0.6 x what the real sample files show: hands, wrists and feet the most.
INFERRED_SHARE = np.array([
    0.0, 0.0, 0.0, 0.01, 0.09, 0.2, 0.26, 0.4, 0.06, 0.04, 0.2, 0.33, 0.0,
    0.03, 0.05, 0.05, 0.0, 0.04, 0.1, 0.05, 0.0, 0.13, 0.15, 0.09, 0.1,
])  # fmt: skip
# Joints whose orientation the SDK leaves at 0 0 0 0: head, feet, hand tips, thumbs.
NO_ORIENTATION = np.array([3, 15, 19, 21, 22, 23, 24])
# Extremities jitter more than the trunk (metres, standard deviation per frame).
JITTER = np.where(np.isin(np.arange(NUM_JOINTS), [7, 11, 15, 19, 21, 22, 23, 24]), 0.006, 0.003)
# Hand states (0 unknown, 1 not tracked, 2 open, 3 closed, 4 lasso) and their shares.
HAND_STATES = np.array([1, 0, 3, 2, 4])
HAND_STATE_SHARE = np.array([0.62, 0.33, 0.03, 0.015, 0.005])


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], width: int) -> np.ndarray:
    """Unit-variance noise (T, ...) smoothed along the first axis over about `width` frames."""
    t = shape[0]
    white = rng.standard_normal((t + width,) + shape[1:])
    c = np.cumsum(white, axis=0)
    return (c[width:] - c[:-width]) / np.sqrt(width)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-1.702 * x))  # logistic approximation, plenty for sampling


def tracking_states(
    rng: np.random.Generator, t: int, share: np.ndarray = INFERRED_SHARE
) -> np.ndarray:
    """(T, 25) trackingState: 2 tracked, 1 inferred in runs of frames, `share` of them per joint."""
    u = _normal_cdf(smooth_noise(rng, (t, NUM_JOINTS), 12))
    return np.where(u < share, 1, 2)


def sensor_xyz(
    rng: np.random.Generator, true_xyz: np.ndarray, states: np.ndarray
) -> np.ndarray:
    """Measured camera-space joints (T, 25, 3): jitter of a few mm, inferred joints off by cm."""
    t = true_xyz.shape[0]
    noise = rng.standard_normal(true_xyz.shape) * JITTER[:, None]
    drift = smooth_noise(rng, (t, NUM_JOINTS, 3), 8) * 0.015
    return true_xyz + noise + np.where(states[..., None] == 1, drift, 0.0)


def joint_orientations(
    rng: np.random.Generator, cam_rot: np.ndarray, glob: np.ndarray
) -> np.ndarray:
    """(T, 25, 4) quaternions w x y z of each bone in camera space; zeros where the SDK has none.

    glob: (T, 25, 3, 3) world rotations of the bones. The SDK's sign is arbitrary: one
    random sign per joint and file.
    """
    q = quaternions(cam_rot @ glob @ BONE_FRAME)
    q = q + rng.normal(0, 0.01, q.shape)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q *= rng.choice([-1.0, 1.0], size=(1, NUM_JOINTS, 1))
    q[:, NO_ORIENTATION] = 0.0
    return q


def joint_records(
    rng: np.random.Generator, camera: Camera, world_xyz: np.ndarray, glob: np.ndarray
) -> np.ndarray:
    """(T, 25, 12) joint lines: x y z depthX depthY colorX colorY orientationWXYZ trackingState."""
    t = world_xyz.shape[0]
    states = tracking_states(rng, t)
    xyz = sensor_xyz(rng, camera.to_camera(world_xyz), states)
    depth, colour = project(xyz)
    quat = joint_orientations(rng, camera.rotation, glob)
    return np.concatenate([xyz, depth, colour, quat, states[..., None]], axis=-1)


def _hand_track(rng: np.random.Generator, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(T,) hand confidence and state, constant over runs of 10-40 frames."""
    starts = np.cumsum(rng.integers(10, 40, size=t // 10 + 2))
    run = np.searchsorted(starts, np.arange(t), side="right")
    state = rng.choice(HAND_STATES, size=run.max() + 1, p=HAND_STATE_SHARE)[run]
    confident = np.where(state == 1, 1, np.where(state == 0, 0, rng.integers(0, 2, size=t)))
    return confident, state


def body_records(
    rng: np.random.Generator, body_id_tail: int, local_xyz: np.ndarray
) -> np.ndarray:
    """(T, 10) body lines: bodyID tail, clipedEdges, hand confidences/states, isResticted,
    leanX, leanY, trackingState.

    local_xyz: (T, 25, 3) joints in the body's own frame (for the lean of the trunk).
    """
    t = local_xyz.shape[0]
    trunk = local_xyz[:, 20] - local_xyz[:, 0]
    trunk /= np.linalg.norm(trunk, axis=-1, keepdims=True)
    lean_x = np.clip(1.8 * trunk[:, 0] + rng.normal(0, 0.015, t), -1, 1)
    lean_y = np.clip(-1.8 * trunk[:, 2] - 0.1 + rng.normal(0, 0.015, t), -1, 1)
    left, right = _hand_track(rng, t), _hand_track(rng, t)
    zeros = np.zeros(t)
    return np.stack(
        [np.full(t, float(body_id_tail)), zeros, *left, *right, zeros, lean_x, lean_y,
         np.full(t, 2.0)],
        axis=1,
    )


def ghost_records(
    rng: np.random.Generator, t: int, body_id_tail: int
) -> tuple[np.ndarray, np.ndarray]:
    """A spurious body (sensor noise): (T, 10) body lines and (T, 25, 12) joint lines.

    Its joints are a loose cloud about half a metre wide somewhere in the room,
    mostly inferred, with no hand tracking.
    """
    centre = np.array([rng.uniform(-1.3, 1.3), rng.uniform(-0.6, 0.5), rng.uniform(2.0, 4.5)])
    spread = rng.normal(0, 0.25, (NUM_JOINTS, 3))
    xyz = centre + spread + smooth_noise(rng, (t, NUM_JOINTS, 3), 6) * 0.03
    depth, colour = project(xyz)
    quat = rng.standard_normal((t, NUM_JOINTS, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    quat[:, NO_ORIENTATION] = 0.0
    states = np.where(rng.random((t, NUM_JOINTS)) < 0.8, 1.0, 2.0)
    joints = np.concatenate([xyz, depth, colour, quat, states[..., None]], axis=-1)
    lean = np.clip(rng.normal(0, 0.3, (t, 2)), -1, 1)
    zeros = np.zeros(t)
    body = np.stack(
        [np.full(t, float(body_id_tail)), zeros, zeros, zeros, zeros, zeros, zeros,
         lean[:, 0], lean[:, 1], np.full(t, 2.0)],
        axis=1,
    )
    return body, joints
