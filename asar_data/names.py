"""Sample names: NTU `SsssCcccPpppRrrrAaaa`, PKU-MMD videos and segments, name lists.

NTU: setup, camera, performer (subject), replication, action; the label is action - 1.
PKU-MMD part I videos are `0002-L` (video 2, views L/M/R = 1/2/3), part II videos
`A01N08-L`. A labelled segment is named as the reference tools name it: part I
`F036V001C010L003` (video, view, class, 1-based line of the label file), part II
`A001N008V001C005L003`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

NTU_FIELDS = ("setup", "camera", "subject", "replication", "action")
VIEWS = "LMR"  # view 1, 2, 3

_NTU = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
_NTU_LETTERS = np.frombuffer(b"SCPRA", np.uint8)
_SKELETON = ".skeleton"


@dataclass(frozen=True)
class NtuName:
    """An NTU RGB+D sample name, e.g. `S001C002P003R002A013`."""

    setup: int
    camera: int
    subject: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        """0-based class: action - 1."""
        return self.action - 1

    def __str__(self) -> str:
        return (f"S{self.setup:03d}C{self.camera:03d}P{self.subject:03d}"
                f"R{self.replication:03d}A{self.action:03d}")


def _stem(name: str) -> str:
    return name[: -len(_SKELETON)] if name.endswith(_SKELETON) else name


def parse_ntu_name(name: str) -> NtuName | None:
    """`S001C002P003R002A013` or `S001C002P003R002A013.skeleton` -> NtuName; None otherwise.

    Only the pattern is checked: `ntu_name_problem` says whether the numbers are in range.
    """
    m = _NTU.fullmatch(_stem(name))
    return None if m is None else NtuName(*(int(g) for g in m.groups()))


# The ranges of each field (inclusive): NTU-120's, and NTU-60's where they are smaller.
NTU_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "ntu120": {"setup": (1, 32), "camera": (1, 3), "subject": (1, 106), "replication": (1, 2),
               "action": (1, 120)},
    "ntu60": {"setup": (1, 17), "camera": (1, 3), "subject": (1, 40), "replication": (1, 2),
              "action": (1, 60)},
}


def ntu_name_problem(name: NtuName, dataset: str = "ntu120") -> str | None:
    """Why a sample name cannot belong to `dataset` (ntu60 / ntu120), or None if it can.

    E.g. "action 999 is outside 1-120". A name within NTU-120's ranges but not NTU-60's
    is a valid NTU-120 sample (`ntu_dataset_of`).
    """
    for field, (low, high) in NTU_RANGES[dataset].items():
        value = getattr(name, field)
        if not low <= value <= high:
            return f"{field} {value} is outside {low}-{high}"
    return None


def ntu_dataset_of(name: NtuName) -> str | None:
    """The smallest release a name belongs to: ntu60, ntu120, or None (out of range)."""
    for dataset in ("ntu60", "ntu120"):
        if ntu_name_problem(name, dataset) is None:
            return dataset
    return None


def ntu_name_fields(names: Sequence[str]) -> dict[str, np.ndarray]:
    """Metadata of many NTU names at once (with or without `.skeleton`).

    Returns int16 arrays of shape (N,): setup, camera, subject, replication and
    label (action - 1). Raises ValueError naming the first name that is not an
    NTU sample name.
    """
    stems = [_stem(n) for n in names]
    fields = {k: np.zeros(len(stems), np.int16) for k in (*NTU_FIELDS[:4], "label")}
    if not stems:
        return fields
    try:
        raw = "".join(stems).encode("ascii")
    except UnicodeEncodeError:
        raw = b""
    ok = len(raw) == 20 * len(stems)
    if ok:
        chars = np.frombuffer(raw, np.uint8).reshape(-1, 5, 4)
        digits = chars[:, :, 1:] - np.uint8(48)
        good = (chars[:, :, 0] == _NTU_LETTERS).all(1) & (digits < 10).all((1, 2))
        ok = bool(good.all())
    if not ok:
        bad = next(n for n in names if parse_ntu_name(n) is None)
        raise ValueError(f"not an NTU sample name: {bad!r}")
    values = digits.astype(np.int16) @ np.array([100, 10, 1], np.int16)  # (N, 5)
    for i, key in enumerate(NTU_FIELDS[:4]):
        fields[key] = values[:, i]
    fields["label"] = values[:, 4] - 1
    return fields


# ---------------------------------------------------------------- PKU-MMD

_PKU_VIDEO = {
    1: re.compile(r"(\d{4})-([LMR])"),
    2: re.compile(r"A(\d{2})N(\d{2})-([LMR])"),
}
_PKU_SEGMENT = {
    1: re.compile(r"F(\d{3})V(\d{3})C(\d{3})L(\d{3})"),
    2: re.compile(r"A(\d{3})N(\d{3})V(\d{3})C(\d{3})L(\d{3})"),
}


@dataclass(frozen=True, order=True)
class PkuVideo:
    """A PKU-MMD video seen from one view: part I `0002-L`, part II `A01N08-L`.

    Orders by part, then video (`video` for part I; `a`, `n` for part II), then view.
    """

    part: int
    video: int  # part I video number, 0 in part II
    a: int  # part II `A` number, 0 in part I
    n: int  # part II `N` number, 0 in part I
    view: int  # 1, 2, 3 for L, M, R

    def __str__(self) -> str:
        side = VIEWS[self.view - 1]
        if self.part == 1:
            return f"{self.video:04d}-{side}"
        return f"A{self.a:02d}N{self.n:02d}-{side}"


def parse_pku_video(name: str, part: int | None = None) -> PkuVideo | None:
    """`0002-L` (part I) or `A01N08-L` (part II), a `.txt` suffix allowed -> PkuVideo.

    None when the name is not a video id (of the given part, if one is given).
    """
    stem = name[:-4] if name.endswith(".txt") else name
    for p in (1, 2) if part is None else (part,):
        m = _PKU_VIDEO[p].fullmatch(stem)
        if m is None:
            continue
        *nums, side = m.groups()
        view = VIEWS.index(side) + 1
        if p == 1:
            return PkuVideo(1, int(nums[0]), 0, 0, view)
        return PkuVideo(2, 0, int(nums[0]), int(nums[1]), view)
    return None


def _three(value: int, what: str) -> str:
    if not 0 <= value <= 999:
        raise ValueError(f"{what} {value} does not fit a 3-digit sample name field")
    return f"{value:03d}"


def pku_segment_name(video: str | PkuVideo, cls: int, line: int, part: int | None = None) -> str:
    """Sample name of a labelled segment: class `cls` (1-based) on 1-based `line` of the labels.

    `0036-L`, 10, 3 -> `F036V001C010L003`; `A01N08-L`, 5, 3 -> `A001N008V001C005L003`.
    """
    if isinstance(video, str):
        parsed = parse_pku_video(video, part)
        if parsed is None:
            raise ValueError(f"not a PKU-MMD video id: {video!r}")
        video = parsed
    tail = f"V{_three(video.view, 'view')}C{_three(cls, 'class')}L{_three(line, 'line')}"
    if video.part == 1:
        return f"F{_three(video.video, 'video')}{tail}"
    return f"A{_three(video.a, 'A number')}N{_three(video.n, 'N number')}{tail}"


@dataclass(frozen=True)
class PkuSegmentName:
    """A parsed segment sample name: its video, class (1-based) and label-file line."""

    video: PkuVideo
    cls: int
    line: int

    @property
    def label(self) -> int:
        return self.cls - 1


def parse_pku_segment_name(name: str) -> PkuSegmentName | None:
    """`F036V001C010L003` or `A001N008V001C005L003` -> PkuSegmentName; None otherwise."""
    m = _PKU_SEGMENT[1].fullmatch(name)
    if m is not None:
        video, view, cls, line = (int(g) for g in m.groups())
        part_video = PkuVideo(1, video, 0, 0, view)
    else:
        m = _PKU_SEGMENT[2].fullmatch(name)
        if m is None:
            return None
        a, n, view, cls, line = (int(g) for g in m.groups())
        part_video = PkuVideo(2, 0, a, n, view)
    if not 1 <= part_video.view <= 3:
        return None
    return PkuSegmentName(part_video, cls, line)


# ---------------------------------------------------------------- name lists


def read_name_list(text: str) -> list[str]:
    """Names from a list file: one per line, after an optional prose header.

    Reads the official missing-skeleton lists (a few lines of prose, a blank line,
    then the names) and plain one-name-per-line lists. Blank lines are skipped;
    a line with spaces after the first name raises ValueError.
    """
    names: list[str] = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line.split()) > 1:
            if names:
                raise ValueError(f"line {number}: expected one name, found {line!r}")
            continue  # header prose
        names.append(line)
    return names


_MISSING_LISTS = {
    "ntu60": "NTU_RGBD_samples_with_missing_skeletons.txt",
    "ntu120": "NTU_RGBD120_samples_with_missing_skeletons.txt",
}


def missing_samples(dataset: str) -> frozenset[str]:
    """The official list of samples with missing skeletons (302 for ntu60, 535 for ntu120)."""
    if dataset not in _MISSING_LISTS:
        raise ValueError(f"no missing-skeleton list for {dataset!r}; use ntu60 or ntu120")
    text = resources.files("asar_data").joinpath("lists", _MISSING_LISTS[dataset]).read_text()
    return frozenset(read_name_list(text))
