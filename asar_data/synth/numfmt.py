"""Vectorised number formatting in the two raw text styles.

NTU `.skeleton` files hold Kinect SDK floats printed with up to 7 significant digits
and no trailing zeros (`0.2181153`, `277.419`, `25`, `-5.960464E-08`), which is C's
`%.7G`. PKU-MMD skeleton files use C's `%f` (`-0.059621`). Formatting 30,000 numbers
a file through Python's `%` is the slowest part of writing a dataset, so both styles
are built here as byte matrices: one row per token, one column per possible character
slot, 0 where a slot is unused; the file is the matrix with the zeros dropped.
"""
from __future__ import annotations

import numpy as np

SPACE, CRLF, LF = 0, 1, 2
_SEPARATORS = np.array([[32, 0], [13, 10], [10, 0]], dtype=np.uint8)

# Body IDs are 2**56 + a small counter: a fixed 12-digit head and a 5-digit tail.
BODY_ID_HEAD = "720575940379"
_HEAD = np.frombuffer(BODY_ID_HEAD.encode(), dtype=np.uint8)

_ZERO, _DOT, _MINUS, _PLUS, _E = (np.uint8(ord(c)) for c in "0.-+E")
_NONE = np.uint8(0)
_COUNT3, _COUNT6, _COUNT7 = (np.arange(n, dtype=np.int8)[:, None] for n in (3, 6, 7))
_POW10 = 10.0 ** np.arange(41)  # exact up to 1e22


def _digit_table(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded ASCII digits of 0 .. 10**width - 1 and their trailing-zero counts."""
    text = "".join(f"{i:0{width}d}" for i in range(10**width)).encode()
    chars = np.frombuffer(text, dtype=np.uint8).reshape(-1, width)
    is_zero = chars == _ZERO
    trailing = np.argmin(is_zero[:, ::-1], axis=1)
    trailing[is_zero.all(axis=1)] = width
    return chars, trailing


_DIGITS4, _TRAILING4 = _digit_table(4)
_DIGITS3, _TRAILING3 = _digit_table(3)
_DIGITS4_T, _DIGITS3_T = np.ascontiguousarray(_DIGITS4.T), np.ascontiguousarray(_DIGITS3.T)


def _digits7(mant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ASCII digits (7, N) of integers below 1e7, and how many digits precede the trailing zeros."""
    hi, lo = np.divmod(mant.astype(np.int32), 10_000)
    chars = np.concatenate([_DIGITS3_T.take(hi, axis=1), _DIGITS4_T.take(lo, axis=1)], axis=0)
    trailing = np.where(lo == 0, 4 + _TRAILING3[hi], _TRAILING4[lo])
    return chars, 7 - trailing


def _decimal7(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """7-significant-digit decimal of positive floats: (mantissa in [1e6, 1e7), exponent)."""
    exp = np.floor(np.log10(a)).astype(np.int64)
    for _ in range(2):  # log10 can be one off next to a power of ten
        k = 6 - exp
        scale = _POW10[np.minimum(np.abs(k), 40)]
        mant = np.rint(np.where(k >= 0, a * scale, a / scale))
        low = mant < 1e6
        if not low.any():
            break
        exp = np.where(low, exp - 1, exp)
    high = mant >= 1e7
    mant = np.where(high, np.rint(mant / 10), mant)
    return mant.astype(np.int64), exp + high


def format_g7(values: np.ndarray, seps: np.ndarray, prefix: np.ndarray | None = None) -> bytes:
    """Format numbers like C's `%.7G` (the NTU Kinect text style), each followed by its separator.

    values: (N,) float, 0 or 1e-33 < |v| < 1e22; seps: (N,) separator codes (SPACE, CRLF, LF);
    prefix: optional (N,) codes, 1 puts the body-ID head `720575940379` before the token
    (the token is then the 5-digit tail). Returns the ASCII bytes of all tokens in order.
    """
    v = np.asarray(values, dtype=np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0
    a = np.abs(v)
    zero = a == 0
    mant, exp = _decimal7(np.where(zero, 1.0, a))
    mant[zero] = 0
    exp[zero] = 0
    if np.any(np.abs(exp) >= 100):
        raise ValueError("format_g7: exponents beyond two digits are not supported")
    chars, keep = _digits7(mant)
    exp = exp.astype(np.int8)
    keep = np.where(zero, 1, keep).astype(np.int8)
    sci = (exp < -4) | (exp >= 7)
    fixed_pos = ~sci & (exp >= 0)
    fixed_neg = ~sci & (exp < 0)
    # digits written: up to the last non-zero one, but all of the integer part
    ndigits = np.where(fixed_pos, np.maximum(keep, exp + 1), keep)
    # the decimal point follows digit `dot` (-1: none)
    dot = np.where(fixed_pos & (keep > exp + 1), exp, np.where(sci & (keep > 1), 0, -1))
    lead_zeros = np.where(fixed_neg, -exp - 1, -1)  # zeros after "0." (-1: no "0." at all)

    # Slots as rows (contiguous over tokens), transposed to one row per token at the end.
    head = 0 if prefix is None else _HEAD.size
    mat = np.zeros((head + 1 + 5 + 13 + 4 + 2, v.size), dtype=np.uint8)
    if prefix is not None:
        marked = np.flatnonzero(prefix)
        mat[:head, marked] = _HEAD[:, None]
    mat[head] = np.where(v < 0, _MINUS, _NONE)
    c = head + 1
    mat[c] = np.where(fixed_neg, _ZERO, _NONE)
    mat[c + 1] = np.where(fixed_neg, _DOT, _NONE)
    mat[c + 2 : c + 5] = np.where(lead_zeros > _COUNT3, _ZERO, _NONE)
    c += 5
    mat[c : c + 13 : 2] = np.where(ndigits > _COUNT7, chars, _NONE)
    mat[c + 1 : c + 12 : 2] = np.where(dot == _COUNT6, _DOT, _NONE)
    c += 13
    aexp = np.abs(exp)
    mat[c] = np.where(sci, _E, _NONE)
    mat[c + 1] = np.where(sci, np.where(exp < 0, _MINUS, _PLUS), _NONE)
    mat[c + 2] = np.where(sci, _ZERO + (aexp // 10).astype(np.uint8), _NONE)
    mat[c + 3] = np.where(sci, _ZERO + (aexp % 10).astype(np.uint8), _NONE)
    _put_separators(mat[c + 4 :], seps)
    flat = mat.T.ravel()
    return flat[flat != 0].tobytes()


def _put_separators(rows: np.ndarray, seps: np.ndarray) -> None:
    """Fill the two separator rows (2, N); spaces everywhere unless the code says otherwise."""
    seps = np.asarray(seps)
    rows[0] = 32
    rows[1] = 0
    for code in (CRLF, LF):
        at = np.flatnonzero(seps == code)
        rows[:, at] = _SEPARATORS[code][:, None]


def format_f6(values: np.ndarray, seps: np.ndarray) -> bytes:
    """Format numbers like C's `%f` (6 decimals; the PKU-MMD style), each followed by its separator.

    values: (N,) float with |v| < 1000; seps: (N,) separator codes. `-0.000000` for
    negative values that round to zero, as C prints them.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size and np.abs(v).max() >= 999.9999995:
        raise ValueError("format_f6: values must lie within (-1000, 1000)")
    units = np.rint(np.abs(v) * 1e6).astype(np.int64)
    whole, frac = np.divmod(units, 1_000_000)
    frac_hi, frac_lo = np.divmod(frac.astype(np.int32), 10_000)
    whole = whole.astype(np.int32)
    mat = np.empty((13, v.size), dtype=np.uint8)  # slots as rows, as in format_g7
    mat[0] = np.where(np.signbit(v), _MINUS, _NONE)
    mat[1:4] = _DIGITS3_T.take(whole, axis=1)
    mat[1] *= whole >= 100  # no leading zeros
    mat[2] *= whole >= 10
    mat[4] = _DOT
    mat[5:7] = _DIGITS3_T[1:].take(frac_hi, axis=1)
    mat[7:11] = _DIGITS4_T.take(frac_lo, axis=1)
    _put_separators(mat[11:], seps)
    flat = mat.T.ravel()
    return flat[flat != 0].tobytes()
