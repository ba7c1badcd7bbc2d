"""The raw store: ragged skeleton samples, one group of frames per ingest shard, an index.

Layout (format `asar-raw`, version 2; docs/DESIGN.md has the tables):

    raw.zarr/
      zarr.json               attributes (format, version, dataset, ...) and the
                              consolidated metadata of every node below
      shards/<shard>/         one group per ingest shard (`000000`, ...), written by it alone
        xyz      (F_s, B, 3, 25) float32 metres: its samples' frames, in sample order
        body_id  (F_s, B) uint64
      shard, position         (N,) the index: sample i's frames are
      frame_count ...         shards/<shard[i]>/xyz[position[i]:position[i] + frame_count[i]]
      name, label, ...        (N,) per-sample metadata (META_FIELDS)

The shards are the store: an ingest shard writes its samples' frames once, where they
stay (`write_shard`); its per-sample metadata, problems and counts go into its group's
attributes (`record`), written last, so a shard is complete exactly when its record is
there, and writing it again writes the same bytes (a rerun or a dask retry is
harmless). When every shard is done, `finalise` writes the index from the records and
the group's attributes last: the store reads as an asar raw store only from then on.
The consolidated metadata keeps each shard's sample and frame counts, not its record
(which would make the root metadata grow with the samples).

Every array is stored uncompressed (zarr v3's plain format; names as zarr's `string`
type) and written by `chunk_io`, without zarr: float skeletons barely compress and
decoding cost more than it saved on the downsample hot path, which reads `xyz` directly
too. Body slots are chunked in pairs (the first two, all the reference uses, are read
alone) and chunks of slots that are empty throughout are never stored, so `body_id`
costs little more than compressed would.

A version-1 store (one concatenated `xyz`/`body_id` with `offsets`, before this
layout) is read as a store of one shard held at the root: nothing to redo.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from asar_data.errors import AsarError

RAW_FORMAT = "asar-raw"
RAW_VERSION = 2
READABLE_VERSIONS = (1, 2)
JOINTS = 25
CHUNK_FRAMES = 8192
BODY_CHUNK = 2
SHARDS = "shards"
KEYS = "."  # chunk keys `c.0.0.0.0`: one file per chunk, no folder per index
FRAME_DIMS = ("frame", "body", "coordinate", "joint")
INDEX_FIELDS = ("shard", "position")

# per-sample metadata fields, their dtypes and fill values
META_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("U", ""),
    "label": ("int16", -1),
    "frame_count": ("int32", 0),
    "body_count": ("int16", 0),
    "setup": ("int16", 0),
    "camera": ("int16", 0),
    "subject": ("int16", 0),
    "replication": ("int16", 0),
    "video": ("U", ""),
    "view": ("int16", 0),
    "segment": ("int32", 0),  # (N, 3): label line, first frame, last frame (PKU-MMD)
    "source_split": ("int8", -1),  # imported reference folders: 0 train file, 1 test file
}
STRING_FIELDS = {k for k, (dt, _) in META_FIELDS.items() if dt == "U"}
SEGMENT_FIELDS = ("label_line", "first_frame", "last_frame")


class RawStoreError(AsarError, ValueError):
    """A raw store this version cannot read (the message says what to run)."""


@dataclass
class Problem:
    """One line of the ingest report."""

    file: str
    line: int | None
    reason: str
    action: str  # "skipped" | "repaired" | "ignored"

    def row(self) -> list[str]:
        return [self.file, "" if self.line is None else str(self.line), self.reason, self.action]


@dataclass
class Part:
    """The ingested samples of one shard, in store order.

    xyz: (F, B, 3, 25) float32 metres; body_id: (F, B) uint64; meta: (n,) arrays
    (`segment` is (n, 3)); problems: what the shard skipped or repaired; counts:
    what it read (files, bytes).
    """

    xyz: np.ndarray
    body_id: np.ndarray
    meta: dict[str, np.ndarray]
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return len(self.meta["frame_count"])


def empty_part(bodies: int) -> Part:
    return Part(
        xyz=np.zeros((0, bodies, 3, JOINTS), np.float32),
        body_id=np.zeros((0, bodies), np.uint64),
        meta=new_meta(0),
    )


def new_meta(n: int) -> dict[str, np.ndarray]:
    """Default-filled metadata arrays for n samples."""
    out = {}
    for k, (dt, fill) in META_FIELDS.items():
        shape = (n, 3) if k == "segment" else (n,)
        out[k] = np.full(shape, fill, dtype="<U1" if dt == "U" else dt)
    return out


def concat_parts(parts: list[Part], bodies: int) -> Part:
    """One Part from several (small ones: a shard's samples)."""
    if not parts:
        return empty_part(bodies)
    meta = {k: np.concatenate([p.meta[k] for p in parts]) for k in parts[0].meta}
    counts: dict[str, int] = {}
    for p in parts:
        for k, v in p.counts.items():
            counts[k] = counts.get(k, 0) + v
    return Part(
        xyz=np.concatenate([p.xyz for p in parts]),
        body_id=np.concatenate([p.body_id for p in parts]),
        meta=meta,
        problems=[q for p in parts for q in p.problems],
        counts=counts,
    )


# ---------------------------------------------------------------- writing


def shard_group(shard: int) -> str:
    """The group of an ingest shard inside the store: `shards/000042`."""
    return f"{SHARDS}/{shard:06d}"


def chunk_rows(frames: int, most: int = CHUNK_FRAMES) -> int:
    """Frames per chunk of a shard's arrays: at most `most`, evened out over the chunks the
    shard needs, so that its last chunk is (nearly) full: no padding written or read."""
    chunks = max(1, -(-frames // most))
    return max(1, -(-frames // chunks))


def shard_arrays(frames: int, bodies: int) -> dict[str, dict[str, Any]]:
    """The zarr metadata of a shard's `xyz` and `body_id`: a function of its size alone, so
    that `finalise` consolidates it without reading it back."""
    from asar_data import chunk_io

    rows = chunk_rows(frames)
    return {
        "xyz": chunk_io.plain_array_metadata(
            (frames, bodies, 3, JOINTS), "float32", (rows, BODY_CHUNK, 3, JOINTS), 0.0,
            FRAME_DIMS, {"units": "metres"}, KEYS),
        "body_id": chunk_io.plain_array_metadata(
            (frames, bodies), "uint64", (rows, BODY_CHUNK), 0, FRAME_DIMS[:2], None, KEYS),
    }


def group_node(attributes: Mapping[str, Any], members: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """A group's zarr.json; `members`: the consolidated metadata of every node below it."""
    node: dict[str, Any] = {"zarr_format": 3, "node_type": "group",
                            "attributes": dict(attributes)}
    if members is not None:
        node["consolidated_metadata"] = {"kind": "inline", "must_understand": False,
                                         "metadata": dict(members)}
    return node


def _record(part: Part) -> dict[str, Any]:
    """A shard's record: its sizes, its samples' metadata (the fields that differ from the
    fill value), its problems and counts, as JSON."""
    meta = {}
    for k, v in part.meta.items():
        fill = META_FIELDS[k][1]
        if len(v) and (v != fill).any():
            meta[k] = v.tolist()
    return {
        "samples": part.samples,
        "frames": int(part.xyz.shape[0]),
        "bodies": int(part.xyz.shape[1]),
        "meta": meta,
        "problems": [[p.file, p.line, p.reason, p.action] for p in part.problems],
        "counts": dict(part.counts),
    }


def write_shard(location: str, shard: int, part: Part) -> dict[str, int]:
    """Write one shard's frames into the store at `location`, then its record (last).

    Idempotent: a rerun with the same part writes the same bytes (each file atomically)
    and never deletes a file another attempt may have written. Chunks of body slots
    that are empty throughout are not stored. Returns {"samples": n, "frames": F_s}.
    """
    from asar_data import chunk_io, storage

    group = storage.join(location, *shard_group(shard).split("/"))
    frames, bodies = part.xyz.shape[:2]
    data = {"xyz": np.ascontiguousarray(part.xyz, np.float32),
            "body_id": np.ascontiguousarray(part.body_id, np.uint64)}
    for name, meta in shard_arrays(frames, bodies).items():
        array = storage.join(group, name)
        chunk_io.write_metadata(array, meta)
        chunk_io.write_rows(array, 0, data[name], write_empty=False)
    record = _record(part)
    chunk_io.write_metadata(group, group_node({"samples": part.samples, "frames": int(frames),
                                               "record": record}))
    return {"samples": part.samples, "frames": int(frames)}


def shard_record(location: str, shard: int) -> dict[str, Any] | None:
    """A shard's record, or None when the shard's output is not complete."""
    from asar_data import storage

    try:
        meta = json.loads(storage.read_bytes(storage.join(location, *shard_group(shard).split("/"),
                                                          "zarr.json")))
    except FileNotFoundError:
        return None
    return (meta.get("attributes") or {}).get("record")


@dataclass
class Finalised:
    """What `finalise` found in the shard records: sizes, problems, counts."""

    samples: int
    frames: int
    problems: list[Problem]
    counts: dict[str, int]


def finalise(location: str, shards: int, bodies: int, attrs: Mapping[str, Any]) -> Finalised:
    """Write the index of a store whose `shards` shards are all written, then the group's
    attributes and consolidated metadata (the last write: from then on it reads as
    complete). Run it when no shard is being written.

    attrs: the dataset's attributes (dataset, kind, benchmarks, classes, ... and
    optionally `action_names`, one per class).
    """
    from asar_data import chunk_io, storage
    from asar_data.skeleton import JOINT_NAMES

    chunk_io.remove_partial_writes(location)  # left by workers killed mid-write
    records = []
    for s in range(shards):
        record = shard_record(location, s)
        if record is None:
            raise RuntimeError(f"shard {s} of {location} is not written")
        records.append(record)
    counts: dict[str, int] = {}
    problems = []
    for r in records:
        problems += [Problem(*p) for p in r["problems"]]
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + int(v)
    index = _index(records)
    n = len(index["frame_count"])
    nodes: dict[str, Any] = {}
    for k, v in index.items():
        array = storage.join(location, k)
        dims = ("sample", "segment_field") if v.ndim == 2 else ("sample",)
        if k in STRING_FIELDS:
            nodes[k] = chunk_io.write_strings(array, v, dims, None, KEYS)
            continue
        fill = META_FIELDS[k][1] if k in META_FIELDS else 0
        nodes[k] = chunk_io.plain_array_metadata(
            v.shape, v.dtype, (max(n, 1),) + v.shape[1:], fill, dims,
            {"segment_field": list(SEGMENT_FIELDS)} if k == "segment" else None, KEYS)
        chunk_io.write_metadata(array, nodes[k])
        if n:
            chunk_io.write_rows(array, 0, v)
    nodes[SHARDS] = group_node({}, {})
    chunk_io.write_metadata(storage.join(location, SHARDS), group_node({}))
    for s, r in enumerate(records):
        group = shard_group(s)
        nodes[group] = group_node({"samples": r["samples"], "frames": r["frames"]}, {})
        for name, meta in shard_arrays(r["frames"], r["bodies"]).items():
            nodes[f"{group}/{name}"] = meta
    frames = int(index["frame_count"].sum(dtype=np.int64))
    attributes = {"format": RAW_FORMAT, "version": RAW_VERSION, "bodies": bodies,
                  "joints": JOINTS, "joint_names": list(JOINT_NAMES), "units": "metres",
                  "shards": shards, "samples": n, "frames": frames, **dict(attrs)}
    chunk_io.write_metadata(location, group_node(attributes, nodes))
    return Finalised(n, frames, problems, counts)


def _index(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The per-sample arrays of all shards, in order, with each sample's shard and position."""
    parts = []
    for s, r in enumerate(records):
        meta = new_meta(r["samples"])
        for k, v in r["meta"].items():
            meta[k] = np.array(v, dtype=meta[k].dtype if k not in STRING_FIELDS else str)
            if meta[k].shape[:1] != (r["samples"],):
                raise RuntimeError(f"shard {s}: {k} has {len(meta[k])} values, not "
                                   f"{r['samples']}")
        fc = meta["frame_count"].astype(np.int64)
        meta["shard"] = np.full(r["samples"], s, np.int32)
        meta["position"] = np.cumsum(fc) - fc
        parts.append(meta)
    if not parts:
        out = new_meta(0)
        out.update(shard=np.zeros(0, np.int32), position=np.zeros(0, np.int64))
        return out
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------- reading


def as_unicode(a: np.ndarray) -> np.ndarray:
    """A fixed-width unicode array from zarr's variable-length strings."""
    return np.array(np.asarray(a).tolist(), dtype=str)


def group_metadata(location: str) -> dict[str, Any]:
    """The zarr.json of the zarr v3 group at `location` (no zarr)."""
    from asar_data import storage

    try:
        meta = json.loads(storage.read_bytes(storage.join(location, "zarr.json")))
    except FileNotFoundError:
        raise RawStoreError(f"no complete raw store at {location}: run `asar-cli ingest ...`"
                            ) from None
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        raise RawStoreError(f"{location} is not a zarr v3 group")
    return meta


def group_attributes(location: str) -> dict[str, Any]:
    """The attributes of the zarr v3 group at `location`, from its zarr.json (no zarr)."""
    return dict(group_metadata(location).get("attributes") or {})


def checked_version(attrs: Mapping[str, Any], location: str, fmt: str,
                    readable: tuple[int, ...], what: str, command: str,
                    error: type[AsarError]) -> int:
    """The format version of a store's attributes; raises `error` (one line saying what to
    run) for a store that is not complete or newer than this code reads."""
    if attrs.get("format") != fmt:
        raise error(f"{location} is not a complete asar {what}: run `{command}` again")
    version = int(attrs.get("version", 1))
    if version not in readable:
        raise error(f"{location} is a {what} of version {version}, newer than this asar reads "
                    f"({max(readable)}): upgrade asar, or re-run `{command} --force`")
    return version


# What RawStore instances of one unchanged local store share in a process: a downsample
# worker opens the store once per task, and parsing the consolidated metadata and the
# index each time cost a few milliseconds a task at NTU-60 size.
_SHARED = ("attrs", "version", "_nodes", "_arrays", "offsets", "shard", "position")
_OPENED: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _stamp(location: str) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of a local store's zarr.json (replaced last, by a rename,
    whenever the store is written), or None for an object store or a missing file."""
    import os

    from asar_data import storage

    if storage.is_url(location):
        return None
    try:
        st = os.stat(os.path.join(location, "zarr.json"))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class RawStore:
    """Read access to a raw store: the index in memory, frames on demand.

    Cheap to open (one task may open it for a few hundred samples): the group's
    zarr.json (attributes and consolidated metadata) and three index arrays are read
    directly; `frames` reads the shards' plain `xyz` directly too (`chunk_io`), and
    zarr is opened only for strings, `body_id` and `root`.
    """

    def __init__(self, location: str):
        self.location = location
        self._meta: dict[str, np.ndarray] = {}
        stamp = _stamp(location)
        opened = _OPENED.get(location)
        if stamp is not None and opened is not None and opened[0] == stamp:
            self.__dict__.update(opened[1])  # opened before in this process, unchanged
            return
        meta = group_metadata(location)
        self.attrs = dict(meta.get("attributes") or {})
        self.version = checked_version(self.attrs, location, RAW_FORMAT, READABLE_VERSIONS,
                                       "raw store", "asar-cli ingest ...", RawStoreError)
        self._nodes = (meta.get("consolidated_metadata") or {}).get("metadata") or {}
        self._arrays: dict[str, Any] = {}
        if self.version == 1:  # one concatenated frame array at the root: one shard
            self.offsets = self._read("offsets")
            n = len(self.offsets) - 1
            self.shard = np.zeros(n, np.int32)
            self.position = self.offsets[:-1]
        else:
            frame_count = self._read("frame_count").astype(np.int64)
            self.offsets = np.concatenate([[0], np.cumsum(frame_count)])
            self.shard = self._read("shard")
            self.position = self._read("position")
        for a in (self.offsets, self.shard, self.position):
            a.flags.writeable = False
        if stamp is not None:
            _OPENED[location] = stamp, {k: getattr(self, k) for k in _SHARED}

    @cached_property
    def root(self) -> Any:
        """The zarr group (opened on first use)."""
        import zarr

        from asar_data.storage import zarr_store

        return zarr.open_group(store=zarr_store(self.location, read_only=True), mode="r")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def bodies(self) -> int:
        return int(self.attrs["bodies"])

    def _read(self, path: str, rows: tuple[slice, ...] = (), out: np.ndarray | None = None
              ) -> np.ndarray:
        """array[rows] of an array of the store (step-1 slices of its leading axes), new or
        into `out`: plain arrays directly, the others (compressed) through zarr."""
        from asar_data import chunk_io

        array = self._array(path)
        if isinstance(array, chunk_io.PlainArray):
            return chunk_io.read(array, rows, out)
        values = array[rows] if rows else array[...]
        if out is None:
            return values
        out[...] = values
        return out

    def meta(self, key: str) -> np.ndarray:
        """One per-sample metadata array (numbers read directly when stored plain)."""
        if key not in self._meta:
            if key in STRING_FIELDS:
                self._meta[key] = as_unicode(self.root[key][:])
            else:
                self._meta[key] = self._read(key)
        return self._meta[key]

    def _has(self, path: str) -> bool:
        from asar_data import storage

        if self._nodes:
            return path in self._nodes
        return storage.exists(storage.join(self.location, path, "zarr.json"))

    def meta_all(self) -> dict[str, np.ndarray]:
        return {k: self.meta(k) for k in META_FIELDS if self._has(k)}

    def _array(self, path: str) -> Any:
        """A `chunk_io.PlainArray` (read directly), or the zarr array when it is stored in
        another format (compressed); from the consolidated metadata when there is some.
        Opened once per store."""
        from asar_data import chunk_io, storage

        if path not in self._arrays:
            location = storage.join(self.location, *path.split("/"))
            node = self._nodes.get(path)
            if node is not None:
                layout = chunk_io.plain_metadata(node)
                array = None if layout is None else chunk_io.PlainArray(location, *layout)
            else:
                array = chunk_io.open_plain(location)
            self._arrays[path] = array if array is not None else self.root[path]
        return self._arrays[path]

    def _frames_path(self, shard: int, name: str) -> str:
        return name if self.version == 1 else f"{shard_group(shard)}/{name}"

    def frames(self, start: int, stop: int, bodies: int | None = None, ids: bool = True
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Samples [start, stop): xyz (F, b, 3, 25), body_id (F, b), offsets (n+1,) from 0.

        `bodies` limits the slots read (2: only what the reference uses); `ids=False`
        skips body_id (returned as None): only denoising needs it.
        """
        m = self.bodies if bodies is None else min(bodies, self.bodies)
        offsets = self.offsets[start:stop + 1] - self.offsets[start]
        xyz = np.empty((int(offsets[-1]), m, 3, JOINTS), np.float32)
        body_id = np.empty((len(xyz), m), np.uint64) if ids else None
        at = 0
        for s, r0, r1 in self._runs(start, stop):  # each shard's rows straight into place
            rows = (slice(r0, r1), slice(0, m))
            self._read(self._frames_path(s, "xyz"), rows, xyz[at:at + r1 - r0])
            if body_id is not None:
                self._read(self._frames_path(s, "body_id"), rows, body_id[at:at + r1 - r0])
            at += r1 - r0
        return xyz, body_id, offsets

    def _runs(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(shard, first row, end row) of the frames of samples [start, stop), shard by shard."""
        if stop <= start:
            return []
        shard = self.shard[start:stop]
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(shard)) + 1, [stop - start]])
        out = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            first, last = start + int(a), start + int(b) - 1
            r0 = int(self.position[first])
            r1 = int(self.position[last] + self.offsets[last + 1] - self.offsets[last])
            out.append((int(shard[a]), r0, r1))
        return out

    def sample(self, i: int) -> np.ndarray:
        """One sample as the reference reader returns it: (3, T, 25, 2) float32."""
        xyz, _, _ = self.frames(i, i + 1, bodies=2, ids=False)
        return xyz.transpose(2, 0, 3, 1)
