"""Where stage inputs and outputs live: local paths or fsspec URLs, one small API.

Every stage reads and writes through these functions, so a workspace can sit on
local disk or on object storage (`s3://bucket/prefix`). Files are written
atomically: locally to a temporary name in the same folder, then renamed; on
object storage a single PUT is already all-or-nothing.
"""
from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import tempfile
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


@dataclass(frozen=True)
class Listed:
    """One regular file found by `walk`: where it is below the walked folder and its stat.

    rel: the path below the folder, "/"-separated (`sub/S001C001P001R001A001.skeleton`);
    location: what to open (a path or URL).
    """

    rel: str
    location: str
    entry: Entry

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass(frozen=True)
class Unlisted:
    """Something `walk` found but will not hand out as a file: a symbolic-link loop, a
    broken link, a FIFO or other non-regular file (opening a FIFO would wait forever)."""

    rel: str
    reason: str


@dataclass
class Listing:
    """Everything below a folder, from one walk: the files (in walk order) and the rest.

    Walk order: a folder's files by name, then its sub-folders by name, each in turn
    (`tree_fingerprint` hashes the files in this order).
    """

    root: str
    files: list[Listed]
    unlisted: list[Unlisted]

    def below(self, folder: str) -> Listing:
        """The part of the listing under `folder` (a location at or below `root`), with
        `rel` paths relative to it: as walking `folder` itself would give."""
        sub = folder[len(self.root):].strip("/\\").replace("\\", "/")
        if not sub:
            return self
        prefix = sub + "/"
        return Listing(
            folder,
            [Listed(f.rel[len(prefix):], f.location, f.entry) for f in self.files
             if f.rel.startswith(prefix)],
            [Unlisted(u.rel[len(prefix):], u.reason) for u in self.unlisted
             if u.rel.startswith(prefix)],
        )


def walk(location: str) -> Listing:
    """List every file below a folder once, recursively, with its size and time (or tag).

    Symbolic links to folders are followed (a folder reached again through a link to
    one of its own ancestors is a loop: reported, not followed); broken links, links
    in a loop and anything that is not a regular file (FIFO, socket, device) are
    reported in `unlisted` and never opened.
    """
    if is_url(location):
        return _walk_url(location)
    files: list[Listed] = []
    unlisted: list[Unlisted] = []
    root = location.rstrip("/\\") or location
    _walk_local(root, "", {_identity(os.stat(root))}, files, unlisted)
    return Listing(root, files, unlisted)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _walk_local(folder: str, rel: str, ancestors: set[tuple[int, int]],
                files: list[Listed], unlisted: list[Unlisted]) -> None:
    import stat as stat_kind

    dirs = []
    try:
        with os.scandir(folder) as it:
            items = sorted(it, key=lambda e: e.name)
    except OSError as e:
        unlisted.append(Unlisted(rel or ".", f"unreadable folder: {e.strerror or e}"))
        return
    for item in items:
        path = f"{rel}{item.name}"
        try:
            st = item.stat()  # follows links
        except OSError as e:
            link = item.is_symlink()
            reason = ("symbolic link loop" if link and e.errno == errno.ELOOP
                      else "broken symbolic link" if link else e.strerror or str(e))
            unlisted.append(Unlisted(path, f"unreadable: {reason}"))
            continue
        if stat_kind.S_ISDIR(st.st_mode):
            if _identity(st) in ancestors:
                unlisted.append(Unlisted(path, "symbolic link loop (a link to a folder "
                                               "that contains it): not followed"))
            else:
                dirs.append((item, st))
        elif stat_kind.S_ISREG(st.st_mode):
            files.append(Listed(path, item.path, Entry(item.name, st.st_size, st.st_mtime)))
        else:
            kind = ("FIFO" if stat_kind.S_ISFIFO(st.st_mode)
                    else "socket" if stat_kind.S_ISSOCK(st.st_mode) else "device")
            unlisted.append(Unlisted(path, f"not a regular file ({kind}): not opened"))
    for item, st in dirs:
        _walk_local(item.path, f"{rel}{item.name}/", ancestors | {_identity(st)},
                    files, unlisted)


def _walk_url(location: str) -> Listing:
    """One recursive listing of an object store prefix (no links there)."""
    fs, path = _fs(location)
    scheme = location.split("://", 1)[0]
    base = path.rstrip("/")
    files = []
    for key, info in fs.find(base, detail=True).items():
        if info.get("type", "file") != "file" or not key.startswith(base + "/"):
            continue
        rel = key[len(base) + 1:]
        files.append(Listed(rel, f"{scheme}://{key}", _entry(info)))
    files.sort(key=lambda f: _walk_order(f.rel))
    return Listing(location.rstrip("/"), files, [])


def _walk_order(rel: str) -> tuple[tuple[int, str], ...]:
    """Sort key giving walk order: at each level files (0) before folders (1), by name."""
    *folders, name = rel.split("/")
    return (*((1, f) for f in folders), (0, name))


def zarr_store(location: str, read_only: bool = False) -> Any:
    """A zarr store object for a local path or URL (credentials from the environment)."""
    if not is_url(location):
        from zarr.storage import LocalStore

        return LocalStore(location, read_only=read_only)
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(location, read_only=read_only)
