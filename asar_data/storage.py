"""Where stage inputs and outputs live: local paths or fsspec URLs, one small API.

Every stage reads and writes through these functions, so a workspace can sit on
local disk or on object storage (`s3://bucket/prefix`). Files are written
atomically: locally to a temporary name in the same folder, then renamed; on
object storage a single PUT is already all-or-nothing.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asar_data.errors import AsarError


class StorageError(AsarError):
    """A location that cannot be used (missing filesystem package, ...)."""


def is_url(location: str) -> bool:
    """True for `scheme://...` locations other than plain files."""
    return "://" in location and not location.startswith("file://")


def join(location: str, *parts: str) -> str:
    """Join path parts onto a local path or a URL."""
    if is_url(location):
        return posixpath.join(location.rstrip("/"), *parts)
    return str(Path(location, *parts))


def normalise(location: str) -> str:
    """Absolute local path (for manifests) or the URL unchanged."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if is_url(location):
        return location.rstrip("/")
    return str(Path(location).expanduser().resolve())


def _fs(location: str):
    """(filesystem, path) of a URL, its listing cache dropped for that path.

    fsspec filesystems cache folder listings per process and never expire them, so
    a file that a worker process (or another machine) wrote after the first listing
    would stay invisible to `exists` and `list_files` here. Each call asks the store.
    Credentials come from the filesystem's own configuration (for S3: the AWS
    environment variables or files), never from the URL or from this module.
    """
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(location)
    except ImportError as e:
        scheme = location.split("://", 1)[0]
        extra = " (pip install 'asar[s3]')" if scheme in ("s3", "s3a") else ""
        raise StorageError(f"{scheme}:// locations need a filesystem package that is not "
                           f"installed: {e}{extra}") from e
    fs.invalidate_cache(path)
    return fs, path


def exists(location: str) -> bool:
    if not is_url(location):
        return os.path.exists(location)
    fs, path = _fs(location)
    return fs.exists(path)


def isdir(location: str) -> bool:
    if not is_url(location):
        return os.path.isdir(location)
    fs, path = _fs(location)
    return fs.isdir(path)


def read_bytes(location: str) -> bytes:
    if not is_url(location):
        with open(location, "rb") as f:
            return f.read()
    fs, path = _fs(location)
    return fs.cat_file(path)


def read_text(location: str, encoding: str = "utf-8") -> str:
    return read_bytes(location).decode(encoding)


def write_bytes(location: str, data: bytes, durable: bool = True) -> None:
    """Write a whole file atomically: readers see the old content or the new, never half.

    ``durable=False`` skips the fsync (data that can be made again: chunks, synthetic
    files); the rename still makes the write all-or-nothing for readers."""
    if is_url(location):
        fs, path = _fs(location)
        fs.pipe_file(path, data)
        return
    folder = os.path.dirname(os.path.abspath(location))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(location))
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, location)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(location: str, text: str) -> None:
    write_bytes(location, text.encode("utf-8"))


def makedirs(location: str) -> None:
    if is_url(location):
        return  # object stores have no folders
    os.makedirs(location, exist_ok=True)


def remove(location: str) -> None:
    """Remove a file or a folder tree; a missing one is fine."""
    if is_url(location):
        fs, path = _fs(location)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return
    import shutil

    if os.path.isdir(location) and not os.path.islink(location):
        shutil.rmtree(location)
    elif os.path.lexists(location):
        os.unlink(location)


@dataclass(frozen=True)
class Entry:
    """One file of a folder listing."""

    name: str
    size: int
    mtime: float
    tag: str = ""  # content tag where the store has one (an S3 ETag)


def stat(location: str) -> Entry:
    """Name, size, modification time (and content tag) of one file; FileNotFoundError if none."""
    if not is_url(location):
        st = os.stat(location)
        return Entry(os.path.basename(location), st.st_size, st.st_mtime)
    fs, path = _fs(location)
    return _entry(fs.info(path))


def _entry(info: dict[str, Any]) -> Entry:
    """An Entry from an fsspec file-info dict (S3: LastModified and ETag)."""
    mtime = info.get("mtime") or info.get("LastModified") or 0
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    tag = str(info.get("ETag") or info.get("etag") or "")
    name = posixpath.basename(info["name"].rstrip("/"))
    return Entry(name, int(info["size"]), float(mtime), tag)


def list_files(location: str) -> list[Entry]:
    """Files directly in a folder (not sub-folders), sorted by name."""
    if not is_url(location):
        out = []
        with os.scandir(location) as it:
            for e in it:
                if e.is_file():
                    st = e.stat()
                    out.append(Entry(e.name, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e.name)
    fs, path = _fs(location)
    out = []
    for info in fs.ls(path, detail=True):
        if info.get("type") == "file":
            out.append(_entry(info))
    return sorted(out, key=lambda e: e.name)


def list_dirs(location: str) -> list[str]:
    """Names of the sub-folders of a folder, sorted."""
    if not exists(location):
        return []
    if not is_url(location):
        return sorted(e.name for e in os.scandir(location) if e.is_dir())
    fs, path = _fs(location)
    return sorted(
        posixpath.basename(i["name"].rstrip("/"))
        for i in fs.ls(path, detail=True)
        if i.get("type") == "directory"
    )


def tree_size(location: str) -> int:
    """Bytes under a file or folder (0 when missing)."""
    if not exists(location):
        return 0
    if is_url(location):
        fs, path = _fs(location)
        return int(fs.du(path))
    if os.path.isfile(location):
        return os.path.getsize(location)
    total = 0
    for root, _dirs, files in os.walk(location):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while walking
                total += os.path.getsize(os.path.join(root, name))
    return total


def walk_files(location: str) -> Iterator[str]:
    """Every file below a folder, as locations, in sorted order."""
    if not is_url(location):
        for root, dirs, files in os.walk(location):
            dirs.sort()
            for name in sorted(files):
                yield os.path.join(root, name)
        return
    fs, path = _fs(location)
    scheme = location.split("://", 1)[0]
    for p in sorted(fs.find(path)):
        yield f"{scheme}://{p}"


def zarr_store(location: str, read_only: bool = False) -> Any:
    """A zarr store object for a local path or URL (credentials from the environment)."""
    if not is_url(location):
        from zarr.storage import LocalStore

        return LocalStore(location, read_only=read_only)
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(location, read_only=read_only)
