"""The compiled NTU `.skeleton` kernel: one pass over the raw bytes (numba).

`parse` walks the file once, line by line and value by value, checks its
structure and fills preallocated arrays. It accepts a strict subset of what the
line-by-line reader in `ntu_format` accepts and returns SLOW for anything else,
so that the line reader (the authority) reads the file or raises the error with
its line. The subset:

- lines end in LF, CR LF or CR (as `bytes.splitlines`); values are separated by
  runs of space, tab, VT or FF (as `bytes.split`);
- counts and body IDs are plain digit strings (`[0-9]+`; counts up to 18 digits,
  IDs up to 19, exact as uint64);
- every other value reads `[+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?`, D a decimal digit:
  each such text is a number `float` reads, and nothing else passes.

x, y and z are read as an integer mantissa M and a power of ten e (value =
M * 10**e). When M <= 2**53 and |e| <= 22, both M and 10**|e| are exact float64
numbers and one multiplication or division, correctly rounded by IEEE 754, gives
the correctly rounded value: the one `float` gives (Clinger's fast path). A zero
mantissa is zero for any exponent. The other x, y, z (more than 19 digits,
mantissas above 2**53, larger exponents) are listed as fix-ups, for the caller
to read with `float`.

The buffer must end with LF (the caller appends one when the file does not: the
lines stay the same). Every scan inside a line stops at that LF at the latest,
so bytes are read without bounds checks; only line starts are checked against
the end.

The helpers are small functions that LLVM inlines; the value scanner is inlined
by numba (`inline="always"`), which is what keeps the per-byte loops tight.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core.extending import intrinsic

OK = 0
SLOW = 1  # not in the plain form: the line-by-line reader decides
FULL = 2  # more x, y, z need `float` than the fix-up array has room for

JOINTS = 25
BODY_VALUES = 10
JOINT_VALUES = 12
XYZ = 3
MAX_BODY_COUNT = 32767  # int16
_MAX_COUNT_DIGITS = 18  # counts below 10**18: exact in int64
_MAX_ID_DIGITS = 19  # body IDs below 10**19 < 2**64
_MAX_MANTISSA_DIGITS = 19  # mantissas below 10**19 < 2**64 have not wrapped around
_EXACT_MANTISSA = np.uint64(2**53)
_EXACT_POW10 = 22  # 10**22 is the largest power of ten exact in float64
_POW10 = np.array([10.0**k for k in range(_EXACT_POW10 + 1)])
_EXPONENT_CAP = 100_000  # exponent digits stop adding here (the value is a fix-up then)

_LF, _CR = 10, 13
_MINUS, _PLUS, _DOT, _ZERO, _LOWER_E = 45, 43, 46, 48, 101
_CASE_BIT = 0x20  # "E" | 0x20 == "e"

# Byte classes, as bit flags
_DIGIT, _BLANK, _LINE_END = 1, 2, 4
_ENDS_VALUE = _BLANK | _LINE_END
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


# ---------------------------------------------------------------- inside a line


@njit(cache=True, nogil=True)
def _is(buf, i, kind) -> bool:
    return (_CLASS[_byte(buf, i)] & kind) != 0


@njit(cache=True, nogil=True)
def _skip_blanks(buf, i) -> int:
    while _is(buf, i, _BLANK):
        i += 1
    return i


@njit(cache=True, nogil=True)
def _end_line(buf, i) -> int:
    """The start of the next line when byte i ends this one; -1 if it does not."""
    c = _byte(buf, i)
    if c == _LF:
        return i + 1
    if c == _CR:
        return i + 1 + np.int64(_byte(buf, i + 1) == _LF)
    return -1


@njit(cache=True, nogil=True)
def _digit_run(buf, i):
    """(end, count, value) of the digits from i on; value (uint64) exact below 20 digits."""
    start = i
    value = np.uint64(0)
    while _is(buf, i, _DIGIT):
        value = value * np.uint64(10) + np.uint64(_byte(buf, i) - np.uint8(_ZERO))
        i += 1
    return i, i - start, value


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
    i, digits, mantissa = _digit_run(buf, i)
    exponent = 0
    if _byte(buf, i) == _DOT:
        start = i + 1
        i = start
        while _is(buf, i, _DIGIT):
            mantissa = mantissa * np.uint64(10) + np.uint64(_byte(buf, i) - np.uint8(_ZERO))
            i += 1
        exponent = start - i
        digits -= exponent
    exact = digits <= _MAX_MANTISSA_DIGITS
    if digits == 0:
        return -1, mantissa, exponent, negative, exact
    if _byte(buf, i) | _CASE_BIT == _LOWER_E:
        c = _byte(buf, i + 1)
        minus = c == _MINUS
        i += 1 + np.int64(minus) + np.int64(c == _PLUS)
        start = i
        power = 0
        while _is(buf, i, _DIGIT):
            if power < _EXPONENT_CAP:
                power = power * 10 + (np.int64(_byte(buf, i)) - _ZERO)
            i += 1
        if i == start:
            return -1, mantissa, exponent, negative, exact
        exact = exact and power < _EXPONENT_CAP
        exponent += -power if minus else power
    if not _is(buf, i, _ENDS_VALUE):
        return -1, mantissa, exponent, negative, exact
    return i, mantissa, exponent, negative, exact


@njit(cache=True, nogil=True)
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


# ---------------------------------------------------------------- lines and bodies


@njit(cache=True, nogil=True)
def _count_line(buf, i):
    """(next line start, value) of a line holding one plain digit string; start -1 if not."""
    end, digits, value = _digit_run(buf, _skip_blanks(buf, i))
    if digits == 0 or digits > _MAX_COUNT_DIGITS:
        return -1, 0
    return _end_line(buf, _skip_blanks(buf, end)), np.int64(value)


@njit(cache=True, nogil=True)
def _body_line(buf, i):
    """(next line start, body ID) of a body line, an ID and nine numbers; start -1 if not."""
    end, digits, ident = _digit_run(buf, _skip_blanks(buf, i))
    if digits == 0 or digits > _MAX_ID_DIGITS or not _is(buf, end, _ENDS_VALUE):
        return -1, ident
    return _skip_values(buf, end, BODY_VALUES - 1), ident


@njit(cache=True, nogil=True)
def _joint_lines(buf, pos, flat, at, step, fixups, n_fixups):
    """Read the 25 joint lines of a body from pos on.

    Coordinate k of joint v goes to flat[at + step[0] v + step[1] k]; at < 0: the
    values are only checked. Returns (next line start, fix-ups used); next line start
    -1: not plain (SLOW), -2: more fix-ups than fixups has room for (FULL).
    """
    joint_step, axis_step = step[0], step[1]
    for v in range(JOINTS):
        if pos >= len(buf):
            return -1, n_fixups
        i = pos
        rest = JOINT_VALUES
        if at >= 0:
            rest = JOINT_VALUES - XYZ
            for k in range(XYZ):
                i = _skip_blanks(buf, i)
                end, mantissa, exponent, negative, exact = _number(buf, i)
                if end < 0:
                    return -1, n_fixups
                value, ok = _value(mantissa, exponent, negative, exact)
                index = at + joint_step * v + axis_step * k
                flat[index] = value
                if not ok:
                    if n_fixups == len(fixups):
                        return -2, n_fixups
                    fixups[n_fixups, 0] = i
                    fixups[n_fixups, 1] = end
                    fixups[n_fixups, 2] = index
                    n_fixups += 1
                i = end
        pos = _skip_values(buf, i, rest)
        if pos < 0:
            return -1, n_fixups
    return pos, n_fixups


# ---------------------------------------------------------------- the file


@njit(cache=True, nogil=True)
def parse(buf, pos, n_frames, max_bodies, flat, step, body_id, body_count, fixups):
    """Read n_frames frames from byte pos on (the line after the frame count).

    buf: (n,) uint8, the file, ending with LF. flat: (n_frames * max_bodies * 25 * 3,)
    float64 or float32 (each value rounded once, as `astype` would), the 75 x, y, z
    of each (frame, body slot) in a row, coordinate k of joint v at
    step[0] v + step[1] k: (3, 1) for (joint, xyz) order, (1, 25) for (xyz, joint);
    body_id: (n_frames, max_bodies) uint64; body_count: (n_frames,) int16; all filled
    here (zeros in empty slots). fixups: (k, 3) int64, filled with (value start, value
    end, index into flat) of the x, y, z that only `float` reads exactly.
    Returns (OK, SLOW or FULL, fix-ups used).
    """
    n = len(buf)
    per_body = JOINTS * XYZ
    n_fixups = 0
    for t in range(n_frames):
        if pos >= n:
            return SLOW, n_fixups
        pos, n_bodies = _count_line(buf, pos)
        if pos < 0 or n_bodies > MAX_BODY_COUNT:
            return SLOW, n_fixups
        body_count[t] = n_bodies
        for b in range(n_bodies):
            if pos >= n:
                return SLOW, n_fixups
            pos, ident = _body_line(buf, pos)
            if pos < 0 or pos >= n:
                return SLOW, n_fixups
            pos, n_joints = _count_line(buf, pos)
            if pos < 0 or n_joints != JOINTS:
                return SLOW, n_fixups
            at = -1
            if b < max_bodies:
                body_id[t, b] = ident
                at = (t * max_bodies + b) * per_body
            pos, n_fixups = _joint_lines(buf, pos, flat, at, step, fixups, n_fixups)
            if pos < 0:
                return (FULL if pos == -2 else SLOW), n_fixups
        for b in range(n_bodies, max_bodies):
            body_id[t, b] = 0
            start = (t * max_bodies + b) * per_body
            for j in range(start, start + per_body):
                flat[j] = 0.0
    return OK, n_fixups
