"""Ingest and downsample through a dask.distributed scheduler, 1 and 2 workers, vs in-process.

    python benchmarks/dask_cluster.py [--samples N] [--shard-files F] [--chunk C]

Writes N synthetic NTU-60 files (`write_ntu_dataset(dir, samples=N, classes=10,
seed=0)`), then runs each stage three ways on the same files, one run each:

- in-process (`--workers 1`: no dask at all), the baseline;
- on a loopback cluster this script starts (`dask scheduler` and `dask worker
  --nthreads 1 --no-nanny` processes on 127.0.0.1) with 1 worker, then 2, through
  `--scheduler ADDRESS` - the code path of a multi-machine cluster, minus the network.

Every run first does a small warm-up ingest and downsample, so each process has
loaded the compiled kernels (the numba cache) before the timed run. Times are
wall-clock seconds of the stage call: connecting to the scheduler, the version
check, the shards, and the driver's own serial part (ingest writes the index from
the shards' records; downsample writes labels and splits). Each store is checked
byte-for-byte against the in-process one.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.downsample import downsample  # noqa: E402
from pipelines.ingest import ingest_ntu  # noqa: E402
from pipelines.progress import Bar, Progress  # noqa: E402
from pipelines.workspace import Workspace  # noqa: E402


class ShardClock(Progress):
    """Times the progress bar of a stage: it is open exactly while the shards run."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def bar(self, description: str, total: int | None, completed: int = 0, unit: str = "") -> Bar:
        clock = self

        class Timed(Bar):
            start = time.perf_counter()

            def close(self) -> None:
                clock.seconds += time.perf_counter() - self.start

        return Timed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and `workers` single-threaded worker processes on loopback."""

    def __init__(self, workers: int, root: Path):
        dask = str(Path(sys.executable).with_name("dask"))
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.procs = [subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
             "--dashboard-address", "127.0.0.1:0"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)]
        for i in range(workers):
            self.procs.append(subprocess.Popen(
                [dask, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--host", "127.0.0.1", "--death-timeout", "30",
                 "--local-directory", str(root / f"worker{i}")],
                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        try:
            from distributed import Client

            with Client(self.address, timeout="60s") as client:
                client.wait_for_workers(workers, timeout=60)
        except BaseException:
            self.close()  # no process outlives a cluster that failed to start
            raise

    def close(self) -> None:
        for proc in reversed(self.procs):  # workers first: each gone before the scheduler
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def store_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file()}


def run(label: str, root: Path, raw: Path, warm: Path, scheduler: str | None,
        shard_files: int, chunk: int) -> dict:
    """Warm up, then time ingest and downsample into a fresh workspace under root."""
    kw = {"workers": 1} if scheduler is None else {"scheduler": scheduler}
    warm_ws = Workspace(str(root / f"warm-{label}"))
    ingest_ntu(warm_ws, str(warm), shard_files=4, **kw)
    downsample(warm_ws, "ntu60", chunk=8, **kw)
    ws = Workspace(str(root / label))
    clocks = ShardClock(), ShardClock()
    t0 = time.perf_counter()
    ing = ingest_ntu(ws, str(raw), shard_files=shard_files, progress=clocks[0], **kw)
    t1 = time.perf_counter()
    downsample(ws, "ntu60", chunk=chunk, progress=clocks[1], **kw)
    t2 = time.perf_counter()
    return {"label": label, "samples": ing.summary["samples"], "bytes": ing.summary["bytes"],
            "ingest": (t1 - t0, clocks[0].seconds), "downsample": (t2 - t1, clocks[1].seconds),
            "root": root / label / "ntu60"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000, help="synthetic NTU files")
    ap.add_argument("--shard-files", type=int, default=256, help="files per ingest shard")
    ap.add_argument("--chunk", type=int, default=256, help="samples per downsample shard")
    args = ap.parse_args()
    from asar_data.synth import write_ntu_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw, warm = root / "raw", root / "warm"
        write_ntu_dataset(raw, samples=args.samples, classes=10, seed=0)
        write_ntu_dataset(warm, samples=16, classes=4, seed=1)
        size = sum(p.stat().st_size for p in raw.iterdir())
        print(f"{args.samples} synthetic NTU-60 files, {size / 1e6:.1f} MB; "
              f"{-(-args.samples // args.shard_files)} ingest shards of {args.shard_files} "
              f"files, {-(-args.samples // args.chunk)} downsample shards of {args.chunk} "
              f"samples; {os.cpu_count()} CPUs")
        results = [run("in-process", root, raw, warm, None, args.shard_files, args.chunk)]
        for n in (1, 2):
            cluster = Cluster(n, root)
            try:
                results.append(run(f"scheduler, {n} worker{'s' * (n > 1)}", root, raw, warm,
                                   cluster.address, args.shard_files, args.chunk))
            finally:
                cluster.close()
        base = results[0]
        expected = {s: store_files(base["root"] / s) for s in ("raw.zarr", "frames50.zarr")}
        print("seconds: the whole stage call / the shards alone (the rest is the driver's "
              "serial part)")
        head = (f"{'run':<22} {'ingest s':>12} {'samples/s':>10} {'MB/s':>7} {'ratio':>6}   "
                f"{'downsample s':>12} {'samples/s':>10} {'ratio':>6}   same bytes")
        print(head)
        print("-" * len(head))
        for r in results:
            same = all(store_files(r["root"] / s) == expected[s] for s in expected)
            n = r["samples"]
            (ing, ing_shards), (down, down_shards) = r["ingest"], r["downsample"]
            print(f"{r['label']:<22} {ing:5.2f} / {ing_shards:4.2f} {n / ing:10.1f} "
                  f"{r['bytes'] / ing / 1e6:7.1f} {base['ingest'][0] / ing:5.2f}x   "
                  f"{down:5.2f} / {down_shards:4.2f} {n / down:10.1f} "
                  f"{base['downsample'][0] / down:5.2f}x   {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
