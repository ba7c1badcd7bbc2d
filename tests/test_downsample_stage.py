"""The downsample stage: the reference numbers, split-aware, resumable, stale after re-ingest."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

from asar_data.frames_store import FramesStore
from asar_data.raw_store import RawStore
from asar_data.splits import NTU60_XSUB_TRAIN_SUBJECTS
from pipelines.downsample import downsample
from pipelines.ingest import ingest_ntu
from pipelines.manifest import Manifest
from pipelines.status import workspace_status
from pipelines.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def store_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


def test_stage_output_equals_the_reference_transform(frames_workspace, reference_downsample):
    raw = RawStore(str(frames_workspace / "ntu60" / "raw.zarr"))
    frames = FramesStore(str(frames_workspace / "ntu60" / "frames50.zarr"))
    assert len(frames) == len(raw)
    for i in range(0, len(raw), 7):
        expected = reference_downsample.transform(raw.sample(i))
        np.testing.assert_allclose(frames.read(np.array([i]))[0], expected, atol=1e-5)


def test_store_carries_dimension_names_labels_names_and_splits(frames_workspace):
    root = zarr.open_group(str(frames_workspace / "ntu60" / "frames50.zarr"), mode="r")
    assert root["data"].metadata.dimension_names == ("sample", "coordinate", "frame", "joint",
                                                     "body")
    assert root["data"].shape[1:] == (3, 50, 25, 2) and root["data"].dtype == np.float32
    store = FramesStore(str(frames_workspace / "ntu60" / "frames50.zarr"))
    names = store.names
    assert list(store.labels) == [int(n[17:20]) - 1 for n in names]
    assert store.benchmarks == ["xsub", "xview"]


def test_split_indices_follow_the_split_rules(frames_workspace):
    store = FramesStore(str(frames_workspace / "ntu60" / "frames50.zarr"))
    names = store.names
    camera = np.array([int(n[5:8]) for n in names])
    subject = np.array([int(n[9:12]) for n in names])
    train, test = store.split("xview", "train"), store.split("xview", "test")
    assert set(camera[train]) <= {2, 3} and set(camera[test]) == {1}
    assert len(train) + len(test) == len(names) and not set(train) & set(test)
    xsub = store.split("xsub", "train")
    assert np.array_equal(xsub, np.flatnonzero(np.isin(subject, NTU60_XSUB_TRAIN_SUBJECTS)))


def test_killed_downsample_resumes_to_a_bitwise_equal_store(workspace_copy, tmp_path):
    whole = tmp_path / "whole"
    shutil.copytree(workspace_copy, whole)
    ws = Workspace(str(workspace_copy))
    for p in (workspace_copy / "ntu60").glob("frames50*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    # a real stage process, killed with SIGKILL right after its 5th chunk write
    script = textwrap.dedent(f"""
        import os, signal, sys
        import asar_data.frames_store as fs
        real, calls = fs.write_block, [0]
        def write_then_die(*a, **k):
            real(*a, **k)
            calls[0] += 1
            if calls[0] == 5:
                os.kill(os.getpid(), signal.SIGKILL)
        fs.write_block = write_then_die
        import cli
        sys.argv = ["asar-cli", "downsample", "--workdir", {str(workspace_copy)!r},
                    "--workers", "1", "--chunk", "8"]
        cli.main()
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert proc.returncode == -9
    m = Manifest.load(ws.frames("ntu60").manifest)
    assert not m.complete and 0 < len(m.shards_done) <= 5
    result = downsample(ws, "ntu60", chunk=8, workers=1)
    assert result.action == "resume"
    downsample(Workspace(str(whole)), "ntu60", chunk=8, workers=1, force=True)
    assert store_files(workspace_copy / "ntu60" / "frames50.zarr") == store_files(
        whole / "ntu60" / "frames50.zarr")


def test_reingest_with_new_content_makes_downsample_stale(tmp_path, synth_ntu):
    raw = tmp_path / "raw"
    shutil.copytree(synth_ntu, raw)
    ws = Workspace(str(tmp_path / "w"))
    ingest_ntu(ws, str(raw), workers=1)
    downsample(ws, "ntu60", workers=1)
    assert downsample(ws, "ntu60", workers=1).action == "skip"
    victim = sorted(raw.iterdir())[0]
    victim.write_bytes(sorted(raw.iterdir())[1].read_bytes())
    states = {r.stage: r for r in workspace_status(ws)}
    assert states["ingest"].state == "stale" and "input raw changed" in states["ingest"].detail
    assert states["downsample"].state == "stale"
    ingest_ntu(ws, str(raw), workers=1)
    states = {r.stage: r for r in workspace_status(ws)}
    assert states["ingest"].state == "complete"
    assert states["downsample"].state == "stale" and "input raw changed" in states[
        "downsample"].detail
    again = downsample(ws, "ntu60", workers=1)
    assert again.action == "start" and "input raw changed" in again.reason


def test_changing_an_option_reruns_and_is_recorded(workspace_copy):
    ws = Workspace(str(workspace_copy))
    result = downsample(ws, "ntu60", bodies="denoise", workers=1)
    assert result.action == "start" and "bodies" in result.reason
    assert Manifest.load(ws.frames("ntu60").manifest).params["bodies"] == "denoise"
    other = downsample(ws, "ntu60", frames=20, workers=1)
    assert FramesStore(other.output).data.shape[2] == 20
    assert os.path.basename(other.output) == "frames20.zarr"


def test_export_frames50_writes_the_reference_50_frame_layout(frames_workspace, tmp_path):
    import pickle

    from pipelines.export import export_reference

    ws = Workspace(str(frames_workspace))
    counts = export_reference(ws, "ntu60", "xsub", "frames50", str(tmp_path / "out")).summary
    store = FramesStore(str(frames_workspace / "ntu60" / "frames50.zarr"))
    train = np.load(tmp_path / "out" / "train_position.npy")
    with open(tmp_path / "out" / "train_label.pkl", "rb") as f:
        names, labels = pickle.load(f)
    idx = store.split("xsub", "train")
    order = idx[np.argsort(store.names[idx])]
    assert train.shape == (counts["train"], 3, 50, 25, 2) == (len(idx), 3, 50, 25, 2)
    np.testing.assert_array_equal(train, store.read(order))
    assert names == [f"{n}.skeleton" for n in store.names[order]]
    assert labels == store.labels[order].tolist()
    assert (tmp_path / "out" / "val_position.npy").exists()


def test_downsample_killed_right_after_its_first_manifest_resumes(workspace_copy):
    """A kill between the manifest's first write and the store's creation used to leave a
    run that could never resume (only --force recovered)."""
    ws = Workspace(str(workspace_copy))
    out = ws.frames("ntu60", 20)
    downsample(ws, "ntu60", frames=20, workers=1)
    expected = FramesStore(out.store).read(np.arange(8))
    m = Manifest.load(out.manifest)
    m.complete, m.shards_done = False, []
    m.save(out.manifest)
    shutil.rmtree(out.store)          # the state a kill right after the manifest leaves
    again = downsample(ws, "ntu60", frames=20, workers=1)
    assert again.action == "resume"
    assert np.array_equal(FramesStore(out.store).read(np.arange(8)), expected)


def test_export_is_swapped_in_whole_and_never_mixes_two_benchmarks(frames_workspace, tmp_path):
    """An export killed while replacing an older one used to leave a folder holding both
    benchmarks' samples; now the old folder stays whole until the new one replaces it."""
    from pipelines import export as export_mod
    from pipelines.export import export_reference

    ws = Workspace(str(frames_workspace))
    out = tmp_path / "out"
    export_reference(ws, "ntu60", "xsub", "frames50", str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped while writing

    real = export_mod._write_npy
    export_mod._write_npy = lambda path, shape, fill: (real(path, shape, fill)
                                                       if "train" in path.name else killed())
    try:
        with pytest.raises(KeyboardInterrupt):
            export_reference(ws, "ntu60", "xview", "frames50", str(out))
    finally:
        export_mod._write_npy = real
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left
    again = export_reference(ws, "ntu60", "xview", "frames50", str(out))
    assert again.action == "start" and "benchmark" in again.reason


def test_export_refuses_a_folder_that_is_not_an_export(frames_workspace, tmp_path):
    from pipelines.export import export_reference
    from pipelines.workspace import WorkspaceError

    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(WorkspaceError, match="not an asar export"):
        export_reference(Workspace(str(frames_workspace)), "ntu60", "xsub", "frames50", str(out))
    assert (out / "thesis.tex").read_text() == "precious"
