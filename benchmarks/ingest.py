"""The ingest benchmark: raw NTU-60 `.skeleton` files -> stores, ours against the reference path.

    python benchmarks/ingest.py [--samples 600] [--raw DIR] [--repeat 2] [--transform-subset N]

On one folder of NTU files (by default `--samples` synthetic files,
`write_ntu_dataset(dir, samples, classes=10, seed=0)` in a temporary folder;
`--raw DIR` for a folder of your own), in one run:

1. Reading: MB/s and files/s of the reference reader (`reference_parse.read_xyz`,
   one file after another) and of our ingest stage (`ingest_ntu(..., force=True)`:
   listing, parsing, part files, the zarr raw store, the report and the manifest)
   with workers=1 and workers=2, as ratios to the reference.
2. End to end, raw folder to the stores of both NTU-60 benchmarks (xsub, xview):
   - ours: ingest + `downsample(ws, "ntu60")`: one raw store and one 50-frame store
     serve both benchmarks (workers=1, then workers=2);
   - the reference path, as the reference tools' gendata and preprocessing do it:
     for each benchmark and each part (train, val) every file of that part is read
     with `read_xyz` into a padded (N, 3, 300, 25, 2) float32 `.npy`
     (`np.lib.format.open_memmap`) with its (names, labels) pickle, then every
     sample goes through `reference_downsample.transform` into a (N, 3, 50, 25, 2)
     `.npy`. With `--transform-subset N` the transform runs on N samples of each
     array and its time is scaled to all of them (said so in the output).

Times are wall-clock seconds (workers=2 runs child processes), the best of `--repeat`
rounds, in turns. The reference and our workers=1 runs are pinned to one core;
workers=2 runs get the cores this process started with. Our runs start warm (the
kernel and zarr loaded once before timing); the workers=2 runs include starting
their local dask cluster each time, as a user's run does.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import pickle  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("ASAR_SHARED", REPO.parent / "shared"))

from asar_data.names import missing_samples, parse_ntu_name  # noqa: E402
from asar_data.splits import NTU60_XSUB_TRAIN_SUBJECTS, NTU60_XVIEW_TRAIN_CAMERAS  # noqa: E402

MAX_FRAMES, JOINTS, BODIES, OUT_FRAMES = 300, 25, 2, 50


def load_bench(name: str):
    path = SHARED / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Cores:
    """Switch this process (and the children it starts) between one core and all it had."""

    def __init__(self):
        self.all = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

    def one(self) -> None:
        if self.all:
            os.sched_setaffinity(0, {min(self.all)})

    def every(self) -> None:
        if self.all:
            os.sched_setaffinity(0, self.all)


class Best:
    """The best wall-clock and CPU (this process's) seconds seen over rounds."""

    def __init__(self):
        self.wall = self.cpu = float("inf")

    def time(self, fn: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        self.wall = min(self.wall, time.perf_counter() - wall)
        self.cpu = min(self.cpu, time.process_time() - cpu)


# ---------------------------------------------------------------- the reference path


def reference_parts(paths: list[Path]) -> dict[tuple[str, str], list[Path]]:
    """(benchmark, part) -> the files of that part, in name order, missing samples left out."""
    missing = missing_samples("ntu60")
    kept = [p for p in sorted(paths, key=lambda p: p.name) if p.stem not in missing]
    parts = {}
    for benchmark in ("xsub", "xview"):
        for part in ("train", "val"):
            chosen = []
            for p in kept:
                name = parse_ntu_name(p.name)
                training = (name.subject in NTU60_XSUB_TRAIN_SUBJECTS if benchmark == "xsub"
                            else name.camera in NTU60_XVIEW_TRAIN_CAMERAS)
                if training == (part == "train"):
                    chosen.append(p)
            parts[benchmark, part] = chosen
    return parts


def reference_gendata(files: list[Path], out: Path, part: str, read_xyz) -> None:
    """The reference gendata for one part: label pickle and padded (N, 3, 300, 25, 2) array."""
    labels = [parse_ntu_name(p.name).label for p in files]
    with open(out / f"{part}_label.pkl", "wb") as f:
        pickle.dump(([p.name for p in files], labels), f)
    data = np.lib.format.open_memmap(out / f"{part}_data.npy", mode="w+", dtype=np.float32,
                                     shape=(len(files), 3, MAX_FRAMES, JOINTS, BODIES))
    for i, p in enumerate(files):
        xyz = read_xyz(str(p), max_body=BODIES, num_joint=JOINTS)[:, :MAX_FRAMES]
        data[i, :, :xyz.shape[1]] = xyz
    data.flush()
    del data


def reference_transform(out: Path, part: str, transform, subset: int) -> float:
    """The 50-frame transform of one part's array; returns its seconds (scaled when subset)."""
    data = np.load(out / f"{part}_data.npy", mmap_mode="r")
    n = len(data)
    todo = n if not subset else min(subset, n)
    start = time.perf_counter()
    frames = np.lib.format.open_memmap(out / f"{part}_data_{OUT_FRAMES}.npy", mode="w+",
                                       dtype=np.float32, shape=(n, 3, OUT_FRAMES, JOINTS, BODIES))
    for i in range(todo):
        with contextlib.suppress(ValueError):  # no frame with body 1: left at zeros
            frames[i] = transform(np.asarray(data[i]), OUT_FRAMES)
    frames.flush()
    del frames
    seconds = time.perf_counter() - start
    return seconds * n / todo if todo else 0.0


def reference_end_to_end(paths, out: Path, read_xyz, transform, subset: int) -> tuple[float, float]:
    """(gendata seconds, transform seconds) of both benchmarks, written under out."""
    parts = reference_parts(paths)
    gendata = transforms = 0.0
    for (benchmark, part), files in parts.items():
        folder = out / benchmark
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        reference_gendata(files, folder, part, read_xyz)
        gendata += time.perf_counter() - start
    for (benchmark, part), _ in parts.items():
        transforms += reference_transform(out / benchmark, part, transform, subset)
    return gendata, transforms


# ---------------------------------------------------------------- ours


def our_ingest(work: Path, raw: Path, workers: int) -> None:
    from pipelines.ingest import ingest_ntu
    from pipelines.workspace import Workspace

    ingest_ntu(Workspace(str(work)), str(raw), workers=workers, force=True)


def our_downsample(work: Path, workers: int) -> None:
    from pipelines.downsample import downsample
    from pipelines.workspace import Workspace

    downsample(Workspace(str(work)), "ntu60", workers=workers, force=True)


def warm_up(scratch: Path, paths: list[Path]) -> str | None:
    """Load the kernel, zarr and both stages once, outside the timed runs.

    Returns why downsample failed, if it did (None when it ran).
    """
    from asar_data.ntu_format import parse_ntu

    parse_ntu(paths[0].read_bytes())
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        small = Path(tmp) / "raw"
        small.mkdir()
        for p in paths[:8]:
            shutil.copy(p, small / p.name)
        our_ingest(Path(tmp) / "work", small, 1)
        try:
            our_downsample(Path(tmp) / "work", 1)
        except Exception as e:  # the transform is being rewritten elsewhere
            return f"{type(e).__name__}: {e}"
    return None


# ---------------------------------------------------------------- the run


def rate(label: str, best: Best, size: int, n: int, ref: Best, cpu: bool = True) -> None:
    """One row: MB/s and files/s (wall), seconds, and the ratio to the reference."""
    row = (f"  {label:24s} {size / best.wall / 1e6:7.1f} MB/s {n / best.wall:7.1f} files/s"
           f" {best.wall:7.2f} s  {ref.wall / best.wall:5.1f}x")
    if cpu:
        row += f"   | CPU {best.cpu:7.2f} s  {ref.cpu / best.cpu:5.1f}x"
    print(row)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=600, help="synthetic files to write")
    ap.add_argument("--raw", type=Path, help="a folder of NTU-60 .skeleton files instead")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; the best is kept")
    ap.add_argument("--transform-subset", type=int, default=0, metavar="N",
                    help="run the reference transform on N samples per array and scale")
    ap.add_argument("--tmp", type=Path, default=None, help="where temporary folders go")
    args = ap.parse_args()
    # dask's workers log lost heartbeats while a cluster shuts down: noise here
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    cores = Cores()
    read_xyz = load_bench("reference_parse").read_xyz
    transform = load_bench("reference_downsample").transform

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp_root:
        tmp = Path(tmp_root)
        if args.raw is None:
            from asar_data.synth import write_ntu_dataset

            raw = tmp / "raw"
            write_ntu_dataset(raw, samples=args.samples, classes=10, seed=0)
            source = f"{args.samples} synthetic NTU-60 files (classes=10, seed=0)"
        else:
            raw, source = args.raw.resolve(), str(args.raw)
        paths = sorted(raw.rglob("*.skeleton"))
        if not paths:
            raise SystemExit(f"no .skeleton files under {raw}")
        size, n = sum(p.stat().st_size for p in paths), len(paths)
        for p in paths:  # every file in the page cache before any timing
            p.read_bytes()
        cores.one()
        downsample_failed = warm_up(tmp, paths)
        print(f"{source}: {n} files, {size / 1e6:.1f} MB; load average "
              f"{os.getloadavg()[0]:.1f} on {len(cores.all or [1])} cores")

        # 1. reading
        ref, one, two = Best(), Best(), Best()
        for _ in range(args.repeat):  # in turns, so that all see the same machine load
            cores.one()
            ref.time(lambda: [read_xyz(str(p)) for p in paths])
            one.time(lambda: our_ingest(tmp / "w1", raw, 1))
            cores.every()
            two.time(lambda: our_ingest(tmp / "w2", raw, 2))
        print("reading: raw files -> xyz (reference), -> raw.zarr (ours); wall, then CPU")
        rate("reference read_xyz", ref, size, n, ref)
        rate("ingest_ntu workers=1", one, size, n, ref)
        rate("ingest_ntu workers=2", two, size, n, ref, cpu=False)

        # 2. end to end, both NTU-60 benchmarks
        cores.one()
        gendata = transforms = float("inf")
        for r in range(args.repeat):
            out = tmp / f"reference{r}"
            g, t = reference_end_to_end(paths, out, read_xyz, transform, args.transform_subset)
            shutil.rmtree(out)
            gendata, transforms = min(gendata, g), min(transforms, t)
        reference_total = gendata + transforms
        scaled = (f"; reference transform timed on {args.transform_subset} samples per array"
                  " and scaled" if args.transform_subset else "")
        print(f"end to end: raw folder -> stores of both benchmarks (xsub, xview){scaled}")
        print(f"  reference path           {reference_total:7.2f} s"
              f"  (read_xyz + .npy, 4 parts: {gendata:.2f} s; transform: {transforms:.2f} s)")
        for workers in (1, 2):
            (cores.one if workers == 1 else cores.every)()
            ingest, total = Best(), Best()
            work = tmp / f"e2e{workers}"
            for _ in range(args.repeat):
                start = time.perf_counter()
                ingest.time(lambda: our_ingest(work, raw, workers))  # noqa: B023
                if downsample_failed is None:
                    our_downsample(work, workers)
                total.wall = min(total.wall, time.perf_counter() - start)
            if downsample_failed is not None:
                print(f"  ours workers={workers}: downsample failed ({downsample_failed}); "
                      f"not timed. Ingest alone {ingest.wall:.2f} s")
                continue
            print(f"  ours workers={workers}           {total.wall:7.2f} s"
                  f"  (ingest {ingest.wall:.2f} s + downsample {total.wall - ingest.wall:.2f} s)"
                  f"  {reference_total / total.wall:5.1f}x")
        cores.every()
    return 0


if __name__ == "__main__":
    sys.exit(main())
