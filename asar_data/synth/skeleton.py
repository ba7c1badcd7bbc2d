"""The Kinect v2 25-joint body: rest pose, per-subject bodies, forward kinematics.

Body frame (metres): x to the body's right, y up, z backwards. A person facing a Kinect
has these axes in camera space too: the real files put the left shoulder at the
smaller x, the head at the larger y, and the person faces -z.

Each joint j owns one local rotation, applied to the bone that ends at j (parent -> j)
and carried down to everything below j: global rotation `G_j = G_parent @ L_j`,
position `p_j = p_parent + G_j @ offset_j`. So the rotation named after the elbow
swings the upper arm, the one named after the wrist bends the elbow, and so on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# index, name, parent, rest offset from the parent (metres, reference body), size group.
# Hand tips and thumbs hang off the hand joint so that they move rigidly with the hand.
JOINT_TABLE: tuple[tuple[int, str, int, tuple[float, float, float], str], ...] = (
    (0, "spine_base", -1, (0.0, 0.0, 0.0), "torso"),
    (1, "spine_mid", 0, (0.0, 0.27, 0.005), "torso"),
    (2, "neck", 20, (0.0, 0.065, 0.0), "torso"),
    (3, "head", 2, (0.0, 0.12, -0.012), "head"),
    (4, "shoulder_l", 20, (-0.148, -0.022, 0.01), "shoulders"),
    (5, "elbow_l", 4, (0.0, -0.255, 0.0), "upper_arm"),
    (6, "wrist_l", 5, (0.0, -0.23, 0.0), "forearm"),
    (7, "hand_l", 6, (0.0, -0.065, 0.0), "hand"),
    (8, "shoulder_r", 20, (0.148, -0.022, 0.01), "shoulders"),
    (9, "elbow_r", 8, (0.0, -0.255, 0.0), "upper_arm"),
    (10, "wrist_r", 9, (0.0, -0.23, 0.0), "forearm"),
    (11, "hand_r", 10, (0.0, -0.065, 0.0), "hand"),
    (12, "hip_l", 0, (-0.072, -0.025, 0.0), "hips"),
    (13, "knee_l", 12, (0.0, -0.35, 0.0), "thigh"),
    (14, "ankle_l", 13, (0.0, -0.35, 0.0), "shin"),
    (15, "foot_l", 14, (0.0, -0.04, -0.1), "foot"),
    (16, "hip_r", 0, (0.072, -0.025, 0.0), "hips"),
    (17, "knee_r", 16, (0.0, -0.35, 0.0), "thigh"),
    (18, "ankle_r", 17, (0.0, -0.35, 0.0), "shin"),
    (19, "foot_r", 18, (0.0, -0.04, -0.1), "foot"),
    (20, "spine_shoulder", 1, (0.0, 0.2, 0.005), "torso"),
    (21, "hand_tip_l", 7, (0.0, -0.055, 0.0), "hand"),
    (22, "thumb_l", 7, (0.018, -0.015, -0.032), "hand"),
    (23, "hand_tip_r", 11, (0.0, -0.055, 0.0), "hand"),
    (24, "thumb_r", 11, (-0.018, -0.015, -0.032), "hand"),
)
NUM_JOINTS = 25
JOINT_NAMES = tuple(row[1] for row in JOINT_TABLE)
PARENT = np.array([row[2] for row in JOINT_TABLE])
REST_OFFSET = np.array([row[3] for row in JOINT_TABLE], dtype=np.float64)  # (25, 3)
SIZE_GROUPS = tuple(sorted({row[4] for row in JOINT_TABLE}))
_GROUP_OF = np.array([SIZE_GROUPS.index(row[4]) for row in JOINT_TABLE])
SIDE = np.array([-1 if n.endswith("_l") else 1 if n.endswith("_r") else 0 for n in JOINT_NAMES])

# Height of the ankle joint above the floor and of the top of the head above the head joint.
ANKLE_HEIGHT, HEAD_TOP = 0.08, 0.11


def _depth_levels() -> list[np.ndarray]:
    depth = np.zeros(NUM_JOINTS, dtype=int)
    for j in range(NUM_JOINTS):
        k = j
        while PARENT[k] >= 0:
            depth[j] += 1
            k = PARENT[k]
    return [np.flatnonzero(depth == d) for d in range(1, depth.max() + 1)]


LEVELS = _depth_levels()


def rest_height(offsets: np.ndarray = REST_OFFSET) -> float:
    """Standing height (metres) of a body with these bone offsets (25, 3)."""
    head_above_ankle = sum(offsets[j, 1] for j in (1, 20, 2, 3)) - sum(
        offsets[j, 1] for j in (16, 17, 18)
    )
    return float(head_above_ankle + ANKLE_HEIGHT + HEAD_TOP)


REF_HEIGHT = rest_height()


def _rotation_to(direction: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) taking +y onto the unit vector `direction`."""
    y = np.array([0.0, 1.0, 0.0])
    d = direction / np.linalg.norm(direction)
    axis = np.cross(y, d)
    s, c = np.linalg.norm(axis), float(y @ d)
    if s < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    return axis_angle(axis / s, np.arctan2(s, c))


def axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about unit `axis` (..., 3) by `angle` (...) radians."""
    axis = np.asarray(axis, dtype=np.float64)
    angle = np.asarray(angle, dtype=np.float64)
    shape = np.broadcast_shapes(axis.shape[:-1], angle.shape)
    x, y, z = (np.broadcast_to(axis[..., k], shape) for k in range(3))
    s, c = np.sin(angle), np.cos(angle)
    t = 1 - c
    out = np.empty(shape + (3, 3))
    out[..., 0, 0] = c + x * x * t
    out[..., 0, 1] = x * y * t - z * s
    out[..., 0, 2] = x * z * t + y * s
    out[..., 1, 0] = x * y * t + z * s
    out[..., 1, 1] = c + y * y * t
    out[..., 1, 2] = y * z * t - x * s
    out[..., 2, 0] = x * z * t - y * s
    out[..., 2, 1] = y * z * t + x * s
    out[..., 2, 2] = c + z * z * t
    return out


def rot_y(angle: np.ndarray | float) -> np.ndarray:
    """Rotations (..., 3, 3) about the vertical axis; positive turns forward (-z) towards -x."""
    return axis_angle(np.array([0.0, 1.0, 0.0]), angle)


def _dof_axes() -> np.ndarray:
    """(25, 3, 3): per joint the unit axes of its three degrees of freedom.

    `fwd` swings the bone's far end towards the front (-z), `side` swings it outwards
    (to the body's left for left joints, to the right otherwise), `twist` turns it about
    itself (outwards for both sides). Where the bone already points along the wanted
    direction, the swing goes upwards instead.
    """
    axes = np.zeros((NUM_JOINTS, 3, 3))
    front, up = np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])
    for j in range(NUM_JOINTS):
        d = REST_OFFSET[j] / max(np.linalg.norm(REST_OFFSET[j]), 1e-9)
        if j == 0:
            d = up
        out = np.array([-1.0 if SIDE[j] < 0 else 1.0, 0.0, 0.0])
        for k, target in enumerate((front, out)):
            axis = np.cross(d, target)
            if np.linalg.norm(axis) < 0.5:
                axis = np.cross(d, up)
            axes[j, k] = axis / np.linalg.norm(axis)
        axes[j, 2] = d * (-1.0 if SIDE[j] < 0 else 1.0)
    return axes


DOF_AXES = _dof_axes()
# Orientation of each bone's own frame: +y along the bone (what Kinect reports).
BONE_FRAME = np.stack(
    [_rotation_to(REST_OFFSET[j]) if j else np.eye(3) for j in range(NUM_JOINTS)]
)


@dataclass(frozen=True)
class Body:
    """One subject's body: bone offsets (25, 3) metres and style (multipliers, degrees)."""

    offsets: np.ndarray
    height: float
    amplitude: float  # how large the subject's movements are (x1)
    tempo: float  # how slowly the subject moves (x1 frames)
    posture: np.ndarray  # (25, 3) resting angle offsets, degrees (fwd, side, twist)


def make_body(rng: np.random.Generator) -> Body:
    """A random subject: height ~1.5-1.9 m, limb proportions, movement style, posture."""
    height = float(np.clip(rng.normal(1.69, 0.09), 1.5, 1.9))
    group_scale = rng.normal(1.0, 0.035, len(SIZE_GROUPS))
    offsets = REST_OFFSET * (height / REF_HEIGHT) * group_scale[_GROUP_OF, None]
    posture = np.zeros((NUM_JOINTS, 3))
    posture[1, 0] = rng.normal(2.0, 3.0)  # slight stoop
    posture[3, 0] = rng.normal(0.0, 4.0)  # head carriage
    for elbow in (5, 9):  # arms hang a little away from the body, elbows soft
        posture[elbow, 1] = rng.uniform(4.0, 12.0)
        posture[elbow + 1, 0] = rng.uniform(5.0, 20.0)
    for knee in (13, 17):
        posture[knee, 1] = rng.uniform(0.0, 5.0)  # stance width
        posture[knee + 1, 0] = -rng.uniform(0.0, 6.0)
    return Body(
        offsets=offsets,
        height=rest_height(offsets),
        amplitude=float(rng.uniform(0.85, 1.15)),
        tempo=float(rng.uniform(0.8, 1.25)),
        posture=posture,
    )


def local_rotations(angles_deg: np.ndarray) -> np.ndarray:
    """Local joint rotations (T, 25, 3, 3) from (T, 25, 3) angles (fwd, side, twist), degrees.

    Composition `fwd @ side @ twist`: the twist acts first, about the bone itself.
    """
    rad = np.deg2rad(angles_deg)
    r = [axis_angle(DOF_AXES[:, k], rad[..., k]) for k in range(3)]
    return r[0] @ r[1] @ r[2]


def forward_kinematics(
    offsets: np.ndarray, local: np.ndarray, root_rot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (T, 25, 3) metres, root at the origin, and global rotations (T, 25, 3, 3).

    offsets: (25, 3) bone offsets; local: (T, 25, 3, 3) local rotations (joint 0's is
    ignored); root_rot: (T, 3, 3) orientation of the pelvis.
    """
    t = local.shape[0]
    glob = np.empty_like(local)
    pos = np.zeros((t, NUM_JOINTS, 3))
    glob[:, 0] = root_rot
    for idx in LEVELS:
        glob[:, idx] = glob[:, PARENT[idx]] @ local[:, idx]
        pos[:, idx] = pos[:, PARENT[idx]] + np.einsum("tjab,jb->tja", glob[:, idx], offsets[idx])
    return pos, glob


def quaternions(rot: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) as (w, x, y, z), w >= 0, from rotation matrices (..., 3, 3)."""
    m = rot
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cand = np.stack(
        [
            np.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                      m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - tr,
                      m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                      1 + 2 * m[..., 1, 1] - tr, m[..., 1, 2] + m[..., 2, 1]], -1),
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                      m[..., 1, 2] + m[..., 2, 1], 1 + 2 * m[..., 2, 2] - tr], -1),
        ],
        -2,
    )  # (..., 4, 4): each row proportional to the quaternion; use the best-conditioned
    diag = np.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = np.take_along_axis(cand, np.argmax(diag, -1)[..., None, None], -2)[..., 0, :]
    q = best / np.linalg.norm(best, axis=-1, keepdims=True)
    return q * np.where(q[..., :1] < 0, -1.0, 1.0)
