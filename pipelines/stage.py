"""Stage machinery: decide skip / resume / restart, and track shards in the manifest.

A stage declares its name and revision; a run of it names its output, its
parameters and its inputs' fingerprints. `plan` compares that with the manifest
beside the output:

- same fingerprint and complete  -> skip;
- same fingerprint, not complete -> resume at the shards not yet done;
- anything else (or `--force`)   -> start afresh, saying why.

`ShardLog` then records each finished shard atomically, and `finish` marks the
output complete only after the last write.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from asar_data import storage
from pipelines.fingerprint import canonical, code_version, stage_fingerprint
from pipelines.manifest import Manifest

Action = Literal["skip", "resume", "start"]


@dataclass(frozen=True)
class StageId:
    """A stage's identity: its name and a revision bumped whenever its output changes
    (the `pipelines.runner.Stage` declarations carry the same two attributes)."""

    name: str
    version: int

    @property
    def code_version(self) -> str:
        return code_version(self.name, self.version)


@dataclass(frozen=True)
class Input:
    """One input of a stage run: where it is and its fingerprint."""

    location: str
    fingerprint: str
    kind: Literal["folder", "files", "store", "file", "value", "manifest"] = "store"

    def record(self) -> dict[str, Any]:
        return {"location": self.location, "fingerprint": self.fingerprint, "kind": self.kind}


@dataclass
class Plan:
    """What a stage run will do, and why."""

    stage: StageId
    manifest_path: str
    output: str
    params: dict[str, Any]
    inputs: dict[str, Input]
    fingerprint: str
    action: Action
    reason: str
    manifest: Manifest = field(repr=False)


def why_different(old: Manifest, code: str, params: Mapping, inputs: Mapping[str, Input]) -> str:
    """A short human reason why an existing output no longer matches."""
    if old.code_version != code:
        return f"code version changed ({old.code_version} -> {code})"
    changed = sorted(
        k for k in set(old.params) | set(params)
        if canonical(old.params.get(k)) != canonical(params.get(k))
    )
    if changed:
        k = changed[0]
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"parameter {k} changed ({old.params.get(k)!r} -> {params.get(k)!r}){more}"
    for name, inp in inputs.items():
        rec = old.inputs.get(name, {})
        if rec.get("fingerprint") != inp.fingerprint:
            return f"input {name} changed ({inp.location})"
    return "inputs changed"


def plan(
    stage: StageId,
    manifest_path: str,
    output: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Input],
    force: bool = False,
) -> Plan:
    """Compare the requested run with the manifest on disk and choose an action."""
    code = stage.code_version
    params = dict(params)
    fp = stage_fingerprint(
        stage.name, code, params, {k: v.fingerprint for k, v in inputs.items()}
    )
    old = Manifest.load(manifest_path)
    fresh = Manifest(
        stage=stage.name,
        fingerprint=fp,
        code_version=code,
        params=params,
        inputs={k: v.record() for k, v in inputs.items()},
        output=output,
    )
    if old is None:
        action, reason, manifest = "start", "no previous output", fresh
    elif force:
        action, reason, manifest = "start", "--force", fresh
    elif old.fingerprint != fp:
        action, reason, manifest = "start", why_different(old, code, params, inputs), fresh
    elif old.complete and storage.exists(output):
        action, reason, manifest = "skip", "unchanged and complete", old
    elif old.complete:
        action, reason, manifest = "start", "output missing", fresh
    else:
        done, total = old.progress
        action, reason, manifest = "resume", f"{done} of {total} shards done", old
    return Plan(stage, manifest_path, output, params, dict(inputs), fp, action, reason, manifest)


class ShardLog:
    """Records finished shards of a run in its manifest, atomically, one at a time."""

    def __init__(self, run: Plan, total: int, min_interval_s: float = 0.0,
                 location: str | None = None):
        self.run = run
        self.location = location or run.manifest_path
        self.manifest = run.manifest
        if self.manifest.shards_total != total:
            if self.manifest.shards_done:
                raise ValueError(
                    f"{run.stage.name}: manifest says {self.manifest.shards_total} shards, "
                    f"this run has {total}; rerun with --force"
                )
            self.manifest.shards_total = total
        self.min_interval_s = min_interval_s
        self._last_save = 0.0
        self._dirty = False
        self.manifest.complete = False
        self.manifest.finished = None
        self.manifest.save(self.location)

    @property
    def pending(self) -> list[int]:
        done = set(self.manifest.shards_done)
        return [i for i in range(self.manifest.shards_total) if i not in done]

    def done(self, shards: Iterable[int]) -> None:
        """Mark shards finished (their output is already written)."""
        merged = set(self.manifest.shards_done) | set(shards)
        self.manifest.shards_done = sorted(merged)
        self._dirty = True
        now = time.monotonic()
        if now - self._last_save >= self.min_interval_s:
            self.flush()

    def flush(self) -> None:
        if self._dirty:
            self.manifest.save(self.location)
            self._last_save = time.monotonic()
            self._dirty = False

    def finish(self, summary: Mapping[str, Any] | None = None) -> Manifest:
        """Mark the output complete: call only after every byte of it is written."""
        missing = self.pending
        if missing:
            raise RuntimeError(f"{self.run.stage.name}: shards {missing[:5]} not done")
        self.manifest.summary = dict(summary or {})
        self.manifest.complete = True
        self.manifest.finished = time.time()
        self.manifest.save(self.location)
        return self.manifest
