"""Direct chunk reads and writes of uncompressed zarr v3 arrays, checked against zarr."""
from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest
import zarr

from asar_data import chunk_io
from asar_data.raw_store import RawStore
from asar_data.storage import zarr_store
from pipelines.ingest import ingest_ntu
from pipelines.workspace import Workspace


def _group(location: str):
    return zarr.open_group(store=zarr_store(location), mode="w")


def _plain(group, name: str, shape, chunks, dtype="float32", fill_value=0.0, **kw):
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype,
                              fill_value=fill_value, compressors=None, **kw)


def _values(shape, dtype="float32") -> np.ndarray:
    return np.arange(np.prod(shape)).reshape(shape).astype(dtype) * 3 - 7


@pytest.fixture(params=["local", "url"])
def store(request, tmp_path) -> str:
    """A group location on local disk, or an fsspec URL (in memory) for the storage path."""
    if request.param == "local":
        return str(tmp_path / "g.zarr")
    return f"memory://chunk-io-{uuid.uuid4().hex}/g.zarr"


def test_zarr_reads_what_chunk_io_writes_including_a_partial_last_chunk(store):
    g = _group(store)
    _plain(g, "a", (10, 3, 4), (4, 2, 4), fill_value=-1.0)
    x = _values((10, 3, 4))
    chunk_io.write_rows(f"{store}/a", 0, x[:8])
    chunk_io.write_rows(f"{store}/a", 8, x[8:])  # the last chunk: 2 of its 4 rows
    assert np.array_equal(zarr.open_group(store=zarr_store(store), mode="r")["a"][:], x)
    if "://" not in store:  # stored at the full chunk shape, padded with the fill value
        tail = np.fromfile(f"{store}/a/c/2/1/0", "<f4").reshape(4, 2, 4)
        assert np.array_equal(tail[:2, :1], x[8:, 2:]) and (tail[2:] == -1).all()
        assert (tail[:, 1:] == -1).all()


def test_chunk_io_reads_what_zarr_writes(store):
    g = _group(store)
    a = _plain(g, "a", (11, 5, 3), (4, 2, 3), dtype="int16", fill_value=9)
    x = np.full((11, 5, 3), 9, np.int16)
    x[2:9, 1:4] = _values((7, 3, 3), "int16")
    a[2:9, 1:4] = x[2:9, 1:4]  # chunks (0, 0), (2, 2) and others never written
    for region in [(), (slice(3, 10),), (slice(0, 11), slice(2, 4)), (slice(5, 6), slice(4, 5)),
                   (slice(8, 8),)]:
        expected = x[region]
        got = chunk_io.read(f"{store}/a", region)
        assert got.dtype == np.int16 and np.array_equal(got, expected), region


def test_chunk_io_writes_every_chunk_column_of_the_rows(store):
    g = _group(store)
    _plain(g, "a", (6, 5), (3, 2), dtype="uint64", fill_value=0)
    x = _values((6, 5), "uint64")
    chunk_io.write_rows(f"{store}/a", 3, x[3:])
    read = zarr.open_group(store=zarr_store(store), mode="r")["a"][:]
    assert np.array_equal(read[3:], x[3:]) and not read[:3].any()


def test_compressed_array_falls_back_to_zarr(store):
    g = _group(store)
    g.create_array("z", shape=(10, 3), chunks=(4, 3), dtype="float32", fill_value=0.0)
    assert chunk_io.open_plain(f"{store}/z") is None
    x = _values((10, 3))
    chunk_io.write_rows(f"{store}/z", 4, x[4:8])
    chunk_io.write_rows(f"{store}/z", 8, x[8:])
    expected = x.copy()
    expected[:4] = 0
    assert np.array_equal(zarr.open_group(store=zarr_store(store), mode="r")["z"][:], expected)
    assert np.array_equal(chunk_io.read(f"{store}/z", (slice(2, 9),)), expected[2:9])


def test_rows_that_are_not_whole_chunks_are_refused(tmp_path):
    g = _group(str(tmp_path / "g.zarr"))
    _plain(g, "a", (10, 3), (4, 3))
    for start, rows in ((1, 4), (0, 3), (4, 3), (8, 3)):
        with pytest.raises(ValueError, match="whole chunks"):
            chunk_io.write_rows(str(tmp_path / "g.zarr" / "a"), start, np.zeros((rows, 3)))
    with pytest.raises(ValueError, match="whole chunks"):
        chunk_io.write_rows(str(tmp_path / "g.zarr" / "a"), 0, np.zeros((4, 2)))


def test_failed_chunk_write_keeps_the_old_chunk_and_no_temporary_file(tmp_path, monkeypatch):
    g = _group(str(tmp_path / "g.zarr"))
    _plain(g, "a", (4, 3), (4, 3))
    location = str(tmp_path / "g.zarr" / "a")
    chunk_io.write_rows(location, 0, np.ones((4, 3)))

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "write", fail)
    with pytest.raises(OSError, match="disk full"):
        chunk_io.write_rows(location, 0, np.full((4, 3), 2.0))
    monkeypatch.undo()
    assert os.listdir(tmp_path / "g.zarr" / "a" / "c" / "0") == ["0"]
    assert (chunk_io.read(location) == 1).all()


def test_chunk_file_of_the_wrong_size_is_refused(tmp_path):
    g = _group(str(tmp_path / "g.zarr"))
    _plain(g, "a", (4, 3), (4, 3))
    location = str(tmp_path / "g.zarr" / "a")
    chunk_io.write_rows(location, 0, np.ones((4, 3)))
    with open(os.path.join(location, "c", "0", "0"), "r+b") as f:
        f.truncate(40)
    with pytest.raises(ValueError, match="40 bytes"):
        chunk_io.read(location)


def test_only_the_plain_format_is_read_directly(tmp_path):
    g = _group(str(tmp_path / "g.zarr"))
    _plain(g, "nan", (4,), (2,), dtype="float64", fill_value=np.nan)
    _plain(g, "bytes", (4,), (2,), dtype="uint8", fill_value=3)
    g.create_array("sharded", shape=(8,), chunks=(2,), shards=(4,), dtype="int32",
                   compressors=None)
    _plain(g, "v2keys", (4,), (2,), dtype="int32", chunk_key_encoding={"name": "v2"})
    nan = chunk_io.open_plain(str(tmp_path / "g.zarr" / "nan"))
    assert nan is not None and np.isnan(chunk_io.read(nan)).all()
    assert (chunk_io.read(str(tmp_path / "g.zarr" / "bytes")) == 3).all()
    for name in ("sharded", "v2keys"):
        assert chunk_io.open_plain(str(tmp_path / "g.zarr" / name)) is None
    meta = json.loads((tmp_path / "g.zarr" / "nan" / "zarr.json").read_text())
    meta["codecs"][0]["configuration"]["endian"] = "big"
    assert chunk_io.plain_metadata(meta) is None


def test_raw_store_reads_frames_directly_as_zarr_reads_them(tmp_path, synth_ntu):
    result = ingest_ntu(Workspace(str(tmp_path)), str(synth_ntu), workers=1, shard_files=16)
    raw = RawStore(result.output)
    root = zarr.open_group(result.output, mode="r")
    assert chunk_io.open_plain(f"{result.output}/shards/000001/xyz") is not None
    assert chunk_io.open_plain(f"{result.output}/shards/000001/body_id") is not None
    xyz, ids, offsets = raw.frames(5, 40, bodies=2, ids=False)  # samples of three shards
    assert ids is None and np.array_equal(offsets, raw.offsets[5:41] - raw.offsets[5])
    shard, position, count = (root[k][5:40] for k in ("shard", "position", "frame_count"))
    assert len(set(shard.tolist())) == 3
    expected_xyz = np.concatenate([root[f"shards/{s:06d}/xyz"][p:p + c]
                                   for s, p, c in zip(shard, position, count, strict=True)])
    expected_ids = np.concatenate([root[f"shards/{s:06d}/body_id"][p:p + c]
                                   for s, p, c in zip(shard, position, count, strict=True)])
    assert np.array_equal(xyz, expected_xyz[:, :2])
    all_slots, ids, _ = raw.frames(5, 40)
    assert np.array_equal(all_slots, expected_xyz) and np.array_equal(ids, expected_ids)
    assert np.array_equal(raw.meta("subject"), root["subject"][:])
    assert list(raw.meta("name")) == list(root["name"][:])


def test_chunks_holding_only_the_fill_value_are_left_out_when_asked(store):
    group = _group(store)
    _plain(group, "a", shape=(8, 4), chunks=(4, 2))
    x = np.zeros((8, 4), np.float32)
    x[5, 3] = 1.0  # only chunk (1, 1) holds a value
    chunk_io.write_rows(f"{store}/a", 0, x, write_empty=False)
    assert np.array_equal(zarr.open_array(store=zarr_store(f"{store}/a"), mode="r")[:], x)
    stored = {(i, j) for i in range(2) for j in range(2)
              if chunk_io.read_object(f"{store}/a/c/{i}/{j}") is not None}
    assert stored == {(1, 1)}
    chunk_io.write_rows(f"{store}/a", 0, np.zeros_like(x), write_empty=False)  # removes it
    assert chunk_io.read_object(f"{store}/a/c/1/1") is None


def test_leftovers_of_interrupted_writes_are_removed_and_nothing_else(tmp_path):
    folder = tmp_path / "s.zarr" / "a" / "c"
    folder.mkdir(parents=True)
    for name in ("0", ".0.1f2e.partial", "1.abc.partial", ".tmp-x-zarr.json", "zarr.json"):
        (folder / name).write_bytes(b"x")
    assert chunk_io.remove_partial_writes(str(tmp_path / "s.zarr")) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["0", "zarr.json"]


def test_dot_separated_chunk_keys_are_read_and_written_as_zarr_does(store):
    group = _group(store)
    z = group.create_array("d", shape=(10, 3), chunks=(4, 3), dtype="float32", fill_value=0.0,
                           compressors=None,
                           chunk_key_encoding={"name": "default", "separator": "."})
    x = _values((10, 3))
    z[:] = x
    assert np.array_equal(chunk_io.read(f"{store}/d", (slice(3, 9),)), x[3:9])
    meta = chunk_io.plain_array_metadata((10, 3), "float32", (4, 3), separator=".")
    chunk_io.write_metadata(f"{store}/e", meta)
    chunk_io.write_rows(f"{store}/e", 0, x)
    assert chunk_io.read_object(f"{store}/e/c.2.0") is not None  # one file, no folders
    assert np.array_equal(zarr.open_array(store=zarr_store(f"{store}/e"), mode="r")[:], x)
