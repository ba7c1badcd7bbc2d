"""The stage machinery: fingerprints, skip / resume / restart, atomic writes, manifests."""
from __future__ import annotations

import os

import pytest

from asar_data import storage
from pipelines import fingerprint
from pipelines.manifest import Manifest
from pipelines.stage import Input, ShardLog, StageId, plan

STAGE = StageId("toy", version=1)


def _plan(tmp_path, params=None, inputs=None, stage=STAGE, force=False):
    return plan(
        stage,
        str(tmp_path / "toy.manifest.json"),
        str(tmp_path / "toy.out"),
        params or {"frames": 50},
        inputs or {"raw": Input("/data", "abc", "folder")},
        force=force,
    )


def _complete(tmp_path, run, shards=2):
    log = ShardLog(run, shards)
    log.done(range(shards))
    (tmp_path / "toy.out").write_text("output")
    log.finish({"samples": 3})


def test_fingerprint_changes_exactly_with_name_code_params_and_inputs():
    base = fingerprint.stage_fingerprint("s", "v1", {"a": 1, "b": [1, 2]}, {"raw": "x"})
    assert base == fingerprint.stage_fingerprint("s", "v1", {"b": [1, 2], "a": 1}, {"raw": "x"})
    assert base != fingerprint.stage_fingerprint("t", "v1", {"a": 1, "b": [1, 2]}, {"raw": "x"})
    assert base != fingerprint.stage_fingerprint("s", "v2", {"a": 1, "b": [1, 2]}, {"raw": "x"})
    assert base != fingerprint.stage_fingerprint("s", "v1", {"a": 2, "b": [1, 2]}, {"raw": "x"})
    assert base != fingerprint.stage_fingerprint("s", "v1", {"a": 1, "b": [1, 2]}, {"raw": "y"})


def test_code_version_is_part_of_the_stage_identity():
    assert StageId("toy", 1).code_version != StageId("toy", 2).code_version


def test_tree_fingerprint_sees_size_time_added_and_removed_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.skeleton").write_text("1")
    (tmp_path / "sub" / "b.skeleton").write_text("22")
    first, n = fingerprint.tree_fingerprint(str(tmp_path))
    assert n == 2 and fingerprint.tree_fingerprint(str(tmp_path))[0] == first
    (tmp_path / "sub" / "b.skeleton").write_text("23")  # same size, new time
    os.utime(tmp_path / "sub" / "b.skeleton", (1, 1))
    second = fingerprint.tree_fingerprint(str(tmp_path))[0]
    assert second != first
    (tmp_path / "c.skeleton").write_text("")
    third = fingerprint.tree_fingerprint(str(tmp_path))[0]
    assert third != second
    (tmp_path / "c.skeleton").unlink()
    assert fingerprint.tree_fingerprint(str(tmp_path))[0] == second


def test_first_run_starts_and_complete_unchanged_run_skips(tmp_path):
    run = _plan(tmp_path)
    assert run.action == "start" and run.reason == "no previous output"
    _complete(tmp_path, run)
    again = _plan(tmp_path)
    assert again.action == "skip"
    assert _plan(tmp_path, force=True).action == "start"


def test_changed_parameter_restarts_and_names_it(tmp_path):
    _complete(tmp_path, _plan(tmp_path))
    run = _plan(tmp_path, params={"frames": 64})
    assert run.action == "start"
    assert "frames" in run.reason and "64" in run.reason


def test_changed_input_or_code_version_restarts(tmp_path):
    _complete(tmp_path, _plan(tmp_path))
    changed = _plan(tmp_path, inputs={"raw": Input("/data", "def", "folder")})
    assert changed.action == "start" and "input raw changed" in changed.reason
    newer = _plan(tmp_path, stage=StageId("toy", 2))
    assert newer.action == "start" and "code version" in newer.reason


def test_interrupted_run_resumes_at_missing_shards(tmp_path):
    log = ShardLog(_plan(tmp_path), 5)
    log.done([0, 2])
    run = _plan(tmp_path)
    assert run.action == "resume" and run.reason == "2 of 5 shards done"
    assert ShardLog(run, 5).pending == [1, 3, 4]


def test_output_is_never_marked_complete_with_shards_missing(tmp_path):
    log = ShardLog(_plan(tmp_path), 3)
    log.done([0, 1])
    with pytest.raises(RuntimeError, match="not done"):
        log.finish()
    assert not Manifest.load(str(tmp_path / "toy.manifest.json")).complete


def test_complete_manifest_without_its_output_is_redone(tmp_path):
    _complete(tmp_path, _plan(tmp_path))
    (tmp_path / "toy.out").unlink()
    run = _plan(tmp_path)
    assert run.action == "start" and run.reason == "output missing"


def test_atomic_write_keeps_old_content_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    storage.write_text(str(target), "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        storage.write_text(str(target), "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary left behind


def test_unreadable_or_foreign_manifest_counts_as_absent(tmp_path):
    path = tmp_path / "toy.manifest.json"
    path.write_text("{not json")
    assert Manifest.load(str(path)) is None
    path.write_text('{"format": "something-else"}')
    assert Manifest.load(str(path)) is None
    assert _plan(tmp_path).action == "start"
