"""Fingerprints: what a stage's output depends on, as one hash.

A stage's fingerprint hashes its name, the code version, its canonical parameters
and the fingerprints of its inputs. A raw folder is fingerprinted by the names,
sizes and modification times of the files the stage reads; a store by the
fingerprint of the stage that produced it (recorded in that stage's manifest).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from asar_data import storage


def package_version() -> str:
    try:
        return version("asar")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+source"


def code_version(stage: str, stage_version: int) -> str:
    """The code version a stage's output depends on: the package and the stage's own revision."""
    return f"asar-{package_version()}/{stage}-v{stage_version}"


def canonical(params: Any) -> str:
    """Stable JSON text of a parameter tree (sorted keys, no whitespace)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def stage_fingerprint(
    stage: str, code: str, params: Mapping[str, Any], inputs: Mapping[str, str]
) -> str:
    """Hash of stage name, code version, canonical parameters and input fingerprints."""
    return digest("stage", stage, code, canonical(dict(params)), canonical(dict(inputs)))


def tree_fingerprint(location: str, listing: storage.Listing | None = None) -> tuple[str, int]:
    """(fingerprint, file count) of every file below a folder, recursively.

    Relative names, sizes and modification times (content tags on object stores), in
    walk order, and what the walk reported instead of listing (loops, FIFOs). Give the
    `storage.walk` listing the stage already made to hash it without listing again.
    """
    if listing is None:
        listing = storage.walk(location)
    h = hashlib.sha256()
    for f in listing.files:
        e = f.entry
        h.update(f"/{f.rel}\0{e.size}\0{e.mtime!r}\0{e.tag}\n".encode())
    for u in listing.unlisted:
        h.update(f"/{u.rel}\0!{u.reason}\n".encode())
    return h.hexdigest(), len(listing.files)


def file_fingerprint(location: str) -> str:
    """Fingerprint of one file from its name, size and modification time (or content tag)."""
    e = storage.stat(location)
    return digest("file", e.name, str(e.size), repr(e.mtime), e.tag)
