"""Pieces the NTU and PKU-MMD writers share: subjects, the summary, atomic writes."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .skeleton import Body, make_body


@dataclass(frozen=True)
class SynthSummary:
    """What a writer produced: files, their total size, frames, and the classes used.

    samples_per_class counts labelled samples: NTU files, or PKU-MMD segments over all views.
    """

    out_dir: Path
    files: int
    bytes: int
    frames: int
    samples_per_class: tuple[int, ...]
    class_names: tuple[str, ...]


@lru_cache(maxsize=512)
def subject_body(subject: int, partner: bool = False) -> Body:
    """The body and style of a subject id: the same id always looks and moves the same.

    partner: the other person of this subject's two-person takes.
    """
    return make_body(np.random.default_rng([0xB0D7, subject, int(partner)]))


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a synthetic file atomically (no fsync: it can be made again)."""
    from asar_data.storage import write_bytes

    write_bytes(str(path), data.encode() if isinstance(data, str) else data, durable=False)
