"""The reference tools' preprocessed folders: `(N, 3, T, 25, M)` `.npy` + label pickle.

The label pickle is `(list of sample names, list of labels)`, as the reference
gendata scripts write it. Pickles can run code when loaded, so they are read with
an unpickler that only rebuilds plain containers, strings, numbers and numpy
arrays/scalars, and refuses anything else by name.

Every problem with such a file (a refused or truncated pickle, another content, an
array of another shape, labels out of range) is a `ReferenceFileError`: one line
naming the file.
"""
from __future__ import annotations

import codecs
import io
import os
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asar_data.errors import AsarError

# (module, name) pairs a label pickle or an object .npy may refer to.
_ALLOWED_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("scalar", "_reconstruct")
) | frozenset(
    (module, name)
    for module in ("numpy.core.numeric", "numpy._core.numeric")
    for name in ("_frombuffer",)
) | {("numpy", "ndarray"), ("numpy", "dtype")}


class ReferenceFileError(AsarError, ValueError):
    """A reference `.npy` or label pickle that cannot be used; the message names the file."""


class RefusedPickleError(ReferenceFileError, pickle.UnpicklingError):
    """A pickle that refers to a global outside the allowed numpy reconstructors."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for raw bytes (latin-1 only)."""
    if encoding.replace("-", "").lower() != "latin1":
        raise RefusedPickleError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin-1")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in _ALLOWED_GLOBALS:
            raise RefusedPickleError(
                f"refused to load global {module}.{name}: only plain lists, strings, "
                "numbers and numpy arrays are allowed in reference pickles")
        return super().find_class(module, name)


def restricted_loads(data: bytes) -> object:
    """Unpickle `data` allowing only builtin containers/scalars and numpy arrays/scalars."""
    return _RestrictedUnpickler(io.BytesIO(data)).load()


def _read(path_or_bytes: str | os.PathLike | bytes) -> bytes:
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        return bytes(path_or_bytes)
    return Path(path_or_bytes).read_bytes()


def load_label_pickle(
    path_or_bytes: str | os.PathLike | bytes, source: str | None = None
) -> tuple[list[str], list[int]]:
    """A reference label pickle -> (sample names, integer labels), same length.

    source: the file's name for messages (default: the path given, or "label pickle").
    Raises RefusedPickleError for a pickle that would load anything but data, and
    ReferenceFileError (naming the file) for a truncated or corrupt pickle or content
    that is not `(names, labels)`.
    """
    where = source or (str(path_or_bytes) if isinstance(path_or_bytes, str | os.PathLike)
                       else "label pickle")
    data = _read(path_or_bytes)
    try:
        obj = restricted_loads(data)
    except RefusedPickleError as e:
        raise RefusedPickleError(f"{where}: {e}") from None
    except Exception as e:  # noqa: BLE001 - only the given bytes are read: all about them
        what = "truncated" if isinstance(e, EOFError) or "truncated" in str(e) else "corrupt"
        raise ReferenceFileError(
            f"{where}: not a readable label pickle ({what}: {type(e).__name__}: {e}); "
            "write it again with the reference gendata tools") from None

    def refuse(reason: str) -> ReferenceFileError:
        return ReferenceFileError(f"{where}: {reason}; a label pickle holds (names, labels)")

    if not isinstance(obj, tuple | list) or len(obj) != 2:
        raise refuse(f"expected a (names, labels) pair, found {type(obj).__name__}")
    names, labels = (x.tolist() if isinstance(x, np.ndarray) else x for x in obj)
    if not isinstance(names, list | tuple) or not isinstance(labels, list | tuple):
        raise refuse("expected names and labels to be lists")
    if len(names) != len(labels):
        raise refuse(f"{len(names)} names but {len(labels)} labels")
    if not all(isinstance(n, str) for n in names):
        raise refuse("sample names must be strings")
    out_labels = []
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise refuse(f"labels must be integers, found {label!r}")
        out_labels.append(int(label))
    return [str(n) for n in names], out_labels


def check_labels(labels: Sequence[int], names: Sequence[str], classes: int | None,
                 source: str, limit: int = int(np.iinfo(np.int16).max)) -> None:
    """Refuse labels outside [0, classes) (classes None: [0, limit]); `limit` is what the
    store's label type holds (int16). Raises ReferenceFileError naming the file and the
    first such sample."""
    if classes is not None and not 1 <= classes <= limit + 1:
        raise ReferenceFileError(f"--classes {classes} is outside 1-{limit + 1}")
    top = limit if classes is None else classes - 1
    bad = [i for i, v in enumerate(labels) if not 0 <= v <= top]  # Python ints: any size
    if bad:
        i = bad[0]
        rule = (f"labels must be 0-{top} (--classes {classes})" if classes is not None
                else f"labels must be 0-{limit} (stored as int16)")
        raise ReferenceFileError(
            f"{source}: label {labels[i]} of sample {names[i]!r} (number {i}) is out of range: "
            f"{rule} ({len(bad)} of {len(labels)} labels are out of range)")


def write_label_pickle(
    path: str | os.PathLike, names: Sequence[str], labels: Sequence[int]
) -> None:
    """Write `(list of str, list of int)` to path atomically (temporary file, then rename)."""
    names, labels = [str(n) for n in names], [int(x) for x in labels]
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} labels")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump((names, labels), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_reference_data(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a reference `.npy` of shape (N, 3, T, 25, M), float32 or float64.

    Raises ReferenceFileError (a ValueError) naming the file when it is not that.
    """
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError | PermissionError):
            raise ReferenceFileError(f"{path}: {e.strerror}") from None
        raise ReferenceFileError(f"{path}: not a plain numeric .npy array ({e})") from None
    if data.ndim != 5 or data.shape[1] != 3 or data.shape[3] != 25:
        raise ReferenceFileError(f"{path}: expected shape (N, 3, T, 25, M), found {data.shape}")
    if data.dtype not in (np.float32, np.float64):
        raise ReferenceFileError(
            f"{path}: expected float32 or float64 values, found {data.dtype}")
    return data
