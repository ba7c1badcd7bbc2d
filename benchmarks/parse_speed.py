"""NTU `.skeleton` parse speed: the reference reader against `parse_ntu`, one process, one core.

    python benchmarks/parse_speed.py [DIR ...] [--synthetic N] [--repeat R]

Measures the real sample files (`shared/data/real/ntu`, or ASAR_SHARED) and any
folder given, plus N synthetic files in the official layout when asked
(`write_ntu_dataset(dir, samples=N, classes=10, seed=0)`). Both readers start from
the path (file read included), run in turns, and the best of R rounds is kept for
each. Times are this process's CPU time, so that other programs sharing the
machine count less. The outputs are checked equal first.

Then the cost of the compiled kernel's first call in a fresh process: once with an
empty numba cache (numba's import, the compilation, the cache written) and once
with that cache (numba's import and the cache read), as every later process pays.
"""
from __future__ import annotations

import os

# One core: no BLAS or OpenMP threads, and the process pinned to one CPU.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("ASAR_SHARED", REPO.parent / "shared"))

from asar_data.ntu_format import parse_ntu  # noqa: E402


def load_reference():
    path = SHARED / "bench" / "reference_parse.py"
    spec = importlib.util.spec_from_file_location("reference_parse", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_time(fn, paths: list[Path], rounds: int) -> float:
    """Best CPU time of `rounds` passes of fn over all paths."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for p in paths:
            fn(p)
        best = min(best, time.process_time() - start)
    return best


def measure(label: str, paths: list[Path], reference, rounds: int) -> float:
    """Print MB/s and files/s of both readers on paths; returns the speed ratio."""
    for p in paths:  # warm the page cache and check the outputs agree
        expected = reference.read_xyz(str(p))
        got = parse_ntu(p.read_bytes()).xyz.transpose(3, 0, 2, 1)
        if not np.array_equal(got.view(np.uint64), expected.view(np.uint64)):
            raise SystemExit(f"{p}: parse_ntu differs from the reference reader")
    size = sum(p.stat().st_size for p in paths)

    def ref(p):
        return reference.read_xyz(str(p))

    def ours(p):
        return parse_ntu(p.read_bytes())

    t_ref = t_ours = float("inf")
    for _ in range(rounds):  # alternate, so that both see the same machine load
        t_ref = min(t_ref, best_time(ref, paths, 1))
        t_ours = min(t_ours, best_time(ours, paths, 3))
    n = len(paths)
    print(f"{label}: {n} files, {size / 1e6:.1f} MB\n"
          f"  reference  {size / t_ref / 1e6:8.1f} MB/s {n / t_ref:8.1f} files/s\n"
          f"  parse_ntu  {size / t_ours / 1e6:8.1f} MB/s {n / t_ours:8.1f} files/s\n"
          f"  ratio      {t_ref / t_ours:8.1f}x")
    return t_ref / t_ours


FIRST_CALL = """
import sys, time
wall, cpu = time.perf_counter(), time.process_time()
from asar_data.ntu_format import parse_ntu
parse_ntu(open(sys.argv[1], "rb").read())
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def first_call_seconds(path: Path) -> list[tuple[float, float]]:
    """(wall, CPU) seconds to import the reader and parse one file in a fresh process:
    with an empty numba cache (it compiles), then with the cache that run wrote."""
    times = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", FIRST_CALL, str(path)], cwd=REPO,
                                 env=env, capture_output=True, text=True, check=True)
            wall, cpu = map(float, out.stdout.split())
            times.append((wall, cpu))
    return times


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=Path, help="more folders of .skeleton files")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="also measure N synthetic files in the official layout")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the best is kept")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    reference = load_reference()
    sets = [("real NTU files", SHARED / "data" / "real" / "ntu")]
    sets += [(str(d), d) for d in args.dirs]
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            from asar_data.synth import write_ntu_dataset

            write_ntu_dataset(tmp, samples=args.synthetic, classes=10, seed=0)
            sets.append(("synthetic NTU-60 files (seed 0)", Path(tmp)))
        for label, folder in sets:
            paths = sorted(folder.rglob("*.skeleton"))
            if not paths:
                print(f"{label}: no .skeleton files under {folder}")
                continue
            measure(label, paths, reference, args.repeat)
    names_file = SHARED / "data" / "real" / "lists" / "ntu120_statistics"
    names_file = names_file / "skes_available_name.txt"
    if names_file.is_file():
        from asar_data.names import ntu_name_fields

        names = [n for n in names_file.read_text().split() if n]
        best = min(_seconds(lambda: ntu_name_fields(names)) for _ in range(args.repeat))
        print(f"name fields of {len(names):,} NTU-120 names (vectorised): {best:.3f} s")
    sample = min((SHARED / "data" / "real" / "ntu").glob("*.skeleton"), default=None)
    if sample is not None:
        (compile_wall, compile_cpu), (cached_wall, cached_cpu) = first_call_seconds(sample)
        print(f"first call in a fresh process (import + one file), wall / CPU:\n"
              f"  empty numba cache (compiles) {compile_wall:6.2f} s {compile_cpu:6.2f} s\n"
              f"  cached                       {cached_wall:6.2f} s {cached_cpu:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
