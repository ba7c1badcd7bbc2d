"""The reference tools' preprocessed folders: `(N, 3, T, 25, M)` `.npy` + label pickle.

The label pickle is `(list of sample names, list of labels)`, as the reference
gendata scripts write it. Pickles can run code when loaded, so they are read with
an unpickler that only rebuilds plain containers, strings, numbers and numpy
arrays/scalars, and refuses anything else by name.
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


class RefusedPickleError(pickle.UnpicklingError):
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


def load_label_pickle(path_or_bytes: str | os.PathLike | bytes) -> tuple[list[str], list[int]]:
    """A reference label pickle -> (sample names, integer labels), same length.

    Raises RefusedPickleError for a pickle that would load anything but data, and
    ValueError when the content is not `(names, labels)`.
    """
    obj = restricted_loads(_read(path_or_bytes))
    if not isinstance(obj, tuple | list) or len(obj) != 2:
        raise ValueError(f"expected a (names, labels) pair, found {type(obj).__name__}")
    names, labels = (x.tolist() if isinstance(x, np.ndarray) else x for x in obj)
    if not isinstance(names, list | tuple) or not isinstance(labels, list | tuple):
        raise ValueError("expected names and labels to be lists")
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} labels")
    if not all(isinstance(n, str) for n in names):
        raise ValueError("sample names must be strings")
    out_labels = []
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise ValueError(f"labels must be integers, found {label!r}")
        out_labels.append(int(label))
    return [str(n) for n in names], out_labels


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

    Raises ValueError naming the file when the shape or dtype is not that.
    """
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a plain numeric .npy array ({e})") from None
    if data.ndim != 5 or data.shape[1] != 3 or data.shape[3] != 25:
        raise ValueError(f"{path}: expected shape (N, 3, T, 25, M), found {data.shape}")
    if data.dtype not in (np.float32, np.float64):
        raise ValueError(f"{path}: expected float32 or float64 values, found {data.dtype}")
    return data
