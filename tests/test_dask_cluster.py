"""Ingest and downsample on an existing dask.distributed cluster (`--scheduler ADDRESS`).

The cluster is a real one on loopback: a `dask scheduler` process and worker
processes started by the test, each worker in a working directory of its own. A
cluster run must write exactly the bytes of a local in-process run, and a worker
killed mid-stage must cost nothing but time.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.downsample import downsample
from pipelines.executor import ClusterError, DaskExecutor
from pipelines.ingest import ingest_ntu
from pipelines.manifest import Manifest
from pipelines.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")
SHARD_FILES = 8  # 120 synthetic files -> 15 ingest shards
CHUNK = 8  # 120 samples -> 15 downsample shards


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def store_files(store: Path) -> dict[str, bytes]:
    """Every file of a store by relative path: equal dicts mean byte-identical stores."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file()}


class LoopbackCluster:
    """A dask scheduler and single-threaded, nanny-less worker processes on 127.0.0.1."""

    def __init__(self, root: Path, workers: int):
        self.root = root
        self.procs: list[subprocess.Popen] = []
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self._spawn("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", port,
                                  "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                                  "--idle-timeout", "600"])
        self.workers = [self._spawn(f"worker{i}", [
            str(DASK), "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
            "--host", "127.0.0.1", "--name", f"worker{i}", "--death-timeout", "30",
            "--local-directory", str(root / f"worker{i}"),
        ]) for i in range(workers)]
        from distributed import Client

        self.client = None
        try:
            self.client = Client(self.address, timeout="60s")
            self.client.wait_for_workers(workers, timeout=60)
        except BaseException:
            self.close()  # no process outlives a cluster that failed to start
            raise

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        cwd = self.root / f"{name}-cwd"  # no worker shares the driver's working directory
        cwd.mkdir(parents=True)
        with open(self.root / f"{name}.log", "wb") as log:  # the process keeps its own copy
            proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> process id."""
        return self.client.run(os.getpid)

    def shards_run(self, stage: str) -> dict[str, set[int]]:
        """Shard ids each worker computed for a stage, read from the task keys in its log."""

        def keys(dask_worker) -> list[str]:
            return sorted({e[0] for e in dask_worker.state.log
                           if e and isinstance(e[0], str) and e[0].startswith(stage + "-")})

        return {w: {int(k.rsplit("-", 1)[1]) for k in ks}
                for w, ks in self.client.run(keys).items()}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for proc in reversed(self.procs):  # each worker gone before the scheduler stops
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory, request) -> LoopbackCluster:
    cluster = LoopbackCluster(tmp_path_factory.mktemp("cluster"), workers=2)
    request.addfinalizer(cluster.close)
    return cluster


@pytest.fixture
def fresh_cluster(tmp_path, request) -> LoopbackCluster:
    """A cluster of its own, for a test that kills one of its workers."""
    cluster = LoopbackCluster(tmp_path / "cluster", workers=2)
    request.addfinalizer(cluster.close)
    return cluster


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, synth_ntu) -> Path:
    """The stores of an in-process run (`--workers 1`) with the shard and chunk sizes used here."""
    root = tmp_path_factory.mktemp("local")
    ws = Workspace(str(root))
    ingest_ntu(ws, str(synth_ntu), workers=1, shard_files=SHARD_FILES)
    downsample(ws, "ntu60", workers=1, chunk=CHUNK)
    return root / "ntu60"


def cli(args: list[str], cwd: Path, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cli", *args]
    if kw.pop("background", False):
        return subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    out = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def test_cluster_run_writes_the_bytes_of_a_local_run_from_relative_paths(
    tmp_path, shared_cluster, local_run, synth_ntu
):
    driver = tmp_path / "driver"
    driver.mkdir()
    raw = os.path.relpath(synth_ntu, driver)  # relative to the driver; workers sit elsewhere
    addr = shared_cluster.address
    out = cli(["ingest", "ntu", "--raw", raw, "--workdir", "ws", "--scheduler", addr,
               "--shard-files", str(SHARD_FILES)], driver)
    assert f"15 shards on dask scheduler {addr}" in out.stderr
    out = cli(["downsample", "--workdir", "ws", "--scheduler", addr, "--chunk", str(CHUNK)],
              driver)
    assert f"15 shards on dask scheduler {addr}" in out.stderr
    for store in ("raw.zarr", "frames50.zarr"):
        assert store_files(driver / "ws" / "ntu60" / store) == store_files(local_run / store), store
    for stage in ("ingest", "downsample"):
        by_worker = shared_cluster.shards_run(stage)
        assert len(by_worker) == 2 and all(by_worker.values()), (stage, by_worker)
        assert set().union(*by_worker.values()) == set(range(15)), stage


def _written(ws: Path, stage: str) -> set[int]:
    """Shards whose output is complete: shard groups with their record (ingest, written
    last), valid_length chunks (downsample, written after the shard's data chunk)."""
    if stage == "ingest":
        groups = (ws / "ntu60" / "raw.zarr" / "shards").glob("*/zarr.json")
        return {int(p.parent.name) for p in groups
                if "record" in json.loads(p.read_text()).get("attributes", {})}
    folder = ws / "ntu60" / "frames50.zarr" / "valid_length" / "c"
    return {int(p.name) for p in folder.glob("*") if p.name.isdigit()}


@pytest.mark.parametrize("stage", ["ingest", "downsample"])
def test_worker_killed_mid_stage_loses_no_data_and_the_store_equals_a_local_run(
    tmp_path, fresh_cluster, local_run, synth_ntu, stage
):
    ws = tmp_path / "ws"
    addr = fresh_cluster.address
    if stage == "ingest":
        args = ["ingest", "ntu", "--raw", str(synth_ntu), "--shard-files", "4"]  # 30 shards
        manifest = ws / "ntu60" / "raw.manifest.json"
    else:
        ingest_ntu(Workspace(str(ws)), str(synth_ntu), workers=1, shard_files=SHARD_FILES)
        args = ["downsample", "--chunk", str(CHUNK)]
        manifest = ws / "ntu60" / "frames50.manifest.json"
    pids = fresh_cluster.worker_pids()
    proc = cli([*args, "--workdir", str(ws), "--scheduler", addr], tmp_path, background=True)
    try:
        victim, lost = None, set()
        deadline = time.time() + 60
        while victim is None and time.time() < deadline and proc.poll() is None:
            if _written(ws, stage):  # mid-stage: some shards are done already
                for worker, keys in fresh_cluster.client.processing().items():
                    shards = {int(k.rsplit("-", 1)[1]) for k in keys if k.startswith(stage + "-")}
                    if shards:
                        os.kill(pids[worker], signal.SIGKILL)
                        victim, lost = worker, shards - _written(ws, stage)
                        break
            time.sleep(0.002)
        assert victim is not None, "the stage finished before a worker could be killed"
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert lost, "every shard of the killed worker had finished before the kill"
    assert list(fresh_cluster.worker_pids()) == [w for w in pids if w != victim]
    m = Manifest.load(str(manifest))
    assert m.complete and m.shards_done == list(range(m.shards_total))
    survivor = fresh_cluster.shards_run(stage)
    assert lost <= set().union(*survivor.values())  # rerun on the surviving worker
    if stage == "ingest":  # the shards are the store: compare with a local run of 4-file shards
        local = tmp_path / "local"
        ingest_ntu(Workspace(str(local)), str(synth_ntu), workers=1, shard_files=4)
        assert store_files(ws / "ntu60" / "raw.zarr") == store_files(local / "ntu60" / "raw.zarr")
    else:
        assert store_files(ws / "ntu60" / "frames50.zarr") == store_files(
            local_run / "frames50.zarr")


def test_a_worker_with_another_asar_version_is_refused_before_any_shard_runs(
    shared_cluster, monkeypatch
):
    monkeypatch.setattr("pipelines.executor.package_version", lambda: "0.0.0-other")
    with pytest.raises(ClusterError, match=r"runs asar .* this command asar 0\.0\.0-other"):
        DaskExecutor(scheduler=shared_cluster.address).__enter__()


def test_an_unreachable_scheduler_is_a_user_error_naming_the_address(monkeypatch):
    monkeypatch.setattr("pipelines.executor.CONNECT_TIMEOUT_S", 1)
    addr = f"tcp://127.0.0.1:{free_port()}"  # nobody listens there
    with pytest.raises(ClusterError, match=f"cannot reach the dask scheduler at {addr}"):
        DaskExecutor(scheduler=addr).__enter__()
