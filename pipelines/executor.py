"""Running shard tasks: in this process, on a local dask cluster, or on a remote one.

A task carries its shard id in its dask key (`<stage>-<fingerprint>-<shard>`), and
every shard function writes its whole output itself (atomically or into chunks no
other shard touches), so a task that dask reruns after a lost worker is harmless.
Results returned to the driver are small summaries, never data.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    key: str
    shard: int
    fn: Callable[..., Any]
    args: tuple


class InlineExecutor:
    """Runs tasks one after another in this process (one worker, no dask)."""

    description = "in-process"

    def __enter__(self) -> InlineExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        for task in tasks:
            yield task, task.fn(*task.args)


class DaskExecutor:
    """Runs tasks on a dask.distributed cluster: a new local one, or one at `scheduler`."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        self.workers = workers
        self.scheduler = scheduler
        self._cluster = None
        self._client = None

    @property
    def description(self) -> str:
        if self.scheduler:
            return f"dask scheduler {self.scheduler}"
        return f"local dask cluster, {self.workers} workers"

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, LocalCluster

        if self.scheduler:
            self._client = Client(self.scheduler, timeout="30s")
        else:
            self._cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs="error",
            )
            self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        from distributed import as_completed

        by_key = {}
        futures = []
        for task in tasks:
            fut = self._client.submit(task.fn, *task.args, key=task.key, pure=False, retries=3)
            by_key[fut.key] = task
            futures.append(fut)
        for fut in as_completed(futures):
            yield by_key[fut.key], fut.result()


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def make_executor(
    workers: int | None, scheduler: str | None, pending: int
) -> InlineExecutor | DaskExecutor:
    """The executor a stage should use.

    `--scheduler` always means that cluster. Otherwise one worker, or a single pending
    shard, runs in-process (no cluster start-up to pay); more start a local cluster.
    """
    if scheduler:
        return DaskExecutor(scheduler=scheduler)
    n = workers or default_workers()
    if n <= 1 or pending <= 1:
        return InlineExecutor()
    return DaskExecutor(workers=min(n, pending))


def task_key(stage: str, fingerprint: str, shard: int) -> str:
    return f"{stage}-{fingerprint[:12]}-shard-{shard:06d}"
