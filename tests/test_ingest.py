"""The ingest stage: exact, skipped when unchanged, resumable, and every bad file reported."""
from __future__ import annotations

import csv
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from asar_data.names import ntu_name_fields, read_name_list
from asar_data.pku_format import check_segment, parse_pku_labels, parse_pku_split
from asar_data.raw_store import RawStore
from asar_data.splits import ntu_split
from pipelines.export import export_reference
from pipelines.ingest import ingest_ntu, ingest_pku
from pipelines.manifest import Manifest
from pipelines.workspace import Workspace


def report_rows(result) -> list[dict[str, str]]:
    with open(result.report, newline="") as f:
        return list(csv.DictReader(f))


def store_files(store: str) -> dict[str, bytes]:
    """Every file of a store, by relative path: byte-level equality of two stores."""
    out = {}
    for root, _, files in os.walk(store):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, store)] = Path(path).read_bytes()
    return out


def test_ingested_samples_equal_the_reference_reader(tmp_path, synth_ntu, reference_parse):
    result = ingest_ntu(Workspace(str(tmp_path)), str(synth_ntu), workers=1)
    raw = RawStore(result.output)
    names = sorted(p.name for p in synth_ntu.iterdir())
    assert list(raw.meta("name")) == [n[: -len(".skeleton")] for n in names]
    for i in (0, 17, len(names) - 1):
        expected = reference_parse.read_xyz(str(synth_ntu / names[i])).astype(np.float32)
        np.testing.assert_array_equal(raw.sample(i), expected)


def test_real_files_ingest_exactly_and_duplicates_and_foreign_files_are_reported(
    tmp_path, real_dir, reference_parse
):
    result = ingest_ntu(Workspace(str(tmp_path)), str(real_dir / "ntu"), workers=1)
    raw = RawStore(result.output)
    top = sorted(p.name for p in (real_dir / "ntu").glob("*.skeleton"))
    assert list(raw.meta("name")) == [n[: -len(".skeleton")] for n in top]
    for i, name in enumerate(top):
        expected = reference_parse.read_xyz(str(real_dir / "ntu" / name)).astype(np.float32)
        np.testing.assert_array_equal(raw.sample(i), expected)
    reasons = {(r["file"], r["action"]) for r in report_rows(result)}
    assert ("S001C001P001R001A001.skeleton", "skipped") in reasons  # the LF copy, a duplicate
    assert ("S001C001P001R001A001.skeleton.npy", "ignored") in reasons
    assert result.summary["ignored_files"] == 1


def test_body_ids_are_kept_as_exact_integers(tmp_path, real_dir):
    result = ingest_ntu(Workspace(str(tmp_path)), str(real_dir / "ntu"), workers=1)
    raw = RawStore(result.output)
    _, ids, _ = raw.frames(0, len(raw))
    assert ids.dtype == np.uint64
    assert 72057594037931101 in set(ids[:, 0].tolist())


def test_published_split_sizes_follow_from_the_real_name_lists(real_dir):
    for dataset, expected in (
        ("ntu60", {"xsub": (40091, 16487), "xview": (37646, 18932)}),
        ("ntu120", {"xsub": (63026, 50919), "xset": (54468, 59477)}),
    ):
        lists = real_dir / "lists" / f"{dataset}_statistics"
        text = (lists / "skes_available_name.txt").read_text()
        meta = ntu_name_fields(read_name_list(text))
        for bench, (train, test) in expected.items():
            mask = ntu_split(meta, dataset, bench)
            assert (int(mask.sum()), int((~mask).sum())) == (train, test), (dataset, bench)


def test_official_missing_list_is_applied_and_counted(tmp_path, synth_ntu):
    raw = tmp_path / "raw"
    shutil.copytree(synth_ntu, raw)
    donor = sorted(raw.iterdir())[0]
    shutil.copy(donor, raw / "S001C002P005R002A008.skeleton")  # on the NTU-60 missing list
    ws = Workspace(str(tmp_path / "w"))
    result = ingest_ntu(ws, str(raw), workers=1)
    assert result.summary["missing_list_skipped"] == 1
    assert "S001C002P005R002A008" not in set(RawStore(result.output).meta("name"))
    kept = ingest_ntu(ws, str(raw), workers=1, skip_missing=False)
    assert "S001C002P005R002A008" in set(RawStore(kept.output).meta("name"))


def test_dataset_is_detected_from_the_file_names(tmp_path, synth_ntu):
    raw = tmp_path / "raw"
    shutil.copytree(synth_ntu, raw)
    assert ingest_ntu(Workspace(str(tmp_path / "a")), str(raw), workers=1).dataset == "ntu60"
    shutil.copy(sorted(raw.iterdir())[0], raw / "S018C001P050R001A100.skeleton")
    assert ingest_ntu(Workspace(str(tmp_path / "b")), str(raw), workers=1).dataset == "ntu120"


def test_unchanged_ingest_is_skipped_without_reading_a_file_and_a_changed_file_reruns(
        tmp_path, synth_ntu, monkeypatch):
    raw = tmp_path / "raw"
    shutil.copytree(synth_ntu, raw)
    ws = Workspace(str(tmp_path / "w"))
    assert ingest_ntu(ws, str(raw), workers=1).action == "start"
    from asar_data import storage

    read = []
    real = storage.read_bytes
    monkeypatch.setattr(storage, "read_bytes", lambda loc: read.append(loc) or real(loc))
    again = ingest_ntu(ws, str(raw), workers=1)
    assert again.action == "skip" and not [r for r in read if r.endswith(".skeleton")]
    monkeypatch.undo()
    victim = sorted(raw.iterdir())[3]
    os.utime(victim, (1e9, 1e9))
    changed = ingest_ntu(ws, str(raw), workers=1)
    assert changed.action == "start" and "input raw changed" in changed.reason


def _write_bad_files(folder: Path, good: Path) -> dict[str, tuple[int | None, str]]:
    """Bad variants of a good file; returns name -> (line, reason fragment)."""
    lines = good.read_bytes().split(b"\r\n")
    bad = {}

    def put(name: str, content: bytes, line: int | None, reason: str) -> None:
        (folder / name).write_bytes(content)
        bad[name] = (line, reason)

    put("S001C001P001R001A041.skeleton", b"\r\n".join(lines[:40]), None, "file ends")
    garbled = list(lines)
    garbled[6] = b"2.7e " + garbled[6].split(b" ", 1)[1]  # a joint line's x
    put("S001C001P001R001A042.skeleton", b"\r\n".join(garbled), 7, "2.7e")
    wrong_joints = list(lines)
    wrong_joints[3] = b"24"  # first body's joint count
    put("S001C001P001R001A043.skeleton", b"\r\n".join(wrong_joints), 4, "joint")
    short_line = list(lines)
    short_line[10] = b" ".join(short_line[10].split()[:11])
    put("S001C001P001R001A044.skeleton", b"\r\n".join(short_line), 11, "11 values")
    put("S001C001P001R001A045.skeleton", b"", None, "empty")
    put("S001C001P001R001A046.skeleton", b"0\r\n", 1, "0 frames")
    os.symlink(folder / "gone.skeleton", folder / "S001C001P001R001A047.skeleton")
    bad["S001C001P001R001A047.skeleton"] = (None, "unreadable")
    return bad


def test_bad_files_are_reported_with_line_and_reason_and_good_files_kept(tmp_path, synth_ntu):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = sorted(synth_ntu.iterdir())[:3]
    for g in good:
        shutil.copy(g, raw / g.name)
    bad = _write_bad_files(raw, good[0])
    (raw / "README.txt").write_text("not a sample")
    result = ingest_ntu(Workspace(str(tmp_path / "w")), str(raw), workers=1)
    assert result.summary["samples"] == 3
    rows = {r["file"]: r for r in report_rows(result)}
    for name, (line, fragment) in bad.items():
        assert rows[name]["action"] == "skipped", name
        assert fragment in rows[name]["reason"], (name, rows[name]["reason"])
        if line is not None:
            assert rows[name]["line"] == str(line), (name, rows[name])
    assert rows["README.txt"]["action"] == "ignored"
    assert result.summary["problems_by_action"] == {"skipped": len(bad), "ignored": 1}


def test_pku_part1_segment_count_from_the_real_labels_and_splits(real_dir):
    labels = sorted((real_dir / "pku" / "Train_Label_PKU_final").glob("*.txt"))
    assert len(labels) == 1076
    kept = skipped = repaired = 0
    for path in labels:
        rows, problems = parse_pku_labels(path.read_text())
        assert not problems
        length = max(r.end for r in rows) + 10  # a skeleton file long enough for every label
        for row in rows:
            fixed, problem = check_segment(row, length)
            kept += fixed is not None
            skipped += problem is not None and problem.action == "skipped"
            repaired += problem is not None and problem.action == "repaired"
    assert (kept, skipped, repaired) == (21544, 1, 3)  # 0043-L line 21; 0089-L/M/R line 1
    train, test = parse_pku_split((real_dir / "lists" / "cross-subject.txt").read_text())
    assert len(train) + len(test) == 1076 and not set(train) & set(test)


def test_pku_ingest_cuts_labelled_segments_and_reports_label_problems(tmp_path, real_dir):
    from asar_data.synth import write_pku_skeletons_for_labels

    label_dir = tmp_path / "Train_Label_PKU_final"
    label_dir.mkdir()
    chosen = ["0043-L.txt", "0089-L.txt", "0002-M.txt"]
    for name in chosen:
        shutil.copy(real_dir / "pku" / "Train_Label_PKU_final" / name, label_dir / name)
    skel_dir = tmp_path / "PKU_Skeleton_Renew"
    write_pku_skeletons_for_labels(label_dir, skel_dir, seed=1)
    expected = sum(len(parse_pku_labels((label_dir / n).read_text())[0]) for n in chosen) - 1
    result = ingest_pku(
        Workspace(str(tmp_path / "w")), None, part=1, skeletons=str(skel_dir),
        labels=str(label_dir), split_files={"cs": str(real_dir / "lists" / "cross-subject.txt")},
        workers=1,
    )
    raw = RawStore(result.output)
    assert len(raw) == expected
    rows = report_rows(result)
    assert {"file": "0043-L.txt", "line": "21"}.items() <= next(
        r for r in rows if r["file"] == "0043-L.txt").items()
    assert any(r["file"] == "0089-L.txt" and r["action"] == "repaired" for r in rows)
    assert any("unknown video" in r["reason"] and r["file"] == "cross-subject.txt" for r in rows)
    names = list(raw.meta("name"))
    assert names == sorted(names) and names[0].startswith("F002V002C")
    seg = raw.meta("segment")[names.index("F089V001C023L001")]
    assert seg.tolist()[:2] == [1, 1]  # line 1, start repaired from frame 0 to frame 1
    assert raw.meta("frame_count")[names.index("F089V001C023L001")] == 23


def test_pku_label_beyond_the_video_is_clamped(tmp_path, synth_pku):
    raw = tmp_path / "pku"
    shutil.copytree(synth_pku, raw)
    label = sorted((raw / "Train_Label_PKU_final").iterdir())[0]
    video_frames = len((raw / "PKU_Skeleton_Renew" / label.name).read_text().splitlines())
    text = label.read_text().rstrip("\n")
    label.write_text(text + f"\n5,{video_frames - 9},{video_frames + 50},1\n")
    result = ingest_pku(Workspace(str(tmp_path / "w")), str(raw), part=1, workers=1)
    rows = [r for r in report_rows(result) if r["file"] == label.name]
    assert [r["action"] for r in rows] == ["repaired"]
    assert "beyond" in rows[0]["reason"] or "video" in rows[0]["reason"]
    assert result.summary["benchmarks"] == ["cs", "cv"]


def test_export_reference_raw_layout(tmp_path, synth_ntu, reference_parse):
    ws = Workspace(str(tmp_path / "w"))
    ingest_ntu(ws, str(synth_ntu), workers=1)
    counts = export_reference(ws, "ntu60", "xview", "raw", str(tmp_path / "out")).summary
    data = np.load(tmp_path / "out" / "train_data.npy", mmap_mode="r")
    with open(tmp_path / "out" / "train_label.pkl", "rb") as f:
        names, labels = pickle.load(f)
    assert data.shape == (counts["train"], 3, 300, 25, 2) and data.dtype == np.float32
    assert names == sorted(names) and all(n.endswith(".skeleton") for n in names)
    assert all(int(n[5:8]) in (2, 3) for n in names)  # cameras 2 and 3 train in xview
    assert labels[0] == int(names[0][17:20]) - 1 and isinstance(labels[0], int)
    ref = reference_parse.read_xyz(str(synth_ntu / names[0])).astype(np.float32)
    t = min(ref.shape[1], 300)
    np.testing.assert_array_equal(data[0, :, :t], ref[:, :t])
    assert not data[0, :, t:].any()
    val = np.load(tmp_path / "out" / "val_data.npy", mmap_mode="r")
    assert counts["train"] + counts["val"] == 120 and len(val) == counts["val"]


def test_killed_ingest_resumes_to_a_store_identical_to_an_uninterrupted_one(tmp_path):
    from asar_data.synth import write_ntu_dataset

    raw = tmp_path / "raw"
    write_ntu_dataset(raw, samples=400, classes=6, seed=11)  # long enough to kill mid-run
    cmd = [sys.executable, "-m", "cli", "ingest", "ntu", "--raw", str(raw), "--workers", "1",
           "--shard-files", "4"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run(cmd + ["--workdir", str(tmp_path / "whole")], check=True, env=env,
                   capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--workdir", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = str(killed / "ntu60" / "raw.manifest.json")
    deadline = time.time() + 60
    while time.time() < deadline:
        m = Manifest.load(manifest)
        if m is not None and len(m.shards_done) >= 3:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = Manifest.load(manifest)
    assert m is not None and not m.complete and 0 < len(m.shards_done) < m.shards_total
    done_before = len(m.shards_done)
    out = subprocess.run(cmd + ["--workdir", str(killed)], check=True, env=env,
                         capture_output=True, text=True)
    assert "resuming" in out.stderr and f"{done_before} of" in out.stderr
    assert Manifest.load(manifest).complete
    assert store_files(str(killed / "ntu60" / "raw.zarr")) == store_files(
        str(tmp_path / "whole" / "ntu60" / "raw.zarr"))


# ---------------------------------------------------------------- bad values, names, links


FIRST_JOINT_LINE = 4  # 0-based: line 5 of an NTU file


@pytest.mark.parametrize("value, path", [("nan", "line reader"), ("1e300", "compiled fix-up"),
                                         ("-inf", "line reader")])
def test_a_file_with_a_non_finite_coordinate_is_skipped_with_its_line(tmp_path, synth_ntu,
                                                                      value, path):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = sorted(synth_ntu.iterdir())[:3]
    for g in good:
        shutil.copy(g, raw / g.name)
    lines = good[0].read_bytes().split(b"\r\n")
    tokens = lines[FIRST_JOINT_LINE].split(b" ")
    tokens[1] = value.encode()  # y of joint 1 of the first body
    lines[FIRST_JOINT_LINE] = b" ".join(tokens)
    bad = "S001C001P001R001A049.skeleton"
    (raw / bad).write_bytes(b"\r\n".join(lines))
    result = ingest_ntu(Workspace(str(tmp_path / "w")), str(raw), workers=1)
    assert result.summary["samples"] == 3
    row = {r["file"]: r for r in report_rows(result)}[bad]
    assert (row["line"], row["action"]) == ("5", "skipped"), path
    assert f'y "{value}" is not a finite float32 number' == row["reason"]
    raw_store = RawStore(result.output)
    assert np.isfinite(raw_store.frames(0, len(raw_store))[0]).all()


def test_a_pku_video_with_a_non_finite_value_is_skipped_with_its_line(tmp_path, synth_pku):
    raw = tmp_path / "pku"
    shutil.copytree(synth_pku, raw)
    skel = sorted((raw / "PKU_Skeleton_Renew").iterdir())[0]
    lines = skel.read_bytes().split(b"\n")
    tokens = lines[6].split(b" ")
    tokens[40] = b"nan"
    lines[6] = b" ".join(tokens)
    skel.write_bytes(b"\n".join(lines))
    result = ingest_pku(Workspace(str(tmp_path / "w")), str(raw), part=1, workers=1)
    rows = [r for r in report_rows(result) if r["file"] == skel.name]
    assert [(r["line"], r["action"]) for r in rows] == [("7", "skipped")]
    assert "not a finite float32 number" in rows[0]["reason"]
    assert skel.stem not in set(RawStore(result.output).meta("video"))


@pytest.mark.parametrize("names, dataset", [
    (["S001C001P001R001A000", "S001C001P001R001A999", "S001C000P001R001A001",
      "S000C001P001R001A001", "S001C001P000R001A001", "S001C001P001R000A001"], "ntu60"),
])
def test_out_of_range_names_are_skipped_and_never_change_the_dataset(tmp_path, synth_ntu,
                                                                     names, dataset):
    raw = tmp_path / "raw"
    shutil.copytree(synth_ntu, raw)
    donor = sorted(raw.iterdir())[0]
    for n in names:
        shutil.copy(donor, raw / f"{n}.skeleton")
    result = ingest_ntu(Workspace(str(tmp_path / "w")), str(raw), workers=1)
    assert result.dataset == dataset  # A999 is not an NTU-120 sample: no switch to ntu120
    rows = {r["file"]: r for r in report_rows(result)}
    for n in names:
        assert rows[f"{n}.skeleton"]["action"] == "skipped", n
        assert "is outside" in rows[f"{n}.skeleton"]["reason"], n
    assert rows["S001C001P001R001A999.skeleton"]["reason"] == (
        "not an NTU sample: action 999 is outside 1-120")
    labels = RawStore(result.output).meta("label")
    assert labels.min() >= 0 and labels.max() < 60
    assert result.summary["samples"] == 120


def test_a_symlinked_folder_is_listed_as_the_fingerprint_sees_it(tmp_path, synth_ntu):
    raw = tmp_path / "raw"
    raw.mkdir()
    files = sorted(synth_ntu.iterdir())
    for f in files[:4]:
        shutil.copy(f, raw / f.name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for f in files[4:10]:
        shutil.copy(f, elsewhere / f.name)
    os.symlink(elsewhere, raw / "linked")
    ws = Workspace(str(tmp_path / "w"))
    result = ingest_ntu(ws, str(raw), workers=1)
    assert result.summary["samples"] == 10  # the linked folder's six files too
    os.utime(elsewhere / files[5].name, (1e9, 1e9))  # a change behind the link
    assert ingest_ntu(ws, str(raw), workers=1).action == "start"


def test_a_symlink_loop_and_a_fifo_are_reported_and_skipped_without_hanging(tmp_path, synth_ntu):
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    files = sorted(synth_ntu.iterdir())
    for f in files[:3]:
        shutil.copy(f, raw / "sub" / f.name)
    os.symlink(raw, raw / "sub" / "back")  # a loop: raw/sub/back -> raw
    os.symlink(raw / "self.skeleton", raw / "self.skeleton")  # a link to itself
    fifo = raw / "S001C001P001R001A048.skeleton"
    os.mkfifo(fifo)  # opening it would wait for a writer forever

    def hang(*_):
        raise TimeoutError("the ingest hung")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)
    try:
        result = ingest_ntu(Workspace(str(tmp_path / "w")), str(raw), workers=1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert result.summary["samples"] == 3
    rows = {r["file"]: r for r in report_rows(result)}
    assert rows["sub/back"]["action"] == "skipped" and "loop" in rows["sub/back"]["reason"]
    assert "loop" in rows["self.skeleton"]["reason"]
    assert rows[fifo.name]["action"] == "skipped"
    assert rows[fifo.name]["reason"] == "not a regular file (FIFO): not opened"


def _reference_folder(folder: Path, data: np.ndarray, names: list[str], labels: list[int]):
    folder.mkdir(exist_ok=True)
    np.save(folder / "train_data.npy", data)
    with open(folder / "train_label.pkl", "wb") as f:
        pickle.dump((names, labels), f)
    return str(folder / "train_data.npy"), str(folder / "train_label.pkl")


def _reference_data(n: int, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(3)
    data = np.zeros((n, 3, 20, 25, 2), dtype)
    data[:, :, :15, :, 0] = rng.standard_normal((n, 3, 15, 25))
    return data


def test_reference_rows_with_non_finite_values_are_reported_as_such(tmp_path):
    from pipelines.ingest import ingest_reference

    data = _reference_data(5, np.float64)
    data[1, 0, 3, 4, 0] = np.nan
    data[2] = np.nan  # all NaN: non-finite, not "all zeros"
    data[3, 2, 0, 0, 0] = 1e300  # finite in float64, infinite in float32
    data[4] = 0
    names = [f"s{i}" for i in range(5)]
    d, lab = _reference_folder(tmp_path / "ref", data, names, [0, 1, 2, 0, 1])
    result = ingest_reference(Workspace(str(tmp_path / "w")), "ref", d, lab, workers=1)
    reasons = {r["file"]: r["reason"] for r in report_rows(result)}
    for name in ("s1", "s2", "s3"):
        assert reasons[name].startswith("not a finite float32 number in train_data.npy"), name
    assert reasons["s4"] == "sample is all zeros"
    raw = RawStore(result.output)
    assert list(raw.meta("name")) == ["s0"]
    assert np.isfinite(raw.frames(0, 1)[0]).all()


@pytest.mark.parametrize("labels, classes, message", [
    ([0, 1, -1], None, "label -1 of sample 's2'"),
    ([0, 1, 40000], None, "label 40000 of sample 's2'"),
    ([0, 5, 1], 5, "label 5 of sample 's1'"),
])
def test_reference_labels_out_of_range_are_refused_in_one_line(tmp_path, labels, classes,
                                                               message):
    from asar_data.errors import AsarError
    from pipelines.ingest import ingest_reference

    d, lab = _reference_folder(tmp_path / "ref", _reference_data(3), ["s0", "s1", "s2"], labels)
    with pytest.raises(AsarError, match=message) as err:
        ingest_reference(Workspace(str(tmp_path / "w")), "ref", d, lab, classes=classes,
                         workers=1)
    assert lab in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "w" / "ref" / "raw.zarr").exists()


@pytest.mark.parametrize("content, message", [
    (pickle.dumps((["a"], [0]))[:-5], "truncated"),
    (pickle.dumps((["a"], [os.system])), "refused to load global"),
    (b"not a pickle at all", "not a readable label pickle"),
], ids=["truncated", "refused", "garbage"])
def test_a_bad_label_pickle_is_one_line_naming_the_file(tmp_path, content, message):
    from asar_data.errors import AsarError
    from pipelines.ingest import ingest_reference

    d, lab = _reference_folder(tmp_path / "ref", _reference_data(1), ["a"], [0])
    Path(lab).write_bytes(content)
    with pytest.raises(AsarError, match=message) as err:
        ingest_reference(Workspace(str(tmp_path / "w")), "ref", d, lab, workers=1)
    assert str(err.value).startswith(lab) and "\n" not in str(err.value)


def test_a_shard_listed_done_whose_output_is_gone_is_redone(tmp_path, synth_ntu):
    ws = Workspace(str(tmp_path / "w"))
    whole = ingest_ntu(Workspace(str(tmp_path / "whole")), str(synth_ntu), workers=1,
                       shard_files=16)
    result = ingest_ntu(ws, str(synth_ntu), workers=1, shard_files=16)
    m = Manifest.load(str(tmp_path / "w" / "ntu60" / "raw.manifest.json"))
    m.complete = False  # as if killed after shard 3's entry but before the end
    m.save(str(tmp_path / "w" / "ntu60" / "raw.manifest.json"))
    record = Path(result.output) / "shards" / "000003" / "zarr.json"
    record.unlink()
    shutil.rmtree(Path(result.output) / "shards" / "000003" / "xyz")
    again = ingest_ntu(ws, str(synth_ntu), workers=1, shard_files=16)
    assert again.action == "resume" and record.exists()
    assert store_files(result.output) == store_files(whole.output)


def test_the_raw_folder_is_listed_once_per_ingest(tmp_path, synth_ntu, synth_pku, monkeypatch):
    """One walk gives the file list and the fingerprint: each folder is scanned once."""
    raw = tmp_path / "raw"
    shutil.copytree(synth_ntu, raw / "a")
    scanned: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path):
        scanned.append(os.path.realpath(path))
        return real_scandir(path)

    monkeypatch.setattr("asar_data.storage.os.scandir", counting_scandir)
    ingest_ntu(Workspace(str(tmp_path / "w")), str(raw), workers=1)
    inputs = [p for p in scanned if p.startswith(str(raw))]  # not the workspace's folders
    assert sorted(inputs) == sorted({str(raw), str(raw / "a")})
    scanned.clear()
    ingest_pku(Workspace(str(tmp_path / "w")), str(synth_pku), part=1, workers=1)
    inputs = [p for p in scanned if p.startswith(str(synth_pku))]
    assert len(inputs) == len(set(inputs)) and str(synth_pku) in inputs
