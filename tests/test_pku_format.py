"""PKU-MMD skeleton, label and split files, on the real files and on small bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

from asar_data.ntu_format import SkeletonFormatError
from asar_data.pku_format import (
    LabelProblem,
    PkuLabel,
    check_segment,
    parse_pku_labels,
    parse_pku_skeleton,
    parse_pku_split,
)


def real_skeleton_files(real_dir):
    paths = sorted((real_dir / "pku").glob("*/*.txt"))
    paths = [p for p in paths if "Label" not in p.parent.name]
    assert len(paths) == 6
    return paths


def test_real_skeleton_files_give_one_row_per_line_equal_to_float(real_dir):
    for path in real_skeleton_files(real_dir):
        data = path.read_bytes()
        lines = data.splitlines()
        frames = parse_pku_skeleton(data)
        assert frames.shape == (len(lines), 2, 25, 3) and frames.dtype == np.float64, path.name
        for i in range(0, len(lines), 97):
            expected = np.array([float(v) for v in lines[i].split()])
            assert np.array_equal(frames[i].ravel().view(np.uint64), expected.view(np.uint64))


def test_a_missing_second_body_reads_as_zeros(real_dir):
    path = real_dir / "pku" / "PKU_Skeleton_Renew" / "0036-L.txt"
    frames = parse_pku_skeleton(path.read_bytes())
    one_body = ~frames[:, 1].any(axis=(1, 2))
    assert one_body.any() and frames[one_body, 0].any()


def frame_line(seed: int) -> bytes:
    return " ".join(f"{v:.6f}" for v in np.random.default_rng(seed).normal(size=150)).encode()


def test_crlf_and_trailing_blank_lines_are_accepted():
    lines = [frame_line(1), frame_line(2)]
    plain = parse_pku_skeleton(b"\n".join(lines) + b"\n")
    assert plain.shape == (2, 2, 25, 3)
    assert np.array_equal(parse_pku_skeleton(b"\r\n".join(lines) + b"\r\n\r\n\n"), plain)


@pytest.mark.parametrize("case", [
    (lambda lines: lines[:1] + [lines[1].rsplit(b" ", 1)[0]] + lines[2:], 2,
     "line has 149 values, expected 150"),
    (lambda lines: lines[:2] + [lines[2] + b" 1.0"], 3, "line has 151 values, expected 150"),
    (lambda lines: [lines[0].replace(b" ", b" 2.7e ", 1).rsplit(b" ", 1)[0]] + lines[1:], 1,
     '"2.7e" is not a number'),
    (lambda lines: lines[:1] + [b""] + lines[1:], 2, "line has 0 values, expected 150"),
], ids=["short-line", "long-line", "not-a-number", "blank-line-inside"])
def test_bad_skeleton_lines_are_named(case):
    change, line, reason = case
    lines = [frame_line(i) for i in range(3)]
    with pytest.raises(SkeletonFormatError) as err:
        parse_pku_skeleton(b"\n".join(change(lines)) + b"\n")
    assert (err.value.line, err.value.reason) == (line, reason)


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "1e300", "-4e38"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_a_value_that_is_not_finite_as_float32_is_refused_with_its_line(text, newline):
    lines = [frame_line(i) for i in range(4)]
    tokens = lines[2].split(b" ")
    tokens[77] = text.encode()
    lines[2] = b" ".join(tokens)
    with pytest.raises(SkeletonFormatError) as err:
        parse_pku_skeleton(newline.join(lines) + newline)
    assert (err.value.line, err.value.reason) == (3, f'"{text}" is not a finite float32 number')


def test_an_empty_skeleton_file_is_refused():
    with pytest.raises(SkeletonFormatError, match="empty file"):
        parse_pku_skeleton(b"\n \n")


def test_real_label_files_hold_21545_lines_with_four_problems(real_dir):
    paths = sorted((real_dir / "pku" / "Train_Label_PKU_final").glob("*.txt"))
    assert len(paths) == 1076
    n_lines, found = 0, {}
    for path in paths:
        labels, problems = parse_pku_labels(path.read_text())
        assert not problems, path.name
        n_lines += len(labels)
        assert all(1 <= lab.cls <= 51 and lab.confidence in (0, 1, 2) for lab in labels)
        for lab in labels:
            fixed, problem = check_segment(lab, None)
            if problem is not None:
                found[path.stem] = (problem, fixed)
    assert n_lines == 21545
    assert set(found) == {"0043-L", "0089-L", "0089-M", "0089-R"}
    problem, fixed = found["0043-L"]
    assert (problem.line, problem.action, fixed) == (21, "skipped", None)
    assert problem.reason == "end 4036 is before start 4925"
    for view in "LMR":
        problem, fixed = found[f"0089-{view}"]
        assert (problem.line, problem.action, fixed.start) == (1, "repaired", 1)


def test_segment_rules_against_the_video_length():
    def lab(start, end):
        return PkuLabel(7, 3, start, end, 2)

    assert check_segment(lab(10, 20), 100) == (lab(10, 20), None)
    repaired = LabelProblem(7, "start 0 -> 1", "repaired")
    assert check_segment(lab(0, 20), 100) == (lab(1, 20), repaired)
    fixed, problem = check_segment(lab(90, 120), 100)
    assert (fixed.start, fixed.end, problem.action) == (90, 100, "repaired")
    assert problem.reason == "end 120 beyond the video's 100 frames -> 100"
    fixed, problem = check_segment(lab(101, 120), 100)
    assert fixed is None and problem.action == "skipped" and "start 101" in problem.reason
    fixed, problem = check_segment(lab(0, 0), 100)
    assert fixed is None and problem.reason == "end 0 is before start 0"
    fixed, problem = check_segment(lab(0, 200), 100)
    assert (fixed.start, fixed.end) == (1, 100)
    assert problem.reason.startswith("start 0 -> 1; end 200")


def test_malformed_label_lines_are_skipped_with_their_line():
    text = "1,10,20,2\n\n1,10\nx,1,2,1\n52,1,2,1\n3,-4,10,1\n 4 , 30 , 40 , 1 \n"
    labels, problems = parse_pku_labels(text)
    assert [(lab.line, lab.cls, lab.start, lab.end) for lab in labels] == [(1, 1, 10, 20),
                                                                           (7, 4, 30, 40)]
    assert [(p.line, p.action) for p in problems] == [(3, "skipped"), (4, "skipped"),
                                                      (5, "skipped"), (6, "skipped")]
    assert problems[2].reason == "class 52 is outside 1-51"


def test_real_split_files_give_the_training_and_test_videos(real_dir):
    train, test = parse_pku_split((real_dir / "lists" / "cross-subject.txt").read_text())
    assert (len(train), len(test)) == (944, 132)
    assert train[:2] == ["0002-L", "0002-M"] and not set(train) & set(test)
    train, test = parse_pku_split((real_dir / "lists" / "cross-view.txt").read_text())
    assert (len(train), len(test)) == (717, 359)
    assert all(v.endswith("-M") for v in test)


def test_split_files_of_another_layout_are_refused():
    with pytest.raises(ValueError, match="4 lines"):
        parse_pku_split("Training videos:\n0002-L, 0003-L\n")
    with pytest.raises(ValueError, match="0002-Q"):
        parse_pku_split("Training videos:\n0002-Q, \nValidation videos:\n0003-L\n")
