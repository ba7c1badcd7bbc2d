"""The raw store: ragged skeleton samples, frames concatenated, with per-sample metadata.

Schema (see docs/DESIGN.md): `xyz` (F, B, 3, 25) float32 metres (frame, body slot,
coordinate, joint), `body_id` (F, B) uint64, `offsets` (N+1,) int64 and one (N,)
array per metadata field. Body slots are chunked in pairs: the first two bodies
(all the reference uses) are read without touching the extra ones, and slots that
are empty in a whole chunk are never stored. `xyz`, `offsets` and the numeric
metadata are stored uncompressed, in zarr v3's plain format, so that the downsample
stage reads them directly (`chunk_io`): float skeletons barely compress, and
decoding cost more than the bytes saved. `body_id` (read only to denoise) stays
blosc lz4: mostly zeros and repeated IDs, it compresses to almost nothing. A store
written by an older version (all compressed) reads the same, through zarr.

Ingest works in two steps so that shards can run in parallel and resume: each
shard of files becomes a `Part` (a single `.npz` file, written atomically), and
`assemble` streams the parts, in order, into the concatenated store.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

RAW_FORMAT = "asar-raw"
RAW_VERSION = 1
JOINTS = 25
CHUNK_FRAMES = 8192
BODY_CHUNK = 2

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
    (`segment` is (n, 3)); problems: what the shard skipped or repaired.
    """

    xyz: np.ndarray
    body_id: np.ndarray
    meta: dict[str, np.ndarray]
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return len(self.meta["frame_count"])

    def to_bytes(self) -> bytes:
        """An `.npz` image; the frame arrays are blosc-compressed (mostly empty body slots)."""
        from numcodecs import Blosc

        codec = Blosc(cname="lz4", clevel=1, shuffle=Blosc.SHUFFLE)
        buf = io.BytesIO()
        extra = {
            "problems": [[p.file, p.line, p.reason, p.action] for p in self.problems],
            "counts": self.counts,
            "xyz_shape": list(self.xyz.shape),
            "body_id_shape": list(self.body_id.shape),
        }
        np.savez(
            buf,
            xyz=np.frombuffer(codec.encode(np.ascontiguousarray(self.xyz, np.float32)), np.uint8),
            body_id=np.frombuffer(
                codec.encode(np.ascontiguousarray(self.body_id, np.uint64)), np.uint8
            ),
            _extra=np.array(json.dumps(extra)),
            **{f"meta_{k}": v for k, v in self.meta.items()},
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Part:
        from numcodecs import Blosc

        codec = Blosc()
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            extra = json.loads(str(z["_extra"]))
            meta = {k[5:]: z[k] for k in z.files if k.startswith("meta_")}
            xyz = np.frombuffer(codec.decode(z["xyz"].tobytes()), np.float32)
            ids = np.frombuffer(codec.decode(z["body_id"].tobytes()), np.uint64)
            return cls(
                xyz=xyz.reshape(extra["xyz_shape"]),
                body_id=ids.reshape(extra["body_id_shape"]),
                meta=meta,
                problems=[Problem(*p) for p in extra["problems"]],
                counts={k: int(v) for k, v in extra["counts"].items()},
            )


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


def _codec():
    """body_id's codec: blosc lz4 (mostly zeros and long runs of the same IDs)."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle")


def assemble(
    parts: Iterable[Part],
    location: str,
    bodies: int,
    attrs: Mapping[str, Any],
    chunk_frames: int = CHUNK_FRAMES,
) -> dict[str, int]:
    """Write parts, in order, as one raw store at `location` (replacing what is there).

    Streams: only one part plus less than a chunk of frames is held at a time.
    Returns {"samples": N, "frames": F}.
    """
    import zarr

    from asar_data.storage import zarr_store

    root = zarr.open_group(store=zarr_store(location), mode="w")
    xyz = root.create_array(
        "xyz", shape=(0, bodies, 3, JOINTS), dtype="float32",
        chunks=(chunk_frames, BODY_CHUNK, 3, JOINTS), compressors=None, fill_value=0.0,
        dimension_names=("frame", "body", "xyz", "joint"),
    )
    body_id = root.create_array(
        "body_id", shape=(0, bodies), dtype="uint64", chunks=(chunk_frames * 8, bodies),
        compressors=_codec(), fill_value=0, dimension_names=("frame", "body"),
    )
    metas: list[dict[str, np.ndarray]] = []
    pending_xyz: list[np.ndarray] = []
    pending_ids: list[np.ndarray] = []
    written = 0
    pending = 0

    def flush(final: bool) -> None:
        nonlocal written, pending, pending_xyz, pending_ids
        if not pending:
            return
        block = np.concatenate(pending_xyz)
        ids = np.concatenate(pending_ids)
        take = len(block) if final else (len(block) // chunk_frames) * chunk_frames
        if take == 0:
            return
        xyz.resize((written + take, bodies, 3, JOINTS))
        body_id.resize((written + take, bodies))
        xyz[written:written + take] = block[:take]
        body_id[written:written + take] = ids[:take]
        written += take
        pending_xyz, pending_ids = [block[take:]], [ids[take:]]
        pending = len(block) - take

    for part in parts:
        metas.append(part.meta)
        pending_xyz.append(part.xyz.astype(np.float32, copy=False))
        pending_ids.append(part.body_id.astype(np.uint64, copy=False))
        pending += len(part.xyz)
        if pending >= chunk_frames:
            flush(final=False)
    flush(final=True)

    meta = {k: np.concatenate([m[k] for m in metas]) for k in (metas[0] if metas else new_meta(0))}
    n = len(meta["frame_count"])
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(meta["frame_count"], out=offsets[1:])
    if offsets[-1] != written:
        raise RuntimeError(f"frame counts sum to {offsets[-1]} but {written} frames were written")
    root.create_array("offsets", data=offsets, chunks=(max(n + 1, 1),), compressors=None,
                      dimension_names=("sample_edge",))
    for k, v in meta.items():
        dims = ("sample", "field") if v.ndim == 2 else ("sample",)
        if k in STRING_FIELDS:
            arr = root.create_array(k, shape=v.shape, dtype=str, chunks=(max(n, 1),),
                                    dimension_names=dims)
            if n:
                arr[:] = v.astype(str)
        else:
            root.create_array(k, data=v, chunks=(max(n, 1),) + v.shape[1:], compressors=None,
                              dimension_names=dims)
    root.attrs.update(
        {"format": RAW_FORMAT, "version": RAW_VERSION, "bodies": bodies, "joints": JOINTS,
         **dict(attrs)}
    )
    return {"samples": n, "frames": int(written)}


def as_unicode(a: np.ndarray) -> np.ndarray:
    """A fixed-width unicode array from zarr's variable-length strings."""
    return np.array(np.asarray(a).tolist(), dtype=str)


class RawStore:
    """Read access to a raw store: metadata in memory, frames on demand.

    Cheap to open (one task may open it for a few hundred samples): the group's
    attributes and `offsets` are read directly; `frames` and `meta` read plain arrays
    directly too (`chunk_io`), and zarr is opened only for the others (strings,
    compressed arrays) and for `root`.
    """

    def __init__(self, location: str):
        from asar_data import chunk_io, storage

        self.location = location
        self.attrs = group_attributes(location)
        if self.attrs.get("format") != RAW_FORMAT:
            raise ValueError(f"{location} is not an asar raw store")
        self.offsets = chunk_io.read(storage.join(location, "offsets"))
        self._arrays: dict[str, Any] = {}
        self._meta: dict[str, np.ndarray] = {}

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

    def meta(self, key: str) -> np.ndarray:
        """One per-sample metadata array (numbers read directly when stored plain)."""
        from asar_data import chunk_io, storage

        if key not in self._meta:
            if key in STRING_FIELDS:
                self._meta[key] = as_unicode(self.root[key][:])
            else:
                self._meta[key] = chunk_io.read(storage.join(self.location, key))
        return self._meta[key]

    def meta_all(self) -> dict[str, np.ndarray]:
        from asar_data import storage

        return {k: self.meta(k) for k in META_FIELDS
                if storage.exists(storage.join(self.location, k, "zarr.json"))}

    def _array(self, name: str) -> Any:
        """A frame array for `chunk_io.read`: its `PlainArray`, or its location when zarr
        must read it (opened once per store)."""
        from asar_data import chunk_io, storage

        if name not in self._arrays:
            location = storage.join(self.location, name)
            self._arrays[name] = chunk_io.open_plain(location) or location
        return self._arrays[name]

    def frames(self, start: int, stop: int, bodies: int | None = None, ids: bool = True
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Samples [start, stop): xyz (F, b, 3, 25), body_id (F, b), offsets (n+1,) from 0.

        `bodies` limits the slots read (2: only what the reference uses); `ids=False`
        skips body_id (returned as None): only denoising needs it.
        """
        from asar_data import chunk_io

        a, b = int(self.offsets[start]), int(self.offsets[stop])
        m = self.bodies if bodies is None else min(bodies, self.bodies)
        rows = (slice(a, b), slice(0, m))
        xyz = chunk_io.read(self._array("xyz"), rows)
        body_id = chunk_io.read(self._array("body_id"), rows) if ids else None
        return xyz, body_id, self.offsets[start:stop + 1] - a

    def sample(self, i: int) -> np.ndarray:
        """One sample as the reference reader returns it: (3, T, 25, 2) float32."""
        xyz, _, _ = self.frames(i, i + 1, bodies=2, ids=False)
        return xyz.transpose(2, 0, 3, 1)


def group_attributes(location: str) -> dict[str, Any]:
    """The attributes of the zarr v3 group at `location`, from its zarr.json (no zarr)."""
    from asar_data import storage

    meta = json.loads(storage.read_bytes(storage.join(location, "zarr.json")))
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        raise ValueError(f"{location} is not a zarr v3 group")
    return dict(meta.get("attributes") or {})
