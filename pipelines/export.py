"""Export a benchmark in the reference tools' folder layout, for tools that expect it.

- `--stage raw`: `train_data.npy`, `val_data.npy` (N, 3, 300, 25, 2) float32, zero-padded
  (a longer sample keeps its first 300 frames, or its centred 300 for PKU-MMD),
  and `train_label.pkl`, `val_label.pkl` = (names `<sample>.skeleton`, labels).
- `--stage frames50`: `train_position.npy`, `val_position.npy` (N, 3, 50, 25, 2) float32
  and the same label pickles.

Samples are in file-name order, as the reference gendata scripts write them. Arrays are
written through a memory map in blocks (bounded memory). The folder is built beside
`--out` under a temporary name and swapped in whole with its manifest
(`export.manifest.json`, the completeness marker), so a killed export never leaves a
folder mixing two benchmarks. An existing `--out` is replaced only when it is an export
itself; any other non-empty folder is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asar_data import storage
from asar_data.padding import MAX_FRAMES, pad_to_reference
from asar_data.raw_store import RawStore
from pipelines.config import ConfigError
from pipelines.manifest import Manifest
from pipelines.runner import Options, Run, Stage, StageResult, execute
from pipelines.stage import Input
from pipelines.workspace import Output, Workspace, WorkspaceError

BLOCK = 512
MARKER = "export.manifest.json"


@dataclass(frozen=True)
class ExportParams:
    """dataset, benchmark; stage: raw (300 frames) or frames<T>; out: the folder to write."""

    dataset: str
    benchmark: str
    stage: str
    out: str

    def __post_init__(self) -> None:
        if storage.is_url(self.out):
            raise ConfigError(f"export writes a local folder (memory-mapped .npy files), "
                              f"not {self.out}")
        if self.stage != "raw":
            frames_count(self.stage)

    @property
    def frames(self) -> int | None:
        return None if self.stage == "raw" else frames_count(self.stage)


def frames_count(stage: str) -> int:
    digits = stage[len("frames"):] if stage.startswith("frames") else ""
    if not digits.isdigit():
        raise ConfigError(f"--stage must be raw or frames<T> (e.g. frames50), not {stage!r}")
    return int(digits)


def _write_npy(path: Path, shape: tuple[int, ...], fill) -> None:
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    fill(arr)
    arr.flush()
    del arr


class Export(Stage[ExportParams]):
    name, version, output_kind = "export", 1, "atomic"

    def output(self, ws: Workspace, p: ExportParams) -> Output:
        out = os.path.abspath(os.path.expanduser(p.out.rstrip("/\\") or "."))
        return Output(out, os.path.join(out, MARKER), out + ".lock",
                      f"the export folder {out}")

    def command(self, p: ExportParams) -> str:
        return f"export {p.dataset} {p.benchmark} ({p.stage})"

    def fingerprint_params(self, p: ExportParams) -> dict[str, Any]:
        return {"dataset": p.dataset, "benchmark": p.benchmark, "stage": p.stage}

    def inputs(self, ws: Workspace, p: ExportParams, state: dict[str, Any]) -> dict[str, Input]:
        if p.frames is None:
            src, what, cmd = ws.raw(p.dataset), f"raw store of {p.dataset}", "asar-cli ingest ..."
        else:
            src, what = ws.frames(p.dataset, p.frames), f"{p.stage} store of {p.dataset}"
            cmd = f"asar-cli downsample {p.dataset} --frames {p.frames}"
        m = ws.complete_manifest(src, what, cmd)
        state["source"] = src.store
        return {"store": Input(ws.relative(src.store), m.fingerprint, "store")}

    def refuse_start(self, run: Run[ExportParams], force: bool) -> None:
        out = run.output.store
        if os.path.isdir(out) and os.listdir(out) and Manifest.load(run.output.manifest) is None:
            raise WorkspaceError(f"{out} exists and is not an asar export: choose a new or "
                                 "empty folder for --out (nothing in it was changed)")
        if os.path.exists(out) and not os.path.isdir(out):
            raise WorkspaceError(f"{out} is a file: give --out a folder")

    def run_shard(self, run: Run[ExportParams], shard: int) -> dict[str, int]:
        p, where = run.params, Path(run.where)
        if p.frames is None:
            return _export_raw(run, where)
        return _export_frames(run, where)

    def finish(self, run: Run[ExportParams]) -> dict[str, Any]:
        return dict(run.state["counts"], folder=run.output.store)


def _export_raw(run: Run[ExportParams], where: Path) -> dict[str, int]:
    from asar_data.reference_files import write_label_pickle
    from asar_data.splits import split_indices

    p = run.params
    raw = RawStore(run.state["source"])
    if p.benchmark not in raw.attrs.get("benchmarks", []):
        raise WorkspaceError(f"{p.dataset} has no benchmark {p.benchmark!r} "
                             f"(it has: {', '.join(raw.attrs.get('benchmarks', []))})")
    meta = raw.meta_all()
    train, test = split_indices(meta, p.benchmark, raw.attrs.get("ntu_dataset"),
                                raw.attrs.get("split_lists"))
    names, labels = meta["name"], meta["label"]
    counts = {}
    for side, idx in (("train", train), ("val", test)):
        idx = idx[np.argsort(names[idx], kind="stable")]

        def fill(arr, idx=idx, side=side):
            with run.progress.bar(f"export {side}_data", total=len(idx), unit="samples") as bar:
                for a in range(0, len(idx), BLOCK):
                    part = idx[a:a + BLOCK]
                    arr[a:a + len(part)] = _gather_raw(raw, part)
                    bar.advance(len(part))

        _write_npy(where / f"{side}_data.npy", (len(idx), 3, MAX_FRAMES, 25, 2), fill)
        write_label_pickle(where / f"{side}_label.pkl",
                           [f"{s}.skeleton" for s in names[idx]], labels[idx].tolist())
        counts[side] = len(idx)
    run.state["counts"] = counts
    return counts


def _export_frames(run: Run[ExportParams], where: Path) -> dict[str, int]:
    from asar_data.frames_store import FramesStore
    from asar_data.reference_files import write_label_pickle

    p = run.params
    store = FramesStore(run.state["source"])
    names = store.names
    counts = {}
    for side, key in (("train", "train"), ("val", "test")):
        idx = store.split(p.benchmark, key)
        idx = idx[np.argsort(names[idx], kind="stable")]

        def fill(arr, idx=idx, side=side):
            with run.progress.bar(f"export {side}_position", total=len(idx),
                                  unit="samples") as bar:
                for a in range(0, len(idx), BLOCK):
                    arr[a:a + BLOCK] = store.read(idx[a:a + BLOCK])
                    bar.advance(len(idx[a:a + BLOCK]))

        _write_npy(where / f"{side}_position.npy", (len(idx), 3, store.frames, 25, 2), fill)
        write_label_pickle(where / f"{side}_label.pkl", [f"{s}.skeleton" for s in names[idx]],
                           store.labels[idx].tolist())
        counts[side] = len(idx)
    run.state["counts"] = counts
    return counts


def _gather_raw(raw: RawStore, idx: np.ndarray) -> np.ndarray:
    """(len(idx), 3, 300, 25, 2) for sample indices, reading contiguous runs at once."""
    out = np.zeros((len(idx), 3, MAX_FRAMES, 25, 2), np.float32)
    long_crop = raw.attrs.get("long_crop", "first")
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    pos = 0
    for run in np.split(idx, breaks):
        if len(run) == 0:
            continue
        xyz, _, offsets = raw.frames(int(run[0]), int(run[-1]) + 1, bodies=2, ids=False)
        out[pos:pos + len(run)] = pad_to_reference(xyz, offsets, long_crop)
        pos += len(run)
    return out


def export_reference(ws: Workspace, dataset: str, benchmark: str, stage: str, out_dir: str,
                     progress: Any = None, force: bool = False, wait: bool = False
                     ) -> StageResult:
    """Write the reference layout of one benchmark into ``out_dir`` (swapped in whole).

    The result's summary holds the sample counts: {"train": n, "val": n, ...}.
    """
    return execute(Export(), ws, ExportParams(dataset, benchmark, stage, out_dir),
                   Options(force=force, wait=wait), progress)
