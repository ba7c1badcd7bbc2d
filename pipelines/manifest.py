"""The manifest a stage writes beside its output.

It records what the output was made from (stage, parameters, input fingerprints,
code version), how far the work got (shards done out of shards in all) and whether
the output is complete. It is rewritten atomically after every finished shard, so
a run killed at any moment leaves a manifest that tells the truth: a shard is
listed only after its output was written, and `complete` is set only after the
last write.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from asar_data import storage

MANIFEST_FORMAT = "asar-manifest/1"


@dataclass
class Manifest:
    stage: str
    fingerprint: str
    code_version: str
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    output: str
    shards_total: int = 0
    shards_done: list[int] = field(default_factory=list)
    complete: bool = False
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    finished: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT

    @property
    def progress(self) -> tuple[int, int]:
        return len(self.shards_done), self.shards_total

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str) + "\n"

    def save(self, location: str) -> None:
        self.updated = time.time()
        storage.write_text(location, self.to_json())

    @classmethod
    def load(cls, location: str) -> Manifest | None:
        """The manifest at `location`, or None when there is none (or it is unreadable)."""
        try:
            raw = json.loads(storage.read_text(location))
        except (FileNotFoundError, OSError, ValueError):
            return None
        if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
            return None
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError:
            return None
