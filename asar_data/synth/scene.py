"""Bodies in the room and the Kinect cameras that see them.

World frame: metres, floor at y = 0, x and z horizontal; a body placed with yaw 0
faces -z. A camera at yaw phi stands on the circle of its distance around the origin
and looks at the performers; camera space is Kinect's: x right, y up, z away from the
camera. NTU cameras C001 / C002 / C003 sit at 0 / +45 / -45 degrees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motions import Animation
from .skeleton import Body, forward_kinematics, local_rotations, rot_y

# Pixel projection fitted to the real files: u = f*x/z + b/z + c, v = -f*y/z + b/z + c.
# (name, fx, bx, cx, fy, by, cy); the colour camera sits a few cm beside the depth camera.
KINECT_PROJECTION = (
    ("depth", 365.6, 0.0, 257.3, 367.8, 0.0, 208.7),  # 512 x 424
    ("colour", 1059.5, 38.8, 964.6, 1047.2, -86.6, 588.8),  # 1920 x 1080
)
FOOT_CLEARANCE = 0.03  # height of the lowest joint above the floor, metres


@dataclass(frozen=True)
class Camera:
    """A placed Kinect: yaw (radians), distance and height (metres), look-at height."""

    yaw: float
    distance: float
    height: float
    aim: float

    def to_camera(self, world: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera space (..., 3), metres."""
        return world @ self.rotation.T + self.translation

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) world -> camera rotation (yaw, then pitch down towards the aim point)."""
        pitch = np.arctan2(self.height - self.aim, self.distance)
        s, c = np.sin(pitch), np.cos(pitch)
        tilt = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
        return tilt @ rot_y(self.yaw).T

    @property
    def translation(self) -> np.ndarray:
        centre = rot_y(self.yaw) @ np.array([0.0, self.height, -self.distance])
        return -self.rotation @ centre


def setup_cameras(setup: int, yaws_deg: tuple[float, ...] = (0.0, 45.0, -45.0)) -> list[Camera]:
    """The cameras of one recording setup: height and distance (2.5-4 m) depend on the setup id."""
    rng = np.random.default_rng([0x5E7, setup])
    distance, height, aim = rng.uniform(2.5, 4.0), rng.uniform(0.75, 1.3), rng.uniform(0.55, 0.9)
    return [
        Camera(
            yaw=float(np.deg2rad(y + rng.normal(0, 2.0))),
            distance=float(distance + rng.normal(0, 0.1)),
            height=float(height + rng.normal(0, 0.04)),
            aim=aim,
        )
        for y in yaws_deg
    ]


def project(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth (512x424) and colour (1920x1080) pixel coordinates (..., 2) of camera points (..., 3).

    Points behind or at the camera are projected as if 10 cm in front of it.
    """
    x, y, z = xyz[..., 0], xyz[..., 1], np.maximum(xyz[..., 2], 0.1)
    out = []
    for _, fx, bx, cx, fy, by, cy in KINECT_PROJECTION:
        out.append(np.stack([fx * x / z + bx / z + cx, -fy * y / z + by / z + cy], -1))
    return out[0], out[1]


def pose_in_world(
    body: Body, anim: Animation, yaw: float, position: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions (T, 25, 3) and global joint rotations (T, 25, 3, 3).

    The body stands on the floor (its lowest joint just above it, plus any lift),
    starts facing yaw (radians) at position (3,) and travels by the animation's shift.
    """
    pos, glob = forward_kinematics(body.offsets, local_rotations(anim.angles), anim.root_rot)
    pos[..., 1] += FOOT_CLEARANCE - pos[..., 1].min(axis=1, keepdims=True)
    pos += anim.root_shift[:, None, :]
    turn = rot_y(yaw)
    return pos @ turn.T + position, turn @ glob
