"""The NTU RGB+D 25-joint skeleton: joint indices, neighbour links and bone pairs.

Data, not learning: the graph convolution (asar_model.graph), the bone stream and
the synthetic bodies all read their topology from here. 1-based as in the specs,
0-based for code.
"""
from __future__ import annotations

NUM_JOINTS = 25
CENTER = 21 - 1  # joint 21 (index 20), the spine

# Joint names in joint order (index 0 = joint 1), as the NTU RGB+D paper lists them
# (the Kinect v2 joint types). Stores carry them as an attribute.
JOINT_NAMES: tuple[str, ...] = (
    "spine_base", "spine_middle", "neck", "head",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
    "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
)

# Neighbour links, 1-based (child, parent) as in the reference layout "ntu-rgb+d".
EDGES_1BASED: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
    (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
    (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)
# Bone pairs (joint, parent), 1-based; joint 21 is its own parent (a zero bone).
BONES_1BASED: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
    (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
    (18, 17), (19, 18), (20, 19), (21, 21), (22, 23), (23, 8), (24, 25), (25, 12),
)
EDGES: tuple[tuple[int, int], ...] = tuple((i - 1, j - 1) for i, j in EDGES_1BASED)
BONES: tuple[tuple[int, int], ...] = tuple((i - 1, j - 1) for i, j in BONES_1BASED)
# PARENTS[v] = parent joint of v (0-based), in joint order.
PARENTS: tuple[int, ...] = tuple(p for _, p in sorted(BONES))
