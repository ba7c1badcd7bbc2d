"""The ingest benchmark: the whole `asar-cli ingest ntu` command against the reference reader.

    python benchmarks/ingest.py [--samples 1500 3000 6000] [--raw DIR] [--repeat 2]
                                [--reference-subset N] [--cache DIR] [--profile]
                                [--end-to-end [--transform-subset N]]

On folders of NTU files (by default `--samples` synthetic files each,
`write_ntu_dataset(dir, samples, classes=10, seed=0)`, as `asar-cli synth ntu` writes
them; `--cache DIR` keeps them for the next run; `--raw DIR` for a folder of your own),
in one run:

1. The reference reader (`reference_parse.read_xyz`, one file after another, the
   reference gendata's loop) on the first folder, one core: its MB/s is the yardstick.
   `--reference-subset N` times it on N files spread over the folder and scales.
2. For each folder, the whole command in a new process, as a user runs it:
   `asar-cli ingest ntu --raw DIR --workdir NEW --workers 1` pinned to one core, then
   `--workers 2` on the cores this script started with (two forked local worker
   processes, their start included). Each run writes a new workspace (nothing to
   remove first).
   Wall and CPU seconds (the command and its children, `wait4`), the peak memory of
   its largest process, MB/s, and the ratios: to the reference reader (wall, and CPU)
   and, for 2 workers, to 1 worker.
3. First run on a fresh machine: the 1-worker command with an empty numba cache
   (`NUMBA_CACHE_DIR` a new folder: the kernel is compiled and cached), against the
   same command with the cache filled.
4. With `--profile`: the 1-worker stage in this process under cProfile (where the
   time goes), the top functions by own time.
5. With `--end-to-end`: raw folder to the stores of both NTU-60 benchmarks (xsub,
   xview): ours (ingest + downsample, one raw store and one 50-frame store serve
   both) against the reference path (for each benchmark and part, read every file of
   the part with `read_xyz` into a padded (N, 3, 300, 25, 2) `.npy` with its label
   pickle, then `reference_downsample.transform` each sample into (N, 3, 50, 25, 2);
   `--transform-subset N` times the transform on N samples per array and scales).

Times are the best of `--repeat` rounds, run in turns so all see the same machine
load; files are read once before any timing (page cache). On a shared machine the
CPU figures are the steadier ones.
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
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # the repository, not this folder
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


ALL_CORES = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
ONE_CORE = {min(ALL_CORES)} if ALL_CORES else None


def pin(cores: set[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)


@dataclass
class Timing:
    """Best-of-rounds figures of one measured thing."""

    wall: float = float("inf")
    cpu: float = float("inf")
    peak_mb: float = 0.0
    size: int = 0  # bytes read

    def add(self, wall: float, cpu: float, peak_mb: float = 0.0) -> None:
        self.wall, self.cpu = min(self.wall, wall), min(self.cpu, cpu)
        self.peak_mb = max(self.peak_mb, peak_mb)


# ---------------------------------------------------------------- folders


def folder_of(samples: int, cache: Path) -> Path:
    """`samples` synthetic NTU-60 files (classes=10, seed=0), written once into cache."""
    from asar_data.synth import write_ntu_dataset

    raw = cache / f"synth-ntu60-{samples}"
    done = raw.with_suffix(".done")
    if not done.exists():
        shutil.rmtree(raw, ignore_errors=True)
        print(f"writing {samples} synthetic files into {raw} ...", flush=True)
        write_ntu_dataset(raw, samples=samples, classes=10, seed=0)
        done.write_text("")
    return raw


def files_of(raw: Path) -> list[Path]:
    paths = sorted(raw.rglob("*.skeleton"))
    if not paths:
        raise SystemExit(f"no .skeleton files under {raw}")
    for p in paths:  # every file in the page cache before any timing
        p.read_bytes()
    return paths


# ---------------------------------------------------------------- measuring


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "asar-cli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def run_command(args: list[str], cores: set[int] | None, env: dict[str, str] | None = None,
                log: Path | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB of its largest process) of one command and its children."""
    log = log or Path(os.devnull)
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=out, cwd=REPO,
                                env={**os.environ, **(env or {})},
                                preexec_fn=(lambda: pin(cores)) if cores else None)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}); see {log}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def ingest_command(raw: Path, work: Path, workers: int) -> list[str]:
    return [*cli_command(), "ingest", "ntu", "--raw", str(raw), "--workdir", str(work),
            "--workers", str(workers)]


def time_reference(paths: list[Path], read_xyz, subset: int, repeat: int) -> Timing:
    """The reference reader over the files (or an evenly spread subset, scaled)."""
    chosen = paths if not subset or subset >= len(paths) else \
        [paths[i] for i in np.linspace(0, len(paths) - 1, subset).astype(int)]
    scale = sum(p.stat().st_size for p in paths) / sum(p.stat().st_size for p in chosen)
    t = Timing(size=sum(p.stat().st_size for p in paths))
    pin(ONE_CORE)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for p in chosen:
            read_xyz(str(p))
        t.add((time.perf_counter() - wall) * scale, (time.process_time() - cpu) * scale)
    pin(ALL_CORES)
    return t


def row(label: str, files: int, size: int, t: Timing, ref: Timing | None,
        one: Timing | None = None) -> None:
    mbs = size / t.wall / 1e6
    cells = [f"{label:34s}", f"{files:6d}", f"{size / 1e6:7.1f}", f"{t.wall:7.2f}",
             f"{t.cpu:7.2f}", f"{t.peak_mb:7.0f}" if t.peak_mb else f"{'':7s}", f"{mbs:7.1f}"]
    if ref is not None:
        ref_mbs = ref.size / ref.wall / 1e6
        cells += [f"{mbs / ref_mbs:6.1f}x",
                  f"{(size / t.cpu) / (ref.size / ref.cpu):6.1f}x"]
    else:
        cells += [f"{'':7s}", f"{'':7s}"]
    if one is not None:
        cells.append(f"{one.wall / t.wall:5.2f}x")
    print(" ".join(cells), flush=True)


def header() -> None:
    print(f"{'command':34s} {'files':>6s} {'MB':>7s} {'wall s':>7s} {'CPU s':>7s} "
          f"{'peak MB':>7s} {'MB/s':>7s} {'x ref':>7s} {'x refCPU':>7s} {'2w/1w':>6s}")


def profile_stage(raw: Path, tmp: Path) -> None:
    """The 1-worker stage in this process under cProfile: the top functions by own time."""
    import cProfile
    import pstats

    from pipelines.ingest import ingest_ntu
    from pipelines.workspace import Workspace

    pin(ONE_CORE)
    ingest_ntu(Workspace(str(tmp / "warm")), str(raw), workers=1)  # imports, kernel
    profiler = cProfile.Profile()
    profiler.enable()
    ingest_ntu(Workspace(str(tmp / "profiled")), str(raw), workers=1)
    profiler.disable()
    pin(ALL_CORES)
    print("\nprofile of the 1-worker stage in this process (imports excluded), by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


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


def end_to_end(paths: list[Path], raw: Path, tmp: Path, read_xyz, repeat: int,
               subset: int) -> None:
    from pipelines.downsample import downsample
    from pipelines.ingest import ingest_ntu
    from pipelines.workspace import Workspace

    transform = load_bench("reference_downsample").transform
    pin(ONE_CORE)
    gendata = transforms = float("inf")
    for r in range(repeat):
        out = tmp / f"reference{r}"
        g, t = reference_end_to_end(paths, out, read_xyz, transform, subset)
        shutil.rmtree(out)
        gendata, transforms = min(gendata, g), min(transforms, t)
    reference_total = gendata + transforms
    scaled = (f"; reference transform timed on {subset} samples per array and scaled"
              if subset else "")
    print(f"\nend to end: raw folder -> stores of both benchmarks (xsub, xview){scaled}")
    print(f"  reference path           {reference_total:7.2f} s"
          f"  (read_xyz + .npy, 4 parts: {gendata:.2f} s; transform: {transforms:.2f} s)")
    for workers in (1, 2):
        pin(ONE_CORE if workers == 1 else ALL_CORES)
        best_ingest = best_total = float("inf")
        for r in range(repeat):
            ws = Workspace(str(tmp / f"e2e{workers}-{r}"))
            start = time.perf_counter()
            ingest_ntu(ws, str(raw), workers=workers)
            middle = time.perf_counter()
            downsample(ws, "ntu60", workers=workers)
            best_ingest = min(best_ingest, middle - start)
            best_total = min(best_total, time.perf_counter() - start)
            shutil.rmtree(ws.root)
        print(f"  ours workers={workers}           {best_total:7.2f} s"
              f"  (ingest {best_ingest:.2f} s + downsample {best_total - best_ingest:.2f} s)"
              f"  {reference_total / best_total:5.1f}x")
    pin(ALL_CORES)


# ---------------------------------------------------------------- the run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[1500, 3000, 6000],
                    help="synthetic folders to measure (files each)")
    ap.add_argument("--raw", type=Path, help="a folder of NTU-60 .skeleton files instead")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; the best is kept")
    ap.add_argument("--reference-subset", type=int, default=0, metavar="N",
                    help="time the reference reader on N files and scale")
    ap.add_argument("--cache", type=Path, help="keep the synthetic folders here")
    ap.add_argument("--tmp", type=Path, default=None, help="where temporary folders go")
    ap.add_argument("--profile", action="store_true", help="profile the 1-worker stage")
    ap.add_argument("--end-to-end", action="store_true",
                    help="also raw folder -> both benchmarks' stores against the reference path")
    ap.add_argument("--transform-subset", type=int, default=0, metavar="N",
                    help="with --end-to-end: the reference transform on N samples per array")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    read_xyz = load_bench("reference_parse").read_xyz

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp_root:
        tmp = Path(tmp_root)
        cache = args.cache or tmp / "synthetic"
        cache.mkdir(parents=True, exist_ok=True)
        folders = [(args.raw.resolve(), str(args.raw))] if args.raw else [
            (folder_of(n, cache), f"{n} synthetic NTU-60 files") for n in args.samples]
        first_paths = files_of(folders[0][0])
        print(f"load average {os.getloadavg()[0]:.1f} on {len(ALL_CORES or [1])} cores; "
              f"reference reader on {folders[0][1]}", flush=True)
        ref = time_reference(first_paths, read_xyz, args.reference_subset, args.repeat)
        # warm: the numba cache filled and the imports in the page cache
        run_command(ingest_command(folders[0][0], tmp / "warm", 1), ONE_CORE)
        header()
        note = (f" ({args.reference_subset} files, scaled)" if args.reference_subset else "")
        row(f"reference read_xyz loop{note}", len(first_paths), ref.size, ref, ref)
        log = tmp / "command.log"
        for raw, _ in folders:
            paths = files_of(raw)
            size = sum(p.stat().st_size for p in paths)
            one, two = Timing(), Timing()
            for r in range(args.repeat):
                for workers, t, cores in ((1, one, ONE_CORE), (2, two, ALL_CORES)):
                    work = tmp / f"w{workers}-{r}"
                    t.add(*run_command(ingest_command(raw, work, workers), cores, log=log))
                    shutil.rmtree(work)
            row("asar-cli ingest ntu --workers 1", len(paths), size, one, ref)
            row("asar-cli ingest ntu --workers 2", len(paths), size, two, ref, one)
        raw = folders[0][0]
        size = ref.size
        first, warm = Timing(), Timing()
        for r in range(args.repeat):
            cache_dir = tmp / f"numba-cache-{r}"
            first.add(*run_command(ingest_command(raw, tmp / f"f{r}", 1), ONE_CORE,
                                   env={"NUMBA_CACHE_DIR": str(cache_dir)}, log=log))
            warm.add(*run_command(ingest_command(raw, tmp / f"g{r}", 1), ONE_CORE,
                                  env={"NUMBA_CACHE_DIR": str(cache_dir)}, log=log))
            for folder in (tmp / f"f{r}", tmp / f"g{r}"):
                shutil.rmtree(folder)
        row("first run (empty numba cache)", len(first_paths), size, first, ref)
        row("same, numba cache filled", len(first_paths), size, warm, ref)
        print(f"first-run overhead: {first.wall - warm.wall:.2f} s wall, "
              f"{first.cpu - warm.cpu:.2f} s CPU (compiling the parse kernel)")
        if args.profile:
            profile_stage(raw, tmp)
        if args.end_to_end:
            end_to_end(first_paths, raw, tmp, read_xyz, args.repeat, args.transform_subset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
