"""The NTU RGB+D `.skeleton` reader: bytes in, exact float64 joint positions out.

Format (see DATASETS.md): a frame count, then per frame a body count, then per
body a 10-value body line, a joint count (25) and 25 joint lines of 12 values.
Only x, y, z (the first three joint values, metres) and the integer body ID are kept.

Two paths give the same arrays:

- a compiled path (`ntu_kernel`, numba) for text in the plain form the dataset
  ships: one pass over the bytes checks the structure and the shape of every
  value and reads x, y, z exactly (integer mantissa and power of ten, one
  correctly rounded operation, as Python's `float` gives); the rare x, y, z
  outside that exact range are read with `float` afterwards. The kernel is
  imported on the first parse; numba compiles it once (a few seconds) and caches
  the machine code beside the module (or in NUMBA_CACHE_DIR).
- a line-by-line path (`float` per value) used whenever the compiled path declines.
  It is the authority: it reads any text the reference reader reads the same way,
  and raises `SkeletonFormatError` with the line and reason otherwise.

Text after the declared frames is ignored, as the reference reader does.

A kept x, y or z that is not a finite float32 number (`nan`, `inf`, `1e300`: stores
hold float32) makes the file unreadable (`SkeletonFormatError` with its line), as any
other bad value; the values of bodies beyond `max_bodies` are only checked to be
numbers. The compiled path needs no check: every value it reads exactly is below
2**53 * 10**22 < 3.4e38; only its fix-ups are checked.
"""
from __future__ import annotations

import gc
import re
import threading
from dataclasses import dataclass

import numpy as np

JOINTS = 25
BODY_VALUES = 10
JOINT_VALUES = 12
MAX_BODY_COUNT = np.iinfo(np.int16).max
# float64 values at or beyond this (in magnitude) round to an infinite float32
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103


class SkeletonFormatError(ValueError):
    """A skeleton file that cannot be read: `line` is 1-based (None: the whole file)."""

    def __init__(self, line: int | None, reason: str):
        self.line = line
        self.reason = reason
        super().__init__(reason if line is None else f"line {line}: {reason}")

    def __reduce__(self):
        return type(self), (self.line, self.reason)


@dataclass(frozen=True)
class NtuSkeleton:
    """One NTU sample, T frames, M body slots (the first M bodies of each frame, file order).

    xyz: (T, M, 25, 3) float64 metres, zeros in empty slots.
    body_id: (T, M) uint64, the file's body IDs; 0 in empty slots.
    body_count: (T,) int16 bodies declared in each frame (before keeping M).
    """

    xyz: np.ndarray
    body_id: np.ndarray
    body_count: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.xyz)


def parse_ntu(data: bytes, max_bodies: int = 2) -> NtuSkeleton:
    """Parse a `.skeleton` file's bytes; keeps the first `max_bodies` bodies of each frame.

    Raises SkeletonFormatError (a ValueError) naming the line and the problem.
    """
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be at least 1, not {max_bodies}")
    data = bytes(data)
    result = _parse_fast(data, max_bodies)
    if result is None:
        result = _parse_lines(data, max_bodies)
    return result


def parse_ntu_frames(data: bytes, max_bodies: int = 2) -> NtuSkeleton:
    """`parse_ntu` with x, y, z as the raw store holds them: float32 (T, M, 3, 25).

    The same values as `parse_ntu(...).xyz.astype(np.float32).transpose(0, 1, 3, 2)`,
    written so by the compiled path directly (no float64 copy, no transposed copy).
    """
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be at least 1, not {max_bodies}")
    data = bytes(data)
    result = _parse_fast(data, max_bodies, np.float32)
    if result is None:
        sk = _parse_lines(data, max_bodies)
        result = NtuSkeleton(np.ascontiguousarray(
            sk.xyz.astype(np.float32).transpose(0, 1, 3, 2)), sk.body_id, sk.body_count)
    return result


# ---------------------------------------------------------------- line-by-line path


def _decode(token: bytes, limit: int = 24) -> str:
    text = token.decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _float(token: bytes, line: int) -> float:
    try:
        return float(token)
    except ValueError:
        raise SkeletonFormatError(line, f'"{_decode(token)}" is not a number') from None


class _Lines:
    """A cursor over the file's lines (universal newlines, like the reference's text mode)."""

    def __init__(self, data: bytes):
        self.lines = data.splitlines()
        self.pos = 0

    def next(self) -> tuple[int, list[bytes]] | None:
        """(1-based line number, tokens) of the next line, None at the end of the file."""
        if self.pos >= len(self.lines):
            return None
        self.pos += 1
        return self.pos, self.lines[self.pos - 1].split()


def finite_float32(value: float) -> bool:
    """Whether a float64 stays finite once stored as float32 (no nan, inf, 1e300)."""
    return abs(value) < FLOAT32_OVERFLOW  # False for nan too


def _coordinate(tokens: list[bytes], values: list[float], line: int) -> None:
    """Refuse a kept x, y or z that is not finite as float32."""
    for axis, (token, value) in enumerate(zip(tokens[:3], values[:3], strict=True)):
        if not finite_float32(value):
            raise SkeletonFormatError(
                line, f'{"xyz"[axis]} "{_decode(token)}" is not a finite float32 number')


def _count(tokens: list[bytes], line: int, what: str) -> int:
    if len(tokens) != 1:
        raise SkeletonFormatError(line, f"{what} line has {len(tokens)} values, expected 1")
    try:
        return int(tokens[0])
    except ValueError:
        pass
    _float(tokens[0], line)
    raise SkeletonFormatError(line, f'{what} "{_decode(tokens[0])}" is not a whole number')


def _body_id(token: bytes, line: int) -> int:
    try:
        value = int(token)
    except ValueError:
        _float(token, line)
        raise SkeletonFormatError(line, f'body ID "{_decode(token)}" is not an integer') from None
    if not 0 <= value < 2**64:
        raise SkeletonFormatError(line, f"body ID {value} is out of range")
    return value


def _parse_lines(data: bytes, max_bodies: int) -> NtuSkeleton:
    """The authoritative reader: one line at a time, `float` per value."""
    if not data.strip():
        raise SkeletonFormatError(None, "empty file")
    cursor = _Lines(data)
    line, tokens = cursor.next()
    n_frames = _count(tokens, line, "frame count")
    if n_frames <= 0:
        raise SkeletonFormatError(line, "file declares 0 frames" if n_frames == 0
                                  else f"frame count {n_frames} is negative")
    room = min(n_frames, len(cursor.lines))  # each frame takes a line: no huge arrays
    xyz = np.zeros((room, max_bodies, JOINTS, 3))
    body_id = np.zeros((room, max_bodies), np.uint64)
    body_count = np.zeros(room, np.int16)

    def take(t: int) -> tuple[int, list[bytes]]:
        got = cursor.next()
        if got is None:
            raise SkeletonFormatError(None, f"file ends after {t} of {n_frames} frames")
        return got

    for t in range(n_frames):
        line, tokens = take(t)
        n_bodies = _count(tokens, line, "body count")
        if not 0 <= n_bodies <= MAX_BODY_COUNT:
            raise SkeletonFormatError(line, f"body count {n_bodies} is out of range")
        body_count[t] = n_bodies
        for b in range(n_bodies):
            line, tokens = take(t)
            if len(tokens) != BODY_VALUES:
                raise SkeletonFormatError(
                    line, f"body line has {len(tokens)} values, expected {BODY_VALUES}")
            for tok in tokens[1:]:
                _float(tok, line)
            ident = _body_id(tokens[0], line)
            line, tokens = take(t)
            n_joints = _count(tokens, line, "joint count")
            if n_joints != JOINTS:
                raise SkeletonFormatError(line, f"expected {JOINTS} joints, found {n_joints}")
            for v in range(JOINTS):
                line, tokens = take(t)
                if len(tokens) != JOINT_VALUES:
                    raise SkeletonFormatError(
                        line, f"joint line has {len(tokens)} values, expected {JOINT_VALUES}")
                values = [_float(tok, line) for tok in tokens]
                if b < max_bodies:
                    _coordinate(tokens, values, line)
                    xyz[t, b, v] = values[:3]
            if b < max_bodies:
                body_id[t, b] = ident
    return NtuSkeleton(xyz, body_id, body_count)


# ---------------------------------------------------------------- compiled path

_kernel_module = None
_kernel_settled = False


def _kernel():
    """The numba kernel module, imported on first use (its machine code loads on its
    first call for each output type)."""
    global _kernel_module
    if _kernel_module is None:
        from asar_data import ntu_kernel

        _kernel_module = ntu_kernel
    return _kernel_module


def load_kernel() -> None:
    """Load the compiled reader now (the store layout's signature): worker processes
    forked afterwards share it instead of each loading it again."""
    _parse_fast(b"1\n0\n", 1, np.float32)


def _settle_kernel() -> None:
    """After the kernel's first call: numba's import and the loading of machine code
    leave hundreds of thousands of long-lived objects (typing registries, LLVM wrappers).
    Freezing them out of the cyclic garbage collector stops it re-scanning them on
    every full collection and once more at exit (a quarter of a second, measured, of a
    two-second ingest command)."""
    global _kernel_settled
    if not _kernel_settled:
        gc.freeze()
        _kernel_settled = True


# Line 1 in the plain form: one count of up to 18 digits, blanks around it, a line end.
_FRAME_COUNT_LINE = re.compile(rb"[ \t\v\f]*([0-9]{1,18})[ \t\v\f]*(?:\r\n|\r|\n)")


class _Fixups(threading.local):
    """Room for the x, y, z the kernel leaves to `float`, one array per thread, reused."""

    def __init__(self):
        self.array = np.empty((64, 3), np.int64)


_fixups = _Fixups()


# coordinate k of joint v at flat[step[0] v + step[1] k] of each (frame, body slot)
_STEPS = {np.dtype(np.float64): np.array([3, 1]),   # (T, M, 25, 3): parse_ntu
          np.dtype(np.float32): np.array([1, 25])}  # (T, M, 3, 25): parse_ntu_frames


def _parse_fast(data: bytes, max_bodies: int, dtype: type = np.float64) -> NtuSkeleton | None:
    """The compiled reader; None when the text is not in its plain form (see ntu_kernel).

    dtype float64: xyz (T, M, 25, 3); float32: (T, M, 3, 25)."""
    first = _FRAME_COUNT_LINE.match(data)
    if first is None:
        return None
    n_frames = int(first[1])
    # Each frame takes a line of two bytes or more (one, the last, when the file does
    # not end with a line end), so a larger count is a truncated file: the line reader
    # says so, without huge arrays.
    if not 0 < n_frames <= (len(data) - first.end() + 1) // 2:
        return None
    kernel = _kernel()
    max_bodies = int(max_bodies)  # one compiled signature: int64
    # The kernel wants a final LF; appended, it ends the last line: the same lines.
    buf = np.frombuffer(data if data.endswith(b"\n") else data + b"\n", np.uint8)
    dtype = np.dtype(dtype)
    step = _STEPS[dtype]
    shape = (JOINTS, 3) if step[0] == 3 else (3, JOINTS)
    xyz = np.empty((n_frames, max_bodies, *shape), dtype)
    flat = xyz.reshape(-1)
    body_id = np.empty((n_frames, max_bodies), np.uint64)
    body_count = np.empty(n_frames, np.int16)
    fixups = _fixups.array
    code, n_fixups = kernel.parse(
        buf, first.end(), n_frames, max_bodies, flat, step, body_id, body_count, fixups)
    if code == kernel.FULL:  # again, with room for every x, y, z
        fixups = np.empty((len(flat), 3), np.int64)
        code, n_fixups = kernel.parse(
            buf, first.end(), n_frames, max_bodies, flat, step, body_id, body_count, fixups)
    _settle_kernel()
    if code != kernel.OK:
        return None
    # x, y, z beyond the kernel's exact range: Python's float reads them; one that is
    # not finite as float32 sends the file to the line reader, which names its line
    for start, stop, at in fixups[:n_fixups].tolist():
        value = float(data[start:stop])
        if not finite_float32(value):
            return None
        flat[at] = value
    return NtuSkeleton(xyz, body_id, body_count)
