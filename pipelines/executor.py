"""Running shard tasks: in this process, on a local dask cluster, or on a remote one.

A task carries its shard id in its dask key (`<stage>-<fingerprint>-<shard>`), and
every shard function writes its whole output itself (atomically or into chunks no
other shard touches), so a task that dask reruns after a lost worker is harmless.
Results returned to the driver are small summaries, never data.

Tasks receive absolute paths or URLs only, so a worker's working directory never
matters; credentials for object storage come from each worker's own environment
and are never part of a task. Before a stage runs on an existing cluster, its
workers are checked to run the same asar version as the driver (the version is
part of every fingerprint, so a worker with other code would write output the
manifest misdescribes).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from asar_data.errors import AsarError
from pipelines import fingerprint as fingerprints
from pipelines.fingerprint import package_version

CONNECT_TIMEOUT_S = 30
WORKER_WAIT_S = 60


class ClusterError(AsarError, ValueError):
    """The dask cluster cannot run the stage: unreachable, no workers, or other code."""


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
            self._client = connect(self.scheduler)
        else:
            self._cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: never clash with another cluster
                silence_logs=logging.ERROR,
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


def connect(address: str):
    """A client of the scheduler at `address`, once a worker with this asar version is there."""
    from distributed import Client

    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except OSError as e:
        raise ClusterError(
            f"cannot reach the dask scheduler at {address} ({e}): check the address, "
            "or start one with `dask scheduler`"
        ) from e
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        check_worker_versions(client, address)
    except BaseException as e:
        client.close()
        if isinstance(e, TimeoutError):
            raise ClusterError(
                f"no worker joined the dask scheduler at {address} within {WORKER_WAIT_S} s: "
                f"start some with `dask worker {address}`"
            ) from e
        raise
    return client


def check_worker_versions(client: Any, address: str) -> None:
    """Refuse a cluster whose workers cannot import asar or run another version of it."""
    here = package_version()
    try:
        there = client.run(fingerprints.package_version)  # sent by name: the worker's own
    except Exception as e:
        raise ClusterError(
            f"workers of {address} cannot run asar code ({type(e).__name__}: {e}): "
            f"install asar {here} in every worker's environment"
        ) from e
    wrong = {w: v for w, v in sorted(there.items()) if v != here}
    if wrong:
        w, v = next(iter(wrong.items()))
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise ClusterError(
            f"worker {w}{more} of {address} runs asar {v}, this command asar {here}: "
            "install the same version everywhere"
        )


class LocalPoolExecutor:
    """Runs tasks on worker processes forked from this one (one machine, `fork` start).

    The workers start in milliseconds with every module this process has loaded: a
    local dask cluster spends seconds of CPU starting (scheduler, nannies, workers that
    import everything again), more than a whole ingest of a few thousand files takes
    (benchmarks/ingest.py). The workers are forked on entry, before any progress
    thread starts. A worker that dies fails the run; its finished shards are kept in
    the manifest, so running the command again resumes.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None

    @property
    def description(self) -> str:
        return f"{self.workers} local worker processes"

    def __enter__(self) -> LocalPoolExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("fork"))
        self._pool.submit(os.getpid).result()  # forks every worker now
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        from concurrent.futures import as_completed

        futures = {self._pool.submit(task.fn, *task.args): task for task in tasks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def make_executor(
    workers: int | None, scheduler: str | None, pending: int
) -> InlineExecutor | LocalPoolExecutor | DaskExecutor:
    """The executor a stage should use.

    `--scheduler` always means that cluster. Otherwise one worker, or a single pending
    shard, runs in-process (no start-up to pay); more run on forked local worker
    processes, or a local dask cluster where processes cannot be forked.
    """
    import multiprocessing

    if scheduler:
        return DaskExecutor(scheduler=scheduler)
    n = workers or default_workers()
    if n <= 1 or pending <= 1:
        return InlineExecutor()
    if "fork" in multiprocessing.get_all_start_methods():
        return LocalPoolExecutor(min(n, pending))
    return DaskExecutor(workers=min(n, pending))


def task_key(stage: str, fingerprint: str, shard: int) -> str:
    return f"{stage}-{fingerprint[:12]}-shard-{shard:06d}"
