"""The compiled NTU `.skeleton` kernel: one pass over the raw bytes (numba).

`parse` walks the file once, line by line and value by value, checks its
structure and fills preallocated arrays. It accepts a strict subset of what the
line-by-line reader in `ntu_format` accepts and returns SLOW for anything else,
so that the line reader (the authority) reads the file or raises the error with
its line. The subset:

- lines end in LF, CR LF or CR (as `bytes.splitlines`); values are separated by
  runs of space, tab, VT or FF (as `bytes.split`);
- counts and body IDs are plain digit strings (`[0-9]+`; IDs up to 19 digits,
  exact as uint64);
- every other value reads `[+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?`, D a decimal digit:
  each such text is a number `float` reads, and nothing else passes.

x, y and z are read as an integer mantissa M and a power of ten e (value =
M * 10**e). When M <= 2**53 and |e| <= 22, both M and 10**|e| are exact float64
numbers and one multiplication or division, correctly rounded by IEEE 754, gives
the correctly rounded value: the one `float` gives (Clinger's fast path). A zero
mantissa is zero for any exponent. The other x, y, z (18 digits or more, larger
exponents) are listed as fix-ups, for the caller to read with `float`.

The buffer must end with LF (the caller appends one when the file does not; the
lines stay the same): every scan inside a line then stops at that LF at the
latest, so bytes are read without bounds checks; only line starts are checked
against the end.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core.extending import intrinsic

OK = 0
SLOW = 1  # not in the plain form: the line-by-line reader decides

JOINTS = 25
BODY_VALUES = 10
JOINT_VALUES = 12
MAX_BODY_COUNT = 32767  # int16
_MAX_COUNT_DIGITS = 18  # counts below 10**18: exact in int64
_MAX_ID_DIGITS = 19  # body IDs below 10**19 < 2**64
_MAX_MANTISSA_DIGITS = 17  # 17 digits: below 10**17, no int64 overflow
_EXACT_MANTISSA = 2**53
_EXACT_POW10 = 22  # 10**22 is the largest power of ten exact in float64
_POW10 = np.array([10.0**k for k in range(_EXACT_POW10 + 1)])
_EXPONENT_CAP = 100_000  # exponent digits stop adding here (the value is a fix-up then)
_FIRST_FIXUPS = 64

_LF, _CR = 10, 13
_MINUS, _PLUS, _DOT, _ZERO, _LOWER_E = 45, 43, 46, 48, 101
_CASE_BIT = 0x20  # "E" | 0x20 == "e"

# Byte classes, as bit flags
_DIGIT, _BLANK, _LINE_END = 1, 2, 4
_CLASS = np.zeros(256, np.uint8)
_CLASS[_ZERO:_ZERO + 10] = _DIGIT
_CLASS[[32, 9, 11, 12]] = _BLANK  # space, tab, VT, FF
_CLASS[[_LF, _CR]] = _LINE_END


@intrinsic
def _byte(typingctx, buf, i):
    """buf[i] as uint8, without the negative-index fix-up or a bounds check."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint8
            and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.load(builder.gep(array.data, [args[1]]))

    return types.uint8(buf, i), codegen


@njit(cache=True, nogil=True, inline="always")
def _is(buf, i, kind) -> bool:
    return (_CLASS[_byte(buf, i)] & kind) != 0


@njit(cache=True, nogil=True, inline="always")
def _digit(buf, i) -> int:
    return np.int64(_byte(buf, i)) - _ZERO


@njit(cache=True, nogil=True, inline="always")
def _skip_blanks(buf, i) -> int:
    while _is(buf, i, _BLANK):
        i += 1
    return i


@njit(cache=True, nogil=True, inline="always")
def _end_line(buf, i) -> int:
    """The start of the next line when byte i ends this one; -1 if it does not."""
    c = _byte(buf, i)
    if c == _LF:
        return i + 1
    if c == _CR:
        return i + 1 + np.int64(_byte(buf, i + 1) == _LF)
    return -1


@njit(cache=True, nogil=True, inline="always")
def _count_line(buf, i):
    """(next line start, value) of a line holding one plain digit string; (-1, 0) if not."""
    i = _skip_blanks(buf, i)
    start = i
    value = 0
    while _is(buf, i, _DIGIT):
        value = value * 10 + _digit(buf, i)
        i += 1
    if i == start or i - start > _MAX_COUNT_DIGITS:
        return -1, 0
    return _end_line(buf, _skip_blanks(buf, i)), value


@njit(cache=True, nogil=True, inline="always")
def _body_id(buf, i):
    """(end, ID) of a plain digit string of up to 19 digits at i; end -1 if not."""
    start = i
    value = np.uint64(0)
    while _is(buf, i, _DIGIT):
        value = value * np.uint64(10) + np.uint64(_digit(buf, i))
        i += 1
    if i == start or i - start > _MAX_ID_DIGITS or not _is(buf, i, _BLANK | _LINE_END):
        return -1, value
    return i, value


@njit(cache=True, nogil=True, inline="always")
def _number(buf, i):
    """Scan the value at i: (end, mantissa, exponent, negative, exact).

    end is -1 when the text is not `[+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?` followed by
    a blank or a line end. The value is mantissa * 10**exponent; exact is False
    when the digits did not fit (then only `float` gives the value).
    """
    c = _byte(buf, i)
    negative = c == _MINUS
    i += np.int64(negative) + np.int64(c == _PLUS)
    mantissa = 0
    start = i
    while _is(buf, i, _DIGIT):
        mantissa = mantissa * 10 + _digit(buf, i)
        i += 1
    digits = i - start
    exponent = 0
    if _byte(buf, i) == _DOT:
        i += 1
        start = i
        while _is(buf, i, _DIGIT):
            mantissa = mantissa * 10 + _digit(buf, i)
            i += 1
        exponent = start - i
        digits += i - start
    exact = digits <= _MAX_MANTISSA_DIGITS
    if digits == 0:
        return -1, mantissa, exponent, negative, exact
    if _byte(buf, i) | _CASE_BIT == _LOWER_E:
        i += 1
        c = _byte(buf, i)
        minus = c == _MINUS
        i += np.int64(minus) + np.int64(c == _PLUS)
        start = i
        power = 0
        while _is(buf, i, _DIGIT):
            if power < _EXPONENT_CAP:
                power = power * 10 + _digit(buf, i)
            i += 1
        if i == start:
            return -1, mantissa, exponent, negative, exact
        exact = exact and power < _EXPONENT_CAP
        exponent += -power if minus else power
    if not _is(buf, i, _BLANK | _LINE_END):
        return -1, mantissa, exponent, negative, exact
    return i, mantissa, exponent, negative, exact


@njit(cache=True, nogil=True, inline="always")
def _value(mantissa, exponent, negative, exact):
    """(float64, True), correctly rounded, when the fast path applies; (0.0, False) if not."""
    if not exact:
        return 0.0, False
    if mantissa == 0:
        value = 0.0
    elif mantissa > _EXACT_MANTISSA or not -_EXACT_POW10 <= exponent <= _EXACT_POW10:
        return 0.0, False
    elif exponent >= 0:
        value = float(mantissa) * _POW10[exponent]
    else:
        value = float(mantissa) / _POW10[-exponent]
    return (-value if negative else value), True


@njit(cache=True, nogil=True, inline="always")
def _skip_values(buf, i, count) -> int:
    """Check `count` more values on this line, then its end: the next line start, or -1."""
    for _ in range(count):
        i = _number(buf, _skip_blanks(buf, i))[0]
        if i < 0:
            return -1
    return _end_line(buf, _skip_blanks(buf, i))


@njit(cache=True, nogil=True)
def frame_count(buf):
    """(start of line 2, declared frames) when line 1 is a plain count, else (-1, 0)."""
    return _count_line(buf, 0)


@njit(cache=True, nogil=True)
def parse(buf, pos, n_frames, xyz, body_id, body_count, fixups):
    """Read n_frames frames from byte pos on into the given arrays.

    buf: (n,) uint8, the file, ending with LF. xyz: (n_frames, M, 25, 3) float64,
    body_id: (n_frames, M) uint64, body_count: (n_frames,) int16, all filled here
    (zeros in empty slots). fixups: (k, 3) int64 room for (value start, value end,
    flat index into xyz) of the x, y, z only `float` reads exactly.
    Returns (OK or SLOW, fix-ups used, fixups: a larger copy when it was full).
    """
    n = len(buf)
    max_bodies = xyz.shape[1]
    flat = xyz.reshape(-1)
    n_fixups = 0
    for t in range(n_frames):
        if pos >= n:
            return SLOW, n_fixups, fixups
        pos, n_bodies = _count_line(buf, pos)
        if pos < 0 or n_bodies > MAX_BODY_COUNT:
            return SLOW, n_fixups, fixups
        body_count[t] = n_bodies
        for b in range(n_bodies):
            if pos >= n:
                return SLOW, n_fixups, fixups
            i, ident = _body_id(buf, _skip_blanks(buf, pos))
            if i < 0:
                return SLOW, n_fixups, fixups
            pos = _skip_values(buf, i, BODY_VALUES - 1)
            if pos < 0 or pos >= n:
                return SLOW, n_fixups, fixups
            pos, n_joints = _count_line(buf, pos)
            if pos < 0 or n_joints != JOINTS:
                return SLOW, n_fixups, fixups
            keep = b < max_bodies
            if keep:
                body_id[t, b] = ident
            for v in range(JOINTS):
                if pos >= n:
                    return SLOW, n_fixups, fixups
                i = pos
                rest = JOINT_VALUES
                if keep:
                    rest = JOINT_VALUES - 3
                    at = ((t * max_bodies + b) * JOINTS + v) * 3
                    for k in range(3):
                        i = _skip_blanks(buf, i)
                        end, mantissa, exponent, negative, exact = _number(buf, i)
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
                pos = _skip_values(buf, i, rest)
                if pos < 0:
                    return SLOW, n_fixups, fixups
        for b in range(n_bodies, max_bodies):
            body_id[t, b] = 0
            xyz[t, b] = 0.0
    return OK, n_fixups, fixups


def new_fixups() -> np.ndarray:
    """Room for the first fix-ups of one file."""
    return np.empty((_FIRST_FIXUPS, 3), np.int64)
