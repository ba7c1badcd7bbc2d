"""The downsample stage: a raw store -> the 50-frame store `<dataset>/frames50.zarr`.

Shard i is output chunk i (`chunk` samples): one task reads those samples' frames
from the raw store, applies the batched transform and writes the whole chunk,
so parallel tasks never touch the same chunk and a rerun task rewrites the same
bytes. When every chunk is written, labels, names and every benchmark's split
indices are added and the manifest is marked complete.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from asar_data import chunk_io, frames_store, storage
from asar_data.raw_store import RawStore
from asar_data.splits import split_indices
from pipelines.progress import Progress
from pipelines.sharded import run_shards, start
from pipelines.stage import Input
from pipelines.stages import DOWNSAMPLE
from pipelines.workspace import Workspace

DEFAULT_CHUNK = 256
BODY_MODES = ("first-two", "denoise")


@dataclass
class DownsampleResult:
    dataset: str
    action: str
    reason: str
    summary: dict[str, Any]
    store: str


def downsample_shard(
    raw_location: str, out_location: str, start_: int, stop: int, frames: int,
    long_crop: str, bodies: str,
) -> dict[str, int]:
    """Transform samples [start_, stop) and write them as one whole output chunk."""
    from asar_data.transform import to_frames

    raw = RawStore(raw_location)
    if bodies == "denoise":
        from asar_data.denoise import denoise

        xyz, body_id, offsets = raw.frames(start_, stop)
        xyz = denoise(xyz, body_id, offsets)
    else:
        xyz, _, offsets = raw.frames(start_, stop, bodies=2, ids=False)  # only what is used
    data, valid_length = to_frames(xyz, offsets, out_frames=frames, long_crop=long_crop)
    frames_store.write_block(out_location, start_, data, valid_length)
    return {"samples": stop - start_, "empty": int((valid_length == 0).sum())}


def downsample(
    ws: Workspace,
    dataset: str,
    frames: int = 50,
    bodies: str = "first-two",
    chunk: int = DEFAULT_CHUNK,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> DownsampleResult:
    """Build (or skip, or resume) the `frames<T>` store of a dataset from its raw store."""
    progress = progress or Progress()
    if bodies not in BODY_MODES:
        raise ValueError(f"--bodies must be one of {', '.join(BODY_MODES)}, not {bodies!r}")
    if frames < 1:
        raise ValueError("--frames must be at least 1")
    raw_out = ws.raw(dataset)
    raw_manifest = ws.complete_manifest(
        raw_out, f"raw store of {dataset}", f"asar-cli ingest ... ({dataset})"
    )
    out = ws.frames(dataset, frames)
    params = {"frames": frames, "bodies": bodies, "chunk": chunk, "max_frames": 300}
    inputs = {"raw": Input(ws.relative(raw_out.store), raw_manifest.fingerprint, "store")}
    n = int(raw_manifest.summary["samples"])
    shards = max(1, -(-n // chunk))
    run = start(DOWNSAMPLE, out.manifest, out.store, params, inputs, shards, force, progress)
    if run.skipped:
        m = run.plan.manifest
        return DownsampleResult(dataset, "skip", run.plan.reason, m.summary, out.store)
    t0 = time.perf_counter()
    raw = RawStore(raw_out.store)
    if run.plan.action == "start":
        frames_store.create(out.store, n, frames, chunk)
    long_crop = raw.attrs.get("long_crop", "first")
    run_shards(
        run,
        lambda i: (downsample_shard, (raw_out.store, out.store, i * chunk,
                                      min((i + 1) * chunk, n), frames, long_crop, bodies)),
        workers, scheduler, progress, f"downsample {dataset}",
        weight=lambda i: min((i + 1) * chunk, n) - i * chunk, unit="samples",
    )
    meta = raw.meta_all()
    splits = {
        b: split_indices(meta, b, raw.attrs.get("ntu_dataset"), raw.attrs.get("split_lists"))
        for b in raw.attrs.get("benchmarks", [])
    }
    attrs = {k: raw.attrs.get(k) for k in ("dataset", "kind", "benchmarks", "default_benchmark",
                                           "classes")}
    attrs.update({"frames": frames, "bodies": bodies})
    frames_store.finalise(out.store, meta["label"], meta["name"], splits, attrs)
    valid_length = chunk_io.read(storage.join(out.store, "valid_length"))
    summary = {
        "samples": n,
        "frames": frames,
        "empty_samples": int((valid_length == 0).sum()),
        "splits": {b: [len(tr), len(te)] for b, (tr, te) in splits.items()},
        "seconds": round(time.perf_counter() - t0, 3),
        "benchmarks": attrs["benchmarks"],
        "default_benchmark": attrs["default_benchmark"],
    }
    run.log.finish(summary)
    return DownsampleResult(dataset, run.plan.action, run.plan.reason, summary, out.store)
