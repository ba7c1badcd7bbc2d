"""The synthetic dataset writer: real raw formats, realistic and learnable content."""
from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from asar_data.synth import (
    CLASS_NAMES,
    LIBRARY,
    MUTUAL_IDS,
    plan_ntu,
    write_ntu_dataset,
    write_pku_dataset,
    write_pku_skeletons_for_labels,
)
from asar_data.synth.ntu import (
    NTU_NAME,
    NTU_SPECS,
    Performance,
    _ghost_frames,
    _presence,
    missing_names,
    render_take,
)
from asar_data.synth.numfmt import CRLF, LF, SPACE, format_f6, format_g7

# C-style `%.7G` as Kinect text: no leading or trailing zeros, capital E, two-digit exponent.
NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d*[1-9])?|-?[1-9](\.\d*[1-9])?E[-+]\d\d")
BONES = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
         (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
         (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]
XSUB60_TRAIN = NTU_SPECS["ntu60"].train_subjects


def ntu_lines(data: bytes) -> list[tuple[str, list[str]]]:
    """Walk the NTU grammar: (kind, fields) per line, kind one of numFrame numBody body
    numJoint joint."""
    lines = data.decode().split("\r\n" if b"\r\n" in data else "\n")
    out, i = [("numFrame", lines[0].split())], 1
    for _ in range(int(lines[0])):
        out.append(("numBody", lines[i].split()))
        bodies, i = int(lines[i]), i + 1
        for _ in range(bodies):
            out.append(("body", lines[i].split()))
            out.append(("numJoint", lines[i + 1].split()))
            joints = int(lines[i + 1])
            out.extend(("joint", x.split()) for x in lines[i + 2 : i + 2 + joints])
            i += 2 + joints
    assert lines[i:] == [""], "text after the last frame"
    return out


@functools.cache
def body_tracks(data: bytes) -> tuple[np.ndarray, list[str], int]:
    """(T, B, 25, 12) joint values (zeros where a body is absent), body IDs in order of
    appearance, most bodies in one frame."""
    rows = ntu_lines(data)
    frames, ids, current, most = [], [], None, 0
    for kind, fields in rows:
        if kind == "numBody":
            current = {}
            frames.append(current)
            most = max(most, int(fields[0]))
        elif kind == "body":
            body_id = fields[0]
            ids += [body_id] if body_id not in ids else []
            current[body_id] = []
        elif kind == "joint":
            current[list(current)[-1]].append([float(v) for v in fields])
    out = np.zeros((len(frames), len(ids), 25, 12))
    for t, bodies in enumerate(frames):
        for body_id, joints in bodies.items():
            out[t, ids.index(body_id)] = joints
    return out, ids, most


@pytest.fixture(scope="module")
def ntu_set(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """120 files, 10 classes: every class in train and test of both NTU-60 benchmarks."""
    out = tmp_path_factory.mktemp("ntu")
    calls = []
    summary = write_ntu_dataset(out, samples=120, classes=10, seed=3, progress=calls.append)
    assert summary.files == 120 and calls[-1] == 120 and calls == sorted(calls)
    assert summary.class_names == CLASS_NAMES[:10] and summary.samples_per_class == (12,) * 10
    return out, {p.stem: p.read_bytes() for p in sorted(out.glob("*.skeleton"))}


@pytest.fixture(scope="module")
def two_person_takes() -> list[tuple[str, bytes]]:
    takes = [Performance(s, p, 1 + s % 2, a, (1, 2, 3))
             for s, p, a in [(1, 1, 50), (2, 3, 55), (3, 4, 58), (4, 7, 59), (5, 8, 52)]]
    return [f for take in takes for f in render_take(take, seed=1)]


def test_synthetic_files_parse_with_the_reference_reader(ntu_set, reference_parse):
    out, files = ntu_set
    for name in list(files)[:5]:
        xyz = reference_parse.read_xyz(str(out / f"{name}.skeleton"))
        frames = reference_parse.read_sequence(str(out / f"{name}.skeleton"))
        frame_count = int(files[name].split(b"\r\n")[0])
        assert xyz.shape == (3, frame_count, 25, 2) == (3, len(frames), 25, 2)
        assert np.isfinite(xyz).all() and np.abs(xyz[:, :, :, 0]).max() > 0.1


def test_line_structure_matches_a_real_file(ntu_set, real_dir):
    real = (real_dir / "ntu" / "S001C001P001R001A001.skeleton").read_bytes()
    real_kinds = {(kind, len(f)) for kind, f in ntu_lines(real)}
    for data in ntu_set[1].values():
        assert {(kind, len(f)) for kind, f in ntu_lines(data)} == real_kinds
        assert data.count(b"\n") == data.count(b"\r\n") and not data.endswith(b"\r\n\r\n")
        assert {f[0] for kind, f in ntu_lines(data) if kind == "numJoint"} == {"25"}


def test_numbers_are_written_like_the_real_files(ntu_set, real_dir):
    real = (real_dir / "ntu" / "S001C001P001R001A011.skeleton").read_bytes()
    for data in (real, *list(ntu_set[1].values())[:20]):
        for kind, fields in ntu_lines(data):
            values = fields[1:] if kind == "body" else fields  # fields[0] of a body: its ID
            bad = [v for v in values if not NUMBER.fullmatch(v)]
            assert not bad, bad[:5]
            digits = [len(re.sub(r"E.*|[-.]", "", v).lstrip("0")) for v in values]
            assert max(digits) <= 7
    tokens = b" ".join(ntu_set[1].values()).split()
    assert any(b"E-" in t for t in tokens), "tiny values are written with an exponent"


def test_format_g7_is_c_percent_7g_and_format_f6_is_c_percent_f():
    rng = np.random.default_rng(0)
    v = rng.normal(size=20000) * 10.0 ** rng.integers(-9, 7, 20000)
    v = np.concatenate([v, [0.0, -0.0, 25, 103, 1e-5, 9999999.6, 0.00012, -5.960464e-08]])
    text = format_g7(v, np.full(v.size, SPACE)).decode().split(" ")[:-1]
    assert text == ["%.7G" % (x + 0.0) for x in v]
    w = np.concatenate([rng.normal(size=5000) * 3, [-0.0, -1e-9, 0.0, 12.5]])
    seps = np.where(np.arange(w.size) % 150 == 149, LF, SPACE)
    assert format_f6(w, seps).decode().split() == [f"{x:f}" for x in w]
    assert format_g7(np.array([31101.0, 2.0]), np.array([SPACE, CRLF]),
                     np.array([1, 0])) == b"72057594037931101 2\r\n"


def test_same_seed_gives_the_same_bytes_and_other_seeds_differ(tmp_path):
    a = write_ntu_dataset(tmp_path / "a", samples=6, classes=3, seed=5)
    b = write_ntu_dataset(tmp_path / "b", samples=6, classes=3, seed=5)
    write_ntu_dataset(tmp_path / "c", samples=6, classes=3, seed=6)
    files = {d: {p.name: p.read_bytes() for p in (tmp_path / d).iterdir()} for d in "abc"}
    assert files["a"] == files["b"] and (a.files, a.bytes, a.frames) == (b.files, b.bytes, b.frames)
    assert files["a"] != files["c"]


@pytest.mark.parametrize("dataset, samples, classes", [("ntu60", 1200, 40), ("ntu120", 1200, 120)])
def test_names_are_unique_valid_and_cover_both_benchmarks(dataset, samples, classes):
    spec = NTU_SPECS[dataset]
    plan = plan_ntu(samples, classes, dataset, seed=0)
    names = [take.name(c) for take in plan for c in take.cameras]
    assert len(names) == len(set(names)) == samples
    assert not set(names) & missing_names()
    meta = np.array([[int(x) for x in NTU_NAME.fullmatch(n).groups()] for n in names])
    limits = (spec.setups, 3, spec.subjects, 2, classes)
    assert (meta.min(0) >= 1).all() and (meta.max(0) <= limits).all()
    xsub = np.isin(meta[:, 2], spec.train_subjects)
    splits = {"xsub": xsub, "xview": meta[:, 1] != 1, "xset": meta[:, 0] % 2 == 0}
    for split in ("xsub", "xview") + (("xset",) if dataset == "ntu120" else ()):
        train = splits[split]
        for part in (train, ~train):
            assert set(meta[part, 4]) == set(range(1, classes + 1)), split
    assert abs((~xsub).mean() - spec.test_share) < 0.08
    assert abs((meta[:, 1] == 1).mean() - 1 / 3) < 0.02


def test_tiny_datasets_still_put_every_class_on_both_sides():
    plan = plan_ntu(samples=30, classes=10, dataset="ntu60", seed=0)
    for action in range(1, 11):
        takes = [t for t in plan if t.action == action]
        assert {t.subject in XSUB60_TRAIN for t in takes} == {True, False}
        cameras = {c for t in takes for c in t.cameras}
        assert 1 in cameras and cameras & {2, 3}


def test_bone_lengths_are_plausible_and_constant_within_a_sample(ntu_set):
    for data in list(ntu_set[1].values())[:30]:
        joints, _, _ = body_tracks(data)
        xyz = joints[:, 0, :, :3][np.abs(joints[:, 0, :, :3]).sum((1, 2)) > 0]
        lengths = np.stack([np.linalg.norm(xyz[:, a - 1] - xyz[:, b - 1], axis=-1)
                            for a, b in BONES], axis=1)  # (T, 24)
        assert (lengths.mean(0) > 0.015).all() and (lengths.mean(0) < 0.55).all()
        assert np.median(lengths.std(0)) < 0.012 and lengths.std(0).max() < 0.03
        spine = lengths[:, 0].mean() + lengths[:, 1].mean()  # base-mid-shoulder
        thigh_shin = lengths[:, 13].mean() + lengths[:, 14].mean()
        assert 0.35 < spine < 0.65 and 0.55 < thigh_shin < 0.9


def test_a_subject_keeps_its_body_across_files(ntu_set):
    by_subject: dict[int, list[float]] = {}
    for name, data in ntu_set[1].items():
        joints, _, _ = body_tracks(data)
        xyz = joints[:, 0, :, :3][np.abs(joints[:, 0, :, :3]).sum((1, 2)) > 0]
        thigh = np.median(np.linalg.norm(xyz[:, 12] - xyz[:, 13], axis=-1))
        by_subject.setdefault(int(name[9:12]), []).append(thigh)
    spreads = [np.ptp(v) for v in by_subject.values() if len(v) > 1]
    overall = np.ptp([np.mean(v) for v in by_subject.values()])
    assert spreads and max(spreads) < 0.01 < overall


def test_cameras_see_one_take_from_three_angles():
    files = dict(render_take(Performance(4, 2, 1, 3, (1, 2, 3)), seed=0))

    def facing(data: bytes) -> float:
        joints, _, _ = body_tracks(data)
        v = (joints[:, 0, 8, :3] - joints[:, 0, 4, :3]).mean(0)  # left -> right shoulder
        return float(np.degrees(np.arctan2(v[2], v[0])))

    angles = {name[4:8]: facing(data) for name, data in files.items()}
    assert abs(angles["C002"] - angles["C001"] - 45) < 10
    assert abs(angles["C003"] - angles["C001"] + 45) < 10


def test_pixel_coordinates_follow_the_real_kinect_projection(ntu_set, real_dir):
    def residuals(data: bytes) -> np.ndarray:
        j = body_tracks(data)[0].reshape(-1, 12)
        j = j[j[:, 2] > 0]
        x, y, z = j[:, 0] / j[:, 2], j[:, 1] / j[:, 2], 1 / j[:, 2]
        return np.stack([j[:, 3] - (365.6 * x + 257.3), j[:, 4] - (-367.8 * y + 208.7),
                         j[:, 5] - (1059.5 * x + 38.8 * z + 964.6),
                         j[:, 6] - (-1047.2 * y - 86.6 * z + 588.8)], axis=1)

    synthetic = residuals(next(iter(ntu_set[1].values())))
    assert np.abs(synthetic).max() < 0.01  # printed to 7 digits, otherwise exact
    real = residuals((real_dir / "ntu" / "S001C001P001R001A001.skeleton").read_bytes())
    assert np.sqrt((real**2).mean(0)).max() < 12  # the real sensor agrees within pixels


def test_orientations_are_unit_quaternions_with_the_real_zero_joints(ntu_set, real_dir):
    def zero_joints(data: bytes) -> set[int]:
        q = body_tracks(data)[0][:, 0, :, 7:11]
        return {int(v) for v in np.flatnonzero((q == 0).all(-1).all(0))}

    real = (real_dir / "ntu" / "S001C001P001R001A001.skeleton").read_bytes()
    data = next(iter(ntu_set[1].values()))
    assert zero_joints(data) == zero_joints(real) == {3, 15, 19, 21, 22, 23, 24}
    q = body_tracks(data)[0][:, 0, :, 7:11].reshape(-1, 4)
    norms = np.linalg.norm(q[(q != 0).any(-1)], axis=-1)
    assert np.allclose(norms, 1, atol=1e-5)


def test_sensor_quirks_occur_like_in_the_real_data(ntu_set):
    frames, most, states, empty = [], [], [], 0
    for data in ntu_set[1].values():
        joints, _, bodies = body_tracks(data)
        frames.append(joints.shape[0])
        most.append(bodies)
        states.append(joints[:, 0, :, 11][joints[:, 0, :, 2] > 0])
        empty += sum(1 for kind, f in ntu_lines(data) if kind == "numBody" and f == ["0"])
    states = np.concatenate(states)
    assert 0.8 < (states == 2).mean() < 0.97 and set(np.unique(states)) == {1.0, 2.0}
    assert min(frames) >= 30 and max(frames) <= 300 and np.median(frames) < 150
    assert empty > 0, "some frames have nobody in them"
    assert np.mean(np.array(most) == 1) > 0.85  # single-person classes: mostly one body
    rngs = [np.random.default_rng(i) for i in range(2000)]
    ghosts = np.mean([_ghost_frames(r, 100).any() for r in rngs])
    nobody = np.mean([not _presence(r, 100, 1).all() for r in rngs])
    assert 0.03 < ghosts < 0.08 and 0.04 < nobody < 0.12


def test_a_spurious_body_is_an_extra_record_with_its_own_id(reference_parse, tmp_path):
    found = None
    for subject in range(1, 41):  # single-person takes until the sensor invents a body
        for name, data in render_take(Performance(1, subject, 1, 4, (1, 2, 3)), seed=0):
            if body_tracks(data)[2] > 1:
                found = (name, data)
                break
        if found:
            break
    assert found, "no take with a spurious body among 120 files"
    joints, ids, _ = body_tracks(found[1])
    assert len(ids) == 2 and ids[0] != ids[1]
    path = tmp_path / f"{found[0]}.skeleton"
    path.write_bytes(found[1])
    xyz = reference_parse.read_xyz(str(path))  # the reference keeps it as the second body
    ghost = np.abs(xyz[:, :, :, 1]).sum((0, 2)) > 0
    assert 5 <= ghost.sum() <= 40 and (np.abs(xyz[:, ghost, :, 0]).sum((0, 2)) > 0).all()


def test_mutual_actions_have_two_bodies_with_near_17_digit_ids(two_person_takes):
    collide = 0
    for _, data in two_person_takes:
        _, ids, _ = body_tracks(data)
        assert len(ids) >= 2 and all(re.fullmatch(r"7205759403\d{7}", i) for i in ids)
        a, b = int(ids[0]), int(ids[1])
        assert a != b and abs(a - b) < 100
        collide += float(a) == float(b)
    assert collide > 0, "some files hold IDs that a float64 cannot tell apart"


def test_library_classes_are_distinct_and_numbered_like_ntu():
    assert len(LIBRARY) == len(set(CLASS_NAMES)) == 120
    assert {i + 1 for i, m in enumerate(LIBRARY) if m.mutual} == set(MUTUAL_IDS)
    assert set(range(50, 61)) | set(range(106, 121)) == MUTUAL_IDS
    specs = [tuple(m.actor) + tuple(m.partner or ()) for m in LIBRARY]
    assert len(set(specs)) == 120


def test_classes_are_separable_by_a_nearest_class_mean(ntu_set):
    """Rotation-free pose features, train on cameras 2-3, test on camera 1 (xview)."""
    keys = [0, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    feats, labels, camera = [], [], []
    for name, data in ntu_set[1].items():
        joints = body_tracks(data)[0][:, 0, :, :3]
        joints = joints[np.abs(joints).sum((1, 2)) > 0]
        x = joints[np.linspace(0, len(joints) - 1, 10).round().astype(int)][:, keys]
        dist = np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)[:, *np.triu_indices(10, 1)]
        feats.append(np.concatenate([dist.ravel(), (x[:, :, 1] - x[:, :1, 1]).ravel()]))
        labels.append(int(name[-3:]) - 1)
        camera.append(int(name[5:8]))
    X, y, train = np.array(feats), np.array(labels), np.array(camera) != 1
    X = (X - X.mean(0)) / (X.std(0) + 1e-9)
    means = np.stack([X[train & (y == c)].mean(0) for c in range(10)])
    pred = np.argmin(((X[~train, None] - means) ** 2).sum(-1), axis=1)
    assert (pred == y[~train]).mean() > 0.6  # chance: 0.1


@pytest.fixture(scope="module")
def pku_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("pku")
    return out, write_pku_dataset(out, videos=5, classes=51, seed=2)


def test_pku_skeleton_lines_hold_150_numbers_and_labels_fall_inside(pku_set, real_dir):
    out, summary = pku_set
    assert summary.files == 15
    real = (real_dir / "pku" / "PKU_Skeleton_Renew" / "0036-L.txt").read_text().splitlines()[0]
    for path in sorted((out / "PKU_Skeleton_Renew").glob("*.txt")):
        text = path.read_text()
        lines = text.splitlines()
        assert text.endswith("\n") and "\r" not in text
        assert {len(x.split(" ")) for x in lines} == {150}
        assert re.fullmatch(r"-?\d\.\d{6}", lines[0].split()[0]) and re.fullmatch(
            r"-?\d\.\d{6}", real.split()[0])
        labels = np.loadtxt(out / "Train_Label_PKU_final" / path.name, delimiter=",", dtype=int)
        assert (labels[:, 1] >= 1).all() and (labels[:, 2] <= len(lines)).all()
        assert (labels[:, 1] < labels[:, 2]).all() and (np.diff(labels[:, 1]) > 0).all()
        assert set(labels[:, 3]) <= {0, 1, 2} and ((labels[:, 0] >= 1) & (labels[:, 0] <= 51)).all()
        some = np.array([lines[i].split() for i in range(0, len(lines), 400)], dtype=float)
        two_people = set(labels[:, 0]) & {12, 14, 16, 18, 21, 24, 26, 27}
        assert bool(np.abs(some[:, 75:]).sum() > 0) == bool(two_people)


def test_pku_views_are_one_performance_a_few_frames_apart(pku_set):
    out = pku_set[0]
    labels = [np.loadtxt(out / "Train_Label_PKU_final" / f"0003-{v}.txt", delimiter=",",
                         dtype=int) for v in "LMR"]
    assert (labels[0][:, 0] == labels[1][:, 0]).all() and (labels[0][:, 0] == labels[2][:, 0]).all()
    assert np.abs(labels[0][:, 1:3] - labels[2][:, 1:3]).max() <= 10


def test_pku_split_files_follow_the_official_form_and_list_each_video_once(pku_set, real_dir):
    out = pku_set[0]
    names = {p.stem for p in (out / "PKU_Skeleton_Renew").glob("*.txt")}
    for split in ("cross-subject.txt", "cross-view.txt"):
        real = (real_dir / "lists" / split).read_text().split("\n")
        ours = (out / split).read_text().split("\n")
        assert len(ours) == len(real) == 5 and ours[0] == real[0] and ours[2] == real[2]
        assert ours[1].endswith(", ") and real[1].endswith(", ")
        assert ours[3].endswith(",") and real[3].endswith(",") and ours[4] == real[4] == ""
        train, test = ours[1].rstrip(", ").split(", "), ours[3].rstrip(",").split(", ")
        assert sorted(train + test) == sorted(names) and not set(train) & set(test)
    view_test = (out / "cross-view.txt").read_text().split("\n")[3].rstrip(",").split(", ")
    assert {n[-1] for n in view_test} == {"M"}


def test_pku_skeletons_for_real_labels_hold_every_segment(real_dir, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in ("0036-L.txt", "0310-R.txt"):  # a two-person video and a short one
        shutil.copy(real_dir / "pku" / "Train_Label_PKU_final" / name, labels / name)
    assert write_pku_skeletons_for_labels(labels, tmp_path / "skel", seed=0) == 2
    for name in ("0036-L.txt", "0310-R.txt"):
        ends = np.loadtxt(labels / name, delimiter=",", dtype=int)[:, 2]
        lines = (tmp_path / "skel" / name).read_text().splitlines()
        assert ends.max() + 10 <= len(lines) <= ends.max() + 40
        assert len(lines[ends.max() - 1].split()) == 150
