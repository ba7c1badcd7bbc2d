"""The downsample stage: a raw store -> the 50-frame store `<dataset>/frames50.zarr`.

Shard i is output chunk i (`chunk` samples): one task reads those samples' frames
from the raw store, applies the batched transform and writes the whole chunk,
so parallel tasks never touch the same chunk and a rerun task rewrites the same
bytes. When every chunk is written, labels, names and every benchmark's split
indices are added and the manifest is marked complete.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asar_data import frames_store
from asar_data.raw_store import RawStore
from pipelines.config import ConfigError
from pipelines.runner import Options, Run, Stage, StageResult, execute
from pipelines.stage import Input
from pipelines.workspace import Output, Workspace

DEFAULT_CHUNK = 256
BODY_MODES = ("first-two", "denoise")
MAX_FRAMES = 300


@dataclass(frozen=True)
class DownsampleParams:
    """dataset; frames per sample after resizing; bodies: first-two (reference) or denoise;
    chunk: samples per zarr chunk and per task."""

    dataset: str
    frames: int = 50
    bodies: str = "first-two"
    chunk: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        if self.bodies not in BODY_MODES:
            raise ConfigError(f"--bodies must be one of {', '.join(BODY_MODES)}, "
                              f"not {self.bodies!r}")
        if self.frames < 1 or self.chunk < 1:
            raise ConfigError("--frames and --chunk must be at least 1")


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


def dataset_action_names(raw_attrs: Mapping[str, Any]) -> list[str]:
    """The class names of a dataset from its raw store's attributes: the official list of
    its release (NTU-60/120, PKU-MMD; the synthetic motions), else "class N"."""
    from asar_data.actions import action_names, known_names

    name = str(raw_attrs.get("dataset") or "")
    release = name if known_names(name) else str(raw_attrs.get("ntu_dataset") or name)
    return action_names(release, int(raw_attrs.get("classes") or 0))


class Downsample(Stage[DownsampleParams]):
    name, version, parallel, unit = "downsample", 2, True, "samples"

    def output(self, ws: Workspace, p: DownsampleParams) -> Output:
        return ws.frames(p.dataset, p.frames)

    def command(self, p: DownsampleParams) -> str:
        return f"downsample {p.dataset}"

    def fingerprint_params(self, p: DownsampleParams) -> dict[str, Any]:
        return {"frames": p.frames, "bodies": p.bodies, "chunk": p.chunk,
                "max_frames": MAX_FRAMES}

    def inputs(self, ws: Workspace, p: DownsampleParams, state: dict[str, Any]
               ) -> dict[str, Input]:
        raw = ws.raw(p.dataset)
        m = ws.complete_manifest(raw, f"raw store of {p.dataset}",
                                 f"asar-cli ingest ... ({p.dataset})")
        state["samples"] = int(m.summary["samples"])
        return {"raw": Input(ws.relative(raw.store), m.fingerprint, "store")}

    def _ranges(self, run: Run[DownsampleParams]) -> list[tuple[int, int]]:
        n, c = run.state["samples"], run.params.chunk
        return [(a, min(a + c, n)) for a in range(0, max(n, 1), c)]

    def shard_weights(self, run: Run[DownsampleParams]) -> list[int]:
        return [b - a for a, b in self._ranges(run)]

    def begin(self, run: Run[DownsampleParams]) -> None:
        p = run.params
        raw = RawStore(run.ws.raw(p.dataset).store)
        run.state["raw"] = raw
        # a run killed before its store existed resumes by creating it (no chunk is written)
        if run.plan.action == "start" or not frames_store.exists(run.where):
            run.redo(set(run.done))
            frames_store.create(run.where, run.state["samples"], p.frames, p.chunk)

    def task(self, run: Run[DownsampleParams], shard: int):
        p, (a, b) = run.params, self._ranges(run)[shard]
        long_crop = run.state["raw"].attrs.get("long_crop", "first")
        return downsample_shard, (run.ws.raw(p.dataset).store, run.where, a, b, p.frames,
                                  long_crop, p.bodies)

    def finish(self, run: Run[DownsampleParams]) -> dict[str, Any]:
        from asar_data.splits import split_indices

        raw: RawStore = run.state["raw"]
        meta = raw.meta_all()
        splits = {
            b: split_indices(meta, b, raw.attrs.get("ntu_dataset"),
                             raw.attrs.get("split_lists"))
            for b in raw.attrs.get("benchmarks", [])
        }
        attrs = {k: raw.attrs.get(k) for k in ("dataset", "kind", "benchmarks",
                                               "default_benchmark", "classes")}
        attrs.update({"frames": run.params.frames, "bodies": run.params.bodies,
                      "action_names": dataset_action_names(raw.attrs)})
        frames_store.finalise(run.where, meta["label"], meta["name"], splits, attrs)
        valid_length = frames_store.valid_lengths(run.where)
        return {
            "samples": run.state["samples"],
            "frames": run.params.frames,
            "empty_samples": int((valid_length == 0).sum()),
            "splits": {b: [len(tr), len(te)] for b, (tr, te) in splits.items()},
            "benchmarks": attrs["benchmarks"],
            "default_benchmark": attrs["default_benchmark"],
        }


def downsample(
    ws: Workspace,
    dataset: str,
    frames: int = 50,
    bodies: str = "first-two",
    chunk: int = DEFAULT_CHUNK,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: Any = None,
    wait: bool = False,
) -> StageResult:
    """Build (or skip, or resume) the `frames<T>` store of a dataset from its raw store."""
    return execute(Downsample(), ws, DownsampleParams(dataset, frames, bodies, chunk),
                   Options(force=force, wait=wait, workers=workers, scheduler=scheduler),
                   progress)
