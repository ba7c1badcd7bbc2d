"""`asar-cli status`: the state of every stage output in a workspace.

Each output is complete, running (a live process holds its lock: who, how far, ETA),
stopped or partial (unfinished, nobody working on it: how far, and whether its process
died), stale (why) or missing. Stale means
the output no longer matches what it was made from: the code version of its
stage changed, an input changed (a raw folder's files, a store re-made by its
producer), or something upstream is itself stale or unfinished.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from asar_data import storage
from pipelines.fingerprint import file_fingerprint, tree_fingerprint
from pipelines.lock import Holder, inspect
from pipelines.manifest import Manifest
from pipelines.stages import ALL
from pipelines.workspace import Workspace


@dataclass
class StageStatus:
    dataset: str
    stage: str
    output: str
    state: str  # "complete" | "running" | "stopped" | "partial" | "stale" | "missing"
    detail: str
    size: int
    updated: float | None


class _Checker:
    """Checks every output once, upstream first, whatever order they are listed in."""

    def __init__(self, ws: Workspace, outputs: dict[str, tuple[str, str, str]]):
        self.ws = ws
        self.outputs = outputs  # output location -> (manifest path, dataset, lock path)
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
            elif kind == "manifest":
                from pipelines.report import manifest_state

                now = manifest_state(loc)
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
        manifest_path, dataset, lock_path = self.outputs[output]
        m = Manifest.load(manifest_path)
        lock_state, holder = inspect(lock_path)
        if m is None:
            if lock_state == "running":
                return StageStatus(dataset, holder.command.split(" ")[0], output, "running",
                                   running_line(holder), 0, holder.started)
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
        if lock_state == "running":
            return StageStatus(dataset, m.stage, output, "running", running_line(holder), size,
                               m.updated)
        if not m.complete:
            done, total = m.progress
            unit = "epochs" if m.stage == "pretrain" else "shards"
            state, detail = ("stopped" if m.stage == "pretrain" else "partial",
                             f"{done}/{total} {unit} done")
            if lock_state == "stopped":
                detail += (f"; its process ({holder.command}, pid {holder.pid} on "
                           f"{holder.host}) is gone: run the command again to resume")
            if m.summary.get("final_loss") is not None or m.stage == "pretrain":
                detail += _last_loss(output)
            if reasons:
                detail += "; " + "; ".join(reasons)
        elif not storage.exists(output):
            state, detail = "missing", "manifest says complete but the output is gone"
        elif reasons:
            state, detail = "stale", "; ".join(reasons)
        else:
            state, detail = "complete", _summary_line(m)
            if m.stage == "evaluate":
                detail += _weakest_class(output)
        return StageStatus(dataset, m.stage, output, state, detail, size, m.finished or m.updated)


def running_line(holder: Holder) -> str:
    """`running (pid 12, host h): epoch 3/300, step 40/290, loss 4.1234, ETA 1 h 02 min`."""
    beat = holder.beat or {}
    parts = [f"running (pid {holder.pid}, {holder.host})"]
    if "epoch" in beat:
        parts.append(f"epoch {beat['epoch']}/{beat.get('epochs', '?')}")
        if "step" in beat:
            parts.append(f"step {beat['step']}/{beat.get('steps', '?')}")
    elif "done" in beat:
        parts.append(f"{beat['done']}/{beat.get('total', '?')} {beat.get('unit', '')}".strip())
    if beat.get("loss") is not None:
        parts.append(f"loss {beat['loss']:.4f}")
    if beat.get("samples_per_s"):
        parts.append(f"{beat['samples_per_s']:.0f} samples/s")
    if beat.get("eta_s") is not None:
        parts.append(f"ETA {human_duration(beat['eta_s'])}")
    return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def human_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _last_loss(run_dir: str) -> str:
    """`, last loss 4.1234` from a run's metrics.jsonl (empty when it has none)."""
    from pipelines.pretrain import read_metrics

    try:
        records = read_metrics(run_dir)
        return f", last loss {records[-1]['loss']:.4f}" if records else ""
    except (OSError, ValueError, KeyError):
        return ""


def _weakest_class(eval_dir: str) -> str:
    """`; weakest: 'writing' 12.5%` from an evaluation's result.json (by action name)."""
    import json

    from asar_data.actions import action_names

    try:
        result = json.loads(storage.read_text(storage.join(eval_dir, "result.json")))
    except (FileNotFoundError, OSError, ValueError):
        return ""
    per = result.get("per_class_accuracy") or []
    present = [(v, i) for i, v in enumerate(per) if v is not None]
    if len(present) < 2:
        return ""
    value, cls = min(present)
    name = action_names(str(result.get("dataset", "")), len(per))[cls]
    return f"; weakest: {name!r} {value:.1f}%"


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
        top1, best = s.get("top1"), s.get("best_top1")
        line = "top-1 " + ("?" if top1 is None else f"{top1:.2f}")
        return line + ("" if best is None else f" (best {best:.2f})")
    if m.stage == "report":
        return f"{s.get('runs', 0)} runs, {s.get('evaluations', 0)} evaluations"
    return ""


def workspace_status(ws: Workspace) -> list[StageStatus]:
    """Every stage output of every dataset, in pipeline order."""
    outputs: dict[str, tuple[str, str, str]] = {}
    for ds in ws.dataset_folders():
        found = [ws.raw(ds)] + [o for _, o in ws.frames_outputs(ds)]
        found += [ws.run(ds, name) for name in ws.names(ds, "runs")]
        found += [ws.evaluation(ds, name) for name in ws.names(ds, "eval")]
        found.append(ws.report(ds))
        for out in found:
            if storage.exists(out.manifest) or inspect(out.lock)[0] == "running":
                outputs[out.store] = (out.manifest, ds, out.lock)
    whole = ws.report()
    if storage.exists(whole.manifest) or inspect(whole.lock)[0] == "running":
        outputs[whole.store] = (whole.manifest, "", whole.lock)
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
