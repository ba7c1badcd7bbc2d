"""The one runner every stage goes through, and the shape of a stage declaration.

A stage declares what it is (name, revision), where its output goes, what it reads
(inputs with fingerprints), how its work splits into shards and what one shard does.
`execute` does the rest, the same way for every stage:

    lock the output (one writer; --wait polls)  ->  plan: skip / resume / start, and why
    -> on start, clear the stage's own output   ->  begin (create what shards write into)
    -> run the pending shards (in order here, or as tasks on an executor), each recorded
       in the manifest as soon as it is written, with a bar for the whole run and a
       heartbeat in the lock file  ->  finish (the summary)  ->  mark complete, unlock.

Outputs come in two kinds. *Incremental* outputs (ingest, downsample, pretrain) are
written in place shard by shard and resume after a kill at the first missing shard.
*Atomic* outputs (evaluate, export, report) are built in a temporary folder beside the
output and swapped in whole at the end, so a failed or killed run never leaves a
half-written folder where the output belongs.

Under torchrun every rank executes the stage; rank 0 (the lead) alone locks and writes
the manifest, the others follow at the stage's barriers.
"""
from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from asar_data import storage
from pipelines.fingerprint import code_version
from pipelines.lock import OutputLock
from pipelines.progress import Progress
from pipelines.stage import Input, Plan, ShardLog, plan
from pipelines.workspace import Output, Workspace

P = TypeVar("P")
OutputKind = Literal["incremental", "atomic"]


@dataclass
class StageResult:
    """What one stage run did: the same shape for every stage.

    action: skip | start | resume; summary: the manifest's summary; details: what the
    stage adds for the caller (an evaluation's result.json, an ingest's problems).
    """

    stage: str
    output: str
    action: str
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def skipped(self) -> bool:
        return self.action == "skip"

    def __getattr__(self, name: str) -> Any:
        """A stage's details read as attributes (``result.eval_dir``, ``result.result``)."""
        details = self.__dict__.get("details") or {}
        if name in details:
            return details[name]
        raise AttributeError(f"{type(self).__name__} of {self.__dict__.get('stage')} has no "
                             f"{name!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (nested results too; objects JSON cannot hold are left out)."""
        out = {"stage": self.stage, "output": self.output, "action": self.action,
               "reason": self.reason, "summary": self.summary, "seconds": self.seconds}
        for k, v in self.details.items():
            v = _plain(v)
            if v is not _SKIP:
                out[k] = v
        return out


_SKIP = object()


def _plain(v: Any) -> Any:
    """``v`` as JSON-ready data, or _SKIP."""
    import json

    if isinstance(v, StageResult):
        return v.to_json()
    if isinstance(v, Mapping):
        items = {str(k): _plain(x) for k, x in v.items()}
        return {k: x for k, x in items.items() if x is not _SKIP}
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return _SKIP
    return v


@dataclass
class Run(Generic[P]):
    """One execution of a stage, handed to its hooks.

    ``where`` is the folder the shards write into: the output itself for incremental
    outputs, the temporary folder for atomic ones. ``state`` is the stage's own scratch
    space between hooks (a model, an open store).
    """

    ws: Workspace
    params: P
    output: Output
    plan: Plan
    progress: Progress
    where: str
    lead: bool = True
    log: ShardLog | None = None
    lock: OutputLock | None = None
    state: dict[str, Any] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)   # shards already done (same on every rank)

    def beat(self, **fields: Any) -> None:
        """A heartbeat for `status` (epoch, step, loss, eta_s ...): rate-limited."""
        if self.lock is not None:
            self.lock.beat(**fields)

    def adopt(self, shards: set[int]) -> None:
        """Count shards as done whose output is known to be written though the manifest
        does not list them (a kill between the two writes)."""
        shards = set(shards) - self.done
        self.done |= shards
        if self.log is not None and shards:
            self.log.done(shards)
            self.log.flush()

    def redo(self, shards: set[int]) -> None:
        """Forget shards the manifest lists as done whose output turned out missing."""
        self.done -= shards
        if self.log is not None and shards:
            self.log.manifest.shards_done = sorted(set(self.log.manifest.shards_done) - shards)
            self.log.flush()


class Stage(Generic[P]):
    """A stage declaration: override what differs; `execute` runs it.

    Class attributes: ``name``, ``version`` (bump when the output changes),
    ``output_kind``, ``parallel`` (shards run as executor tasks: `task`; else in this
    process, in order: `run_shard`), ``unit`` (what the run's bar counts).
    """

    name: ClassVar[str]
    version: ClassVar[int]
    output_kind: ClassVar[OutputKind] = "incremental"
    parallel: ClassVar[bool] = False
    unit: ClassVar[str] = "shards"

    @property
    def code_version(self) -> str:
        return code_version(self.name, self.version)

    # -- declaration ------------------------------------------------------------------
    def output(self, ws: Workspace, params: P) -> Output:
        raise NotImplementedError

    def inputs(self, ws: Workspace, params: P, state: dict[str, Any]) -> dict[str, Input]:
        """The inputs and their fingerprints (may stash what it read in ``state``)."""
        return {}

    def fingerprint_params(self, params: P) -> dict[str, Any]:
        """The parameters the output depends on (runtime options left out)."""
        from dataclasses import asdict

        return asdict(params)  # type: ignore[call-overload]

    def shard_weights(self, run: Run[P]) -> list[int]:
        """One weight per shard (files, samples, 1 per epoch): the bar's units."""
        return [1]

    def command(self, params: P) -> str:
        """What a lock holder runs, for others' messages."""
        return self.name

    # -- work -------------------------------------------------------------------------
    def begin(self, run: Run[P]) -> None:
        """After planning, before the shards: create or open what they write into."""

    def task(self, run: Run[P], shard: int) -> tuple[Callable[..., Any], tuple]:
        """Parallel stages: (module-level function, args) writing shard ``shard``."""
        raise NotImplementedError

    def run_shard(self, run: Run[P], shard: int) -> Any:
        """Sequential stages: do shard ``shard`` in this process."""
        raise NotImplementedError

    def finish(self, run: Run[P]) -> dict[str, Any]:
        """After every shard: finishing writes; returns the manifest summary."""
        return {}

    def details(self, run: Run[P], summary: Mapping[str, Any]) -> dict[str, Any]:
        """Extra results for the caller, on a run or a skip (read back from the output)."""
        return {}

    def refuse_start(self, run: Run[P], force: bool) -> None:
        """Raise to refuse replacing an existing output (e.g. a run with other settings)."""

    # -- distributed hooks (single process by default) ----------------------------------
    def setup(self, params: P) -> bool:
        """Called first; returns whether this process leads (writes files)."""
        return True

    def barrier(self, run: Run[P] | None) -> None:
        """Wait for every rank."""

    def teardown(self) -> None:
        """Called last, whatever happened."""


@dataclass(frozen=True)
class Options:
    """How to run a stage, not what it computes (never part of a fingerprint)."""

    force: bool = False
    wait: bool = False
    workers: int | None = None
    scheduler: str | None = None


def execute(stage: Stage[P], ws: Workspace, params: P, options: Options = Options(),
            progress: Progress | None = None) -> StageResult:
    """Run a stage declaration end to end (see the module docstring)."""
    progress = progress or Progress()
    t0 = time.perf_counter()
    lead = stage.setup(params)
    try:
        out = stage.output(ws, params)
        lock = None
        if lead:
            lock = OutputLock(out.lock, out.what, stage.command(params))
            lock.acquire(options.wait, on_wait=lambda h: progress.note(
                f"{stage.name}: waiting for {h.describe()} to finish with {out.location}"))
        try:
            return _run_locked(stage, ws, params, options, progress if lead else Progress(),
                               out, lock, lead, t0)
        finally:
            if lock is not None:
                lock.release()
    finally:
        stage.teardown()


def _run_locked(stage: Stage[P], ws: Workspace, params: P, options: Options,
                progress: Progress, out: Output, lock: OutputLock | None, lead: bool,
                t0: float) -> StageResult:
    state: dict[str, Any] = {}
    inputs = stage.inputs(ws, params, state)
    planned = plan(stage, out.manifest, out.location, stage.fingerprint_params(params), inputs,
                   force=options.force)
    atomic = stage.output_kind == "atomic"
    if atomic and planned.action == "resume":  # nothing of an atomic output survives a kill
        planned.action, planned.reason = "start", "an earlier run did not finish"
    run = Run(ws, params, out, planned, progress, out.location, lead, None, lock, state)
    if planned.action == "resume":
        run.done = set(planned.manifest.shards_done)
    if planned.action == "skip":
        progress.note(f"{stage.name}: {out.location} is up to date ({planned.reason}) - skipped")
        summary = dict(planned.manifest.summary)
        return StageResult(stage.name, out.location, "skip", planned.reason, summary,
                           stage.details(run, summary), round(time.perf_counter() - t0, 3))
    if planned.action == "start":
        stage.refuse_start(run, options.force)
    verb = "starting" if planned.action == "start" else "resuming"
    progress.note(f"{stage.name}: {verb} ({planned.reason})")
    stage.barrier(run)  # every rank has read the old manifest before the lead writes
    if lead:
        if atomic:
            run.where = _fresh_temp(out.location)
        elif planned.action == "start":
            remove_own_output(ws, out.location)
    weights = stage.shard_weights(run)
    if lead:
        manifest_at = storage.join(run.where, os.path.basename(out.manifest)) if atomic \
            else out.manifest
        run.log = ShardLog(planned, len(weights), min_interval_s=0.2, location=manifest_at)
    try:
        stage.begin(run)
        stage.barrier(run)
        _run_shards(stage, run, weights, options)
        summary = stage.finish(run)
        summary.setdefault("seconds", round(time.perf_counter() - t0, 3))
        if run.log is not None:
            run.log.finish(summary)
        if lead and atomic:
            swap_in(run.where, out.location)
            run.where = out.location
        stage.barrier(run)
    except BaseException:
        if lead and atomic and run.where != out.location:
            with contextlib.suppress(OSError):
                storage.remove(run.where)
        raise
    return StageResult(stage.name, out.location, planned.action, planned.reason, summary,
                       stage.details(run, summary), round(time.perf_counter() - t0, 3))


def _run_shards(stage: Stage[P], run: Run[P], weights: list[int], options: Options) -> None:
    """The pending shards, each recorded as done the moment its output is written."""
    done = run.done
    pending = [i for i in range(len(weights)) if i not in done]
    if not pending:
        return
    unit = getattr(run.params, "unit", stage.unit)   # a stage's params may name it
    total, completed = sum(weights), sum(weights[i] for i in done if i < len(weights))
    label = f"{stage.name} {getattr(run.params, 'dataset', '')}".strip()
    t_start, w_start = time.monotonic(), completed

    def record(shard: int, bar: Any) -> None:
        nonlocal completed
        if run.log is not None:
            run.log.done([shard])
        completed += weights[shard]
        bar.update(completed=completed)
        rate = (completed - w_start) / max(time.monotonic() - t_start, 1e-9)
        eta = (total - completed) / rate if rate > 0 else None
        run.beat(done=completed, total=total, unit=unit,
                 eta_s=None if eta is None else round(eta, 1))

    with run.progress.bar(label, total=total, completed=completed, unit=unit,
                          level="run") as bar:
        try:
            if not stage.parallel:
                for shard in pending:
                    stage.run_shard(run, shard)
                    record(shard, bar)
                return
            from pipelines.executor import Task, make_executor, task_key

            tasks = []
            for shard in pending:
                fn, args = stage.task(run, shard)
                tasks.append(Task(task_key(stage.name, run.plan.fingerprint, shard), shard,
                                  fn, args))
            with make_executor(options.workers, options.scheduler, len(tasks)) as ex:
                run.progress.note(f"{label}: {len(tasks)} shards on {ex.description}")
                for task, _ in ex.run(tasks):
                    record(task.shard, bar)
        finally:
            if run.log is not None:
                run.log.flush()


# -- output safety -------------------------------------------------------------------------
def remove_own_output(ws: Workspace, location: str) -> None:
    """Remove a stage's own output before it is made afresh; refuses anything that is not
    strictly inside a dataset folder of the workspace (a bug, never a user's path)."""
    root = ws.root.rstrip("/\\")
    sep = "/" if storage.is_url(root) else os.sep
    rel = location[len(root) + 1:] if location.startswith(root + sep) else None
    parts = [p for p in (rel or "").replace("\\", "/").split("/") if p]
    if rel is None or len(parts) < 2 or any(p in (".", "..") for p in parts):
        raise RuntimeError(f"refusing to remove {location}: not a stage output inside "
                           f"the workspace {ws.root}")
    storage.remove(location)


def _fresh_temp(location: str) -> str:
    """A new temporary folder beside ``location``; leftovers of killed runs are removed
    (they are this output's own, and the lock is held)."""
    parent, name = _split(location)
    for stale in storage.list_dirs(parent) if storage.isdir(parent) else []:
        if stale.startswith(f".tmp-{name}-"):
            storage.remove(storage.join(parent, stale))
    tmp = storage.join(parent, f".tmp-{name}-{uuid.uuid4().hex[:8]}")
    storage.makedirs(tmp)
    return tmp


def _split(location: str) -> tuple[str, str]:
    loc = location.rstrip("/\\")
    if storage.is_url(loc):
        parent, _, name = loc.rpartition("/")
        return parent, name
    return os.path.dirname(loc), os.path.basename(loc)


def swap_in(tmp: str, location: str) -> None:
    """Replace ``location`` by the finished folder ``tmp`` (locally two renames; the old
    output is removed only after the new one is in place)."""
    parent, name = _split(location)
    if storage.is_url(location):  # no folder rename on object stores: copy, then remove
        storage.remove(location)
        storage.copy_tree(tmp, location)
        storage.remove(tmp)
        return
    old = None
    if os.path.lexists(location):
        old = os.path.join(parent, f".tmp-{name}-old-{uuid.uuid4().hex[:8]}")
        os.replace(location, old)
    os.replace(tmp, location)
    if old is not None:
        storage.remove(old)
