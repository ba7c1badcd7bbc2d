"""Downsample stage speed: the reference transform against the whole stage, one core.

    python benchmarks/downsample.py [--samples 3000] [--workdir DIR] [--repeat 3]

Builds (or reuses, in `--workdir`) a synthetic NTU-60 raw store: `--samples` files
from `asar_data.synth.write_ntu_dataset(..., classes=10, seed=0)`, ingested with one
worker (a store ingested by an older version, with compressed `xyz`, is read through
zarr: use a new workdir). Then, in one run, on the same samples:

- first call: `to_frames` imported and called once in a new process, with an empty
  numba cache (compiling) and again with the cache filled (loading machine code);
- reference: `reference_downsample.transform` on `--reference` samples spread over the
  store, each read with `RawStore.sample(i)`; only the transform calls are timed; the
  same samples' `to_frames` output is compared with it bit for bit;
- to_frames: the batched transform on in-memory blocks of 256 samples (the stage's
  shards), read beforehand;
- stage, 1 worker: `pipelines.downsample.downsample(ws, dataset, workers=1, force=True)`,
  everything included (raw store reads, output writes, manifest);
- the stage's steps per shard (open the raw store, read, transform, write), timed
  one by one as `downsample_shard` runs them;
- stage, 2 workers (a local dask cluster, its start-up included);
- the sizes on disk of the raw frame arrays and of the output `data`;
- with `--codecs`: blosc encode and decode time and size of the stage's output
  chunks under candidate codecs for the 50-frame store (codec cost only).

The process is pinned to one CPU for everything but the 2-worker run. Each figure is
the best of `--repeat` rounds, as wall-clock time and as CPU time (this process's,
all its threads; for the 2-worker run also its finished worker processes'): on a
shared machine the CPU times, and the ratios of either, are the steadier figures.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# the repository instead of this folder: a module here must not hide an installed package
sys.path[0] = str(REPO)
SHARED = Path(os.environ.get("ASAR_SHARED", REPO.parent / "shared"))
SHARD = 256  # the stage's output chunk


def load_reference():
    path = SHARED / "bench" / "reference_downsample.py"
    spec = importlib.util.spec_from_file_location("reference_downsample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of `rounds` calls of fn."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - w)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu


def raw_store(workdir: Path, samples: int):
    """The synthetic store's dataset name and location (built on first use)."""
    from asar_data.synth import write_ntu_dataset
    from pipelines.ingest import ingest_ntu
    from pipelines.workspace import Workspace

    files = workdir / f"synth-ntu-{samples}"
    if len(list(files.glob("*.skeleton"))) != samples:
        print(f"writing {samples} synthetic NTU files to {files} ...", flush=True)
        write_ntu_dataset(files, samples=samples, classes=10, seed=0)
    result = ingest_ntu(Workspace(str(workdir)), str(files), workers=1)
    print(f"raw store: {result.store} ({result.action}: {result.reason})")
    return result.dataset, result.store


def shard_steps(raw_location: str, out_location: str, n: int, rounds: int
                ) -> dict[str, float]:
    """CPU seconds of each step of `downsample_shard`, summed over shards, best per shard."""
    from asar_data import frames_store
    from asar_data.raw_store import RawStore
    from asar_data.transform import to_frames

    frames_store.create(out_location, n, 50, SHARD)
    totals = dict.fromkeys(("open raw store", "read (frames, bodies=2, ids=False)",
                            "to_frames", "write_block"), 0.0)
    for a in range(0, n, SHARD):
        b = min(a + SHARD, n)
        steps = dict.fromkeys(totals, float("inf"))
        for _ in range(rounds):
            t0 = time.process_time()
            raw = RawStore(raw_location)
            t1 = time.process_time()
            xyz, _, offsets = raw.frames(a, b, bodies=2, ids=False)
            t2 = time.process_time()
            data, length = to_frames(xyz, offsets, long_crop=raw.attrs.get("long_crop", "first"))
            t3 = time.process_time()
            frames_store.write_block(out_location, a, data, length)
            t4 = time.process_time()
            for key, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                steps[key] = min(steps[key], dt)
        for key in totals:
            totals[key] += steps[key]
    return totals


def first_call_seconds() -> dict[str, float]:
    """Wall seconds of `import asar_data.transform` + a first `to_frames` call in a fresh
    process: compiling (an empty numba cache) and loading the cached machine code."""
    code = ("import time; t = time.perf_counter(); import numpy as np; "
            "from asar_data.transform import to_frames; "
            "to_frames(np.ones((4, 2, 3, 25), np.float32), np.array([0, 4])); "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env["NUMBA_CACHE_DIR"] = cache
        for label in ("compile (empty cache)", "load (cached)"):
            run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True)
            out[label] = float(run.stdout.split()[-1])
    return out


def children_cpu() -> float:
    """CPU seconds of this process's finished child processes (dask workers, nannies)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# candidate codecs of the 50-frame store: (label, blosc cname, clevel, shuffle, typesize)
OUTPUT_CODECS = [
    ("zstd 3, shuffle", "zstd", 3, 1, 4),
    ("zstd 1, shuffle", "zstd", 1, 1, 4),
    ("lz4 1, shuffle", "lz4", 1, 1, 4),
    ("lz4 1, shuffle, typesize 8 (body pairs)", "lz4", 1, 1, 8),
    ("lz4 5, shuffle, typesize 8 (body pairs)", "lz4", 5, 1, 8),
]


def output_codecs(chunks: list[np.ndarray], rounds: int) -> None:
    """Print encode / decode CPU time and ratio of each candidate on the output chunks."""
    from numcodecs import Blosc

    n = sum(len(c) for c in chunks)
    print("\noutput chunk codecs (blosc only, CPU time; uncompressed: 30000 B/sample):")
    for label, cname, clevel, shuffle, typesize in OUTPUT_CODECS:
        codec = Blosc(cname=cname, clevel=clevel, shuffle=shuffle, typesize=typesize)
        encoded = [codec.encode(c) for c in chunks]
        _, enc = best(lambda codec=codec: [codec.encode(c) for c in chunks], rounds)
        _, dec = best(lambda codec=codec, encoded=encoded: [codec.decode(e) for e in encoded],
                      rounds)
        size = sum(len(e) for e in encoded)
        print(f"  {label:42s} encode {enc / n * 1e6:6.1f}  decode {dec / n * 1e6:6.1f} "
              f"us/sample  ratio {sum(c.nbytes for c in chunks) / size:4.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=3000, help="synthetic samples in the store")
    ap.add_argument("--workdir", type=Path, help="keep (and reuse) the store here")
    ap.add_argument("--reference", type=int, default=300, help="samples the reference runs on")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept")
    ap.add_argument("--no-workers", action="store_true", help="skip the 2-worker stage run")
    ap.add_argument("--codecs", action="store_true", help="also compare output chunk codecs")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # cluster shutdown chatter

    jit = first_call_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        dataset, location = raw_store(workdir, args.samples)

        from asar_data import chunk_io, storage
        from asar_data.raw_store import RawStore
        from asar_data.transform import to_frames
        from pipelines.downsample import downsample
        from pipelines.workspace import Workspace

        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
        raw = RawStore(location)
        n = len(raw)
        plain = chunk_io.open_plain(storage.join(location, "xyz")) is not None
        print(f"{n} samples, {int(raw.offsets[-1])} frames "
              f"({raw.offsets[-1] / n:.0f} per sample); raw xyz "
              f"{'uncompressed (read directly)' if plain else 'compressed (read by zarr)'}")
        if not plain:
            print("  (a store ingested by an older version: use a new --workdir to measure "
                  "the direct reads)")

        reference = load_reference()
        picked = np.linspace(0, n - 1, min(args.reference, n)).astype(int)
        samples = [raw.sample(int(i)) for i in picked]
        ref_s, ref_cpu = best(lambda: [reference.transform(s) for s in samples], args.repeat)
        ref_s, ref_cpu = ref_s / len(samples), ref_cpu / len(samples)

        blocks = [raw.frames(a, min(a + SHARD, n), bodies=2, ids=False)
                  for a in range(0, n, SHARD)]
        chunks = [to_frames(x, o)[0] for x, _, o in blocks]
        ours = np.concatenate(chunks)[picked]
        differ = sum(not np.array_equal(reference.transform(s).view(np.uint32),
                                        o.view(np.uint32)) for s, o in zip(samples, ours,
                                                                            strict=True))
        tf_s, tf_cpu = best(lambda: [to_frames(x, o) for x, _, o in blocks], args.repeat)
        blocks.clear()

        ws = Workspace(str(workdir))
        stage_s, stage_cpu = best(lambda: downsample(ws, dataset, workers=1, force=True),
                                  args.repeat)
        out_store = ws.frames(dataset, 50).store
        sizes = {"raw xyz": storage.tree_size(storage.join(location, "xyz")),
                 "raw body_id": storage.tree_size(storage.join(location, "body_id")),
                 "frames50 data": storage.tree_size(storage.join(out_store, "data"))}
        steps = shard_steps(location, str(Path(tmp) / "steps.zarr"), n, args.repeat)

        rows = [("reference transform (1 sample at a time)", ref_s, ref_cpu),
                ("to_frames, in memory (256-sample blocks)", tf_s / n, tf_cpu / n),
                ("stage, 1 worker (read + transform + write)", stage_s / n, stage_cpu / n)]
        if not args.no_workers:
            os.sched_setaffinity(0, cpus)

            def two_workers() -> tuple[float, float]:
                c0, t0 = children_cpu() + time.process_time(), time.perf_counter()
                downsample(ws, dataset, workers=2, force=True)
                return time.perf_counter() - t0, children_cpu() + time.process_time() - c0

            two_s, two_cpu = min(two_workers() for _ in range(args.repeat))
            rows.append(("stage, 2 workers (dask start-up included)", two_s / n, two_cpu / n))

    print(f"\nto_frames against the reference on {len(samples)} samples: "
          f"{len(samples) - differ} bit-identical, {differ} differ")
    print("first call of to_frames in a new process (import included): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in jit.items()))
    print(f"\n{'':44s} {'wall clock':>24s}   {'CPU time':>24s}")
    print(f"{'':44s} {'samples/s':>9s} {'us/sample':>9s} {'x ref':>6s}   "
          f"{'samples/s':>9s} {'us/sample':>9s} {'x ref':>6s}")
    for label, wall, cpu in rows:
        print(f"{label:44s} {1 / wall:9.0f} {wall * 1e6:9.1f} {ref_s / wall:6.1f}   "
              f"{1 / cpu:9.0f} {cpu * 1e6:9.1f} {ref_cpu / cpu:6.1f}")
    if not args.no_workers:
        print("  (2 workers: CPU time of this process and the finished workers, start-up "
              "included)")
    print("\nstage steps, 1 worker (downsample_shard, step by step, CPU time):")
    for label, secs in steps.items():
        print(f"  {label:42s} {secs / n * 1e6:9.1f} us/sample")
    total = sum(steps.values()) / n
    print(f"  {'sum':42s} {total * 1e6:9.1f} us/sample ({ref_cpu / total:.1f}x reference)")
    print(f"  the rest of the 1-worker stage (plan, old output removed, labels, names and "
          f"splits written): {(stage_cpu / n - total) * n * 1e3:.0f} ms per run, "
          f"{(stage_cpu / n - total) * 1e6:.1f} us/sample here")
    print("\nstore sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB ({v / n / 1e3:.1f} kB/sample)"
                                       for k, v in sizes.items()))
    if args.codecs:
        output_codecs(chunks, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
