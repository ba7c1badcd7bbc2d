"""Store I/O: our direct chunk I/O (`chunk_io`, bypassing zarr) against zarr's own API.

    python benchmarks/store_io.py [--chunks 40] [--repeat 3] [--tmp DIR]

The two hot paths `chunk_io` was written for, at NTU-60 size (56,880 samples):

1. the downsample stage's writes: the 50-frame store's `data` (N, 3, 50, 25, 2) float32
   in 256-sample chunks (7.7 MB each, 223 of them), one whole chunk per call:
   `chunk_io.write_rows` against `array[a:b] = block`;
2. the downsample stage's raw reads: 256 consecutive samples' frames, first two body
   slots, from an uncompressed (F, 4, 3, 25) float32 array chunked (8192, 2, 3, 25)
   (the raw store's frame arrays), samples of 30-300 frames (NTU-like lengths, mean
   ~86): `chunk_io.read` against `array[a:b, 0:2]`.

`--chunks` of the 223 are timed (the best of `--repeat` rounds, in turns) and the
per-chunk time is scaled to the whole store. Both sides write and read the same bytes
(checked). Single-threaded (one core), files in the page cache: the CPU cost each
path adds, which is what chunk_io claimed to save.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NTU60_SAMPLES = 56_880
CHUNK = 256
FRAMES, JOINTS, BODIES = 50, 25, 2
RAW_CHUNK_FRAMES = 8192


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def frames_writes(root: Path, chunks: int, repeat: int) -> tuple[float, float]:
    """(chunk_io, zarr) seconds to write `chunks` whole 256-sample chunks of `data`."""
    import zarr

    from asar_data import chunk_io

    n = chunks * CHUNK
    rng = np.random.default_rng(0)
    block = rng.standard_normal((CHUNK, 3, FRAMES, JOINTS, BODIES)).astype(np.float32)
    arrays = {}
    for name in ("direct", "zarr"):
        group = zarr.open_group(str(root / f"{name}.zarr"), mode="w")
        arrays[name] = group.create_array(
            "data", shape=(n, 3, FRAMES, JOINTS, BODIES), dtype="float32",
            chunks=(CHUNK, 3, FRAMES, JOINTS, BODIES), compressors=None, fill_value=0.0)
    location = str(root / "direct.zarr" / "data")
    target = arrays["zarr"]

    def direct() -> None:
        for c in range(chunks):
            chunk_io.write_rows(location, c * CHUNK, block)

    def through_zarr() -> None:
        for c in range(chunks):
            target[c * CHUNK:(c + 1) * CHUNK] = block

    times = {"direct": float("inf"), "zarr": float("inf")}
    for _ in range(repeat):  # in turns: both see the same machine load
        times["direct"] = min(times["direct"], best_of(1, direct))
        times["zarr"] = min(times["zarr"], best_of(1, through_zarr))
    a = zarr.open_array(str(root / "direct.zarr" / "data"), mode="r")
    assert np.array_equal(a[:CHUNK], target[:CHUNK]), "the two writes differ"
    return times["direct"], times["zarr"]


def raw_reads(root: Path, chunks: int, repeat: int) -> tuple[float, float]:
    """(chunk_io, zarr) seconds to read the first two body slots of `chunks` x 256 samples."""
    import zarr

    from asar_data import chunk_io

    rng = np.random.default_rng(1)
    lengths = np.clip(rng.gamma(4.0, 21.5, chunks * CHUNK).astype(np.int64), 30, 300)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    frames = int(offsets[-1])
    group = zarr.open_group(str(root / "raw.zarr"), mode="w")
    xyz = group.create_array(
        "xyz", shape=(frames, 4, 3, JOINTS), dtype="float32",
        chunks=(RAW_CHUNK_FRAMES, 2, 3, JOINTS), compressors=None, fill_value=0.0)
    for a in range(0, frames, RAW_CHUNK_FRAMES):
        b = min(a + RAW_CHUNK_FRAMES, frames)
        block = np.zeros((b - a, 4, 3, JOINTS), np.float32)
        block[:, :2] = rng.standard_normal((b - a, 2, 3, JOINTS))
        xyz[a:b] = block
    plain = chunk_io.open_plain(str(root / "raw.zarr" / "xyz"))
    assert plain is not None
    windows = [(int(offsets[c * CHUNK]), int(offsets[(c + 1) * CHUNK])) for c in range(chunks)]

    def direct() -> None:
        for a, b in windows:
            chunk_io.read(plain, (slice(a, b), slice(0, 2)))

    def through_zarr() -> None:
        for a, b in windows:
            xyz[a:b, 0:2]

    a, b = windows[-1]
    assert np.array_equal(chunk_io.read(plain, (slice(a, b), slice(0, 2))), xyz[a:b, 0:2])
    times = {"direct": float("inf"), "zarr": float("inf")}
    for _ in range(repeat):
        times["direct"] = min(times["direct"], best_of(1, direct))
        times["zarr"] = min(times["zarr"], best_of(1, through_zarr))
    return times["direct"], times["zarr"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=40, help="256-sample chunks timed (of 223)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    total = -(-NTU60_SAMPLES // CHUNK)
    scale = total / args.chunks
    print(f"NTU-60 size: {NTU60_SAMPLES} samples, {total} chunks of {CHUNK}; "
          f"{args.chunks} chunks timed, scaled x{scale:.2f}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  {'path':34s} {'chunk_io':>10s} {'zarr API':>10s} {'saved':>9s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for label, fn in (("downsample writes (frames50 data)", frames_writes),
                          ("downsample raw reads (2 bodies)", raw_reads)):
            direct, through = fn(Path(tmp), args.chunks, args.repeat)
            print(f"  {label:34s} {direct * scale:9.2f}s {through * scale:9.2f}s "
                  f"{(through - direct) * scale:8.2f}s {through / direct:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
