"""Synthetic PKU-MMD part I: long videos seen from three views, label files, split lists.

Layout (as the official release):
`PKU_Skeleton_Renew/0002-L.txt` one line per frame, 150 numbers (`%f`): body 1 then
body 2, 25 joints x y z each, all zeros for an absent body;
`Train_Label_PKU_final/0002-L.txt` lines `class,start,end,confidence`, frames 1-based
and inclusive; `cross-subject.txt`, `cross-view.txt` the four-line split lists.

Each video is one performance (a sequence of actions with idle gaps) recorded by
three cameras, L / M / R, that start a few frames apart.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import kinect
from .common import SynthSummary, subject_body, write_atomic
from .motions import LIBRARY, animate_sequence
from .numfmt import LF, SPACE, format_f6
from .scene import pose_in_world, setup_cameras
from .skeleton import rot_y

# PKU-MMD classes performed by two people (the rest are single-person actions).
PKU_MUTUAL_CLASSES = frozenset({12, 14, 16, 18, 21, 24, 26, 27})
PKU_CLASSES = 51
VIEWS = ("L", "M", "R")
VIEW_YAW = {"L": 45.0, "M": 0.0, "R": -45.0}  # degrees; the performer faces M
SKIPPED_VIDEO_IDS = frozenset(range(247, 251))  # absent from the official part I lists


def pku_motions(classes: int = PKU_CLASSES) -> list[int]:
    """Library index (0-based) of each PKU class 1..classes: two-person classes take the
    library's two-person motions, the others its single-person motions, each in order."""
    single = [i for i, m in enumerate(LIBRARY) if not m.mutual]
    mutual = [i for i, m in enumerate(LIBRARY) if m.mutual]
    return [mutual.pop(0) if c in PKU_MUTUAL_CLASSES else single.pop(0)
            for c in range(1, classes + 1)]


def pku_class_names(classes: int = PKU_CLASSES) -> tuple[str, ...]:
    """Motion name of each synthetic PKU-MMD class 1..classes."""
    return tuple(LIBRARY[i].name for i in pku_motions(classes))


@dataclass(frozen=True)
class Segment:
    """One labelled action: PKU class, first and last frame (0-based, inclusive)."""

    label: int
    first: int
    last: int


def video_ids(videos: int) -> list[str]:
    """The first `videos` part I video ids, `0002` onwards, skipping the ids the release lacks."""
    ids, n = [], 2
    while len(ids) < videos:
        if n not in SKIPPED_VIDEO_IDS:
            ids.append(f"{n:04d}")
        n += 1
    return ids


def _video_plan(
    index: int, classes: int, order: list[int], dealt: int, rng: np.random.Generator
) -> tuple[list[Segment], int, bool, int]:
    """Segments, length and two-person flag of video `index`, and the updated count of
    single-person classes dealt so far: these go round `order` so all come up evenly."""
    mutual_classes = [c for c in range(1, classes + 1) if c in PKU_MUTUAL_CLASSES]
    two_people = bool(mutual_classes) and (index % 5 == 4 or not order)
    if two_people:
        labels = [int(c) for c in rng.permutation(mutual_classes)]
    else:
        count = min(int(rng.integers(20, 29)), len(order))
        labels = [order[(dealt + k) % len(order)] for k in range(count)]
        labels = [int(c) for c in rng.permutation(labels)]
        dealt += count
    motions = pku_motions(classes)
    tempo = subject_body(index // 2 + 1).tempo
    segments, frame = [], int(rng.integers(100, 250))
    for c in labels:
        frames = int(LIBRARY[motions[c - 1]].frames * tempo * np.exp(rng.normal(0, 0.2)))
        frames = max(frames, 25)
        segments.append(Segment(c, frame, frame + frames - 1))
        frame += frames + int(rng.integers(30, 150))
    return segments, frame + int(rng.integers(10, 40)), two_people, dealt


def _performance(
    segments: Sequence[Segment], t: int, subject: int, two_people: bool, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """World joints (T, 25, 3) of the one or two performers; the video is `t` frames."""
    motions = pku_motions(PKU_CLASSES)
    valid = [s for s in segments if 1 <= s.label <= PKU_CLASSES and s.last > s.first]
    facing = np.deg2rad(rng.normal(0, 6))
    centre = np.array([rng.normal(0, 0.15), 0.0, rng.normal(0, 0.2)])
    cast = [(subject_body(subject), "actor", 0.0, 0.0)]
    if two_people:
        cast = [(subject_body(subject), "actor", -np.pi / 2, -0.5),
                (subject_body(subject, partner=True), "partner", np.pi / 2, 0.5)]
    out = []
    for body, role, turn, offset in cast:
        actions = []
        for s in valid:
            motion = LIBRARY[motions[s.label - 1]]
            channels = motion.partner if role == "partner" else motion.actor
            if channels is not None:
                actions.append((channels, s.first, s.last - s.first + 1))
        anim = animate_sequence(actions, t, body.posture, body.amplitude, rng)
        position = centre + rot_y(facing) @ np.array([offset, 0.0, 0.0])
        out.append(pose_in_world(body, anim, facing + turn, position))
    return out


def _view_text(
    performers: list[tuple[np.ndarray, np.ndarray]], view: str, setup: int, start: int, t: int,
    rng: np.random.Generator,
) -> bytes:
    """The skeleton file of one view: frames start..start+t-1 of the performance."""
    camera = setup_cameras(setup, tuple(VIEW_YAW[v] for v in VIEWS))[VIEWS.index(view)]
    data = np.zeros((t, 2, 25, 3))
    for k, (world, _) in enumerate(performers):
        frames = np.clip(np.arange(start, start + t), 0, world.shape[0] - 1)
        states = kinect.tracking_states(rng, t)
        xyz = kinect.sensor_xyz(rng, camera.to_camera(world[frames]), states)
        lost = np.zeros(t, dtype=bool)
        for _ in range(rng.poisson(t / 2000)):  # the sensor drops the body for a moment
            at = rng.integers(0, t)
            lost[at : at + rng.integers(1, 16)] = True
        data[:, k] = np.where(lost[:, None, None], 0.0, xyz)
    seps = np.full((t, 150), SPACE, dtype=np.uint8)
    seps[:, -1] = LF
    return format_f6(data.reshape(-1), seps.reshape(-1))


def _label_text(segments: Sequence[Segment], shift: int, t: int, rng: np.random.Generator) -> bytes:
    conf = rng.choice([2, 1, 0], size=len(segments), p=[0.97, 0.024, 0.006])
    lines = []
    for s, c in zip(segments, conf, strict=True):
        first = int(np.clip(s.first - shift + rng.integers(-2, 3), 0, t - 1))
        last = int(np.clip(s.last - shift + rng.integers(-2, 3), first, t - 1))
        lines.append(f"{s.label},{first + 1},{last + 1},{c}\n")
    return "".join(lines).encode()


def split_text(train: Sequence[str], test: Sequence[str]) -> str:
    """A split list in the official four-line form (its heading spelling, its trailing commas)."""
    def listing(items: Sequence[str], end: str) -> str:
        return ", ".join(items) + end if items else ""

    return (f"Training videos: \n{listing(train, ', ')}\n"
            f"Validataion videos: \n{listing(test, ',')}\n")


def write_pku_dataset(
    out_dir: str | Path,
    videos: int,
    classes: int = PKU_CLASSES,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic PKU-MMD part I: `videos` videos x 3 views, labels and split lists.

    Each subject performs two videos, subjects 2, 6, 10, ... are the cross-subject test
    subjects; one video in five is a two-person video (when `classes` includes
    two-person classes). progress(n) gets the number of skeleton files written so far.
    """
    if not 1 <= classes <= PKU_CLASSES:
        raise ValueError(f"PKU-MMD has classes 1..{PKU_CLASSES}; asked for {classes}")
    out = Path(out_dir)
    skel_dir, label_dir = out / "PKU_Skeleton_Renew", out / "Train_Label_PKU_final"
    skel_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    plan_rng = np.random.default_rng([seed, 0x9CC])
    order = [int(c) for c in plan_rng.permutation(classes) + 1 if c not in PKU_MUTUAL_CLASSES]
    dealt = 0
    files = size = frames = 0
    per_class = [0] * classes
    xsub: tuple[list[str], list[str]] = ([], [])
    for index, vid in enumerate(video_ids(videos)):
        segments, length, two_people, dealt = _video_plan(index, classes, order, dealt, plan_rng)
        rng = np.random.default_rng([seed, 0x71D, int(vid)])
        performers = _performance(segments, length + 10, index // 2 + 1, two_people, rng)
        for view in VIEWS:
            shift = int(rng.integers(0, 6))
            t = length - shift + int(rng.integers(-5, 6))
            text = _view_text(performers, view, 900 + index % 7, shift, t, rng)
            write_atomic(skel_dir / f"{vid}-{view}.txt", text)
            write_atomic(label_dir / f"{vid}-{view}.txt", _label_text(segments, shift, t, rng))
            xsub[(index // 2) % 4 == 1].append(f"{vid}-{view}")
            files += 1
            size += len(text)
            frames += t
            for s in segments:
                per_class[s.label - 1] += 1
            if progress is not None:
                progress(files)
    names = [f"{v}-{w}" for v in video_ids(videos) for w in VIEWS]
    (out / "cross-subject.txt").write_text(split_text(*xsub))
    (out / "cross-view.txt").write_text(
        split_text([n for n in names if n[-1] != "M"], [n for n in names if n[-1] == "M"]))
    return SynthSummary(out, files, size, frames, tuple(per_class), pku_class_names(classes))


def read_label_segments(path: str | Path) -> list[Segment]:
    """Segments of a label file (`class,start,end,confidence` lines, 1-based inclusive)."""
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.strip().split(",")
        if len(parts) >= 3 and all(p.strip().lstrip("-").isdigit() for p in parts[:3]):
            label, start, end = (int(p) for p in parts[:3])
            out.append(Segment(label, start - 1, end - 1))
    return out


def write_pku_skeletons_for_labels(
    label_dir: str | Path, out_dir: str | Path, seed: int = 0
) -> int:
    """For every label file in label_dir, a synthetic skeleton file of the same name in
    out_dir, long enough for all its segments (last end frame + 10-40 frames), with the
    labelled motions at the labelled frames. Returns the number of files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(Path(label_dir).glob("*.txt")):
        segments = read_label_segments(path)
        stem = path.stem
        number = int(stem[:4]) if stem[:4].isdigit() else count
        view = stem[-1] if stem[-1] in VIEWS else "M"
        rng = np.random.default_rng([seed, 0x1AB, number, VIEWS.index(view)])
        t = max([s.last + 1 for s in segments] + [1]) + int(rng.integers(10, 41))
        two_people = any(s.label in PKU_MUTUAL_CLASSES for s in segments)
        performers = _performance(segments, t, number // 2 + 1, two_people, rng)
        write_atomic(out / path.name, _view_text(performers, view, 900 + number % 7, 0, t, rng))
        count += 1
    return count
