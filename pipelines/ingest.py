"""The ingest stage: raw NTU / PKU-MMD files or reference `.npy` folders -> a raw store.

The raw folder is listed once (`storage.walk`): that one listing gives the files to read
and the input's fingerprint. Files are split into shards; each shard is parsed by one
task (in-process or on dask) and writes its samples' frames straight into
`<dataset>/raw.zarr/shards/<shard>` with its record (metadata, problems) last
(`raw_store.write_shard`): the shards are the store, nothing is copied afterwards.
Once every shard is done the per-sample index is written from the records
(`raw_store.finalise`), then the ingest report, then the manifest is marked complete.
A resumed run redoes only the shards whose record is missing. Bad files are reported
and skipped (or repaired, for PKU-MMD labels), never fatal.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asar_data import raw_store, storage
from asar_data.errors import AsarError
from asar_data.raw_store import Part, Problem, concat_parts, empty_part, new_meta
from asar_data.splits import DATASETS
from pipelines.executor import default_workers
from pipelines.fingerprint import file_fingerprint, tree_fingerprint
from pipelines.progress import Progress
from pipelines.runner import Options, Run, Stage, StageResult, execute, remove_own_output
from pipelines.stage import Input
from pipelines.workspace import Output, Workspace, check_name

NTU_SHARD_FILES = 256
PKU_SHARD_VIDEOS = 16
REFERENCE_SHARD_SAMPLES = 1024


class IngestError(AsarError, ValueError):
    """Raw input that cannot be ingested at all (no folder, no sample files, mismatched
    reference files); single bad files are reported and skipped instead."""


# ---------------------------------------------------------------- shard functions
# Module-level and pure, so dask can ship them to workers: (shard spec, store location,
# shard number) -> the shard's group in the store, written whole, and a small summary.


def ntu_shard(locations: list[str], bodies: int, store: str, shard: int) -> dict[str, int]:
    """Parse NTU `.skeleton` files (in store order) into shard `shard` of the raw store."""
    from asar_data.names import ntu_name_fields
    from asar_data.ntu_format import SkeletonFormatError, parse_ntu_frames

    xyz, ids, names, frame_counts, body_counts = [], [], [], [], []
    problems: list[Problem] = []
    nbytes = 0
    for loc in locations:
        fname = loc.replace("\\", "/").rsplit("/", 1)[-1]
        try:
            data = storage.read_bytes(loc)
        except OSError as e:
            problems.append(Problem(fname, None, f"unreadable: {e.strerror or e}", "skipped"))
            continue
        nbytes += len(data)
        try:
            sk = parse_ntu_frames(data, max_bodies=bodies)
        except SkeletonFormatError as e:
            problems.append(Problem(fname, e.line, e.reason, "skipped"))
            continue
        most_bodies = int(sk.body_count.max())
        if most_bodies <= 0:
            problems.append(Problem(fname, None, "no frame has a body", "skipped"))
            continue
        xyz.append(sk.xyz)  # (T, B, 3, 25) float32
        ids.append(sk.body_id)
        names.append(fname[: -len(".skeleton")])
        frame_counts.append(len(sk.xyz))
        body_counts.append(most_bodies)
    meta = new_meta(len(names))
    meta["name"] = np.array(names, dtype=str)
    meta.update(ntu_name_fields(names))  # setup, camera, subject, replication, label
    meta["frame_count"] = np.array(frame_counts, np.int32)
    meta["body_count"] = np.array(body_counts, np.int16)
    part = Part(
        xyz=np.concatenate(xyz) if xyz else empty_part(bodies).xyz,
        body_id=np.concatenate(ids) if ids else empty_part(bodies).body_id,
        meta=meta,
        problems=problems,
        counts={"files": len(locations), "bytes": nbytes},
    )
    raw_store.write_shard(store, shard, part)
    return {"samples": part.samples, "problems": len(problems), "bytes": nbytes}


def pku_shard(
    videos: list[tuple[str, str, str]], part: int, store: str, shard: int
) -> dict[str, int]:
    """Cut the labelled segments of PKU-MMD videos into shard `shard` of the raw store.

    videos: (video id like `0002-L`, skeleton file location, label file location).
    """
    from asar_data.names import pku_segment_name
    from asar_data.ntu_format import SkeletonFormatError
    from asar_data.pku_format import check_segment, parse_pku_labels, parse_pku_skeleton

    parts: list[Part] = []
    problems: list[Problem] = []
    nbytes = 0
    for video, skel_loc, label_loc in videos:
        skel_name = skel_loc.rsplit("/", 1)[-1]
        label_name = label_loc.rsplit("/", 1)[-1]
        try:
            label_text = storage.read_text(label_loc)
            data = storage.read_bytes(skel_loc)
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(skel_name, None, f"unreadable: {e}", "skipped"))
            continue
        nbytes += len(data)
        try:
            frames = parse_pku_skeleton(data)
        except SkeletonFormatError as e:
            problems.append(Problem(skel_name, e.line, e.reason, "skipped"))
            continue
        labels, label_problems = parse_pku_labels(label_text)
        problems += [Problem(label_name, p.line, p.reason, p.action) for p in label_problems]
        rows = []
        for lab in labels:
            fixed, problem = check_segment(lab, len(frames))
            if problem is not None:
                problems.append(Problem(label_name, problem.line, problem.reason, problem.action))
            if fixed is not None:
                rows.append(fixed)
        if not rows:
            continue
        rows.sort(key=lambda r: pku_segment_name(video, r.cls, r.line, part))
        seg_xyz = [frames[r.start - 1: r.end].astype(np.float32).transpose(0, 1, 3, 2)
                   for r in rows]  # (T, 2, 3, 25)
        meta = new_meta(len(rows))
        meta["name"] = np.array([pku_segment_name(video, r.cls, r.line, part) for r in rows])
        meta["label"] = np.array([r.cls - 1 for r in rows], np.int16)
        meta["frame_count"] = np.array([len(s) for s in seg_xyz], np.int32)
        present = [np.abs(s).reshape(len(s), 2, -1).sum(-1) > 0 for s in seg_xyz]
        meta["body_count"] = np.array([int(p.sum(1).max(initial=0)) for p in present], np.int16)
        meta["video"] = np.array([video] * len(rows))
        meta["view"] = np.full(len(rows), "LMR".index(video[-1]) + 1, np.int16)
        meta["segment"] = np.array([(r.line, r.start, r.end) for r in rows], np.int32)
        xyz = np.concatenate(seg_xyz)
        parts.append(Part(xyz=xyz, body_id=np.zeros(xyz.shape[:2], np.uint64), meta=meta))
    out = concat_parts(parts, bodies=2)
    out.problems = problems
    out.counts = {"files": len(videos), "bytes": nbytes}
    raw_store.write_shard(store, shard, out)
    return {"samples": out.samples, "problems": len(problems), "bytes": nbytes}


def reference_shard(
    data_path: str, labels_path: str, source_split: int, start_: int, stop: int,
    store: str, shard: int,
) -> dict[str, int]:
    """Samples [start_, stop) of a reference `(N, 3, T, 25, M)` array into shard `shard`.

    Trailing all-zero frames (the reference's padding) are dropped: padding them
    back gives the same array, so the 50-frame transform is unchanged. A sample
    holding a value that is not finite as float32 (nan, inf, 1e300 in a float64
    file) is reported and skipped, as is one that is all zeros.
    """
    from asar_data.names import parse_ntu_name
    from asar_data.reference_files import load_label_pickle, open_reference_data

    data = open_reference_data(data_path)
    names, labels = load_label_pickle(storage.read_bytes(labels_path), source=labels_path)
    # float64 beyond float32 becomes inf; samples with nan or inf get length 0 (left out)
    with np.errstate(over="ignore", invalid="ignore"):
        block = np.asarray(data[start_:stop], dtype=np.float32)  # (n, 3, T, 25, M)
        n, _, t, _, m = block.shape
        finite = np.isfinite(block).all(axis=(1, 2, 3, 4))
        nonzero = np.abs(block).sum(axis=(1, 3, 4)) > 0  # (n, T)
        lengths = np.where(nonzero.any(1) & finite, t - np.argmax(nonzero[:, ::-1], axis=1), 0)
        frames = block.transpose(0, 2, 4, 1, 3)  # (n, T, M, 3, 25)
        keep = np.arange(t)[None, :] < lengths[:, None]
        xyz = frames[keep]
        present = np.abs(frames).sum(axis=(3, 4)) > 0  # (n, T, M)
    meta = new_meta(n)
    stems = [s[: -len(".skeleton")] if s.endswith(".skeleton") else s for s in names[start_:stop]]
    meta["name"] = np.array(stems, dtype=str)
    meta["label"] = np.asarray(labels[start_:stop], np.int16)
    meta["frame_count"] = lengths.astype(np.int32)
    meta["body_count"] = present.sum(2).max(1).astype(np.int16)
    meta["source_split"] = np.full(n, source_split, np.int8)
    for i, s in enumerate(stems):
        parsed = parse_ntu_name(s)
        if parsed is not None:
            meta["setup"][i], meta["camera"][i] = parsed.setup, parsed.camera
            meta["subject"][i], meta["replication"][i] = parsed.subject, parsed.replication
    file = data_path.replace("\\", "/").rsplit("/", 1)[-1]
    problems = [
        Problem(stems[i], None, f"not a finite float32 number in {file} (sample {start_ + i})"
                if not finite[i] else "sample is all zeros", "skipped")
        for i in np.flatnonzero(lengths == 0)
    ]
    good = lengths > 0
    meta = {k: v[good] for k, v in meta.items()}
    part = Part(xyz=xyz, body_id=np.zeros(xyz.shape[:2], np.uint64), meta=meta, problems=problems,
                counts={"files": 0, "bytes": int(block.nbytes)})
    raw_store.write_shard(store, shard, part)
    return {"samples": part.samples, "problems": len(problems), "bytes": int(block.nbytes)}


# ---------------------------------------------------------------- the stage


def write_report(location: str, problems: list[Problem]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "line", "reason", "action"])
    for p in problems:
        w.writerow(p.row())
    storage.write_text(location, buf.getvalue())


def listing_problems(listing: storage.Listing) -> list[Problem]:
    """What the walk of a raw folder would not hand out (loops, FIFOs, broken links)."""
    return [Problem(u.rel, None, u.reason, "skipped") for u in listing.unlisted]


@dataclass(frozen=True)
class IngestParams:
    """One ingest, prepared from its source (NTU, PKU-MMD or reference files): the store
    name, the parameters the store depends on, its inputs, one task spec per shard, and
    what the source reader reported before any shard ran."""

    dataset: str
    params: Mapping[str, Any]
    inputs: Mapping[str, Input]
    shard_fn: Callable[..., dict[str, int]]   # module-level: (*spec, store, shard) -> summary
    shards: list[tuple]                        # one spec per shard
    weights: list[int]
    attrs: Mapping[str, Any]
    unit: str = "files"
    problems: list[Problem] = field(default_factory=list)
    counts: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("dataset", self.dataset)


class Ingest(Stage[IngestParams]):
    name, version, parallel = "ingest", 2, True

    def output(self, ws: Workspace, p: IngestParams) -> Output:
        return ws.raw(p.dataset)

    def command(self, p: IngestParams) -> str:
        return f"ingest {p.dataset}"

    def fingerprint_params(self, p: IngestParams) -> dict[str, Any]:
        return dict(p.params)

    def inputs(self, ws: Workspace, p: IngestParams, state: dict[str, Any]) -> dict[str, Input]:
        return dict(p.inputs)

    def shard_weights(self, run: Run[IngestParams]) -> list[int]:
        return list(run.params.weights)

    def begin(self, run: Run[IngestParams]) -> None:
        report = run.ws.ingest_report(run.params.dataset)
        if run.plan.action == "start":  # the stage's own older outputs
            for own in (report, storage.join(run.ws.path(run.params.dataset), "raw.parts")):
                if storage.exists(own):
                    remove_own_output(run.ws, own)
        # a shard listed as done whose record (written last) is missing is redone
        run.redo({i for i in run.done if raw_store.shard_record(run.where, i) is None})

    def task(self, run: Run[IngestParams], shard: int) -> tuple[Callable[..., Any], tuple]:
        return run.params.shard_fn, (*run.params.shards[shard], run.where, shard)

    def finish(self, run: Run[IngestParams]) -> dict[str, Any]:
        p = run.params
        done = raw_store.finalise(run.where, len(p.shards), int(p.params["bodies"]), p.attrs)
        problems = list(p.problems) + done.problems
        counts = dict(p.counts)
        for k, v in done.counts.items():
            counts[k] = counts.get(k, 0) + v
        report = run.ws.ingest_report(p.dataset)
        write_report(report, problems)
        run.state.update(problems=problems, report=report)
        by_action: dict[str, int] = {}
        for q in problems:
            by_action[q.action] = by_action.get(q.action, 0) + 1
        return {
            "samples": done.samples, "frames": done.frames, **counts,
            "problems": len(problems), "problems_by_action": by_action,
            "benchmarks": p.attrs.get("benchmarks", []),
            "default_benchmark": p.attrs.get("default_benchmark"),
            "kind": p.attrs.get("kind"), "classes": p.attrs.get("classes"),
        }

    def details(self, run: Run[IngestParams], summary: Mapping[str, Any]) -> dict[str, Any]:
        return {"dataset": run.params.dataset,
                "report": run.ws.ingest_report(run.params.dataset),
                "problems": run.state.get("problems", [])}


def run_ingest(ws: Workspace, p: IngestParams, workers: int | None, scheduler: str | None,
               force: bool, wait: bool, progress: Progress | None) -> StageResult:
    """Execute a prepared ingest (the entry points below prepare it from their source)."""
    return execute(Ingest(), ws, p, Options(force=force, wait=wait, workers=workers,
                                            scheduler=scheduler), progress)


# ---------------------------------------------------------------- NTU


def detect_ntu_dataset(names: list[str]) -> str:
    """ntu120 when a valid sample name lies outside NTU-60's ranges, else ntu60.

    Names out of NTU-120's ranges too (`A999`, `C000`) are not evidence of anything.
    """
    from asar_data.names import ntu_dataset_of, parse_ntu_name

    for n in names:
        p = parse_ntu_name(n)
        if p is not None and ntu_dataset_of(p) == "ntu120":
            return "ntu120"
    return "ntu60"


def ingest_ntu(
    ws: Workspace,
    raw: str,
    dataset: str | None = None,
    bodies: int = 4,
    skip_missing: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    shard_files: int = NTU_SHARD_FILES,
    name: str | None = None,
    wait: bool = False,
) -> StageResult:
    """Ingest a folder of NTU `.skeleton` files (searched recursively) into `<dataset>/raw.zarr`.

    `name` stores the dataset under another name (e.g. the demo's synthetic `synth60`,
    so that it never replaces a real ntu60 store); its benchmarks stay `dataset`'s.
    """
    from asar_data.names import missing_samples, ntu_dataset_of, ntu_name_problem, parse_ntu_name

    progress = progress or Progress()
    raw = storage.normalise(raw)
    if not storage.isdir(raw):
        raise IngestError(f"raw folder not found: {raw}")
    if dataset not in (None, "ntu60", "ntu120"):
        raise IngestError(f"--dataset must be ntu60 or ntu120, not {dataset!r}")
    listing = storage.walk(raw)  # the one listing: the files and the fingerprint
    problems = listing_problems(listing)
    samples, ignored, out_of_range = [], [], []  # samples: (name, location, its release)
    for f in listing.files:
        parsed = parse_ntu_name(f.name) if f.name.endswith(".skeleton") else None
        release = None if parsed is None else ntu_dataset_of(parsed)
        if parsed is None:
            ignored.append(f.name)
        elif release is None:  # out of range (A000, A999, C000): never evidence of a release
            out_of_range.append((f.name, ntu_name_problem(parsed)))
        else:
            samples.append((f.name, f.location, release))
    if dataset is None:
        dataset = "ntu120" if any(s[2] == "ntu120" for s in samples) else "ntu60"
    problems += [Problem(b, None, "not an NTU sample file", "ignored") for b in ignored]
    problems += [Problem(b, None, f"not an NTU sample: {why}", "skipped")
                 for b, why in out_of_range]
    outside = [s for s in samples if dataset == "ntu60" and s[2] == "ntu120"]
    problems += [Problem(b, None, f"not part of {dataset}", "ignored") for b, _, _ in outside]
    samples = [s for s in samples if not (dataset == "ntu60" and s[2] == "ntu120")]
    missing = missing_samples(dataset) if skip_missing else frozenset()
    on_list = [s for s in samples if s[0][: -len(".skeleton")] in missing]
    samples = sorted((s for s in samples if s[0][: -len(".skeleton")] not in missing),
                     key=lambda s: s[0])
    seen: set[str] = set()
    dupes = []
    unique = []
    for s in samples:
        (dupes if s[0] in seen else unique).append(s)
        seen.add(s[0])
    problems += [Problem(b, None, "duplicate sample name (another copy was used)", "skipped")
                 for b, _, _ in dupes]
    samples = unique
    if not samples:
        raise IngestError(f"no NTU .skeleton sample files found under {raw}")
    fp, _ = tree_fingerprint(raw, listing)
    spec = DATASETS[dataset]
    store_name = name or dataset
    params = {"dataset": dataset, "format": "ntu", "bodies": bodies,
              "skip_missing": skip_missing, "shard_files": shard_files}
    shards = [([loc for _, loc, _ in samples[i:i + shard_files]], bodies)
              for i in range(0, len(samples), shard_files)]
    if scheduler is None and (workers or default_workers()) > 1 and len(shards) > 1:
        from asar_data.ntu_format import load_kernel

        load_kernel()  # once, before the local workers are forked
    attrs = {"dataset": store_name, "kind": "ntu", "ntu_dataset": dataset,
             "long_crop": spec.long_crop, "benchmarks": list(spec.benchmarks),
             "default_benchmark": spec.default_benchmark, "classes": spec.classes,
             "source": raw}
    prepared = IngestParams(
        store_name, params, {"raw": Input(raw, fp, "folder")}, ntu_shard, shards,
        [len(files) for files, _ in shards], attrs, "files", problems,
        {"ignored_files": len(ignored) + len(outside), "missing_list_skipped": len(on_list),
         "candidate_files": len(samples)})
    return run_ingest(ws, prepared, workers, scheduler, force, wait, progress)


# ---------------------------------------------------------------- PKU-MMD

PKU_SPLIT_FILES = {
    1: {"cs": "cross-subject.txt", "cv": "cross-view.txt"},
    2: {"cs": "cross_subject_v2.txt", "cv": "cross_view_v2.txt"},
}


def _folder_of(f: storage.Listed) -> str:
    return f.location[: -len(f.name) - 1]


def _find_pku_layout(listing: storage.Listing, part: int) -> tuple[str, str, dict[str, str]]:
    """(skeleton folder, label folder, split files) found in the official layout."""
    from asar_data.names import parse_pku_video

    skel_dir = label_dir = None
    splits: dict[str, str] = {}
    wanted = {v: k for k, v in PKU_SPLIT_FILES[part].items()}
    for f in listing.files:
        if f.name in wanted and wanted[f.name] not in splits:
            splits[wanted[f.name]] = f.location
        if f.name.endswith(".txt") and parse_pku_video(f.name[:-4], part) is not None:
            folder = _folder_of(f)
            if "label" in f.rel.rpartition("/")[0].rsplit("/", 1)[-1].lower():
                label_dir = label_dir or folder
            else:
                skel_dir = skel_dir or folder
    if skel_dir is None:
        raise IngestError(f"no PKU-MMD part {part} skeleton files found under {listing.root}")
    if label_dir is None:
        raise IngestError(f"no PKU-MMD part {part} label folder found under {listing.root}")
    return skel_dir, label_dir, splits


def _listing(folder: str, raw: storage.Listing | None) -> storage.Listing:
    """The listing of `folder`: cut from the raw folder's when it lies inside, else its own."""
    if raw is not None and folder.startswith(raw.root) and (
            folder == raw.root or folder[len(raw.root)] in "/\\"):
        return raw.below(folder)
    if not storage.isdir(folder):
        raise IngestError(f"folder not found: {folder}")
    return storage.walk(folder)


def _video_files(listing: storage.Listing, part: int) -> tuple[dict[str, str], list[str]]:
    """({video id: location} of the `<video>.txt` files directly in a listed folder, names
    of its other files)."""
    from asar_data.names import parse_pku_video

    videos, others = {}, []
    for f in listing.files:
        if "/" in f.rel:
            continue
        stem = f.name[:-4]
        if f.name.endswith(".txt") and parse_pku_video(stem, part) is not None:
            videos[stem] = f.location
        else:
            others.append(f.name)
    return videos, others


def ingest_pku(
    ws: Workspace,
    raw: str | None,
    part: int = 1,
    skeletons: str | None = None,
    labels: str | None = None,
    split_files: dict[str, str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    shard_videos: int = PKU_SHARD_VIDEOS,
    wait: bool = False,
) -> StageResult:
    """Ingest PKU-MMD part I or II: every labelled segment becomes one sample.

    Each folder is listed once: `--raw` alone is one walk, which gives the skeleton
    and label folders, their files, their fingerprints and the split files.
    """
    from asar_data.names import parse_pku_video
    from asar_data.pku_format import parse_pku_split

    progress = progress or Progress()
    if part not in (1, 2):
        raise IngestError("--part must be 1 or 2")
    dataset = f"pku{part}"
    found_splits: dict[str, str] = {}
    raw_listing = None
    if raw is not None:
        raw = storage.normalise(raw)
        if not storage.isdir(raw):
            raise IngestError(f"raw folder not found: {raw}")
        raw_listing = storage.walk(raw)
        s_dir, l_dir, found_splits = _find_pku_layout(raw_listing, part)
        skeletons, labels = skeletons or s_dir, labels or l_dir
    if skeletons is None or labels is None:
        raise IngestError("give --raw DIR, or both --skeletons and --labels")
    skeletons, labels = storage.normalise(skeletons), storage.normalise(labels)
    skel_listing, label_listing = _listing(skeletons, raw_listing), _listing(labels, raw_listing)
    given = {k: storage.normalise(v) for k, v in (split_files or {}).items()}
    split_locs = {**found_splits, **given}
    problems = listing_problems(skel_listing) + listing_problems(label_listing)
    skel_files, ignored = _video_files(skel_listing, part)
    label_files, _ = _video_files(label_listing, part)
    problems += [Problem(n, None, "not a PKU-MMD video file", "ignored") for n in ignored]
    for v in sorted(set(label_files) - set(skel_files)):
        problems.append(Problem(f"{v}.txt", None, "label file has no skeleton file", "skipped"))
    for v in sorted(set(skel_files) - set(label_files)):
        problems.append(Problem(f"{v}.txt", None, "skeleton file has no label file", "ignored"))
    videos = sorted(set(skel_files) & set(label_files), key=lambda v: parse_pku_video(v, part))
    if not videos:
        raise IngestError(f"no PKU-MMD videos with both skeleton and label files in {skeletons}")
    lists: dict[str, dict[str, list[str]]] = {}
    for bench, loc in sorted(split_locs.items()):
        if not storage.exists(loc):
            raise IngestError(f"split file not found: {loc}")
        train, test = parse_pku_split(storage.read_text(loc), source=loc)
        name = loc.rsplit("/", 1)[-1]
        for which, ids in (("train", train), ("test", test)):
            for vid in ids:
                if vid not in skel_files:
                    problems.append(Problem(name, 2 if which == "train" else 4,
                                            f"{which} list names unknown video {vid}", "ignored"))
        known = set(skel_files)
        lists[bench] = {"train": [v for v in train if v in known],
                        "test": [v for v in test if v in known]}
    spec = DATASETS[dataset]
    benchmarks = [b for b in spec.benchmarks if b in lists]
    inputs = {
        "skeletons": Input(skeletons, tree_fingerprint(skeletons, skel_listing)[0], "folder"),
        "labels": Input(labels, tree_fingerprint(labels, label_listing)[0], "folder"),
    }
    for bench, loc in sorted(split_locs.items()):
        inputs[f"split_{bench}"] = Input(loc, file_fingerprint(loc), "file")
    params = {"dataset": dataset, "format": "pku", "part": part, "bodies": 2,
              "shard_videos": shard_videos}
    shards = [([(v, skel_files[v], label_files[v]) for v in videos[i:i + shard_videos]], part)
              for i in range(0, len(videos), shard_videos)]
    attrs = {"dataset": dataset, "kind": "pku", "ntu_dataset": None, "long_crop": spec.long_crop,
             "benchmarks": benchmarks, "default_benchmark": spec.default_benchmark
             if spec.default_benchmark in benchmarks else (benchmarks or [None])[0],
             "classes": spec.classes, "split_lists": lists, "source": skeletons}
    prepared = IngestParams(
        dataset, params, inputs, pku_shard, shards, [len(v) for v, _ in shards], attrs,
        "videos", problems, {"ignored_files": len(ignored)})
    return run_ingest(ws, prepared, workers, scheduler, force, wait, progress)


# ---------------------------------------------------------------- reference folders


def ingest_reference(
    ws: Workspace,
    name: str,
    data: str,
    labels: str,
    val_data: str | None = None,
    val_labels: str | None = None,
    classes: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    shard_samples: int = REFERENCE_SHARD_SAMPLES,
    wait: bool = False,
) -> StageResult:
    """Import a reference tools' folder: `(N, 3, T, 25, M)` float32 `.npy` + label pickle.

    `data`/`labels` become the training side of the `default` benchmark and
    `val_data`/`val_labels` its test side. When every name is an NTU sample name
    the NTU benchmarks are available too.
    """
    from asar_data.names import parse_ntu_name
    from asar_data.reference_files import check_labels, load_label_pickle, open_reference_data

    check_name("dataset", name)
    pairs = [(data, labels, 0)]
    if (val_data is None) != (val_labels is None):
        raise IngestError("give both --val-data and --val-labels, or neither")
    if val_data is not None:
        pairs.append((val_data, val_labels, 1))
    shards, all_names, bodies, max_label = [], [], 2, 0
    inputs = {}
    for d, lab, src in pairs:
        d, lab = storage.normalise(d), storage.normalise(lab)
        if storage.is_url(d):  # np.load would say "no such file"
            raise IngestError(f"{d}: reference .npy files are memory-mapped, so they must be "
                              "on a local or shared filesystem: copy it there first")
        for path in (d, lab):
            if not storage.exists(path):
                raise IngestError(f"file not found: {path}")
        arr = open_reference_data(d)
        names, labs = load_label_pickle(storage.read_bytes(lab), source=lab)
        if len(names) != len(arr) or len(labs) != len(arr):
            raise IngestError(
                f"{lab} lists {len(names)} names and {len(labs)} labels "
                f"for {len(arr)} samples in {d}"
            )
        check_labels(labs, names, classes, lab)  # in [0, classes), and within int16
        bodies = max(bodies, arr.shape[4])
        max_label = max([max_label, *labs]) if labs else max_label
        all_names += names
        tag = "train" if src == 0 else "test"
        inputs[f"{tag}_data"] = Input(d, file_fingerprint(d), "file")
        inputs[f"{tag}_labels"] = Input(lab, file_fingerprint(lab), "file")
        shards += [(d, lab, src, i, min(i + shard_samples, len(arr)))
                   for i in range(0, len(arr), shard_samples)]
    stems = [s[: -len(".skeleton")] if s.endswith(".skeleton") else s for s in all_names]
    ntu = all(parse_ntu_name(s) is not None for s in stems) and bool(stems)
    ntu_dataset = detect_ntu_dataset(stems) if ntu else None
    benchmarks = ["default"] + (list(DATASETS[ntu_dataset].benchmarks) if ntu else [])
    params = {"dataset": name, "format": "reference", "bodies": bodies,
              "shard_samples": shard_samples}
    attrs = {"dataset": name, "kind": "reference", "ntu_dataset": ntu_dataset, "long_crop": "first",
             "benchmarks": benchmarks, "default_benchmark": "default",
             "classes": classes or int(max_label) + 1, "source": storage.normalise(data)}
    prepared = IngestParams(name, params, inputs, reference_shard, shards,
                            [sh[4] - sh[3] for sh in shards], attrs, "samples")
    return run_ingest(ws, prepared, workers, scheduler, force, wait, progress)
