"""The two stores' formats: the raw store's shards and index, xarray, older versions."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from asar_data import raw_store
from asar_data.frames_store import FramesStore, FramesStoreError
from asar_data.raw_store import RawStore, RawStoreError
from asar_data.skeleton import JOINT_NAMES


def store_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def stores(frames_workspace) -> tuple[Path, Path]:
    return frames_workspace / "ntu60" / "raw.zarr", frames_workspace / "ntu60" / "frames50.zarr"


def test_both_stores_open_in_xarray_without_warnings_and_a_split_is_three_lines(stores):
    xr = pytest.importorskip("xarray")
    raw_path, frames_path = stores
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated metadata: no fallback warning
        ds = xr.open_zarr(frames_path)
        train = ds.isel(sample=ds.split_xview_train.values)
        x = train.data.values  # (n, 3, 50, 25, 2) float32
        raw = xr.open_zarr(raw_path)
        shard = xr.open_zarr(raw_path, group="shards/000000")
    store = FramesStore(str(frames_path))
    np.testing.assert_array_equal(x, store.read(store.split("xview", "train")))
    assert ds.data.dims == ("sample", "coordinate", "frame", "joint", "body")
    assert ds.split_xview_train.dims == ("xview_train",)
    assert ds.split_xsub_test.dims == ("xsub_test",)
    assert raw.frame_count.dims == ("sample",) and raw.segment.dims == ("sample", "segment_field")
    assert shard.xyz.dims == ("frame", "body", "coordinate", "joint")
    for dataset in (ds, raw, shard):  # nothing named like a dimension, nothing made a coordinate
        assert not set(dataset.variables) & set(dataset.dims) and not dataset.coords
    assert ds.data.attrs["units"] == "metres" and shard.xyz.attrs["units"] == "metres"
    assert ds.attrs["joint_names"] == list(JOINT_NAMES) == raw.attrs["joint_names"]
    assert len(JOINT_NAMES) == 25 and JOINT_NAMES[20] == "spine_shoulder"


def test_action_names_given_to_finalise_are_stored(tmp_path):
    from asar_data import frames_store

    location = str(tmp_path / "f.zarr")
    frames_store.create(location, 4, 50, 4)
    frames_store.write_block(location, 0, np.zeros((4, 3, 50, 25, 2), np.float32),
                             np.full(4, 50, np.int32))
    names = ["drink water", "eat meal"]
    frames_store.finalise(location, np.array([0, 1, 1, 0]), np.array(list("abcd")),
                          {"default": (np.array([0, 1]), np.array([2, 3]))},
                          {"benchmarks": ["default"], "classes": 2, "action_names": names})
    store = FramesStore(location)
    assert store.attrs["action_names"] == names
    assert list(store.split("default", "test")) == [2, 3]


def test_raw_frames_are_read_through_the_index_across_shards(tmp_path, synth_ntu):
    from pipelines.ingest import ingest_ntu
    from pipelines.workspace import Workspace

    one = RawStore(ingest_ntu(Workspace(str(tmp_path / "a")), str(synth_ntu), workers=1).output)
    many = RawStore(ingest_ntu(Workspace(str(tmp_path / "b")), str(synth_ntu), workers=1,
                               shard_files=7).output)
    assert len(set(many.shard.tolist())) == -(-len(many) // 7)
    for start, stop in ((0, len(one)), (3, 30), (6, 8), (13, 14), (20, 20)):
        a, b = one.frames(start, stop), many.frames(start, stop)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    for key, value in one.meta_all().items():
        np.testing.assert_array_equal(value, many.meta(key))


def test_a_shard_written_twice_writes_the_same_bytes(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.standard_normal((300, 4, 3, 25)).astype(np.float32)
    xyz[:, 2:] = 0  # the third and fourth slots empty: their chunks are not stored
    meta = raw_store.new_meta(2)
    meta["name"] = np.array(["a", "b"])
    meta["frame_count"] = np.array([100, 200], np.int32)
    part = raw_store.Part(xyz, np.arange(1200, dtype=np.uint64).reshape(300, 4), meta,
                          [raw_store.Problem("c", 3, "bad", "skipped")], {"files": 3})
    location = tmp_path / "raw.zarr"
    assert raw_store.write_shard(str(location), 5, part) == {"samples": 2, "frames": 300}
    first = store_files(location)
    chunks = [k.rsplit("/", 1)[1] for k in first if "/xyz/c." in k]  # c.<frames>.<pair>.0.0
    assert chunks and all(c.split(".")[2] == "0" for c in chunks)  # slots 2-3: none stored
    raw_store.write_shard(str(location), 5, part)  # a rerun (dask retry): nothing changes
    assert store_files(location) == first
    record = raw_store.shard_record(str(location), 5)
    assert record["meta"]["name"] == ["a", "b"] and record["problems"] == [["c", 3, "bad",
                                                                           "skipped"]]
    assert raw_store.shard_record(str(location), 4) is None


def test_a_raw_store_reads_as_incomplete_until_its_index_is_written(tmp_path):
    location = str(tmp_path / "raw.zarr")
    meta = raw_store.new_meta(1)
    meta["frame_count"] = np.array([2], np.int32)
    part = raw_store.Part(np.ones((2, 2, 3, 25), np.float32), np.zeros((2, 2), np.uint64), meta)
    raw_store.write_shard(location, 0, part)
    with pytest.raises(RawStoreError, match="complete raw store"):
        RawStore(location)
    raw_store.finalise(location, 1, 2, {"dataset": "toy"})
    assert RawStore(location).frames(0, 1)[0].sum() == 2 * 2 * 75


def _rewrite_as_version_1(raw: RawStore, location: Path) -> None:
    """The layout before the shards: one concatenated xyz/body_id with offsets (zarr API)."""
    xyz, body_id, offsets = raw.frames(0, len(raw))
    root = zarr.open_group(str(location), mode="w")
    root.create_array("xyz", data=xyz, chunks=(8192, 2, 3, 25), compressors=None,
                      dimension_names=("frame", "body", "xyz", "joint"))
    root.create_array("body_id", data=body_id, chunks=(65536, body_id.shape[1]),
                      dimension_names=("frame", "body"))
    root.create_array("offsets", data=offsets.astype(np.int64), compressors=None,
                      dimension_names=("sample_edge",))
    for key, value in raw.meta_all().items():
        dims = ("sample", "field") if value.ndim == 2 else ("sample",)
        if value.dtype.kind == "U":
            arr = root.create_array(key, shape=value.shape, dtype=str, dimension_names=dims)
            arr[:] = value
        else:
            root.create_array(key, data=value, compressors=None, dimension_names=dims)
    attrs = {k: v for k, v in raw.attrs.items() if k not in ("shards", "samples", "frames")}
    root.attrs.update({**attrs, "version": 1})


def test_version_1_raw_and_frames_stores_are_still_read(tmp_path, stores):
    raw_path, frames_path = stores
    new = RawStore(str(raw_path))
    _rewrite_as_version_1(new, tmp_path / "raw1.zarr")
    old = RawStore(str(tmp_path / "raw1.zarr"))
    assert old.version == 1 and len(old) == len(new)
    for start, stop in ((0, len(new)), (5, 9)):
        for x, y in zip(old.frames(start, stop), new.frames(start, stop), strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(old.meta("name"), new.meta("name"))

    store = FramesStore(str(frames_path))
    v1 = zarr.open_group(str(tmp_path / "frames1.zarr"), mode="w")
    v1.create_array("data", data=store.data[:], chunks=store.data.chunks,
                    dimension_names=("sample", "xyz", "frame", "joint", "body"))
    v1.create_array("label", data=store.labels)
    names = v1.create_array("name", shape=(len(store),), dtype=str)
    names[:] = store.names
    v1.create_array("valid_length", data=store.valid_length)
    for bench in store.benchmarks:
        for side in ("train", "test"):
            v1.create_array(f"split/{bench}/{side}", data=store.split(bench, side))
    v1.attrs.update({**store.attrs, "version": 1})
    old_frames = FramesStore(str(tmp_path / "frames1.zarr"))
    assert old_frames.version == 1
    np.testing.assert_array_equal(old_frames.split("xview", "test"), store.split("xview", "test"))
    np.testing.assert_array_equal(old_frames.read(np.arange(5)), store.read(np.arange(5)))


def test_a_store_of_a_newer_version_is_refused_in_one_line(tmp_path, stores):
    import shutil

    raw_path, frames_path = stores
    for src, reader, error in ((raw_path, RawStore, RawStoreError),
                               (frames_path, FramesStore, FramesStoreError)):
        copy = tmp_path / src.name
        shutil.copytree(src, copy)
        meta = json.loads((copy / "zarr.json").read_text())
        meta["attributes"]["version"] = 99
        meta.pop("consolidated_metadata", None)
        (copy / "zarr.json").write_text(json.dumps(meta))
        with pytest.raises(error, match="version 99") as err:
            reader(str(copy))
        assert "\n" not in str(err.value) and "--force" in str(err.value)


def test_the_root_metadata_holds_shard_counts_not_their_records(stores):
    raw_path, _ = stores
    top = json.loads((raw_path / "zarr.json").read_text())
    nodes = top["consolidated_metadata"]["metadata"]
    assert nodes["shards/000000"]["attributes"].keys() == {"samples", "frames"}
    own = json.loads((raw_path / "shards" / "000000" / "zarr.json").read_text())
    assert "record" in own["attributes"]
    assert os.path.getsize(raw_path / "zarr.json") < 20_000
