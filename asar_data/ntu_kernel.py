"""The compiled NTU `.skeleton` kernel: one pass over the raw bytes (numba).

`parse(buf, max_bodies)` walks the file once, line by line and token by token,
checks its structure and fills preallocated arrays. It accepts a strict subset of
what the line-by-line reader in `ntu_format` accepts, and returns SLOW for
anything else, so that the line reader (the authority) reads the file or raises
the error with its line:

- lines end in LF, CR LF or CR (`bytes.splitlines`); values are separated by runs
  of space, tab, VT or FF (`bytes.split`);
- counts and body IDs are plain digit strings (`[0-9]+`, IDs up to 19 digits,
  exact as uint64);
- every other value reads `[+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?`, D a decimal digit:
  each such text is a number `float` reads, and nothing else passes.

x, y and z are read as an integer mantissa M and a power of ten e (value =
M * 10**e). When M <= 2**53 and |e| <= 22, both M and 10**|e| are exact float64
numbers and one multiplication or division, correctly rounded by IEEE 754, gives
the correctly rounded value, the one `float` gives (Clinger's fast path). Other
x, y, z tokens (more digits, larger exponents) are listed as fix-ups: the caller
reads each with `float`. A zero mantissa is zero for any exponent.
"""
from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
SLOW = 1  # not in the plain form: the line-by-line reader decides

JOINTS = 25
BODY_VALUES = 10
JOINT_VALUES = 12
MAX_BODY_COUNT = 32767  # int16
_MAX_COUNT_DIGITS = 18  # counts: up to 10**18 - 1, exact in int64
_MAX_ID_DIGITS = 19  # body IDs: below 10**19 < 2**64
_MANTISSA_ROOM = 10**17  # digits are added while the mantissa is below this (int64-safe)
_EXACT_MANTISSA = 2**53
_EXACT_POW10 = 22  # 10**22 is the largest power of ten exact in float64
_POW10 = np.array([10.0**k for k in range(_EXACT_POW10 + 1)])
_EXPONENT_CAP = 100_000  # exponent digits stop adding here (the value is a fix-up anyway)
_FIRST_FIXUPS = 64

_LF, _CR, _SPACE, _TAB, _VT, _FF = 10, 13, 32, 9, 11, 12
_MINUS, _PLUS, _DOT, _ZERO, _NINE, _E, _LOWER_E = 45, 43, 46, 48, 57, 69, 101


@njit(cache=True, nogil=True, inline="always")
def _is_blank(c) -> bool:
    """Space, tab, VT or FF: what separates values inside a line."""
    return c == _SPACE or c == _TAB or c == _VT or c == _FF


@njit(cache=True, nogil=True, inline="always")
def _is_digit(c) -> bool:
    return _ZERO <= c <= _NINE


@njit(cache=True, nogil=True, inline="always")
def _ends_token(buf, i, n) -> bool:
    """Whether a value may end before byte i: the end of the file, a blank or a line end."""
    if i >= n:
        return True
    c = buf[i]
    return _is_blank(c) or c == _LF or c == _CR


@njit(cache=True, nogil=True, inline="always")
def _skip_blanks(buf, i, n) -> int:
    while i < n and _is_blank(buf[i]):
        i += 1
    return i


@njit(cache=True, nogil=True, inline="always")
def _end_line(buf, i, n) -> int:
    """The start of the next line when byte i ends this one (or the file ends); -1 if not."""
    if i >= n:
        return n
    c = buf[i]
    if c == _LF:
        return i + 1
    if c == _CR:
        if i + 1 < n and buf[i + 1] == _LF:
            return i + 2
        return i + 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _count_line(buf, i, n):
    """(next line start, value) of a line holding one plain digit string; (-1, 0) if not."""
    if i >= n:
        return -1, 0
    i = _skip_blanks(buf, i, n)
    value = 0
    digits = 0
    while i < n and _is_digit(buf[i]):
        value = value * 10 + (buf[i] - _ZERO)
        digits += 1
        i += 1
    if digits == 0 or digits > _MAX_COUNT_DIGITS or not _ends_token(buf, i, n):
        return -1, 0
    return _end_line(buf, _skip_blanks(buf, i, n), n), value


@njit(cache=True, nogil=True, inline="always")
def _body_id(buf, i, n):
    """(end, ID) of a plain digit string of up to 19 digits at i; (-1, 0) if not."""
    value = np.uint64(0)
    start = i
    while i < n and _is_digit(buf[i]):
        value = value * np.uint64(10) + np.uint64(buf[i] - _ZERO)
        i += 1
    if i == start or i - start > _MAX_ID_DIGITS or not _ends_token(buf, i, n):
        return -1, value
    return i, value


@njit(cache=True, nogil=True, inline="always")
def _number(buf, i, n):
    """Scan the value at i: (end, mantissa, exponent, negative, exact).

    end is -1 when the text is not `[+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?` followed by
    a blank, a line end or the end of the file. The value is mantissa * 10**exponent;
    exact is False when the mantissa stopped short (too many digits) or the exponent
    went past the cap: then only `float` gives the value.
    """
    negative = False
    c = buf[i]
    if c == _MINUS:
        negative = True
        i += 1
    elif c == _PLUS:
        i += 1
    mantissa = 0
    exponent = 0
    digits = 0
    exact = True
    while i < n and _is_digit(buf[i]):
        if mantissa < _MANTISSA_ROOM:
            mantissa = mantissa * 10 + (buf[i] - _ZERO)
        else:
            exact = False
        digits += 1
        i += 1
    if i < n and buf[i] == _DOT:
        i += 1
        while i < n and _is_digit(buf[i]):
            if mantissa < _MANTISSA_ROOM:
                mantissa = mantissa * 10 + (buf[i] - _ZERO)
                exponent -= 1
            else:
                exact = False
            digits += 1
            i += 1
    if digits == 0:
        return -1, mantissa, exponent, negative, exact
    if i < n and (buf[i] == _E or buf[i] == _LOWER_E):
        i += 1
        minus = False
        if i < n and (buf[i] == _MINUS or buf[i] == _PLUS):
            minus = buf[i] == _MINUS
            i += 1
        power = 0
        start = i
        while i < n and _is_digit(buf[i]):
            if power < _EXPONENT_CAP:
                power = power * 10 + (buf[i] - _ZERO)
            i += 1
        if i == start:
            return -1, mantissa, exponent, negative, exact
        if power >= _EXPONENT_CAP:
            exact = False
        exponent += -power if minus else power
    if not _ends_token(buf, i, n):
        return -1, mantissa, exponent, negative, exact
    return i, mantissa, exponent, negative, exact


@njit(cache=True, nogil=True, inline="always")
def _value(mantissa, exponent, negative, exact):
    """(float64, True) correctly rounded when the fast path applies; (0.0, False) if not."""
    if mantissa == 0 and exact:
        value = 0.0
    elif not exact or mantissa > _EXACT_MANTISSA or not -_EXACT_POW10 <= exponent <= _EXACT_POW10:
        return 0.0, False
    elif exponent >= 0:
        value = float(mantissa) * _POW10[exponent]
    else:
        value = float(mantissa) / _POW10[-exponent]
    return (-value if negative else value), True


@njit(cache=True, nogil=True, inline="always")
def _skip_values(buf, i, n, count) -> int:
    """Check `count` more values on this line and its end: the next line start, or -1."""
    for _ in range(count):
        i = _skip_blanks(buf, i, n)
        if i >= n:
            return -1
        i = _number(buf, i, n)[0]
        if i < 0:
            return -1
    return _end_line(buf, _skip_blanks(buf, i, n), n)


@njit(cache=True, nogil=True)
def frame_count(buf):
    """(start of line 2, declared frames) when line 1 is a plain count, else (-1, 0)."""
    return _count_line(buf, 0, len(buf))


@njit(cache=True, nogil=True)
def parse(buf, pos, n_frames, xyz, body_id, body_count, fixups):
    """Read n_frames frames from byte pos on into the given arrays.

    buf: (n,) uint8, the file. xyz: (n_frames, M, 25, 3) float64, body_id:
    (n_frames, M) uint64, body_count: (n_frames,) int16, all filled here (zeros
    in empty slots). fixups: (k, 3) int64 room for (token start, token end, flat
    index into xyz) of values only `float` can give.
    Returns (OK or SLOW, fix-ups used, fixups array, grown when it was too small).
    """
    n = len(buf)
    max_bodies = xyz.shape[1]
    flat = xyz.reshape(-1)
    n_fixups = 0
    for t in range(n_frames):
        pos, n_bodies = _count_line(buf, pos, n)
        if pos < 0 or n_bodies > MAX_BODY_COUNT:
            return SLOW, n_fixups, fixups
        body_count[t] = n_bodies
        for b in range(n_bodies):
            # body line: the ID, then nine numbers
            if pos >= n:
                return SLOW, n_fixups, fixups
            i, ident = _body_id(buf, _skip_blanks(buf, pos, n), n)
            if i < 0:
                return SLOW, n_fixups, fixups
            pos = _skip_values(buf, i, n, BODY_VALUES - 1)
            if pos < 0:
                return SLOW, n_fixups, fixups
            pos, n_joints = _count_line(buf, pos, n)
            if pos < 0 or n_joints != JOINTS:
                return SLOW, n_fixups, fixups
            keep = b < max_bodies
            if keep:
                body_id[t, b] = ident
            for v in range(JOINTS):
                if pos >= n:
                    return SLOW, n_fixups, fixups
                i = pos
                skip = JOINT_VALUES
                if keep:
                    skip = JOINT_VALUES - 3
                    at = ((t * max_bodies + b) * JOINTS + v) * 3
                    for k in range(3):
                        i = _skip_blanks(buf, i, n)
                        if i >= n:
                            return SLOW, n_fixups, fixups
                        end, mantissa, exponent, negative, exact = _number(buf, i, n)
                        if end < 0:
                            return SLOW, n_fixups, fixups
                        value, ok = _value(mantissa, exponent, negative, exact)
                        if not ok:
                            if n_fixups == len(fixups):
                                grown = np.empty((2 * len(fixups), 3), np.int64)
                                grown[:n_fixups] = fixups
                                fixups = grown
                            fixups[n_fixups, 0] = i
                            fixups[n_fixups, 1] = end
                            fixups[n_fixups, 2] = at + k
                            n_fixups += 1
                        flat[at + k] = value
                        i = end
                pos = _skip_values(buf, i, n, skip)
                if pos < 0:
                    return SLOW, n_fixups, fixups
        for b in range(n_bodies, max_bodies):
            body_id[t, b] = 0
            xyz[t, b] = 0.0
    return OK, n_fixups, fixups


def new_fixups() -> np.ndarray:
    """Room for the first fix-ups of one file."""
    return np.empty((_FIRST_FIXUPS, 3), np.int64)
