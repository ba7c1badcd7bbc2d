"""PKU-MMD raw files: skeleton videos, action label files and the split files.

Skeleton file: one line per frame, 150 numbers (body 1 then body 2, 25 joints,
x y z each; a missing body is all zeros). Label file: one action per line,
`class,start,end,confidence` with 1-based inclusive frames. Split file: a heading,
the comma-separated training video ids, a heading, the test video ids.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from asar_data.errors import AsarError
from asar_data.names import parse_pku_video
from asar_data.ntu_format import FLOAT32_OVERFLOW, SkeletonFormatError

PKU_VALUES = 2 * 25 * 3
PKU_CLASSES = 51


# ---------------------------------------------------------------- skeleton files


def parse_pku_skeleton(data: bytes) -> np.ndarray:
    """A skeleton file's bytes -> (T, 2, 25, 3) float64 metres, one row per line.

    Trailing blank lines are ignored; any other line without exactly 150 numbers, or
    with a value that is not a finite float32 number (`nan`, `inf`, `1e300`: stores
    hold float32), raises SkeletonFormatError with its 1-based line number.
    """
    text = bytes(data).rstrip()
    if not text:
        raise SkeletonFormatError(None, "empty file")
    values = _parse_fast(text)
    if values is None:
        values = _parse_lines(text)
    _check_finite(values, text)
    return values.reshape(-1, 2, 25, 3)


def _check_finite(values: np.ndarray, text: bytes) -> None:
    """Raise for the first value that float32 cannot hold (row r is line r + 1)."""
    finite = np.abs(values) < FLOAT32_OVERFLOW  # False for nan
    if finite.all():
        return
    first = int(np.argmin(finite))
    line = first // PKU_VALUES + 1
    token = text.splitlines()[line - 1].split()[first % PKU_VALUES]
    raise SkeletonFormatError(
        line, f'"{token.decode("utf-8", "replace")[:24]}" is not a finite float32 number')


def _parse_fast(text: bytes) -> np.ndarray | None:
    """All numbers in one C call, when every LF-separated line holds 150 of them."""
    buf = np.frombuffer(text, np.uint8)
    line_start = np.flatnonzero(buf == 10) + 1
    line_start = np.concatenate([[0], line_start])
    blank = buf <= 32
    token_start = ~blank
    token_start[1:] &= blank[:-1]
    counts = np.add.reduceat(token_start, line_start, dtype=np.int64)
    if not (counts == PKU_VALUES).all():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # older numpy: unmatched data
            values = np.fromstring(text, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    if len(values) != PKU_VALUES * len(line_start):
        return None
    return values


def _parse_lines(text: bytes) -> np.ndarray:
    """One line at a time with `float`; raises SkeletonFormatError at the first bad line."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if len(tokens) != PKU_VALUES:
            raise SkeletonFormatError(
                number, f"line has {len(tokens)} values, expected {PKU_VALUES}")
        row = []
        for tok in tokens:
            try:
                row.append(float(tok))
            except ValueError:
                text_tok = tok.decode("utf-8", "replace")[:24]
                raise SkeletonFormatError(number, f'"{text_tok}" is not a number') from None
        rows.append(row)
    return np.array(rows, np.float64)


# ---------------------------------------------------------------- label files


@dataclass(frozen=True)
class PkuLabel:
    """One labelled action: 1-based label-file line, class 1-51, frames start..end (1-based)."""

    line: int
    cls: int
    start: int
    end: int
    confidence: int

    @property
    def label(self) -> int:
        """0-based class."""
        return self.cls - 1


@dataclass(frozen=True)
class LabelProblem:
    """A label line that was skipped or repaired, and why."""

    line: int
    reason: str
    action: str  # "skipped" | "repaired"


def parse_pku_labels(text: str) -> tuple[list[PkuLabel], list[LabelProblem]]:
    """Label file text -> (labels, problems). Malformed lines are skipped with a problem.

    Blank lines are ignored. Checks that need the video length are `check_segment`'s.
    """
    labels: list[PkuLabel] = []
    problems: list[LabelProblem] = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        reason = None
        if len(fields) != 4:
            reason = f"expected class,start,end,confidence, found {len(fields)} fields"
        else:
            try:
                cls, start, end, confidence = (int(f) for f in fields)
            except ValueError:
                reason = f'"{line[:40]}" is not four whole numbers'
            else:
                if not 1 <= cls <= PKU_CLASSES:
                    reason = f"class {cls} is outside 1-{PKU_CLASSES}"
                elif start < 0 or end < 0:
                    reason = f"negative frame number in {start},{end}"
        if reason is not None:
            problems.append(LabelProblem(number, reason, "skipped"))
            continue
        labels.append(PkuLabel(number, cls, start, end, confidence))
    return labels, problems


def check_segment(
    label: PkuLabel, n_frames: int | None
) -> tuple[PkuLabel | None, LabelProblem | None]:
    """Apply the segment rules against a video of `n_frames` frames (None: length unknown).

    start 0 -> 1 (repaired); end before start -> skipped; start beyond the video ->
    skipped; end beyond the video -> the last frame (repaired). Returns the label
    to use (None when skipped) and the problem found, if any.
    """
    repairs = []
    start, end = label.start, label.end
    if start == 0:
        start = 1
        repairs.append("start 0 -> 1")
    if end < start:
        return None, LabelProblem(label.line, f"end {label.end} is before start {label.start}",
                                  "skipped")
    if n_frames is not None:
        if start > n_frames:
            return None, LabelProblem(
                label.line, f"start {start} is beyond the video's {n_frames} frames", "skipped")
        if end > n_frames:
            repairs.append(f"end {end} beyond the video's {n_frames} frames -> {n_frames}")
            end = n_frames
    if not repairs:
        return label, None
    return replace(label, start=start, end=end), LabelProblem(label.line, "; ".join(repairs),
                                                              "repaired")


# ---------------------------------------------------------------- split files


class SplitFileError(AsarError, ValueError):
    """A PKU-MMD split file of another layout; the message names the file."""


def parse_pku_split(text: str, source: str = "split file") -> tuple[list[str], list[str]]:
    """A split file (heading, training ids, heading, test ids) -> (train ids, test ids).

    Ids are comma-separated video ids (`0002-L`, `A01N08-L`); a trailing comma is fine.
    Raises SplitFileError (naming `source`) on any other layout or an id that is not a
    video id.
    """
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if len(lines) != 4 or not lines[0].endswith(":") or not lines[2].endswith(":"):
        raise SplitFileError(f"{source}: expected 4 lines: a heading ending in ':', ids, "
                             "a heading, ids")
    sides = []
    for line in (lines[1], lines[3]):
        ids = [v.strip() for v in line.split(",") if v.strip()]
        bad = [v for v in ids if parse_pku_video(v) is None]
        if bad:
            raise SplitFileError(f"{source}: not a PKU-MMD video id: {bad[0]!r}")
        sides.append(ids)
    return sides[0], sides[1]
