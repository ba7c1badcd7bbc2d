"""The 50-frame store: the fixed-size representation the models train on.

`data` (N, 3, T, 25, 2) float32 metres with dimension names `sample, coordinate, frame,
joint, body`, chunked along samples; `label`, `name`, `valid_length` per sample; and
for every benchmark of the dataset the index arrays `split_<benchmark>_train` and
`split_<benchmark>_test`, each with its own dimension (`<benchmark>_train`, ...).
Attributes give the units, the joint names and, when the dataset's are known,
`action_names`. The metadata is consolidated, so `xarray.open_zarr` opens it in one
read: `ds.isel(sample=ds.split_xview_train.values)` is the xview training set.

Format version 2; a version-1 store (dimension `xyz`, splits in `split/<b>/<side>`,
no consolidated metadata) is still read (`FramesStore`).

`data` and `valid_length` are stored uncompressed (zarr v3's plain format): the
coordinates barely compress (zstd halved the synthetic store only through absent
second bodies' zeros) and encoding cost more than the whole transform. The
downsample stage writes them one whole chunk at a time with `chunk_io`, without
zarr; every reader opens them with zarr as before.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from asar_data.errors import AsarError

FRAMES_FORMAT = "asar-frames"
FRAMES_VERSION = 2
READABLE_VERSIONS = (1, 2)
DIMS = ("sample", "coordinate", "frame", "joint", "body")


def split_array(benchmark: str, side: str) -> str:
    """The array of one side ("train" | "test") of a benchmark: `split_xview_train`."""
    return f"split_{benchmark}_{side}"


def _store(location: str, read_only: bool = False):
    from asar_data.storage import zarr_store

    return zarr_store(location, read_only=read_only)


def create(location: str, samples: int, frames: int, chunk: int) -> None:
    """Create an empty store whose `data` is written later, one whole chunk per shard."""
    import zarr

    root = zarr.open_group(store=_store(location), mode="w")
    root.create_array(
        "data", shape=(samples, 3, frames, 25, 2), dtype="float32",
        chunks=(chunk, 3, frames, 25, 2), dimension_names=DIMS, compressors=None,
        fill_value=0.0, attributes={"units": "metres"},
    )
    root.create_array("valid_length", shape=(samples,), dtype="int32", chunks=(chunk,),
                      dimension_names=("sample",), compressors=None, fill_value=0,
                      attributes={"units": "frames"})


def exists(location: str) -> bool:
    """Whether the store's `data` array has been created (chunks may still be missing)."""
    from asar_data.storage import exists as _exists
    from asar_data.storage import join

    return _exists(join(location, "data", "zarr.json"))


def valid_lengths(location: str) -> np.ndarray:
    """(N,) int32 frames the transform resized per sample (0: no body), read whole."""
    from asar_data import chunk_io
    from asar_data.storage import join

    return chunk_io.read(join(location, "valid_length"))


def write_block(location: str, start: int, block: np.ndarray, valid_length: np.ndarray) -> None:
    """Write samples [start, start + len(block)) - a whole chunk, or the store's tail.

    block: (n, 3, T, 25, 2) float32; valid_length: (n,) frames the transform resized.
    Whole chunks, written directly (`chunk_io.write_rows`; through zarr for a store
    made with another codec).
    """
    from asar_data import chunk_io
    from asar_data.storage import join

    chunk_io.write_rows(join(location, "data"), start, block)
    chunk_io.write_rows(join(location, "valid_length"), start, np.asarray(valid_length, np.int32))


def finalise(
    location: str,
    labels: np.ndarray,
    names: np.ndarray,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    attrs: Mapping[str, Any],
) -> None:
    """Write the per-sample arrays, the split indices and the attributes, then consolidate
    the metadata (the last write).

    attrs: the dataset's attributes (dataset, kind, benchmarks, classes, frames, ...);
    `action_names` (one per class), when given, is stored with them.
    """
    import warnings

    import zarr

    from asar_data import chunk_io
    from asar_data.skeleton import JOINT_NAMES

    chunk_io.remove_partial_writes(location)  # left by workers killed mid-write
    store = _store(location)
    root = zarr.open_group(store=store, mode="r+")
    n = len(labels)
    root.create_array("label", data=np.asarray(labels, np.int64), chunks=(max(n, 1),),
                      dimension_names=("sample",), overwrite=True)
    name_arr = root.create_array("name", shape=(n,), dtype=str, chunks=(max(n, 1),),
                                 dimension_names=("sample",), overwrite=True)
    if n:
        name_arr[:] = np.asarray(names, dtype=str)
    for bench, (train, test) in splits.items():
        for side, idx in (("train", train), ("test", test)):
            idx = np.asarray(idx, np.int64)
            root.create_array(split_array(bench, side), data=idx, chunks=(max(len(idx), 1),),
                              dimension_names=(f"{bench}_{side}",), overwrite=True,
                              attributes={"description": "indices into sample"})
    root.attrs.update({"format": FRAMES_FORMAT, "version": FRAMES_VERSION, "units": "metres",
                       "joint_names": list(JOINT_NAMES), **dict(attrs)})
    with warnings.catch_warnings():  # "consolidated metadata is not part of the v3 spec"
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(store)


class FramesStoreError(AsarError, ValueError):
    """A 50-frame store this version cannot read (the message says what to run)."""


class FramesStore:
    """Read access to a 50-frame store."""

    def __init__(self, location: str):
        import zarr

        from asar_data.raw_store import checked_version

        self.location = location
        self.root = zarr.open_group(store=_store(location, read_only=True), mode="r")
        self.attrs = dict(self.root.attrs)
        self.version = checked_version(self.attrs, location, FRAMES_FORMAT, READABLE_VERSIONS,
                                       "50-frame store", "asar-cli downsample",
                                       FramesStoreError)
        self.data = self.root["data"]
        self.labels = self.root["label"][:]
        self.valid_length = self.root["valid_length"][:]

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def frames(self) -> int:
        return self.data.shape[2]

    @property
    def chunk(self) -> int:
        return self.data.chunks[0]

    @property
    def names(self) -> np.ndarray:
        from asar_data.raw_store import as_unicode

        return as_unicode(self.root["name"][:])

    @property
    def benchmarks(self) -> list[str]:
        return list(self.attrs.get("benchmarks", []))

    def split(self, benchmark: str, side: str) -> np.ndarray:
        """Sample indices (ascending int64) of one side ("train" | "test") of a benchmark."""
        if benchmark not in self.benchmarks:
            raise KeyError(
                f"{self.attrs.get('dataset')} has no benchmark {benchmark!r} "
                f"(it has: {', '.join(self.benchmarks)})"
            )
        path = f"split/{benchmark}/{side}" if self.version == 1 else split_array(benchmark, side)
        return self.root[path][:]

    def read(self, indices: np.ndarray) -> np.ndarray:
        """(len(indices), 3, T, 25, 2) float32, reading whole chunks."""
        indices = np.asarray(indices, np.int64)
        out = np.empty((len(indices), *self.data.shape[1:]), np.float32)
        if len(indices) == 0:
            return out
        chunk = self.chunk
        order = np.argsort(indices, kind="stable")
        sorted_idx = indices[order]
        for c in np.unique(sorted_idx // chunk):
            sel = (sorted_idx // chunk) == c
            block = self.data[c * chunk:min((c + 1) * chunk, len(self))]
            out[order[sel]] = block[sorted_idx[sel] - c * chunk]
        return out
