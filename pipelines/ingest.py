"""The ingest stage: raw NTU / PKU-MMD files or reference `.npy` folders -> a raw store.

Files are split into shards; each shard is parsed by one task (in-process or on
dask) into a part file beside the store; once every shard is done the parts are
assembled, in order, into `<dataset>/raw.zarr`, the ingest report is written, the
manifest is marked complete and the parts are removed. Bad files are reported
and skipped (or repaired, for PKU-MMD labels), never fatal.
"""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asar_data import storage
from asar_data.errors import AsarError
from asar_data.raw_store import Part, Problem, assemble, concat_parts, empty_part, new_meta
from asar_data.splits import DATASETS
from pipelines.fingerprint import file_fingerprint, tree_fingerprint
from pipelines.progress import Progress
from pipelines.sharded import ShardedRun, run_shards, start
from pipelines.stage import Input
from pipelines.stages import INGEST
from pipelines.workspace import Workspace


class IngestError(AsarError):
    """A raw folder or option that cannot be ingested (one line naming it)."""


NTU_SHARD_FILES = 256
PKU_SHARD_VIDEOS = 16
REFERENCE_SHARD_SAMPLES = 1024


@dataclass
class IngestResult:
    dataset: str
    action: str  # "skip" | "start" | "resume"
    reason: str
    summary: dict[str, Any]
    store: str
    report: str
    problems: list[Problem] = field(default_factory=list)


# ---------------------------------------------------------------- shard functions
# Module-level so dask can ship them to workers; each writes its part atomically.

def ntu_shard(locations: list[str], bodies: int, part_location: str) -> dict[str, int]:
    """Parse NTU `.skeleton` files (in store order) into one part file."""
    from asar_data.names import ntu_name_fields
    from asar_data.ntu_format import SkeletonFormatError, parse_ntu

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
            sk = parse_ntu(data, max_bodies=bodies)
        except SkeletonFormatError as e:
            problems.append(Problem(fname, e.line, e.reason, "skipped"))
            continue
        if not (sk.body_count > 0).any():
            problems.append(Problem(fname, None, "no frame has a body", "skipped"))
            continue
        xyz.append(sk.xyz.astype(np.float32).transpose(0, 1, 3, 2))  # (T, B, 3, 25)
        ids.append(sk.body_id)
        names.append(fname[: -len(".skeleton")])
        frame_counts.append(len(sk.xyz))
        body_counts.append(int(sk.body_count.max()))
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
    storage.write_bytes(part_location, part.to_bytes())
    return {"samples": part.samples, "problems": len(problems), "bytes": nbytes}


def pku_shard(
    videos: list[tuple[str, str, str]], part: int, part_location: str
) -> dict[str, int]:
    """Cut the labelled segments of PKU-MMD videos into one part file.

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
    storage.write_bytes(part_location, out.to_bytes())
    return {"samples": out.samples, "problems": len(problems), "bytes": nbytes}


def reference_shard(
    data_path: str, labels_path: str, source_split: int, start_: int, stop: int,
    part_location: str,
) -> dict[str, int]:
    """Samples [start_, stop) of a reference `(N, 3, T, 25, M)` array into one part file.

    Trailing all-zero frames (the reference's padding) are dropped: padding them
    back gives the same array, so the 50-frame transform is unchanged.
    """
    from asar_data.names import parse_ntu_name
    from asar_data.reference_files import load_label_pickle, open_reference_data

    data = open_reference_data(data_path)
    names, labels = load_label_pickle(storage.read_bytes(labels_path))
    block = np.asarray(data[start_:stop], dtype=np.float32)  # (n, 3, T, 25, M)
    n, _, t, _, m = block.shape
    nonzero = np.abs(block).sum(axis=(1, 3, 4)) > 0  # (n, T)
    lengths = np.where(nonzero.any(1), t - np.argmax(nonzero[:, ::-1], axis=1), 0)
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
    problems = [
        Problem(stems[i], None, "sample is all zeros", "skipped")
        for i in np.flatnonzero(lengths == 0)
    ]
    good = lengths > 0
    meta = {k: v[good] for k, v in meta.items()}
    part = Part(xyz=xyz, body_id=np.zeros(xyz.shape[:2], np.uint64), meta=meta, problems=problems,
                counts={"files": 0, "bytes": int(block.nbytes)})
    storage.write_bytes(part_location, part.to_bytes())
    return {"samples": part.samples, "problems": len(problems), "bytes": int(block.nbytes)}


# ---------------------------------------------------------------- the stage


def _part_location(parts_dir: str, shard: int) -> str:
    return storage.join(parts_dir, f"part-{shard:06d}.npz")


def write_report(location: str, problems: list[Problem]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "line", "reason", "action"])
    for p in problems:
        w.writerow(p.row())
    storage.write_text(location, buf.getvalue())


def run_ingest(
    ws: Workspace,
    dataset: str,
    params: dict[str, Any],
    inputs: dict[str, Input],
    shards: list[Any],
    make_task: Callable[[Any, str], tuple[Callable[..., Any], tuple]],
    shard_weight: Callable[[int], int],
    attrs: dict[str, Any],
    pre_problems: list[Problem],
    pre_counts: dict[str, int],
    workers: int | None,
    scheduler: str | None,
    force: bool,
    progress: Progress,
    unit: str,
) -> IngestResult:
    """The ingest machinery shared by every source format."""
    out = ws.raw(dataset)
    parts_dir = storage.join(storage.join(ws.root, dataset), "raw.parts")
    report = ws.ingest_report(dataset)
    run: ShardedRun = start(
        INGEST, out.manifest, out.store, params, inputs, len(shards), force, progress,
        scratch=(parts_dir, report),
    )
    if run.skipped:
        m = run.plan.manifest
        return IngestResult(dataset, "skip", run.plan.reason, m.summary, out.store, report)
    t0 = time.perf_counter()
    storage.makedirs(parts_dir)
    # a shard listed as done whose part file has vanished is redone
    missing = [i for i in run.log.manifest.shards_done
               if not storage.exists(_part_location(parts_dir, i))]
    if missing:
        run.log.manifest.shards_done = sorted(set(run.log.manifest.shards_done) - set(missing))
        run.log.flush()
    run_shards(
        run,
        lambda i: make_task(shards[i], _part_location(parts_dir, i)),
        workers, scheduler, progress, f"ingest {dataset}", weight=shard_weight, unit=unit,
    )
    problems = list(pre_problems)
    counts = dict(pre_counts)
    bodies = int(params["bodies"])

    def parts():
        for i in range(len(shards)):
            p = Part.from_bytes(storage.read_bytes(_part_location(parts_dir, i)))
            problems.extend(p.problems)
            for k, v in p.counts.items():
                counts[k] = counts.get(k, 0) + v
            yield p

    progress.note(f"ingest {dataset}: assembling {len(shards)} parts into {out.store}")
    sizes = assemble(parts(), out.store, bodies, attrs)
    write_report(report, problems)
    by_action: dict[str, int] = {}
    for p in problems:
        by_action[p.action] = by_action.get(p.action, 0) + 1
    summary = {
        **sizes,
        **counts,
        "problems": len(problems),
        "problems_by_action": by_action,
        "seconds": round(time.perf_counter() - t0, 3),
        "benchmarks": attrs.get("benchmarks", []),
        "default_benchmark": attrs.get("default_benchmark"),
        "kind": attrs.get("kind"),
        "classes": attrs.get("classes"),
    }
    run.log.finish(summary)
    storage.remove(parts_dir)
    return IngestResult(dataset, run.plan.action, run.plan.reason, summary, out.store, report,
                        problems)


# ---------------------------------------------------------------- NTU


def detect_ntu_dataset(names: list[str]) -> str:
    """ntu120 when any name lies outside NTU-60's ranges, else ntu60."""
    from asar_data.names import parse_ntu_name

    for n in names:
        p = parse_ntu_name(n)
        if p is not None and (p.setup > 17 or p.action > 60 or p.subject > 40):
            return "ntu120"
    return "ntu60"


def _in_dataset(dataset: str, name) -> bool:
    if dataset == "ntu60":
        return name.setup <= 17 and name.action <= 60
    return True


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
) -> IngestResult:
    """Ingest a folder of NTU `.skeleton` files (searched recursively) into `<dataset>/raw.zarr`.

    `name` stores the dataset under another name (e.g. the demo's synthetic `synth60`,
    so that it never replaces a real ntu60 store); its benchmarks stay `dataset`'s.
    """
    from asar_data.names import missing_samples, parse_ntu_name

    progress = progress or Progress()
    raw = storage.normalise(raw)
    if not storage.isdir(raw):
        raise IngestError(f"raw folder not found: {raw}")
    files = list(storage.walk_files(raw))
    rel = [f[len(raw):].lstrip("/\\") for f in files]
    samples, ignored = [], []
    for loc, r in zip(files, rel, strict=True):
        base = r.replace("\\", "/").rsplit("/", 1)[-1]
        parsed = parse_ntu_name(base) if base.endswith(".skeleton") else None
        (samples if parsed is not None else ignored).append((base, loc, parsed))
    if dataset is None:
        dataset = detect_ntu_dataset([s[0] for s in samples])
    if dataset not in ("ntu60", "ntu120"):
        raise IngestError(f"--dataset must be ntu60 or ntu120, not {dataset!r}")
    problems = [Problem(b, None, "not an NTU sample file", "ignored") for b, _, _ in ignored]
    outside = [s for s in samples if not _in_dataset(dataset, s[2])]
    problems += [Problem(b, None, f"not part of {dataset}", "ignored") for b, _, _ in outside]
    samples = [s for s in samples if _in_dataset(dataset, s[2])]
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
    fp, _ = tree_fingerprint(raw)
    spec = DATASETS[dataset]
    store_name = name or dataset
    params = {"dataset": dataset, "format": "ntu", "bodies": bodies,
              "skip_missing": skip_missing, "shard_files": shard_files}
    shards = [[loc for _, loc, _ in samples[i:i + shard_files]]
              for i in range(0, len(samples), shard_files)]
    attrs = {"dataset": store_name, "kind": "ntu", "ntu_dataset": dataset,
             "long_crop": spec.long_crop, "benchmarks": list(spec.benchmarks),
             "default_benchmark": spec.default_benchmark, "classes": spec.classes,
             "source": raw}
    return run_ingest(
        ws, store_name, params, {"raw": Input(raw, fp, "folder")}, shards,
        lambda files, part_loc: (ntu_shard, (files, bodies, part_loc)),
        lambda i: len(shards[i]), attrs, problems,
        {"ignored_files": len(ignored) + len(outside), "missing_list_skipped": len(on_list),
         "candidate_files": len(samples)},
        workers, scheduler, force, progress, unit="files",
    )


# ---------------------------------------------------------------- PKU-MMD

PKU_SPLIT_FILES = {
    1: {"cs": "cross-subject.txt", "cv": "cross-view.txt"},
    2: {"cs": "cross_subject_v2.txt", "cv": "cross_view_v2.txt"},
}


def _find_pku_layout(raw: str, part: int) -> tuple[str, str, dict[str, str]]:
    """(skeleton folder, label folder, split files) found under raw in the official layout."""
    from asar_data.names import parse_pku_video

    skel_dir = label_dir = None
    splits: dict[str, str] = {}
    wanted = {v: k for k, v in PKU_SPLIT_FILES[part].items()}
    for loc in storage.walk_files(raw):
        folder, name = loc.replace("\\", "/").rsplit("/", 1)
        if name in wanted and wanted[name] not in splits:
            splits[wanted[name]] = loc
        if name.endswith(".txt") and parse_pku_video(name[:-4], part) is not None:
            if "label" in folder.rsplit("/", 1)[-1].lower():
                label_dir = label_dir or folder
            else:
                skel_dir = skel_dir or folder
    if skel_dir is None:
        raise IngestError(f"no PKU-MMD part {part} skeleton files found under {raw}")
    if label_dir is None:
        raise IngestError(f"no PKU-MMD part {part} label folder found under {raw}")
    return skel_dir, label_dir, splits


def _video_files(folder: str, part: int) -> tuple[dict[str, str], list[str]]:
    """({video id: location} of the `<video>.txt` files of a folder, names of the others)."""
    from asar_data.names import parse_pku_video

    videos, others = {}, []
    for e in storage.list_files(folder):
        stem = e.name[:-4]
        if e.name.endswith(".txt") and parse_pku_video(stem, part) is not None:
            videos[stem] = storage.join(folder, e.name)
        else:
            others.append(e.name)
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
) -> IngestResult:
    """Ingest PKU-MMD part I or II: every labelled segment becomes one sample."""
    from asar_data.names import parse_pku_video
    from asar_data.pku_format import parse_pku_split

    progress = progress or Progress()
    if part not in (1, 2):
        raise IngestError("--part must be 1 or 2")
    dataset = f"pku{part}"
    found_splits: dict[str, str] = {}
    if raw is not None:
        raw = storage.normalise(raw)
        if not storage.isdir(raw):
            raise IngestError(f"raw folder not found: {raw}")
        s_dir, l_dir, found_splits = _find_pku_layout(raw, part)
        skeletons, labels = skeletons or s_dir, labels or l_dir
    if skeletons is None or labels is None:
        raise IngestError("give --raw DIR, or both --skeletons and --labels")
    skeletons, labels = storage.normalise(skeletons), storage.normalise(labels)
    given = {k: storage.normalise(v) for k, v in (split_files or {}).items()}
    split_locs = {**found_splits, **given}
    problems: list[Problem] = []
    skel_files, ignored = _video_files(skeletons, part)
    label_files, _ = _video_files(labels, part)
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
        train, test = parse_pku_split(storage.read_text(loc))
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
        "skeletons": Input(skeletons, tree_fingerprint(skeletons)[0], "folder"),
        "labels": Input(labels, tree_fingerprint(labels)[0], "folder"),
    }
    for bench, loc in sorted(split_locs.items()):
        inputs[f"split_{bench}"] = Input(loc, file_fingerprint(loc), "file")
    params = {"dataset": dataset, "format": "pku", "part": part, "bodies": 2,
              "shard_videos": shard_videos}
    shards = [[(v, skel_files[v], label_files[v]) for v in videos[i:i + shard_videos]]
              for i in range(0, len(videos), shard_videos)]
    attrs = {"dataset": dataset, "kind": "pku", "ntu_dataset": None, "long_crop": spec.long_crop,
             "benchmarks": benchmarks, "default_benchmark": spec.default_benchmark
             if spec.default_benchmark in benchmarks else (benchmarks or [None])[0],
             "classes": spec.classes, "split_lists": lists, "source": skeletons}
    return run_ingest(
        ws, dataset, params, inputs, shards,
        lambda vids, part_loc: (pku_shard, (vids, part, part_loc)),
        lambda i: len(shards[i]), attrs, problems, {"ignored_files": len(ignored)},
        workers, scheduler, force, progress, unit="videos",
    )


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
) -> IngestResult:
    """Import a reference tools' folder: `(N, 3, T, 25, M)` float32 `.npy` + label pickle.

    `data`/`labels` become the training side of the `default` benchmark and
    `val_data`/`val_labels` its test side. When every name is an NTU sample name
    the NTU benchmarks are available too.
    """
    from asar_data.names import parse_ntu_name
    from asar_data.reference_files import load_label_pickle, open_reference_data

    progress = progress or Progress()
    if not name or "/" in name or name.startswith("."):
        raise IngestError(f"--name must be a plain dataset name, not {name!r}")
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
        arr = open_reference_data(d)
        names, labs = load_label_pickle(storage.read_bytes(lab))
        if len(names) != len(arr) or len(labs) != len(arr):
            raise IngestError(
                f"{lab} lists {len(names)} names and {len(labs)} labels "
                f"for {len(arr)} samples in {d}"
            )
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
    return run_ingest(
        ws, name, params, inputs, shards,
        lambda s, part_loc: (reference_shard, (*s, part_loc)),
        lambda i: shards[i][4] - shards[i][3], attrs, [], {}, workers, scheduler, force,
        progress, unit="samples",
    )
