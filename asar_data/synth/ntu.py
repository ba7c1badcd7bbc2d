"""Synthetic NTU RGB+D 60 / 120 `.skeleton` files, in the official text layout.

A performance (setup, subject, replication, action) is animated once and seen by up to
three cameras, like the real recordings: C001 straight ahead, C002 / C003 at +-45
degrees; the subject faces C002 in replication 1 and C003 in replication 2.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import kinect
from .common import SynthSummary, subject_body, write_atomic
from .motions import LIBRARY, Motion, animate
from .numfmt import CRLF, SPACE, format_g7
from .scene import pose_in_world, setup_cameras
from .skeleton import Body, rot_y

LISTS_DIR = Path(__file__).resolve().parents[1] / "lists"
NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
_XSUB60 = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
_XSUB120 = _XSUB60 + (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81,
                      82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)


@dataclass(frozen=True)
class NtuSpec:
    """Name ranges of one NTU release and its cross-subject split."""

    setups: int
    subjects: int
    actions: int
    train_subjects: tuple[int, ...]
    test_share: float  # share of samples in the official cross-subject test set


NTU_SPECS = {
    "ntu60": NtuSpec(17, 40, 60, _XSUB60, 16487 / 56578),
    "ntu120": NtuSpec(32, 106, 120, _XSUB120, 50919 / 113945),
}
BLOCK = 10 + 1 + 25 * 12  # tokens per body per frame: body line, "25", joint lines
_BLOCK_CRLF = np.array([9, 10, *(11 + 12 * np.arange(25) + 11)])


@dataclass(frozen=True)
class Performance:
    """One take of one action, and the cameras (1-3) whose files are written."""

    setup: int
    subject: int
    replication: int
    action: int
    cameras: tuple[int, ...]

    def name(self, camera: int) -> str:
        return (f"S{self.setup:03d}C{camera:03d}P{self.subject:03d}"
                f"R{self.replication:03d}A{self.action:03d}")


def missing_names() -> frozenset[str]:
    """Sample names on the official missing-skeleton lists (NTU-60 and NTU-120)."""
    names: set[str] = set()
    for path in sorted(LISTS_DIR.glob("*.txt")):
        names.update(NTU_NAME.fullmatch(x.strip())[0] for x in path.read_text().splitlines()
                     if NTU_NAME.fullmatch(x.strip()))
    return frozenset(names)


def _is_test_take(j: int, share: float) -> bool:
    # Evenly spread test takes at the official share; take 1 of each class is one of them.
    return math.floor((j + 1) * share + 0.5) > math.floor(j * share + 0.5)


def plan_ntu(
    samples: int, classes: int, dataset: str = "ntu60", seed: int = 0
) -> list[Performance]:
    """Which files to write: `samples` names over actions 1..classes, spread over setups,
    cameras, subjects and replications so that every class has training and test samples
    in both benchmarks (given about 3 samples a class), avoiding the missing lists.
    """
    if dataset not in NTU_SPECS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {sorted(NTU_SPECS)}")
    spec = NTU_SPECS[dataset]
    if not 1 <= classes <= spec.actions:
        raise ValueError(f"{dataset} has actions 1..{spec.actions}; asked for {classes} classes")
    rng = np.random.default_rng([seed, 0x91A4])
    missing = missing_names()
    train = np.array(spec.train_subjects)
    test = np.setdiff1d(np.arange(1, spec.subjects + 1), train)
    setups = [np.arange(2, spec.setups + 1, 2), np.arange(1, spec.setups + 1, 2)]
    used: set[tuple[int, int, int, int]] = set()
    plan = []
    for action in range(1, classes + 1):
        n = samples // classes + (action <= samples % classes)
        takes = max(math.ceil(n / 3), min(n, 2)) if n else 0
        for j in range(takes):
            size = n // takes + (j < n % takes)
            # a short class puts camera 1 in its first take; longer ones rotate partial takes
            turn = j + (action if n >= 6 else 0)
            cameras = tuple(sorted((turn + k) % 3 + 1 for k in range(size)))
            pool = test if _is_test_take(j, spec.test_share) else train
            parity = (j + j // 2) % 2  # alternate even / odd setups (NTU-120 cross-setup)
            for _ in range(10_000):
                take = Performance(int(rng.choice(setups[parity])), int(rng.choice(pool)),
                                   int(rng.integers(1, 3)), action, cameras)
                key = (take.setup, take.subject, take.replication, action)
                if key not in used and not any(take.name(c) in missing for c in cameras):
                    break
            else:
                raise ValueError(f"no free sample names left for action {action}")
            used.add(key)
            plan.append(take)
    return plan


@dataclass(frozen=True)
class _Actor:
    world: np.ndarray  # (T, 25, 3) metres
    glob: np.ndarray  # (T, 25, 3, 3)
    local: np.ndarray  # (T, 25, 3) in the body's own frame


def _timing(rng: np.random.Generator, motion: Motion, body: Body) -> tuple[int, float, int]:
    """Idle frames before the action, frames of the action, frames of the take (30-300)."""
    active = 0.85 * motion.frames * body.tempo * math.exp(rng.normal(0, 0.2))
    if rng.random() < 0.04:
        active *= 2.0  # now and then a slow, long take
    lead, rest = (int(x) for x in rng.integers(3, 16, size=2))
    total = int(np.clip(round(active + lead + rest), 30, 300))
    return lead, min(active, total - lead - 2.0), total


def _stage(motion: Motion, take: Performance, rng: np.random.Generator, spare: int) -> list[_Actor]:
    """Animate the take's one or two people and place them in the room.

    The take gets `spare` extra frames at each end, for cameras that start early or stop late.
    """
    body = subject_body(take.subject)
    lead, active, total = _timing(rng, motion, body)
    s = np.clip((np.arange(total + 2 * spare) - spare - lead) / active, 0.0, 1.0)
    facing = np.deg2rad((45.0 if take.replication == 1 else -45.0) + rng.normal(0, 8))
    centre = np.array([rng.normal(0, 0.2), 0.0, rng.normal(0, 0.25)])
    cast = [(body, motion.actor, 0.0, 0.0)]
    if motion.mutual:
        gap = motion.gap * rng.uniform(0.9, 1.1)
        cast = [(body, motion.actor, -np.pi / 2, -gap / 2),
                (subject_body(take.subject, partner=True), motion.partner,
                 -np.pi / 2 if motion.same_way else np.pi / 2, gap / 2)]
    actors = []
    for who, channels, turn, offset in cast:
        amp = who.amplitude * math.exp(rng.normal(0, 0.07))
        anim = animate(channels, s, who.posture, amp, rng)
        yaw = facing + turn
        position = centre + rot_y(facing) @ np.array([offset, 0.0, 0.0])
        world, glob = pose_in_world(who, anim, yaw, position)
        local = (world - position) @ rot_y(yaw)
        actors.append(_Actor(world, glob, local))
    return actors


def _presence(rng: np.random.Generator, t: int, bodies: int) -> np.ndarray:
    """(T, bodies) which bodies the sensor reports: now and then nobody for a few frames."""
    seen = np.ones((t, bodies), dtype=bool)
    if rng.random() < 0.04:
        seen[: rng.integers(1, 7)] = False
    if rng.random() < 0.02:
        seen[t - rng.integers(1, 5):] = False
    if rng.random() < 0.01:
        start = rng.integers(t // 4, 3 * t // 4)
        seen[start : start + rng.integers(1, 4)] = False
    if bodies > 1 and rng.random() < 0.1:
        seen[: rng.integers(1, 11), 1] = False  # the second person is picked up late
    return seen


def _ghost_frames(rng: np.random.Generator, t: int) -> np.ndarray:
    """(T,) frames in which the sensor reports a spurious extra body (in 5% of files)."""
    frames = np.zeros(t, dtype=bool)
    if rng.random() < 0.05:
        start = rng.integers(0, max(t - 5, 1))
        frames[start : start + rng.integers(5, 41)] = True
    return frames


def skeleton_text(blocks: np.ndarray, seen: np.ndarray) -> bytes:
    """The `.skeleton` text of one file.

    blocks: (K, T, 311) per body slot and frame: 10 body values (the first is the body
    ID's 5-digit tail), 25, then 25 x 12 joint values; seen: (T, K) which slots appear
    in each frame, written in slot order.
    """
    t = seen.shape[0]
    per_frame = seen.sum(axis=1)
    before = np.cumsum(per_frame) - per_frame
    frame_of, slot_of = np.nonzero(seen)
    header = 1 + np.arange(t) + BLOCK * before
    start = header[frame_of] + 1 + BLOCK * (np.arange(frame_of.size) - before[frame_of])
    values = np.empty(1 + t + BLOCK * frame_of.size)
    values[0] = t
    values[header] = per_frame
    spans = start[:, None] + np.arange(BLOCK)
    values[spans] = blocks[slot_of, frame_of]
    seps = np.full(values.size, SPACE, dtype=np.uint8)
    seps[0] = CRLF
    seps[header] = CRLF
    seps[start[:, None] + _BLOCK_CRLF] = CRLF
    prefix = np.zeros(values.size, dtype=np.uint8)
    prefix[start] = 1
    return format_g7(values, seps, prefix)


def render_take(take: Performance, seed: int = 0) -> list[tuple[str, bytes]]:
    """The files (name without extension, bytes) of one take, one per camera in `take.cameras`."""
    motion = LIBRARY[take.action - 1]
    key = (take.setup, take.subject, take.replication, take.action)
    actors = _stage(motion, take, np.random.default_rng([seed, 0x5C, *key]), spare=3)
    t_full = actors[0].world.shape[0]
    cameras = setup_cameras(take.setup)
    out = []
    for c in take.cameras:
        rng = np.random.default_rng([seed, 0xCA, c, *key])
        a, b = int(rng.integers(0, 4)), t_full - int(rng.integers(0, 4))
        cam = cameras[c - 1]
        tail = 27936 + int(rng.integers(3000, 70000))  # body IDs: 2**56 + a counter
        # the second ID is a few counts on: float64 steps by 16 here, so close IDs collide
        near = rng.integers(1, 8) if rng.random() < 0.3 else rng.integers(8, 60)
        tails = [tail, tail + int(near)]
        t = b - a
        blocks = np.zeros((len(actors) + 1, t, BLOCK))
        for k, actor in enumerate(actors):
            blocks[k, :, :10] = kinect.body_records(rng, tails[k], actor.local[a:b])
            joints = kinect.joint_records(rng, cam, actor.world[a:b], actor.glob[a:b])
            blocks[k, :, 11:] = joints.reshape(t, -1)
        seen = np.zeros((t, len(actors) + 1), dtype=bool)
        seen[:, :-1] = _presence(rng, t, len(actors))
        seen[:, -1] = _ghost_frames(rng, t) & seen[:, 0]
        if seen[:, -1].any():
            ghost_tail = tail + int(rng.integers(20, 200))
            ghost_body, ghost_joints = kinect.ghost_records(rng, t, ghost_tail)
            blocks[-1, :, :10], blocks[-1, :, 11:] = ghost_body, ghost_joints.reshape(t, -1)
        blocks[:, :, 10] = 25
        out.append((take.name(c), skeleton_text(blocks, seen)))
    return out


def write_ntu_dataset(
    out_dir: str | Path,
    samples: int,
    classes: int,
    seed: int = 0,
    dataset: str = "ntu60",
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write `samples` synthetic `SsssCcccPpppRrrrAaaa.skeleton` files for actions 1..classes.

    Deterministic for a seed. progress(n) is called with the files written so far.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = size = frames = 0
    per_class = [0] * classes
    for take in plan_ntu(samples, classes, dataset, seed):
        for name, data in render_take(take, seed):
            write_atomic(out / f"{name}.skeleton", data)
            files += 1
            size += len(data)
            frames += int(data[: data.index(b"\r")])
            per_class[take.action - 1] += 1
            if progress is not None and files % 16 == 0:
                progress(files)
    if progress is not None and files % 16:
        progress(files)
    return SynthSummary(out, files, size, frames, tuple(per_class),
                        tuple(m.name for m in LIBRARY[:classes]))
