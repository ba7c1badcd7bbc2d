"""Export a benchmark in the reference tools' folder layout, for tools that expect it.

- `--stage raw`: `train_data.npy`, `val_data.npy` (N, 3, 300, 25, 2) float32, zero-padded
  (a longer sample keeps its first 300 frames, or its centred 300 for PKU-MMD),
  and `train_label.pkl`, `val_label.pkl` = (names `<sample>.skeleton`, labels).
- `--stage frames50`: `train_position.npy`, `val_position.npy` (N, 3, 50, 25, 2) float32
  and the same label pickles.

Samples are in file-name order, as the reference gendata scripts write them. Arrays
are written through a memory map in blocks (bounded memory), each file under a
temporary name and renamed when whole.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asar_data import storage
from asar_data.frames_store import FramesStore
from asar_data.raw_store import RawStore
from asar_data.reference_files import write_label_pickle
from asar_data.splits import split_indices
from pipelines.progress import Progress
from pipelines.workspace import Workspace, WorkspaceError

MAX_FRAMES = 300
BLOCK = 512


def pad_to_reference(
    xyz: np.ndarray, offsets: np.ndarray, long_crop: str, max_frames: int = MAX_FRAMES
) -> np.ndarray:
    """Ragged samples -> (n, 3, max_frames, 25, 2) float32, zero-padded, first two bodies.

    xyz: (F, B, 3, 25) frames of n samples; offsets: (n+1,) from 0. A sample longer
    than max_frames keeps its first frames (`first`) or its centred ones (`centre`).
    """
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    kept = np.minimum(lengths, max_frames)
    skip = (lengths - kept) // 2 if long_crop == "centre" else np.zeros_like(lengths)
    out = np.zeros((n, max_frames, 2, 3, 25), np.float32)
    sample = np.repeat(np.arange(n), kept)
    t = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    src = np.repeat(offsets[:-1] + skip, kept) + t
    out[sample, t] = xyz[src, :2]
    return out.transpose(0, 3, 1, 4, 2)


def _write_npy(path: Path, shape: tuple[int, ...], fill) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    fill(arr)
    arr.flush()
    del arr
    os.replace(tmp, path)


def export_reference(
    ws: Workspace,
    dataset: str,
    benchmark: str,
    stage: str,
    out_dir: str,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write the reference layout of one benchmark; returns {"train": n, "val": n}."""
    progress = progress or Progress()
    if storage.is_url(out_dir):
        raise ValueError(f"export writes a local folder (memory-mapped .npy files), not {out_dir}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    if stage == "raw":
        ws.complete_manifest(ws.raw(dataset), f"raw store of {dataset}", "asar-cli ingest ...")
        raw = RawStore(ws.raw(dataset).store)
        meta = raw.meta_all()
        if benchmark not in raw.attrs.get("benchmarks", []):
            raise WorkspaceError(f"{dataset} has no benchmark {benchmark!r} "
                                 f"(it has: {', '.join(raw.attrs.get('benchmarks', []))})")
        train, test = split_indices(meta, benchmark, raw.attrs.get("ntu_dataset"),
                                    raw.attrs.get("split_lists"))
        names, labels = meta["name"], meta["label"]
        for side, idx in (("train", train), ("val", test)):
            idx = idx[np.argsort(names[idx], kind="stable")]

            def fill(arr, idx=idx, side=side):
                with progress.bar(f"export {side}_data", total=len(idx), unit="samples") as bar:
                    for a in range(0, len(idx), BLOCK):
                        part = idx[a:a + BLOCK]
                        arr[a:a + len(part)] = _gather_raw(raw, part)
                        bar.advance(len(part))

            _write_npy(out / f"{side}_data.npy", (len(idx), 3, MAX_FRAMES, 25, 2), fill)
            write_label_pickle(out / f"{side}_label.pkl",
                               [f"{s}.skeleton" for s in names[idx]], labels[idx].tolist())
            counts[side] = len(idx)
        return counts
    frames = _frames_count(stage)
    ws.complete_manifest(ws.frames(dataset, frames), f"{stage} store of {dataset}",
                         f"asar-cli downsample {dataset} --frames {frames}")
    store = FramesStore(ws.frames(dataset, frames).store)
    names = store.names
    for side, key in (("train", "train"), ("val", "test")):
        idx = store.split(benchmark, key)
        idx = idx[np.argsort(names[idx], kind="stable")]

        def fill(arr, idx=idx):
            for a in range(0, len(idx), BLOCK):
                arr[a:a + BLOCK] = store.read(idx[a:a + BLOCK])

        _write_npy(out / f"{side}_position.npy", (len(idx), 3, frames, 25, 2), fill)
        write_label_pickle(out / f"{side}_label.pkl", [f"{s}.skeleton" for s in names[idx]],
                           store.labels[idx].tolist())
        counts[side] = len(idx)
    return counts


def _frames_count(stage: str) -> int:
    digits = stage[len("frames"):] if stage.startswith("frames") else ""
    if not digits.isdigit():
        raise ValueError(f"--stage must be raw or frames<T> (e.g. frames50), not {stage!r}")
    return int(digits)


def _gather_raw(raw: RawStore, idx: np.ndarray) -> np.ndarray:
    """(len(idx), 3, 300, 25, 2) for sample indices, reading contiguous runs at once."""
    out = np.zeros((len(idx), 3, MAX_FRAMES, 25, 2), np.float32)
    long_crop = raw.attrs.get("long_crop", "first")
    # split into runs of consecutive indices so each run is one contiguous read
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    pos = 0
    for run in np.split(idx, breaks):
        if len(run) == 0:
            continue
        xyz, _, offsets = raw.frames(int(run[0]), int(run[-1]) + 1, bodies=2, ids=False)
        out[pos:pos + len(run)] = pad_to_reference(xyz, offsets, long_crop)
        pos += len(run)
    return out
