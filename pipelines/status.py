"""`asar-cli status`: the state of every stage output in a workspace.

Each output is complete, partial (how far), stale (why) or missing. Stale means
the output no longer matches what it was made from: the code version of its
stage changed, an input changed (a raw folder's files, a store re-made by its
producer), or something upstream is itself stale or unfinished.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from asar_data import storage
from pipelines.fingerprint import file_fingerprint, tree_fingerprint
from pipelines.manifest import Manifest
from pipelines.stages import ALL
from pipelines.workspace import Workspace


@dataclass
class StageStatus:
    dataset: str
    stage: str
    output: str
    state: str  # "complete" | "partial" | "stale" | "missing"
    detail: str
    size: int
    updated: float | None


class _Checker:
    """Checks every output once, upstream first, whatever order they are listed in."""

    def __init__(self, ws: Workspace, outputs: dict[str, tuple[str, str]]):
        self.ws = ws
        self.outputs = outputs  # output location -> (manifest path, dataset)
        self.done: dict[str, StageStatus] = {}
        self.fingerprints: dict[str, str] = {}

    def state_of(self, output: str) -> tuple[str, str]:
        """(state, producer fingerprint) of an output; ("missing", "") when unknown."""
        if output not in self.done:
            if output not in self.outputs:
                return "missing", ""
            self.done[output] = self.check(output)
        return self.done[output].state, self.fingerprints.get(output, "")

    def input_changed(self, name: str, rec: dict) -> str | None:
        """Why a recorded input no longer matches (None when it still does)."""
        kind, fp = rec.get("kind"), rec.get("fingerprint")
        loc = self.ws.resolve(rec.get("location", ""))
        try:
            if kind == "folder":
                if not storage.isdir(loc):
                    return f"input {name} ({loc}) is gone"
                now = tree_fingerprint(loc)[0]
            elif kind == "file":
                now = file_fingerprint(loc)
            elif kind == "store":
                state, now = self.state_of(loc)
                if state == "missing":
                    return f"input {name} ({loc}) is missing"
                if state != "complete":
                    return f"upstream {name} is {state}"
            else:
                return None
        except FileNotFoundError:
            return f"input {name} ({loc}) is gone"
        return None if now == fp else f"input {name} changed ({loc})"

    def check(self, output: str) -> StageStatus:
        manifest_path, dataset = self.outputs[output]
        m = Manifest.load(manifest_path)
        if m is None:
            return StageStatus(dataset, "?", output, "missing", "", 0, None)
        self.fingerprints[output] = m.fingerprint
        size = storage.tree_size(output)
        stage = ALL.get(m.stage)
        reasons = []
        if stage is not None and stage.code_version != m.code_version:
            reasons.append(f"code version changed ({m.code_version} -> {stage.code_version})")
        for name, rec in m.inputs.items():
            why = self.input_changed(name, rec)
            if why:
                reasons.append(why)
        if not m.complete:
            done, total = m.progress
            state, detail = "partial", f"{done}/{total} shards done"
            if reasons:
                detail += "; " + "; ".join(reasons)
        elif not storage.exists(output):
            state, detail = "missing", "manifest says complete but the output is gone"
        elif reasons:
            state, detail = "stale", "; ".join(reasons)
        else:
            state, detail = "complete", _summary_line(m)
        return StageStatus(dataset, m.stage, output, state, detail, size, m.finished or m.updated)


def _summary_line(m: Manifest) -> str:
    s = m.summary
    if m.stage == "ingest":
        return f"{s.get('samples', '?')} samples, {s.get('problems', 0)} problems"
    if m.stage == "downsample":
        splits = ", ".join(f"{b} {tr}/{te}" for b, (tr, te) in s.get("splits", {}).items())
        return f"{s.get('samples', '?')} samples; {splits}"
    if m.stage == "pretrain":
        loss = s.get("final_loss")
        return f"{m.progress[0]} epochs, final loss " + ("?" if loss is None else f"{loss:.4f}")
    if m.stage == "evaluate":
        top1 = s.get("top1")
        return "top-1 " + ("?" if top1 is None else f"{top1:.2f}")
    return ""


def workspace_status(ws: Workspace) -> list[StageStatus]:
    """Every stage output of every dataset, in pipeline order."""
    outputs: dict[str, tuple[str, str]] = {}
    for ds in storage.list_dirs(ws.root):
        raw = ws.raw(ds)
        found = [(raw.manifest, raw.store)]
        found += [(o.manifest, o.store) for _, o in ws.frames_outputs(ds)]
        for kind in ("runs", "eval"):
            for name in storage.list_dirs(ws.path(ds, kind)):
                d = ws.path(ds, kind, name)
                found.append((storage.join(d, "manifest.json"), d))
        for manifest_path, output in found:
            if storage.exists(manifest_path):
                outputs[output] = (manifest_path, ds)
    checker = _Checker(ws, outputs)
    for output in outputs:
        checker.state_of(output)
    return [checker.done[o] for o in outputs]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def human_time(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
