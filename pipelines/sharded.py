"""Run a sharded stage: plan, run the pending shards on an executor, finish.

Used by ingest and downsample. The stage supplies one task per shard; this module
does the bookkeeping every sharded stage shares: skip / resume / restart, the
progress bar, recording each finished shard, and the final `complete` mark.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asar_data import storage
from pipelines.executor import Task, make_executor, task_key
from pipelines.progress import Progress
from pipelines.stage import Input, Plan, ShardLog, Stage, plan


@dataclass
class ShardedRun:
    """A planned run of a sharded stage, and the log of its finished shards."""

    plan: Plan
    log: ShardLog | None

    @property
    def skipped(self) -> bool:
        return self.plan.action == "skip"


def start(
    stage: Stage,
    manifest_path: str,
    output: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Input],
    shards: int,
    force: bool,
    progress: Progress,
    scratch: tuple[str, ...] = (),
) -> ShardedRun:
    """Plan a run; on a fresh start remove the old output and scratch folders first."""
    run = plan(stage, manifest_path, output, params, inputs, force=force)
    if run.action == "skip":
        progress.note(f"{stage.name}: {output} is up to date ({run.reason}) - skipped")
        return ShardedRun(run, None)
    if run.action == "start":
        progress.note(f"{stage.name}: starting ({run.reason})")
    else:
        progress.note(f"{stage.name}: resuming ({run.reason})")
    log = ShardLog(run, shards, min_interval_s=0.2)
    if run.action == "start":
        for loc in (output, *scratch):
            storage.remove(loc)
    return ShardedRun(run, log)


def run_shards(
    run: ShardedRun,
    make_task: Callable[[int], tuple[Callable[..., Any], tuple]],
    workers: int | None,
    scheduler: str | None,
    progress: Progress,
    description: str,
    weight: Callable[[int], int] = lambda shard: 1,
    unit: str = "",
    on_result: Callable[[int, Any], None] | None = None,
) -> None:
    """Run every pending shard; each result is recorded as soon as it arrives.

    make_task(shard) -> (function, args): a module-level function that writes the
    shard's output itself and returns a small summary. `weight` gives the bar's
    units per shard (files, samples).
    """
    assert run.log is not None
    pending = run.log.pending
    total = sum(weight(i) for i in range(run.log.manifest.shards_total))
    done = total - sum(weight(i) for i in pending)
    tasks = []
    for shard in pending:
        fn, args = make_task(shard)
        key = task_key(run.plan.stage.name, run.plan.fingerprint, shard)
        tasks.append(Task(key, shard, fn, args))
    if not tasks:
        return
    with make_executor(workers, scheduler, len(tasks)) as ex:
        progress.note(f"{description}: {len(tasks)} shards on {ex.description}")
        with progress.bar(description, total=total, completed=done, unit=unit) as bar:
            try:
                for task, result in ex.run(tasks):
                    if on_result is not None:
                        on_result(task.shard, result)
                    run.log.done([task.shard])
                    bar.advance(weight(task.shard))
            finally:
                run.log.flush()
