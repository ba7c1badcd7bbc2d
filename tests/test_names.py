"""Sample names and name lists: NTU metadata, PKU-MMD videos and segments, official lists."""
from __future__ import annotations

import numpy as np
import pytest

from asar_data.names import (
    NtuName,
    PkuVideo,
    missing_samples,
    ntu_name_fields,
    parse_ntu_name,
    parse_pku_segment_name,
    parse_pku_video,
    pku_segment_name,
    read_name_list,
)

NTU60_XSUB_TRAIN = [1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38]
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN + [
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103]


def test_ntu_name_round_trips_with_and_without_extension():
    name = parse_ntu_name("S017C003P020R002A058.skeleton")
    assert name == NtuName(17, 3, 20, 2, 58)
    assert name.label == 57
    assert str(name) == "S017C003P020R002A058"
    assert parse_ntu_name("S017C003P020R002A058") == name


@pytest.mark.parametrize("text", ["S01C003P020R002A058", "s017C003P020R002A058", "F036V001C010L003",
                                  "S017C003P020R002A058.npy", "S017C003P020R002A058x", ""])
def test_text_that_is_not_an_ntu_sample_name_gives_none(text):
    assert parse_ntu_name(text) is None


def test_vectorised_fields_equal_the_per_name_parse():
    names = ["S001C002P003R002A013", "S032C003P106R001A120.skeleton", "S017C001P040R002A060"]
    fields = ntu_name_fields(names)
    assert set(fields) == {"setup", "camera", "subject", "replication", "label"}
    for i, n in enumerate(names):
        p = parse_ntu_name(n)
        assert [int(fields[k][i]) for k in ("setup", "camera", "subject", "replication")] == [
            p.setup, p.camera, p.subject, p.replication]
        assert fields["label"][i] == p.label
    assert all(v.dtype == np.int16 for v in fields.values())


def test_out_of_range_fields_are_named_and_the_release_is_the_smallest_that_holds_it():
    from asar_data.names import ntu_dataset_of, ntu_name_problem

    assert ntu_name_problem(parse_ntu_name("S001C001P001R001A999")) == (
        "action 999 is outside 1-120")
    assert ntu_name_problem(parse_ntu_name("S001C000P001R001A001")) == "camera 0 is outside 1-3"
    assert ntu_name_problem(parse_ntu_name("S018C001P001R001A001"), "ntu60") == (
        "setup 18 is outside 1-17")
    for name, release in (("S017C003P040R002A060", "ntu60"), ("S001C001P041R001A001", "ntu120"),
                          ("S032C003P106R002A120", "ntu120"), ("S001C001P001R003A001", None),
                          ("S001C001P001R001A000", None), ("S033C001P001R001A001", None)):
        assert ntu_dataset_of(parse_ntu_name(name)) == release, name


def test_vectorised_fields_name_the_first_bad_name():
    with pytest.raises(ValueError, match="S001C002P003R002A0x3"):
        ntu_name_fields(["S001C002P003R002A013", "S001C002P003R002A0x3", "nope"])
    assert ntu_name_fields([])["label"].shape == (0,)


def read_real(real_dir, relative):
    return read_name_list((real_dir / "lists" / relative).read_text())


def test_real_name_lists_give_the_published_benchmark_sizes(real_dir):
    f60 = ntu_name_fields(read_real(real_dir, "ntu60_statistics/skes_available_name.txt"))
    f120 = ntu_name_fields(read_real(real_dir, "ntu120_statistics/skes_available_name.txt"))
    assert len(f60["label"]) == 56578 and len(f120["label"]) == 113945
    xsub60 = np.isin(f60["subject"], NTU60_XSUB_TRAIN)
    assert (xsub60.sum(), (~xsub60).sum()) == (40091, 16487)
    assert ((f60["camera"] != 1).sum(), (f60["camera"] == 1).sum()) == (37646, 18932)
    xsub120 = np.isin(f120["subject"], NTU120_XSUB_TRAIN)
    assert (xsub120.sum(), (~xsub120).sum()) == (63026, 50919)
    even = f120["setup"] % 2 == 0
    assert (even.sum(), (~even).sum()) == (54468, 59477)
    assert f60["label"].max() == 59 and f120["label"].max() == 119


def test_vectorised_fields_of_every_real_name_equal_the_per_name_parse(real_dir):
    """(Its speed is measured by benchmarks/parse_speed.py, not here.)"""
    from asar_data.names import parse_ntu_name

    names = read_real(real_dir, "ntu120_statistics/skes_available_name.txt")[::97]
    fields = ntu_name_fields(names)
    parsed = [parse_ntu_name(n) for n in names]
    assert fields["subject"].tolist() == [p.subject for p in parsed]
    assert fields["label"].tolist() == [p.action - 1 for p in parsed]


def test_shipped_missing_lists_hold_302_and_535_names_outside_the_available_ones(real_dir):
    m60, m120 = missing_samples("ntu60"), missing_samples("ntu120")
    assert (len(m60), len(m120)) == (302, 535)
    assert m60 <= m120
    assert all(parse_ntu_name(n) is not None for n in m120)
    available = set(read_real(real_dir, "ntu60_statistics/skes_available_name.txt"))
    assert not available & m60 and len(available) + len(m60) == 56880
    # The Python-side copy of the NTU-120 list has no header and the same names.
    assert set(read_real(real_dir, "ntu_rgb120_missings.txt")) == m120
    assert set(read_real(real_dir, "NTU_RGBD120_samples_with_missing_skeletons.txt")) == m120


def test_missing_samples_of_an_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="pku1"):
        missing_samples("pku1")


def test_name_list_skips_the_prose_header_and_blank_lines():
    text = "302 of them have missing skeletons.\nPlease ignore them.\n\nS001C002P005R002A008\n\n"
    assert read_name_list(text) == ["S001C002P005R002A008"]
    assert read_name_list("\ufeffA\r\nB\r\n") == ["A", "B"]
    with pytest.raises(ValueError, match="line 3"):
        read_name_list("A\nB\nC D\n")


def test_pku_video_ids_of_both_parts_parse_and_sort_by_video_then_view():
    assert parse_pku_video("0002-L") == PkuVideo(1, 2, 0, 0, 1)
    assert parse_pku_video("A01N08-R.txt") == PkuVideo(2, 0, 1, 8, 3)
    assert str(parse_pku_video("0364-M")) == "0364-M"
    assert str(parse_pku_video("A26N13-L")) == "A26N13-L"
    assert parse_pku_video("0002-L", part=2) is None and parse_pku_video("A01N08-L", part=1) is None
    for text in ("0002-X", "002-L", "0002L", "A1N08-L", "cross-subject"):
        assert parse_pku_video(text) is None
    ids = ["0010-L", "0002-R", "0002-L", "0002-M"]
    assert [str(v) for v in sorted(map(parse_pku_video, ids))] == ["0002-L", "0002-M", "0002-R",
                                                                  "0010-L"]


def test_pku_segment_names_follow_the_reference_pattern_and_parse_back():
    assert pku_segment_name("0036-L", 10, 3) == "F036V001C010L003"
    assert pku_segment_name("A01N08-M", 5, 3, 2) == "A001N008V002C005L003"
    seg = parse_pku_segment_name("F036V001C010L003")
    assert (str(seg.video), seg.cls, seg.line, seg.label) == ("0036-L", 10, 3, 9)
    assert str(parse_pku_segment_name("A001N008V002C005L003").video) == "A01N08-M"
    assert parse_pku_segment_name("F036V004C010L003") is None
    assert parse_pku_segment_name("S001C002P003R002A013") is None


def test_pku_segment_name_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError, match="line 1000"):
        pku_segment_name("0036-L", 10, 1000)
    with pytest.raises(ValueError, match="video id"):
        pku_segment_name("36-L", 10, 3)
