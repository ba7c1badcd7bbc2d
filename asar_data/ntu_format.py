"""The NTU RGB+D `.skeleton` reader: bytes in, exact float64 joint positions out.

Format (see DATASETS.md): a frame count, then per frame a body count, then per
body a 10-value body line, a joint count (25) and 25 joint lines of 12 values.
Only x, y, z (the first three joint values, metres) and the integer body ID are kept.

Two paths give the same arrays:

- a vectorised path for text as the dataset ships it (single spaces, LF or CR LF).
  Newlines are found once; the frame/body structure is walked per run of frames;
  the whole text is validated with byte masks packed into 64-bit words (alphabet,
  spacing, the shape of every number, values per line); x, y, z are parsed with
  integer digit arithmetic: the digits of a token form one integer below 10**15
  (exact in float64) and one division by a power of ten, correctly rounded, gives
  the same float64 as Python's `float`. Tokens with an exponent go through `float`.
- a line-by-line path (`float` per value) used whenever the fast path declines.
  It is the authority: it reads any text the reference reader reads the same way,
  and raises `SkeletonFormatError` with the line and reason otherwise.

Text after the declared frames is ignored, as the reference reader does.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

JOINTS = 25
BODY_VALUES = 10
JOINT_VALUES = 12
LINES_PER_BODY = 2 + JOINTS  # body line, joint count, joints
MAX_BODY_COUNT = np.iinfo(np.int16).max


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
                    xyz[t, b, v] = values[:3]
            if b < max_bodies:
                body_id[t, b] = ident
    return NtuSkeleton(xyz, body_id, body_count)


# ---------------------------------------------------------------- vectorised path

_WINDOW = 16  # bytes looked at per x/y/z token: plain decimals of up to 15 characters
_ID_WINDOW = 20  # bytes looked at per body ID: up to 19 digits
_U64_1 = np.uint64(1)
_U64_63 = np.uint64(63)
_LOW_BITS = np.array([(1 << k) - 1 for k in range(64)], np.uint64)


def _first_bit_table() -> np.ndarray:
    """For a 16-bit row mask (column 0 = top bit): the first set column, 16 when none."""
    table = np.full(1 << 16, _WINDOW, np.uint8)
    for col in range(_WINDOW - 1, -1, -1):
        bit = 1 << (_WINDOW - 1 - col)
        table[bit:bit * 2] = col
    return table


def _row_table(ones: list[int]) -> np.ndarray:
    """Rows of 16 bytes, row k starting with ones[k] ones, as 16-byte records."""
    rows = (np.arange(_WINDOW)[None, :] < np.array(ones)[:, None]).astype(np.uint8)
    return rows.view(f"V{_WINDOW}").ravel()


_FIRST = _first_bit_table()
# Columns inside a token of length k (a token of 16+ bytes never covers column 15);
# entries 17 + k leave out column 0, the sign of a negative number.
_INSIDE = _row_table([*range(_WINDOW), _WINDOW - 1] * 2)
_INSIDE.view(np.uint8).reshape(-1, _WINDOW)[_WINDOW + 1:, 0] = 0
# Columns 0..k, the ones whose digit moves one column right over the dot at k.
_UP_TO = _row_table([k + 1 for k in range(_WINDOW + 1)])
# After that shift a digit string ends at column e: column c counts 10**(15 - c), so
# the two-digit number in columns 2j, 2j + 1 counts 10**(14 - 2j).
_PAIR_WEIGHTS = 10.0 ** (_WINDOW - 2 - 2 * np.arange(_WINDOW // 2))  # columns 2j, 2j + 1
# 10**k for k = 0..15, then 1.0 (tokens that are not plain); entries 32.. are negated.
_SIGNED_POW10 = np.ones(64)
_SIGNED_POW10[:_WINDOW] = 10.0 ** np.arange(_WINDOW)
_SIGNED_POW10[32:] = -_SIGNED_POW10[:32]
_ID_COLS = np.arange(_ID_WINDOW)
_ID_WEIGHTS = np.array([10 ** (_ID_WINDOW - 2 - c) for c in range(_ID_WINDOW - 1)] + [0], np.uint64)
_ID_POW10 = np.array([10**k for k in range(_ID_WINDOW)], np.uint64)


class _Scratch(threading.local):
    """Work arrays reused between calls, one set per thread.

    A fresh temporary of a few hundred kB costs more in page faults than the
    operation that fills it; these grow to the largest file seen and stay.
    """

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, key: str, n: int, dtype) -> np.ndarray:
        a = self.arrays.get(key)
        if a is None or len(a) < n:
            a = np.empty(max(n, 2 * (0 if a is None else len(a))), dtype)
            self.arrays[key] = a
        return a[:n]


_scratch = _Scratch()


def _parse_fast(data: bytes, max_bodies: int) -> NtuSkeleton | None:
    """The vectorised reader; None when the text is not in the plain shipped form."""
    n = len(data)
    if n < 64:
        return None
    buf = np.frombuffer(data, np.uint8)
    mask = _scratch.get("mask", n, bool)
    # Line i is bytes bounds[i] .. bounds[i + 1] - 1 (its LF); content ends before any CR.
    newline = np.flatnonzero(np.equal(buf, 10, out=mask))
    ends_open = data[-1] != 10
    bounds = np.empty(len(newline) + 1 + ends_open, np.int64)
    bounds[0] = 0
    bounds[1:len(newline) + 1] = newline + 1
    if ends_open:
        bounds[-1] = n + 1
    content_end = bounds[1:] - 1
    if data.find(b"\r") >= 0:
        content_end -= buf[content_end - 1] == 13
    walked = _walk(data, buf, bounds, content_end)
    if walked is None:
        return None
    n_lines, frame_line, n_bodies = walked
    end = min(int(bounds[n_lines]), n)
    region = buf[:end]
    space = _pack(np.equal(region, 32, out=mask[:end]))
    n_lf = n_lines - (end == n and ends_open)
    n_cr = int(np.count_nonzero(bounds[1:n_lines + 1] - 1 > content_end[:n_lines]))
    rare = _plain_text(data, region, space, n_lf, n_cr)
    if rare is None:
        return None

    # Bodies in file order: frame, slot and line of each.
    n_frames = len(frame_line)
    frame = np.repeat(np.arange(n_frames), n_bodies)
    slot = np.arange(len(frame)) - np.repeat(np.cumsum(n_bodies) - n_bodies, n_bodies)
    body_line = np.repeat(frame_line, n_bodies) + 1 + LINES_PER_BODY * slot
    if not _value_counts_match(space, bounds[:n_lines + 1], frame_line, body_line):
        return None
    count_at = bounds[body_line + 1]
    if not ((content_end[body_line + 1] - count_at == 2) & (buf[count_at] == 50)
            & (buf[count_at + 1] == 53)).all():
        return None  # a joint count other than "25"

    keep = slot < max_bodies
    frame, slot, body_line = frame[keep], slot[keep], body_line[keep]
    ids = _body_ids(buf, bounds[body_line])
    if ids is None:
        return None
    joint_start = bounds[(body_line[:, None] + 2 + np.arange(JOINTS)).ravel()]
    values = _xyz(data, buf, space, joint_start, rare)
    if values is None:
        return None
    xyz = np.zeros((n_frames, max_bodies, JOINTS, 3))
    xyz[frame, slot] = values.reshape(len(frame), JOINTS, 3)
    body_id = np.zeros((n_frames, max_bodies), np.uint64)
    body_id[frame, slot] = ids
    return NtuSkeleton(xyz, body_id, n_bodies.astype(np.int16))


def _walk(data: bytes, buf: np.ndarray, bounds: np.ndarray, content_end: np.ndarray):
    """(lines used, body-count line of each frame, bodies per frame), or None.

    Runs of frames with the same one-digit body count are checked at once.
    """
    n_lines = len(content_end)
    start = bounds[:-1]
    try:
        n_frames = int(data[start[0]:content_end[0]])
        if not 0 < n_frames < n_lines:
            return None
        frame_line = np.empty(n_frames, np.int64)
        n_bodies = np.empty(n_frames, np.int64)
        t, pos, runs = 0, 1, 0
        while t < n_frames:
            if pos >= n_lines:
                return None
            nb = int(data[start[pos]:content_end[pos]])
            if not 0 <= nb <= MAX_BODY_COUNT:
                return None
            step = 1 + LINES_PER_BODY * nb
            run = 1
            if nb < 10 and runs < 16:
                runs += 1
                lines = pos + step * np.arange(min(n_frames - t, (n_lines - 1 - pos) // step + 1))
                same = (content_end[lines] - start[lines] == 1) & (buf[start[lines]] == 48 + nb)
                run = len(same) if same.all() else max(int(np.argmin(same)), 1)
            frame_line[t:t + run] = pos + step * np.arange(run)
            n_bodies[t:t + run] = nb
            t += run
            pos += step * run
    except ValueError:
        return None
    if pos > n_lines:
        return None
    return pos, frame_line, n_bodies


def _pack(mask: np.ndarray) -> np.ndarray:
    """A bool mask as 64-bit words, bit j of word w = mask[64 * w + j]; one zero word after."""
    packed = np.packbits(mask, bitorder="little")
    words = np.zeros(len(packed) // 8 + 2, np.uint64)
    words.view(np.uint8)[: len(packed)] = packed
    return words


def _next(words: np.ndarray) -> np.ndarray:
    """Bit i becomes bit i + 1's value: 'the byte after is set'."""
    out = words >> _U64_1
    out[:-1] |= words[1:] << _U64_63
    return out


def _previous(words: np.ndarray, first: int = 0) -> np.ndarray:
    """Bit i becomes bit i - 1's value ('the byte before is set'); `first` before byte 0."""
    out = words << _U64_1
    out[1:] |= words[:-1] >> _U64_63
    out[0] |= np.uint64(first)
    return out


def _count_before(words: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Number of set bits before each position."""
    before = np.zeros(len(words) + 1, np.int64)
    np.cumsum(np.bitwise_count(words), out=before[1:])
    w = positions >> 6
    return before[w] + np.bitwise_count(words[w] & _LOW_BITS.take(positions & 63))


def _plain_text(
    data: bytes, region: np.ndarray, space: np.ndarray, n_lf: int, n_cr: int
) -> list[int] | None:
    """Positions of 'e', 'E', '+' if region holds only numbers, single spaces and line ends.

    Line ends are LF or CR LF (n_lf, n_cr of them). Tokens with an exponent or `+`
    are checked with `float` one by one (they are rare); the others must read
    `-?[0-9.]+` with at most one dot, each '-' and '.' followed by a digit.
    None when the text is not so.
    """
    end = len(region)
    if region[0] <= 32 or (data[end - 1] != 10 and not 48 <= data[end - 1] <= 57):
        return None
    if data.find(b"/", 0, end) >= 0:
        return None
    rare = _rare_characters(data, end)
    if rare is None:
        return None
    mask = _scratch.get("mask", end, bool)
    shifted = np.subtract(region, np.uint8(45), out=_scratch.get("shifted", end, np.uint8))
    # shifted: '-' 0, '.' 1, '/' 2, digits 3..12. Every byte must be a space, LF,
    # CR (counted at line ends), '-', '.', a digit or a rare character.
    n_space = int(np.bitwise_count(space).sum())
    n_usual = np.count_nonzero(np.less(shifted, 13, out=mask))
    if n_usual + n_space + n_lf + n_cr + len(rare) != end:
        return None
    blank = _pack(np.less_equal(region, 32, out=mask))
    if int(np.bitwise_count(blank & _next(blank)).sum()) != n_cr:
        return None  # two spaces, a space at a line end or an empty line
    sign_or_dot = _pack(np.less(shifted, 2, out=mask))
    minus = _pack(np.equal(region, 45, out=mask))
    dot = sign_or_dot & ~minus
    if (sign_or_dot & _next(blank)).any() or (dot & _next(sign_or_dot)).any():
        return None  # '-' or '.' not followed by a digit
    minus_inside = minus & ~_previous(blank, 1)
    if minus_inside.any():
        after_exponent = sum(1 for i in rare if data[i] in b"eE" and data[i + 1] == 45)
        if int(np.bitwise_count(minus_inside).sum()) != after_exponent:
            return None
    return None if _two_dots_in_a_token(blank, dot, end) else rare


def _two_dots_in_a_token(blank: np.ndarray, dot: np.ndarray, end: int) -> bool:
    """Whether some token holds two dots (also True for a 64-byte token: not looked at).

    Adding the dot bits to the token bits carries each dot up to its token's end,
    clearing the bits on the way; a second dot of the same token is reached by
    the carry of the first and so comes out unchanged.
    """
    token = ~blank
    token[end >> 6] &= _LOW_BITS[end & 63]
    token[(end >> 6) + 1:] = 0
    if (token == ~np.uint64(0)).any():
        return True
    carried = token + dot
    carried[1:] += carried[:-1] < token[:-1]  # carries between words
    return bool((dot & ~(carried ^ token)).any())


def _rare_characters(data: bytes, end: int) -> list[int] | None:
    """Positions of 'e', 'E' and '+' in data[:end]; None if one is in a token `float` rejects."""
    found = []
    for ch in (b"e", b"E", b"+"):
        i = data.find(ch, 0, end)
        while i >= 0:
            start = max(data.rfind(b" ", 0, i), data.rfind(b"\n", 0, i)) + 1
            stop = i + 1
            while stop < end and data[stop] not in b" \r\n":
                stop += 1
            if data[i] == 43 and data[i - 1] in b"-.":
                return None  # '-+' or '.+': the plain checks do not look at '+'
            try:
                float(data[start:stop])
            except ValueError:
                return None
            found.append(i)
            i = data.find(ch, i + 1, end)
    return found


def _value_counts_match(space: np.ndarray, bounds, frame_line, body_line) -> bool:
    """Whether each line holds the expected number of values: 1, 10 or 12."""
    expected = np.full(len(bounds) - 1, JOINT_VALUES - 1, np.int64)
    expected[0] = 0
    expected[frame_line] = 0
    expected[body_line] = BODY_VALUES - 1
    expected[body_line + 1] = 0
    # Values are single-space separated and no line is empty (checked already).
    return bool(np.array_equal(np.diff(_count_before(space, bounds)), expected))


def _windows(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8: the bytes from each start (a gather of fixed-size records)."""
    records = np.ndarray((len(buf) - width + 1,), f"V{width}", buf, 0, (1,))
    return records[starts].view(np.uint8).reshape(-1, width)


def _row_bits(mask: np.ndarray) -> np.ndarray:
    """(n * 16,) bool -> (n,) uint16 with column 0 of each row as the top bit."""
    return np.packbits(mask).view(">u2").astype(np.uint16)


def _body_ids(buf: np.ndarray, start: np.ndarray) -> np.ndarray | None:
    """The first token of each body line as uint64 (exact); None when one is not all digits."""
    w = _windows(buf, start, _ID_WINDOW)
    length = np.argmax(w == 32, axis=1)
    digit = w - np.uint8(48)
    inside = length[:, None] > _ID_COLS
    if not (length > 0).all() or not ((digit < 10) | ~inside).all():
        return None
    digits = (digit * inside).astype(np.uint64)
    return (digits @ _ID_WEIGHTS) // _ID_POW10[_ID_WINDOW - 1 - length]


def _lowest_bit(words: np.ndarray) -> np.ndarray:
    """Index of the lowest set bit of each word (64 when none)."""
    return np.bitwise_count((words & (~words + _U64_1)) - _U64_1)


def _bits_from(words: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The 64 mask bits from each position on, the first one in the lowest bit."""
    w = positions >> 6
    shift = (positions & 63).astype(np.uint64)
    return (words[w] >> shift) | ((words[w + 1] << _U64_1) << (_U64_63 - shift))


def _xyz(data: bytes, buf: np.ndarray, space: np.ndarray, start: np.ndarray,
         rare: list[int]) -> np.ndarray | None:
    """x, y, z of the joint lines starting at `start`: (n, 3) float64; None if one is bad.

    The text passed `_plain_text`; `rare` lists its exponent and '+' positions.
    """
    # The first three spaces of each line end x, y and z (offsets from the line start).
    run = _bits_from(space, start)
    x_end = _lowest_bit(run)
    run &= run - _U64_1
    y_end = _lowest_bit(run)
    run &= run - _U64_1
    z_end = _lowest_bit(run)
    if z_end.max() >= 63:
        return None  # tokens longer than the bits looked at: let the line reader take them
    starts = np.stack([start, start + x_end + 1, start + y_end + 1], axis=1).ravel()
    lengths = np.stack([x_end, y_end - x_end - 1, z_end - y_end - 1], axis=1).ravel()
    plain = lengths < _WINDOW
    if rare:  # tokens holding an exponent or '+'
        at = np.array(rare)
        token = np.searchsorted(starts, at, side="right") - 1
        inside = at < starts[token] + lengths[token]
        plain[token[inside]] = False
    short = np.where(plain, lengths, _WINDOW - 1).astype(np.uint8)
    values = _decimals(_windows(buf, starts, _WINDOW), short)
    for i in np.flatnonzero(~plain):
        try:
            values[i] = float(data[starts[i]:starts[i] + lengths[i]])
        except ValueError:
            return None
    return values.reshape(-1, 3)


def _decimals(w: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Values of the tokens `-?[0-9]*(.[0-9]+)?` (at least one digit) starting each window.

    w: (n, 16) uint8 bytes; length: (n,) uint8 token lengths, at most 15. The
    digits up to the dot (or to the end) move one column right, so that they form
    one integer S = M * 10**a below 10**15 (exact in float64); the value M / 10**f
    is then one correctly rounded division, as Python's `float` of the token gives.
    """
    n = len(w)
    size = n * _WINDOW
    flat = w.reshape(-1)
    mask = _scratch.get("row_mask", size, bool)
    dot = _FIRST.take(_row_bits(np.equal(flat, 46, out=mask)))  # 16: none in the window
    point = np.minimum(dot, length)  # the dot, or the end of a token without one
    negative = (w[:, 0] == 45).view(np.uint8)
    # Digits inside the token, zeros elsewhere. The only other characters inside
    # are a leading '-' (left out here) and the dot (overwritten by the shift).
    digits = np.subtract(flat, np.uint8(48), out=_scratch.get("digits", size, np.uint8))
    inside_index = length + np.uint8(_WINDOW + 1) * negative
    inside = np.take(_INSIDE, inside_index, out=_scratch.get("rows", n, _INSIDE.dtype))
    np.multiply(digits, inside.view(np.uint8), out=digits)
    # Columns up to the point take the digit on their left; the flat shift pulls in
    # the previous row's column 15, always zero here.
    moved = _scratch.get("moved", size, np.uint8)
    moved[0] = 0
    moved[1:] = digits[:-1]
    np.subtract(moved, digits, out=moved)
    up_to = np.take(_UP_TO, point, out=_scratch.get("rows", n, _UP_TO.dtype))
    np.multiply(moved, up_to.view(np.uint8), out=moved)
    np.add(digits, moved, out=digits)
    # Pairs of columns as two-digit numbers, then one product with their weights.
    pairs = digits.view(np.uint16)
    two = np.bitwise_and(pairs, np.uint16(0xFF), out=_scratch.get("two", size // 2, np.uint16))
    np.multiply(two, np.uint16(10), out=two)
    np.add(two, pairs >> np.uint16(8), out=two)
    as_float = _scratch.get("as_float", size // 2, np.float64)
    np.copyto(as_float, two)
    scaled = as_float.reshape(n, _WINDOW // 2) @ _PAIR_WEIGHTS
    scale = _SIGNED_POW10.take(((np.uint8(_WINDOW - 1) - point) & np.uint8(31)) | (negative << 5))
    return scaled / scale
