"""The NTU `.skeleton` reader: exact values, body slots and IDs, and every bad-input case."""
from __future__ import annotations

import random

import numpy as np
import pytest

from asar_data import ntu_format
from asar_data.ntu_format import SkeletonFormatError, parse_ntu
from asar_data.reference_files import restricted_loads

BODY_TAIL = "0 1 1 1 1 0 0.02764709 0.05745083 2"
JOINT_TAIL = "277.419 191.8218 1036.233 519.1677 -0.2059419 0.05349901 0.9692109 -0.1239193 2"


def joints(seed: int) -> list[tuple[str, str, str]]:
    """25 joints of Kinect-style text values (7 significant digits)."""
    rng = np.random.default_rng(seed)
    return [tuple(f"{v:.7g}" for v in rng.normal(0, 1.5, 3)) for _ in range(25)]


def skeleton_lines(frames: list[list[tuple[int, list]]]) -> list[str]:
    """frames: per frame a list of (body ID, 25 (x, y, z) strings) -> the file's lines."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, body_joints in bodies:
            lines += [f"{body_id} {BODY_TAIL}", "25"]
            lines += [f"{x} {y} {z} {JOINT_TAIL}" for x, y, z in body_joints]
    return lines


def encode(lines: list[str], newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode()


# Two frames: one body (lines 2-29), then two bodies (lines 30-84).
BASE = skeleton_lines([[(72057594037931101, joints(1))],
                       [(72057594037931101, joints(2)), (72057594037931102, joints(3))]])


def xyz_of(body_joints) -> np.ndarray:
    return np.array([[float(v) for v in j] for j in body_joints])


def real_skeletons(real_dir):
    paths = sorted((real_dir / "ntu").rglob("*.skeleton"))
    assert len(paths) >= 17
    return paths


def test_every_real_file_equals_the_reference_reader_bit_for_bit(real_dir, reference_parse):
    for path in real_skeletons(real_dir):
        data = path.read_bytes()
        sk = parse_ntu(data)
        expected = reference_parse.read_xyz(str(path))  # (3, T, 25, 2)
        got = sk.xyz.transpose(3, 0, 2, 1)
        assert got.shape == expected.shape, path.name
        assert np.array_equal(got.view(np.uint64), expected.view(np.uint64)), path.name
        assert ntu_format._parse_fast(data, 2) is not None, f"{path.name} left the fast path"


def test_real_files_give_the_same_arrays_on_the_line_by_line_path(real_dir):
    for path in real_skeletons(real_dir):
        data = path.read_bytes()
        fast, slow = ntu_format._parse_fast(data, 3), ntu_format._parse_lines(data, 3)
        for field in ("xyz", "body_id", "body_count"):
            a, b = getattr(fast, field), getattr(slow, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), (path.name, field)


def test_lf_copy_parses_identically_to_the_crlf_copy(real_dir):
    crlf = (real_dir / "ntu" / "S001C001P001R001A001.skeleton").read_bytes()
    lf = (real_dir / "ntu" / "variants_lf" / "S001C001P001R001A001.skeleton").read_bytes()
    assert b"\r\n" in crlf and b"\r" not in lf
    a, b = parse_ntu(crlf), parse_ntu(lf)
    assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.body_id, b.body_id)
    assert np.array_equal(a.body_count, b.body_count)


def test_parse_equals_the_official_parsers_npy(real_dir):
    raw = (real_dir / "ntu" / "derived" / "S001C001P001R001A001.skeleton.npy").read_bytes()
    header_end = 10 + int.from_bytes(raw[8:10], "little")  # .npy format 1.0
    derived = restricted_loads(raw[header_end:]).item()
    sk = parse_ntu((real_dir / "ntu" / "S001C001P001R001A001.skeleton").read_bytes())
    assert np.array_equal(sk.xyz[:, 0], derived["skel_body0"])
    assert list(sk.body_count) == list(derived["nbodys"])


def test_real_body_ids_are_the_files_17_digit_integers(real_dir):
    sk = parse_ntu((real_dir / "ntu" / "S001C001P001R001A001.skeleton").read_bytes())
    assert sk.body_id.dtype == np.uint64
    assert sk.body_id[0, 0] == 72057594037931101 and sk.body_id[0, 1] == 0


def test_body_ids_that_collide_as_float64_stay_distinct():
    assert float(72057594037931101) == float(72057594037931102)
    sk = parse_ntu(encode(BASE))
    assert sk.body_id[1].tolist() == [72057594037931101, 72057594037931102]


def test_first_bodies_in_file_order_fill_the_slots_and_all_are_counted():
    frames = [[(10 + b, joints(b)) for b in range(4)], [(20, joints(9))]]
    sk = parse_ntu(encode(skeleton_lines(frames)), max_bodies=2)
    assert sk.xyz.shape == (2, 2, 25, 3)
    assert sk.body_count.tolist() == [4, 1] and sk.body_count.dtype == np.int16
    assert sk.body_id.tolist() == [[10, 11], [20, 0]]
    assert np.array_equal(sk.xyz[0, 1], xyz_of(joints(1)))
    assert not sk.xyz[1, 1].any()


def test_frames_without_bodies_are_legal_and_leave_the_slots_zero():
    frames = [[(5, joints(1))], [], [(5, joints(2))]]
    sk = parse_ntu(encode(skeleton_lines(frames)))
    assert sk.body_count.tolist() == [1, 0, 1]
    assert not sk.xyz[1].any() and not sk.body_id[1].any()
    assert np.array_equal(sk.xyz[2, 0], xyz_of(joints(2)))


def test_exponents_and_unusual_numbers_parse_like_python_float():
    body = joints(4)
    body[:6] = [("1.2E-05", "-9.276937E-05", "3e2"), ("-0", "0.0", "-0.0"),
                ("5", "-12", ".5"), ("1.2345678901234567", "-0.000001", "4.999999999999999"),
                ("1e-320", "123456789012345678", "0.30000000000000004"), ("+1", "-.5", "7.")]
    sk = parse_ntu(encode(skeleton_lines([[(1, body)]])))
    expected = xyz_of(body)
    assert np.array_equal(sk.xyz[0, 0].view(np.uint64), expected.view(np.uint64))


def test_text_after_the_declared_frames_is_ignored():
    plain = parse_ntu(encode(BASE))
    for tail in ("garbage here", "3\n1 2 3", "\n\n\n", "\x00\xff"):
        sk = parse_ntu(encode(BASE) + tail.encode("latin-1"))
        assert np.array_equal(sk.xyz, plain.xyz) and np.array_equal(sk.body_id, plain.body_id)


@pytest.mark.parametrize("variant", [
    lambda t: t.replace(b" ", b"  "),
    lambda t: t.replace(b" ", b"\t"),
    lambda t: t.replace(b"\n", b" \n"),
    lambda t: t.replace(b"\n", b"\r"),
    lambda t: t.replace(b"\n", b"\r\n"),
    lambda t: t.rstrip(b"\n"),
], ids=["double-spaces", "tabs", "trailing-spaces", "cr-only", "crlf", "no-final-newline"])
def test_any_whitespace_the_reference_accepts_gives_the_same_arrays(variant):
    plain = parse_ntu(encode(BASE))
    sk = parse_ntu(variant(encode(BASE)))
    assert np.array_equal(sk.xyz, plain.xyz) and np.array_equal(sk.body_id, plain.body_id)
    assert np.array_equal(sk.body_count, plain.body_count)


def edit(line: int, new: str | None):
    """Replace 1-based line `line` of BASE (None: delete it)."""
    def apply(lines):
        lines = list(lines)
        if new is None:
            del lines[line - 1]
        else:
            lines[line - 1] = new
        return lines
    return apply


def edit_token(line: int, index: int, new: str | None):
    """Replace (None: delete) value `index` on 1-based line `line` of BASE."""
    def apply(lines):
        lines = list(lines)
        tokens = lines[line - 1].split(" ")
        if new is None:
            del tokens[index]
        else:
            tokens[index] = new
        lines[line - 1] = " ".join(tokens)
        return lines
    return apply


BAD_INPUTS = {
    "frame count not a number": (edit(1, "abc"), 1, '"abc" is not a number'),
    "frame count not whole": (edit(1, "2.5"), 1, 'frame count "2.5" is not a whole number'),
    "zero frames": (lambda lines: ["0"], 1, "file declares 0 frames"),
    "negative frames": (edit(1, "-3"), 1, "frame count -3 is negative"),
    "body count not a number": (edit(2, "x"), 2, '"x" is not a number'),
    "negative body count": (edit(2, "-1"), 2, "body count -1 is out of range"),
    "two values on a count line": (edit(2, "1 1"), 2, "body count line has 2 values, expected 1"),
    "ends mid-body": (lambda lines: lines[:40], None, "file ends after 1 of 2 frames"),
    "ends after a body count": (lambda lines: lines[:30], None, "file ends after 1 of 2 frames"),
    "ends between frames": (lambda lines: lines[:29], None, "file ends after 1 of 2 frames"),
    "body line short": (edit_token(3, 9, None), 3, "body line has 9 values, expected 10"),
    "body value not a number": (edit_token(3, 7, "2.7e"), 3, '"2.7e" is not a number'),
    "body ID not an integer": (edit_token(3, 0, "7.2e16"), 3, 'body ID "7.2e16" is not an integer'),
    "body ID negative": (edit_token(31, 0, "-5"), 31, "body ID -5 is out of range"),
    "joint count 24": (lambda lines: edit(4, "24")(lines[:28] + lines[29:]), 4,
                       "expected 25 joints, found 24"),
    "joint count not a number": (edit(4, "2 5"), 4, "joint count line has 2 values, expected 1"),
    "joint line 11 values": (edit_token(10, 11, None), 10, "joint line has 11 values, expected 12"),
    "joint line 13 values": (lambda lines: edit(10, lines[9] + " 2")(lines), 10,
                             "joint line has 13 values, expected 12"),
    "x not a number": (edit_token(7, 0, "2.7e"), 7, '"2.7e" is not a number'),
    "z with letters": (edit_token(60, 2, "0.3x"), 60, '"0.3x" is not a number'),
    "unused value with letters": (edit_token(7, 8, "abc"), 7, '"abc" is not a number'),
    "unused value with two dots": (edit_token(7, 8, "0.2.3"), 7, '"0.2.3" is not a number'),
    "unused value a lone minus": (edit_token(7, 4, "-"), 7, '"-" is not a number'),
    "unused value minus inside": (edit_token(70, 5, "1-2"), 70, '"1-2" is not a number'),
    "unused value two minus": (edit_token(7, 11, "--2"), 7, '"--2" is not a number'),
    "empty line": (lambda lines: lines[:10] + [""] + lines[10:], 11,
                   "joint line has 0 values, expected 12"),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_names_the_line_and_the_reason(case):
    change, line, reason = case
    with pytest.raises(SkeletonFormatError) as err:
        parse_ntu(encode(change(BASE)))
    assert (err.value.line, err.value.reason) == (line, reason)


@pytest.mark.parametrize("data", [b"", b" \n\r\n\t"], ids=["empty", "blank"])
def test_a_file_without_text_is_an_empty_file(data):
    with pytest.raises(SkeletonFormatError) as err:
        parse_ntu(data)
    assert (err.value.line, err.value.reason) == (None, "empty file")
    assert isinstance(err.value, ValueError)


def test_truncated_real_file_says_how_many_frames_it_holds(real_dir):
    lines = (real_dir / "ntu" / "S001C001P001R001A001.skeleton").read_bytes().split(b"\r\n")
    with pytest.raises(SkeletonFormatError) as err:
        parse_ntu(b"\r\n".join(lines[: 1 + 40 * 28 + 5]))  # one body per frame: 28 lines
    assert err.value.reason == "file ends after 40 of 103 frames"


def test_a_frame_count_beyond_the_file_is_a_truncation_not_a_memory_error():
    with pytest.raises(SkeletonFormatError) as err:
        parse_ntu(b"999999999999\n0\n0\n")
    assert err.value.reason == "file ends after 2 of 999999999999 frames"


def test_fast_reader_never_disagrees_with_the_line_reader():
    """Random one-byte edits: whenever the vectorised path accepts, it matches the line path."""
    base = encode(skeleton_lines([[(7, joints(5))], [(7, joints(6)), (8, joints(7))]]))
    rng = random.Random(0)
    accepted = 0
    for _ in range(400):
        data = bytearray(base)
        i = rng.randrange(len(data))
        ch = rng.choice(b"0123456789.-+eE \n\r\tx")
        op = rng.randrange(3)
        if op == 0:
            data[i] = ch
        elif op == 1:
            del data[i]
        else:
            data.insert(i, ch)
        fast = ntu_format._parse_fast(bytes(data), 2)
        if fast is None:
            continue
        accepted += 1
        slow = ntu_format._parse_lines(bytes(data), 2)
        for field in ("xyz", "body_id", "body_count"):
            a, b = getattr(fast, field), getattr(slow, field)
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), (bytes(data), field)
    assert accepted > 100


def test_max_bodies_below_one_is_refused():
    with pytest.raises(ValueError, match="max_bodies"):
        parse_ntu(encode(BASE), max_bodies=0)


# ---------------------------------------------------------------- the compiled path


def assert_same(a, b, context=None):
    """Two NtuSkeletons hold the same bits in every field."""
    for field in ("xyz", "body_id", "body_count"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, (context, field)
        assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), (context, field)


def first_frames(data: bytes, frames: int) -> bytes:
    """A real file cut to its first `frames` frames (its frame count rewritten)."""
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    lines = data.split(newline)
    kept, i = [], 1
    for _ in range(frames):
        end = i + 1 + 27 * int(lines[i])
        kept += lines[i:end]
        i = end
    return newline.join([str(frames).encode(), *kept]) + newline


def number_text(rng: random.Random) -> str:
    """A decimal text `float` reads: up to 24 digits, a dot anywhere, often an exponent."""
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 24)))
    if rng.random() < 0.2:
        digits = "0" * rng.randint(1, 6) + digits
    text = digits
    if rng.random() < 0.85:
        dot = rng.randint(0, len(digits))
        text = f"{digits[:dot]}.{digits[dot:]}"
    if rng.random() < 0.5:
        power = str(rng.choice([rng.randint(0, 25), rng.randint(0, 400)])).zfill(rng.randint(1, 3))
        text += rng.choice("eE") + rng.choice(["", "+", "-"]) + power
    return rng.choice(["", "-", "+"]) + text


MUTANTS = "0123456789.-+eE \t\r\nx_\x00"


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random edit: a byte, a whole value or a line."""
    data = bytearray(data)
    op = rng.randrange(6)
    i = rng.randrange(len(data))
    if op == 0:
        data[i] = ord(rng.choice(MUTANTS))
    elif op == 1:
        del data[i]
    elif op == 2:
        data.insert(i, ord(rng.choice(MUTANTS)))
    elif op == 3:  # a value replaced by another number (or by junk)
        start = max(data.rfind(b" ", 0, i), data.rfind(b"\n", 0, i)) + 1
        stop = min(j for j in (data.find(b" ", i), data.find(b"\r", i), data.find(b"\n", i),
                               len(data)) if j >= 0)
        text = number_text(rng) if rng.random() < 0.8 else rng.choice(["", "1e", "-", "nan"])
        data[start:stop] = text.encode()
    else:  # a line deleted or repeated
        lines = bytes(data).splitlines(keepends=True)
        k = rng.randrange(len(lines))
        lines[k:k + 1] = [] if op == 4 else [lines[k], lines[k]]
        data = bytearray(b"".join(lines))
    return bytes(data)


def test_compiled_path_agrees_with_the_line_reader_on_mutated_real_files(real_dir):
    """Random edits of real files: the compiled path declines or gives the line reader's arrays.

    Where the line reader raises, the compiled path must decline (so the error is
    the line reader's); where it reads the file, the compiled path gives the same bits.
    """
    names = ["S001C001P001R001A001", "S001C001P001R001A002", "S001C003P008R002A058",
             "S017C003P020R002A054"]  # CR LF and LF files, one and two bodies
    bases = [first_frames((real_dir / "ntu" / f"{n}.skeleton").read_bytes(), 3) for n in names]
    rng = random.Random(1)
    accepted = rejected = 0
    for case in range(400):
        data = mutate(bases[case % len(bases)], rng)
        max_bodies = 1 + case % 3
        fast = ntu_format._parse_fast(data, max_bodies)
        try:
            slow = ntu_format._parse_lines(data, max_bodies)
        except SkeletonFormatError:
            assert fast is None, data
            rejected += 1
            continue
        if fast is not None:
            assert_same(fast, slow, data)
            accepted += 1
    assert accepted > 150 and rejected > 50, (accepted, rejected)


HARD_NUMBERS = [
    "9007199254740993", "9007199254740993e-5", "9007199254740992.5", "0.1", "0.30000000000000004",
    "1e22", "1e23", "1e-22", "1e-23", "123456789012345678e-7", "1234567890123456789e-30",
    "5e-324", "4.9e-324", "2.2250738585072014e-308", "1.7976931348623157e308", "1e400",
    "-1e-400", "0e999999", "-0.000", "00000000000000000000001.5", "0.0000000000000000000001",
    "7.", ".7", "+.7E+1", "-7.e-1", "1E-05", "-9.276937E-05", "3.141592653589793238462643",
]


def test_exponents_and_long_mantissas_give_pythons_float_bit_for_bit():
    rng = random.Random(2)
    texts = HARD_NUMBERS + [number_text(rng) for _ in range(3000)]
    texts = [t for t in texts if ntu_format.finite_float32(float(t))]  # the rest are refused
    texts += [""] * (-len(texts) % 75)
    texts = [t or "0" for t in texts]
    triples = [tuple(texts[i:i + 3]) for i in range(0, len(texts), 3)]
    frames = [[(i, triples[25 * i:25 * i + 25])] for i in range(len(triples) // 25)]
    data = encode(skeleton_lines(frames))
    sk = ntu_format._parse_fast(data, 2)
    assert sk is not None  # read by the kernel, with `float` only for the fix-ups
    expected = np.array([float(t) for t in texts]).reshape(-1, 25, 3)
    assert np.array_equal(sk.xyz[:, 0].view(np.uint64), expected.view(np.uint64))


def test_exponents_in_unused_values_stay_on_the_compiled_path():
    tail = "277.419 191.8218 1036.233 519.1677 -1.2E-05 5e-3 +0.9692109 -.1239193 2"
    lines = [line.replace(JOINT_TAIL, tail) for line in skeleton_lines([[(3, joints(8))]])]
    sk = ntu_format._parse_fast(encode(lines), 2)
    assert sk is not None
    assert_same(sk, ntu_format._parse_lines(encode(lines), 2))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_every_line_end_is_read_by_the_compiled_path_with_the_same_arrays(real_dir, newline):
    data = first_frames((real_dir / "ntu" / "S001C003P008R002A058.skeleton").read_bytes(), 5)
    text = data.replace(b"\r\n", b"\n").replace(b"\n", newline.encode())
    sk = ntu_format._parse_fast(text, 2)
    assert sk is not None
    assert_same(sk, ntu_format._parse_lines(data, 2))


@pytest.mark.parametrize("variant", [
    lambda t: t.replace(b" ", b"  "),
    lambda t: t.replace(b" ", b"\t"),
    lambda t: t.replace(b"\n", b" \n"),
    lambda t: t.rstrip(b"\n"),
], ids=["double-spaces", "tabs", "trailing-spaces", "no-final-newline"])
def test_unusual_blanks_stay_on_the_compiled_path(variant):
    data = variant(encode(BASE))
    sk = ntu_format._parse_fast(data, 2)
    assert sk is not None
    assert_same(sk, ntu_format._parse_lines(data, 2))


def test_more_fixups_than_the_first_room_are_all_read_with_float():
    texts = [f"0.{k:03d}0000000000000000{k % 10}" for k in range(150)]  # 20+ digits each
    body = [tuple(texts[i:i + 3]) for i in range(0, 75, 3)]
    frames = [[(1, body)], [(2, [tuple(texts[75 + i:75 + i + 3]) for i in range(0, 75, 3)])]]
    sk = ntu_format._parse_fast(encode(skeleton_lines(frames)), 2)
    assert sk is not None
    expected = np.array([float(t) for t in texts]).reshape(2, 25, 3)
    assert np.array_equal(sk.xyz[:, 0], expected)


def test_real_files_read_in_parallel_threads_equal_one_at_a_time(real_dir):
    from concurrent.futures import ThreadPoolExecutor

    datas = [p.read_bytes() for p in real_skeletons(real_dir)[:8]]
    alone = [parse_ntu(d, max_bodies=4) for d in datas]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda d: parse_ntu(d, max_bodies=4), datas * 3))
    for i, sk in enumerate(together):
        assert_same(sk, alone[i % len(datas)])


VALUE_TEXTS = {  # text: read by the compiled path (True), declined but read (None), bad (False)
    "1.e5": True, "+.5": True, "1e-0": True, "00": True, "-00.00e-00": True, "-1.5E+003": True,
    "5.": True, "1_0": None, "infinity": None, "nan": None, ".e5": False, "e5": False,
    "1e": False, "1e+": False, "-": False, ".": False, "-.": False, "1..2": False,
    "1e5e5": False, "0x1": False, "+-1": False, "1-": False, "1e5.": False,
}


@pytest.mark.parametrize("column", [0, 5], ids=["x", "unused"])
@pytest.mark.parametrize("text", VALUE_TEXTS, ids=list(VALUE_TEXTS))
def test_a_value_is_read_by_the_compiled_path_only_in_the_plain_number_forms(text, column):
    data = encode(edit_token(7, column, text)(BASE))
    fast = ntu_format._parse_fast(data, 2)
    expected = VALUE_TEXTS[text]
    assert (fast is not None) == bool(expected)
    if expected is False:
        with pytest.raises(SkeletonFormatError, match="is not a number"):
            parse_ntu(data)
    elif column == 0 and not ntu_format.finite_float32(float(text)):  # nan, infinity
        with pytest.raises(SkeletonFormatError, match="not a finite float32 number"):
            parse_ntu(data)
    else:
        sk = parse_ntu(data)  # line 7: joint 3 of the first body
        if column == 0:
            assert sk.xyz[0, 0, 2, 0] == float(text)
        if fast is not None:
            assert_same(fast, sk)


NON_FINITE = ["nan", "-nan", "NaN", "inf", "-Infinity", "1e300", "-3.5e38", "1e39",
              "340282356779733661637539395458142568448"]  # 2**128 - 2**103: rounds to inf


@pytest.mark.parametrize("text", NON_FINITE)
@pytest.mark.parametrize("line, column", [(7, 0), (60, 2)], ids=["x-body1", "z-body2"])
def test_a_kept_coordinate_that_is_not_finite_as_float32_is_refused_with_its_line(
        text, line, column):
    data = encode(edit_token(line, column, text)(BASE))
    with pytest.raises(SkeletonFormatError) as err:
        parse_ntu(data)
    assert err.value.line == line and "not a finite float32 number" in err.value.reason
    assert f'"{text[:12]}' in err.value.reason
    assert ntu_format._parse_fast(data, 2) is None  # the compiled path declines it


def test_the_largest_finite_float32_and_non_finite_unused_values_are_read():
    largest = "3.4028235e38"  # rounds to float32's largest finite value
    sk = parse_ntu(encode(edit_token(7, 1, largest)(BASE)))
    assert np.float32(sk.xyz[0, 0, 2, 1]) == np.finfo(np.float32).max
    for line, column in ((7, 5), (3, 8)):  # depthY of a joint, leanY of a body: never stored
        assert parse_ntu(encode(edit_token(line, column, "nan")(BASE))).xyz.shape == (2, 2, 25, 3)
    beyond = encode(edit_token(60, 2, "1e300")(BASE))  # z of the second body
    assert parse_ntu(beyond, max_bodies=1).xyz.shape == (2, 1, 25, 3)  # that body is not kept


def test_store_layout_reader_equals_float32_of_the_exact_reader(real_dir):
    """parse_ntu_frames: float32 (T, M, 3, 25) straight from the kernel, fix-ups and the line
    reader included, bit for bit `parse_ntu(...).xyz.astype(float32).transpose(0, 1, 3, 2)`."""
    texts = ["1.00000000000000000000001", "3.4028235e38", "-1e-50", "0.1"]  # fix-ups
    body = joints(9)
    body[:2] = [tuple(texts[:3]), (texts[3], "2", "-0")]
    cases = [p.read_bytes() for p in real_skeletons(real_dir)[:6]]
    cases += [encode(skeleton_lines([[(1, body)], []])),  # a fix-up, then a frame of nobody
              encode(edit_token(7, 8, "1_0")(BASE))]  # declined: the line reader reads it
    for data in cases:
        for max_bodies in (1, 2, 4):
            exact = parse_ntu(data, max_bodies)
            frames = ntu_format.parse_ntu_frames(data, max_bodies)
            expected = exact.xyz.astype(np.float32).transpose(0, 1, 3, 2)
            assert frames.xyz.dtype == np.float32 and frames.xyz.flags.c_contiguous
            assert np.array_equal(frames.xyz.view(np.uint32), expected.view(np.uint32))
            assert np.array_equal(frames.body_id, exact.body_id)
            assert np.array_equal(frames.body_count, exact.body_count)
