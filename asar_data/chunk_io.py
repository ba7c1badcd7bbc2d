"""Whole chunks of uncompressed zarr v3 arrays, read and written without zarr.

The stage hot paths (the downsample stage's raw reads and output writes) move a few
megabytes per task, where zarr's own machinery costs more than the bytes. An array
stored in zarr v3's plain format is just files, as the zarr v3 specification lays
them out (`zarr.json` metadata beside them):

- `codecs` is the `bytes` codec alone, little-endian (no compressor, no filter): a
  chunk file is the chunk's values in C order, nothing else;
- the chunk grid is `regular` and every chunk is stored at the full chunk shape
  (an edge chunk is padded, with the fill value here);
- the chunk key encoding is `default`: chunk (i, j, ...) of the array at `<array>`
  is the file `<array>/c/i/j/...` ("/" separator) or `<array>/c.i.j...` ("."
  separator: no folder per index, which the raw store uses); a missing chunk file
  reads as the fill value.

`open_plain` reads and checks an array's metadata and returns a `PlainArray` (or
None when the array is in another format, e.g. compressed); `read` and
`write_rows` use it and fall back to zarr's API otherwise, so they work on every
array. `create_plain` writes a plain array's metadata, and `write_strings` a
one-chunk array of strings (zarr's `string` type, `vlen-utf8` codec): with them the
ingest stage writes a whole raw store without importing zarr (benchmarks/ingest.py).
Local files are read straight into the result's memory (`readinto` of the
rows' bytes: one copy, from the page cache); URLs through `asar_data.storage`
(whole objects). Writes are atomic: a temporary
file beside the chunk, then a rename (no fsync, as zarr's own local writes).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import uuid
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from asar_data import storage

# zarr v3 data types stored as plain little-endian numbers
PLAIN_TYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
               "uint64", "float16", "float32", "float64")
SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class PlainArray:
    """An array stored in the plain format: where its chunks are and how they are laid out.

    location: the array's folder (path or URL); shape, chunks: array and chunk shapes;
    dtype: little-endian; fill: a 0-d array of dtype, what missing chunks hold;
    separator: of the chunk keys, "/" or ".".
    """

    location: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill: np.ndarray
    separator: str = "/"

    @property
    def grid(self) -> tuple[int, ...]:
        """Chunks along each axis."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    @property
    def chunk_nbytes(self) -> int:
        return math.prod(self.chunks) * self.dtype.itemsize

    def key(self, index: tuple[int, ...]) -> str:
        """The location of chunk `index` (the default key encoding)."""
        return chunk_key(self.location, index, self.separator)

    def read_chunk(self, index: tuple[int, ...], rows: tuple[int, int] | None = None
                   ) -> np.ndarray:
        """Chunk `index` at the full chunk shape, or rows [r0, r1) of it (axis 0).

        A missing chunk reads as the fill value. Local files read only those rows'
        bytes (a C-order chunk holds them in one run).
        """
        r0, r1 = rows if rows is not None else (0, self.chunks[0])
        out = np.empty((r1 - r0,) + self.chunks[1:], self.dtype)
        self.read_chunk_into(index, r0, out)
        return out

    def read_chunk_into(self, index: tuple[int, ...], row: int, out: np.ndarray) -> None:
        """Fill `out` (C-contiguous, (r, *chunks[1:])) with rows [row, row + r) of a chunk."""
        if not out.flags.c_contiguous or out.dtype != self.dtype:
            raise ValueError(f"reading into a non-contiguous or {out.dtype} buffer")
        row_bytes = self.chunk_nbytes // self.chunks[0]
        begin, size = row * row_bytes, out.nbytes
        location = self.key(index)
        if storage.is_url(location):
            data = read_object(location)
            if data is None:
                out[...] = self.fill
                return
            self._check_size(location, len(data))
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8, size, begin)
            return
        try:
            f = open(location, "rb", buffering=0)  # noqa: SIM115 (the `with` below closes it)
        except FileNotFoundError:
            out[...] = self.fill
            return
        with f:
            self._check_size(location, os.fstat(f.fileno()).st_size)
            f.seek(begin)
            view = memoryview(out.reshape(-1).view(np.uint8))
            while view:  # straight into `out`: the one copy, from the page cache
                got = f.readinto(view)
                if not got:
                    raise OSError(f"{location}: the file ended while reading it")
                view = view[got:]

    def _check_size(self, location: str, size: int) -> None:
        if size != self.chunk_nbytes:
            raise ValueError(f"{location}: {size} bytes, but an uncompressed chunk of "
                             f"{self.chunks} {self.dtype} holds {self.chunk_nbytes}")

    def write_chunk(self, index: tuple[int, ...], data: np.ndarray,
                    write_empty: bool = True) -> None:
        """Write chunk `index` whole, atomically. data: the chunk's values, at the full
        chunk shape or, for an edge chunk, the part inside the array (padded with the
        fill value). write_empty=False: a chunk holding only the fill value is not
        stored (its file removed if there is one), as zarr does by default."""
        expected = tuple(min(c, s - i * c) for i, c, s in
                         zip(index, self.chunks, self.shape, strict=True))
        if data.shape not in (self.chunks, expected):
            raise ValueError(f"chunk {index} of {self.location} is {expected} "
                             f"(stored as {self.chunks}), not {data.shape}")
        if not write_empty and self._all_fill(data):  # checked before any copy
            self._remove(index)
            return
        if data.shape != self.chunks:
            full = np.empty(self.chunks, self.dtype)
            full[...] = self.fill
            full[tuple(slice(0, e) for e in expected)] = data
            data = full
        data = np.ascontiguousarray(data, self.dtype)
        location = self.key(index)
        if storage.is_url(location):
            storage.write_bytes(location, data.tobytes())
        else:
            write_file(location, memoryview(data.reshape(-1).view(np.uint8)))

    def _all_fill(self, data: np.ndarray) -> bool:
        """Whether data holds only the fill value, bit for bit (so -0.0 is kept)."""
        if data.dtype != self.dtype:
            data = data.astype(self.dtype)
        bits = data.view(f"u{self.dtype.itemsize}")
        fill = self.fill.reshape(1).view(bits.dtype)[0]
        return not (bits.any() if fill == 0 else np.any(bits != fill))

    def _remove(self, index: tuple[int, ...]) -> None:
        location = self.key(index)
        if storage.is_url(location):
            storage.remove(location)
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(location)

    def read_region(self, region: tuple[slice, ...], out: np.ndarray | None = None
                    ) -> np.ndarray:
        """array[region]: one step-1 slice per axis, in a new array (or into `out`, of the
        region's shape and the array's dtype, e.g. a slice of a larger result).

        Each chunk the region meets gives its rows in the region (`read_chunk_into`),
        straight into the result where the region covers the chunk's other axes.
        """
        bounds = []
        for s, n in zip(region, self.shape, strict=True):
            a, b, step = s.indices(n)
            if step != 1:
                raise ValueError(f"{self.location}: only step-1 slices are read, not {s}")
            bounds.append((a, max(a, b)))
        shape = tuple(b - a for a, b in bounds)
        if out is None:
            out = np.empty(shape, self.dtype)
        elif out.shape != shape or out.dtype != self.dtype:
            raise ValueError(f"{self.location}: reading {shape} {self.dtype} into "
                             f"{out.shape} {out.dtype}")
        if out.size == 0:
            return out
        for parts in product(*(axis_parts(a, b, c) for (a, b), c in
                               zip(bounds, self.chunks, strict=True))):
            index = tuple(i for i, _, _ in parts)
            within = tuple(slice(*w) for _, w, _ in parts)  # in the chunk
            target = out[tuple(slice(*o) for _, _, o in parts)]
            whole_rows = all(w == slice(0, c) for w, c in zip(within[1:], self.chunks[1:],
                                                               strict=True))
            rows = within[0].start, within[0].stop
            if whole_rows and target.flags.c_contiguous:
                self.read_chunk_into(index, rows[0], target)
            else:
                target[...] = self.read_chunk(index, rows)[(slice(None),) + within[1:]]
        return out


def axis_parts(a: int, b: int, chunk: int) -> list[tuple[int, tuple[int, int], tuple[int, int]]]:
    """How [a, b) along one axis falls into chunks of `chunk`: (chunk index, range in the
    chunk, range in [a, b) counted from a) for each chunk it meets."""
    return [(i, (max(a, i * chunk) - i * chunk, min(b, (i + 1) * chunk) - i * chunk),
             (max(a, i * chunk) - a, min(b, (i + 1) * chunk) - a))
            for i in range(a // chunk, -(-b // chunk))]


def read_object(location: str) -> bytes | None:
    """A whole object of a URL store, or None when there is none."""
    try:
        return storage.read_bytes(location)
    except FileNotFoundError:
        return None


def write_file(location: str, data: memoryview) -> None:
    """Write a local file atomically: a temporary file in its folder, then a rename."""
    folder, name = os.path.split(location)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.replace(tmp, location)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_partial_writes(location: str) -> int:
    """Remove what interrupted atomic writes left below a local store folder (a worker
    killed between writing a temporary file and renaming it): `*.partial` (ours and
    zarr's) and `.tmp-*` (`storage.write_bytes`). Object stores have none. Call it only
    when no writer is running. Returns how many were removed."""
    if storage.is_url(location) or not os.path.isdir(location):
        return 0
    removed = 0
    for folder, _, files in os.walk(location):
        for name in files:
            if name.endswith(".partial") or name.startswith(".tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


ZARR_JSON = "zarr.json"


def _bytes_codec(dtype: np.dtype) -> dict[str, Any]:
    if dtype.itemsize == 1:
        return {"name": "bytes"}
    return {"name": "bytes", "configuration": {"endian": "little"}}


def _json_fill(value: Any, dtype: np.dtype) -> Any:
    value = np.array(value, dtype).item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def chunk_key(location: str, index: tuple[int, ...], separator: str = "/") -> str:
    """Where chunk `index` of the array at `location` is (zarr v3's default key encoding)."""
    if separator == "/":
        return storage.join(location, "c", *map(str, index))
    return storage.join(location, separator.join(("c", *map(str, index))))


def _node(node_type: str, shape: tuple[int, ...], data_type: str, chunks: tuple[int, ...],
          fill: Any, codecs: list[dict[str, Any]], dimension_names: tuple[str, ...] | None,
          attributes: dict[str, Any] | None, separator: str) -> dict[str, Any]:
    meta = {"shape": list(shape), "data_type": data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": separator}},
            "fill_value": fill, "codecs": codecs, "attributes": dict(attributes or {})}
    if dimension_names is not None:
        meta["dimension_names"] = list(dimension_names)
    meta.update({"zarr_format": 3, "node_type": node_type, "storage_transformers": []})
    return meta


def plain_array_metadata(shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...],
                         fill_value: Any = 0, dimension_names: tuple[str, ...] | None = None,
                         attributes: dict[str, Any] | None = None, separator: str = "/"
                         ) -> dict[str, Any]:
    """The zarr.json of a plain array (what zarr writes for `compressors=None`)."""
    dtype = np.dtype(dtype)
    if dtype.name not in PLAIN_TYPES:
        raise ValueError(f"{dtype} is not a plain zarr data type")
    return _node("array", tuple(shape), dtype.name, tuple(chunks), _json_fill(fill_value, dtype),
                 [_bytes_codec(dtype)], dimension_names, attributes, separator)


def write_metadata(location: str, meta: dict[str, Any]) -> None:
    """Write a node's zarr.json at `location` (an array's or a group's folder), atomically.

    Compact JSON: json's C encoder (an indent would take its pure-Python one, which cost
    a tenth of an ingest's CPU on the shard records and the consolidated metadata)."""
    data = json.dumps(meta, allow_nan=False).encode()
    target = storage.join(location, ZARR_JSON)
    if storage.is_url(target):
        storage.write_bytes(target, data)
    else:
        write_file(target, memoryview(data))


def create_plain(location: str, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...],
                 fill_value: Any = 0, dimension_names: tuple[str, ...] | None = None,
                 attributes: dict[str, Any] | None = None) -> PlainArray:
    """Create (or overwrite the metadata of) a plain array at `location`; no chunk is
    touched, so a rerun with the same metadata changes nothing. Returns it opened."""
    meta = plain_array_metadata(shape, dtype, chunks, fill_value, dimension_names, attributes)
    write_metadata(location, meta)
    layout = plain_metadata(meta)
    assert layout is not None
    return PlainArray(location, *layout)


def string_array_metadata(n: int, dimension_names: tuple[str, ...] | None = None,
                          attributes: dict[str, Any] | None = None, separator: str = "/"
                          ) -> dict[str, Any]:
    """The zarr.json of a 1-d array of n strings in one chunk (`string`, `vlen-utf8`)."""
    return _node("array", (n,), "string", (max(n, 1),), "",
                 [{"name": "vlen-utf8", "configuration": {}}], dimension_names, attributes,
                 separator)


def write_strings(location: str, values: Any, dimension_names: tuple[str, ...] | None = None,
                  attributes: dict[str, Any] | None = None, separator: str = "/"
                  ) -> dict[str, Any]:
    """Write a 1-d array of strings as one chunk (the `vlen-utf8` layout: the count, then
    each string's UTF-8 byte length and bytes, all little-endian uint32); returns its
    metadata. zarr reads it as its `string` type."""
    encoded = [str(v).encode() for v in values]
    meta = string_array_metadata(len(encoded), dimension_names, attributes, separator)
    if encoded:
        parts = [struct.pack("<I", len(encoded))]
        for e in encoded:
            parts += (struct.pack("<I", len(e)), e)
        data = b"".join(parts)
        chunk = chunk_key(location, (0,), separator)
        if storage.is_url(chunk):
            storage.write_bytes(chunk, data)
        else:
            write_file(chunk, memoryview(data))
    write_metadata(location, meta)
    return meta


def plain_metadata(meta: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...], np.dtype,
                                                   np.ndarray, str] | None:
    """(shape, chunks, dtype, fill, key separator) of an array's zarr.json, or None when it
    is not plain."""
    codecs = meta.get("codecs") or [{}]
    grid = meta.get("chunk_grid") or {}
    keys = meta.get("chunk_key_encoding") or {}
    dtype_name = meta.get("data_type")
    if (meta.get("zarr_format") != 3 or meta.get("node_type") != "array"
            or meta.get("storage_transformers") or len(codecs) != 1
            or codecs[0].get("name") != "bytes" or grid.get("name") != "regular"
            or keys.get("name") != "default"
            or (keys.get("configuration") or {}).get("separator", "/") not in ("/", ".")
            or not isinstance(dtype_name, str) or dtype_name not in PLAIN_TYPES):
        return None
    dtype = np.dtype(dtype_name).newbyteorder("<")
    endian = (codecs[0].get("configuration") or {}).get("endian")
    if endian != "little" and not (endian is None and dtype.itemsize == 1):
        return None
    fill_value = meta.get("fill_value")
    if isinstance(fill_value, str):
        if fill_value not in SPECIAL_FLOATS or dtype.kind != "f":
            return None
        fill_value = SPECIAL_FLOATS[fill_value]
    elif not isinstance(fill_value, bool | int | float):
        return None
    shape = tuple(int(s) for s in meta["shape"])
    chunks = tuple(int(c) for c in grid["configuration"]["chunk_shape"])
    if len(chunks) != len(shape) or min(chunks, default=1) < 1:
        return None
    separator = (keys.get("configuration") or {}).get("separator", "/")
    return shape, chunks, dtype, np.array(fill_value, dtype), separator


def open_plain(location: str) -> PlainArray | None:
    """The array at `location` if it is stored in the plain format, else None.

    Raises FileNotFoundError when there is no array metadata there.
    """
    meta = json.loads(storage.read_bytes(storage.join(location, "zarr.json")))
    layout = plain_metadata(meta)
    return None if layout is None else PlainArray(location, *layout)


def read(location: str | PlainArray, region: tuple[slice, ...] = (),
         out: np.ndarray | None = None) -> np.ndarray:
    """array[region] for any zarr array: directly when plain, else through zarr.

    location: the array's folder, or an opened `PlainArray`; region: step-1 slices of
    the leading axes (the rest whole); out: where to put it (plain arrays are read
    straight into it), else a new array.
    """
    array = location if isinstance(location, PlainArray) else open_plain(location)
    if array is None:
        target = zarr_array(str(location), "r")
        values = target[region + (slice(None),) * (target.ndim - len(region))]
        if out is None:
            return values
        out[...] = values
        return out
    return array.read_region(region + (slice(None),) * (len(array.shape) - len(region)), out)


def write_rows(location: str, start: int, data: np.ndarray, write_empty: bool = True) -> None:
    """array[start:start + len(data)] = data, as whole chunks.

    The rows must begin a chunk and end one (or the array) and cover every other
    axis whole, so that each chunk they touch is written in one piece: directly when
    the array is plain, else through zarr. write_empty=False leaves out chunks that
    hold only the fill value (zarr's default; True skips the scan for them).
    """
    array = open_plain(location)
    target = zarr_array(location, "r+") if array is None else array
    shape, chunks = tuple(target.shape), tuple(target.chunks)
    stop = start + len(data)
    if (start % chunks[0] or (stop % chunks[0] and stop != shape[0]) or stop > shape[0]
            or data.shape[1:] != shape[1:]):
        raise ValueError(f"rows {start}:{stop} (of {data.shape[1:]}) of {location} {shape} "
                         f"are not whole chunks of {chunks[0]} rows")
    if array is None:
        import zarr

        with zarr.config.set({"array.write_empty_chunks": write_empty}):
            target[start:stop] = data
        return
    for index in product(range(start // chunks[0], -(-stop // chunks[0])),
                         *map(range, array.grid[1:])):
        part = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks, strict=True))
        array.write_chunk(index, data[(slice(part[0].start - start, part[0].stop - start),)
                                      + part[1:]], write_empty)


def zarr_array(location: str, mode: str) -> Any:
    """The zarr array at `location` (its folder), opened with zarr's own API."""
    import zarr

    return zarr.open_array(store=storage.zarr_store(location, read_only=mode == "r"),
                           mode=mode)
