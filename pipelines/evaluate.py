"""The evaluate stage: linear, k-NN, semi-supervised and fine-tuning protocols.

An evaluation lives in `<workdir>/<dataset>/eval/<name>/`: `result.json`,
`confusion.png`, `scores.npy` (the test samples' class scores, (M, C) float32, in
ascending store order) and `manifest.json`. It is built in a temporary folder beside
and swapped in whole, so a failed evaluation leaves nothing behind. Its inputs are the
50-frame store (by its manifest fingerprint) and the weights file (name, size, mtime);
its parameters the resolved config and the protocol options. Unchanged -> skipped.

Protocols (METHOD.md, "Evaluation protocols"):

- ``linear``: the encoder frozen in eval mode; the pooled features of the train and
  test splits are computed once, then a new fc is trained on them with the reference
  schedule (`asar_model.heads.train_linear`). This is the reference's computation: its
  linear processor runs the frozen encoder in eval mode on unaugmented data every
  epoch, which gives the same features each time. The encoder's weights are hashed
  before and after; any change raises `FrozenEncoderChanged`.
- ``knn``: cosine k-NN of test features among training features (no training).
- ``semi``: a class-balanced seeded ``label_fraction`` of the training split, then every
  weight (encoder + new fc) fine-tuned with the semi preset; ``finetune``: the same on
  the whole training split (`asar_model.training.finetune`).
- stream ``all``: joint, motion and bone evaluated each with its own weights (each its
  own cached evaluation), and the 3-stream ensemble (the mean of the three streams'
  test class scores) as a stage of its own whose inputs are the three.
"""
from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asar_data import storage
from pipelines.config import RUNTIME_KEYS, ConfigError, ConfigParams, get_key
from pipelines.fingerprint import digest, file_fingerprint
from pipelines.manifest import Manifest
from pipelines.progress import Progress
from pipelines.runner import Options, Run, Stage, StageResult, execute
from pipelines.stage import Input
from pipelines.workspace import Output, Workspace

PROTOCOLS = ("linear", "knn", "semi", "finetune")
STREAMS = ("joint", "motion", "bone")
ALL = "all"
RESULT_FORMAT = "asar-eval/1"
BEST_NOTE = ("top1/top5: after the last epoch. best_top1: the best top-1 of the evaluations "
             "every eval_interval epochs, chosen on the test set - the number the reference "
             "reports.")
CONFIG_KIND = {"linear": "linear", "knn": "linear", "semi": "semi", "finetune": "finetune"}


class FrozenEncoderChanged(RuntimeError):
    """The encoder's weights changed during an evaluation that must keep them frozen (a bug)."""


# -- names and inputs ----------------------------------------------------------------------
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text).lstrip(".") or "weights"


def weights_stem(location: str | None, seed: int = 0) -> str:
    """A short name for a weights file: the run name for `runs/<run>/checkpoint.pt`,
    `<run>-<stem>` for other files of a run, the file stem otherwise; `random-seed<s>`
    for no weights."""
    if location is None:
        return f"random-seed{seed}"
    parts = location.replace("\\", "/").rstrip("/").split("/")
    stem = parts[-1].rsplit(".", 1)[0] or parts[-1]
    if len(parts) >= 3 and parts[-3] == "runs":
        stem = parts[-2] if stem == "checkpoint" else f"{parts[-2]}-{stem}"
    return _safe(stem)


def protocol_tag(protocol: str, k: int, label_fraction: float | None) -> str:
    """`linear`, `knn20`, `semi1` / `semi10` (percent of labels), `finetune`."""
    if protocol == "knn":
        return f"knn{k}"
    if protocol == "semi":
        return f"semi{100 * float(label_fraction or 0):g}"
    return protocol


def default_name(protocol: str, stream: str, weights: str | Mapping[str, str | None] | None,
                 k: int = 20, label_fraction: float | None = None, seed: int = 0,
                 benchmark: str | None = None) -> str:
    """`<protocol tag>-<stream>-<weights stem>`, e.g. `linear-joint-xview-joint`.

    The benchmark is put before the stem unless the stem already starts with it (a run
    named `<benchmark>-<stream>`), so evaluations of one encoder on two benchmarks never
    share a folder: `linear-joint-xsub-xview-joint`, `linear-joint-xview-random-seed0`.
    """
    if isinstance(weights, Mapping):
        stem = "+".join(dict.fromkeys(weights_stem(weights.get(s), seed) for s in STREAMS))
    else:
        stem = weights_stem(weights, seed)
    if benchmark and not stem.startswith(f"{benchmark}-"):
        stem = f"{benchmark}-{stem}"
    return f"{protocol_tag(protocol, k, label_fraction)}-{stream}-{stem}"


def weights_spec(specs: tuple[str, ...] | list[str], stream: str
                 ) -> str | dict[str, str] | None:
    """--weights values: one file or run name; with stream ``all`` one per stream, given
    as `joint=W motion=W bone=W` or positionally in that order."""
    if stream != ALL:
        if len(specs) > 1:
            raise ConfigError("give one --weights (several only with --stream all)")
        return specs[0] if specs else None
    per: dict[str, str] = {}
    for i, spec in enumerate(specs):
        key, sep, value = spec.partition("=")
        if sep and key in STREAMS:
            per[key] = value
        elif i < len(STREAMS):
            per[STREAMS[i]] = spec
        else:
            raise ConfigError(f"--weights {spec!r}: use joint=FILE, motion=FILE, bone=FILE")
    return per


def resolve_weights(ws: Workspace, dataset: str, spec: str | None) -> str | None:
    """A weights file (absolute path or URL) from a path/URL, or a run name of the dataset
    (its checkpoint.pt)."""
    from asar_model.checkpoint import CheckpointError
    from pipelines.workspace import NAME_CHARS

    if spec is None:
        return None
    is_name = bool(spec) and not spec.startswith(".") and set(spec) <= NAME_CHARS
    ckpt = storage.join(ws.run_dir(dataset, spec), "checkpoint.pt") if is_name else None
    if storage.exists(spec) and not storage.isdir(spec):
        return storage.normalise(spec)                     # a file: absolute, as recorded
    if ckpt is not None and storage.exists(ckpt):
        return ckpt                                        # a run of the dataset
    if storage.exists(spec):
        raise CheckpointError(f"--weights {spec} is a folder: give a checkpoint file "
                              "(e.g. runs/<run>/checkpoint.pt) or a run name")
    if ckpt is not None:
        raise CheckpointError(f"weights {spec} not found: not a file, nor a run of {dataset} "
                              f"(no {ckpt})")
    raise CheckpointError(f"weights file {spec} not found")


def weights_input(ws: Workspace, location: str | None) -> Input:
    """The weights as a stage input: name/size/mtime fingerprint, or the random-init marker.

    Files inside the workspace are recorded relative to its root (a moved workspace stays
    valid)."""
    from asar_model.checkpoint import CheckpointError

    if location is None:
        return Input("random-init", digest("random-init"), "value")
    try:
        return Input(ws.relative(location), file_fingerprint(location), "file")
    except (FileNotFoundError, OSError) as e:
        raise CheckpointError(f"weights file {location} not found") from e


def frames_input(ws: Workspace, dataset: str, frames: int) -> Input:
    """The frames store as a stage input (location relative to the workspace root); a
    missing or incomplete one raises a WorkspaceError naming the command to run."""
    out = ws.frames(dataset, frames)
    m = ws.complete_manifest(
        out, f"{frames}-frame store of {dataset}",
        f"asar-cli downsample {dataset}" + ("" if frames == 50 else f" --frames {frames}"))
    return Input(ws.relative(out.store), m.fingerprint, "store")


def store_action_names(store: Any, classes: int) -> list[str]:
    """The class names of a 50-frame store: its `action_names` attribute, else the official
    names of its dataset (`asar_data.actions`)."""
    from asar_data.actions import action_names

    names = store.attrs.get("action_names")
    if names and len(names) >= classes:
        return list(names)[:classes]
    kind = store.attrs.get("ntu_dataset") or store.attrs.get("dataset") or ""
    return action_names(str(kind), classes)


def frames_location(ws: Workspace, dataset: str, frames: int = 50) -> str:
    """Where the complete frames store is (raises like `frames_input` when it is not)."""
    return ws.resolve(frames_input(ws, dataset, frames).location)


# -- data and encoders ------------------------------------------------------------------------
@dataclass
class Splits:
    """The store and the sample indices (ascending) an evaluation reads."""

    store: Any                 # asar_data.frames_store.FramesStore
    train: Any                 # np.ndarray (n,) int64
    test: Any                  # np.ndarray (m,) int64
    classes: int


def open_splits(store_location: str, benchmark: str, cfg: Mapping[str, Any]) -> Splits:
    """The benchmark's train/test indices and the number of classes (store attrs first)."""
    import numpy as np

    from asar_data.frames_store import FramesStore

    store = FramesStore(store_location)
    if benchmark not in store.benchmarks:
        raise ConfigError(f"{store.attrs.get('dataset')} has no benchmark {benchmark!r} "
                          f"(it has: {', '.join(store.benchmarks)})")
    train = np.sort(store.split(benchmark, "train"))
    test = np.sort(store.split(benchmark, "test"))
    classes = int(store.attrs.get("classes") or get_key(cfg, "model_args.num_class", 0))
    top = int(store.labels.max()) + 1 if len(store.labels) else 0
    if classes < top:
        raise ConfigError(f"{store_location} has labels up to {top - 1}, more than the "
                          f"{classes} classes configured (model_args.num_class)")
    return Splits(store, train, test, classes)


def source(splits: Splits, indices: Any, device: Any, cfg: Mapping[str, Any]) -> Any:
    """A loader source of some samples: resident on the device when within the budget."""
    from asar_data.loader import make_source
    from asar_model.training import memory_budget

    return make_source(splits.store, indices, device, memory_budget(cfg))


def load_model(weights: str | None, cfg: Mapping[str, Any], classes: int, seed: int
               ) -> tuple[Any, str]:
    """(encoder with a new fc of ``classes`` outputs, a description of its weights)."""
    from asar_model.checkpoint import build_encoder
    from pipelines.checkpoints import load_encoder

    args = cfg.get("model_args") or {}
    if weights is None:
        return build_encoder(args, classes, seed), f"random init (reference init, seed {seed})"
    model, report = load_encoder(weights, args, classes, seed)
    return model, report.describe()


def check_frozen(model: Any, before: str, what: str) -> None:
    """Raise `FrozenEncoderChanged` unless the model's state digest is still ``before``."""
    from asar_model.checkpoint import state_digest

    if state_digest(model) != before:
        raise FrozenEncoderChanged(
            f"{what}: the frozen encoder's weights or buffers changed during the evaluation "
            "(was it run in train mode?); the result is not valid and was not written")


def features(model: Any, src: Any, stream: str, cfg: Mapping[str, Any], device: Any,
             progress: Progress, what: str, head: bool = False) -> tuple[Any, Any]:
    """An eval-mode pass over a source in store order, with a bar (see
    `asar_model.training.encode`)."""
    from asar_model.training import encode, uses_bf16

    batch = int(cfg.get("test_batch_size") or cfg.get("batch_size", 128))
    with progress.bar(what, total=len(src), unit="samples") as bar:
        return encode(model, src.batches(batch, None, drop_last=False), stream,
                      uses_bf16(cfg, device), head, on_batch=bar.advance)


# -- protocols -----------------------------------------------------------------------------
def run_frozen(model: Any, splits: Splits, stream: str, cfg: Mapping[str, Any], device: Any,
               protocol: str, k: int, seed: int, progress: Progress) -> dict[str, Any]:
    """Linear or k-NN on features computed once; the encoder checked unchanged after."""
    from asar_model.checkpoint import state_digest
    from asar_model.heads import knn_scores, train_linear

    before = state_digest(model)
    t0 = time.perf_counter()
    train_x, train_y = features(model, source(splits, splits.train, device, cfg), stream, cfg,
                                device, progress, "features (train)")
    test_x, test_y = features(model, source(splits, splits.test, device, cfg), stream, cfg,
                              device, progress, "features (test)")
    seconds = {"features": round(time.perf_counter() - t0, 3)}
    t1 = time.perf_counter()
    if protocol == "knn":
        scores = knn_scores(train_x, train_y, test_x, splits.classes, k)
        evaluations, best = [], None
        seconds["knn"] = round(time.perf_counter() - t1, 3)
    else:
        epochs = int(cfg["num_epoch"])
        with progress.bar("linear fc", total=epochs, unit="epochs") as bar:
            fit = train_linear(train_x, train_y, test_x, test_y, splits.classes, cfg, seed,
                               on_epoch=lambda e, loss: bar.update(completed=e,
                                                                   loss=f"{loss:.4f}"))
        scores, evaluations, best = fit.scores, fit.evaluations, (fit.best_top1, fit.best_epoch)
        seconds["train"] = round(time.perf_counter() - t1, 3)
    check_frozen(model, before, f"{protocol} evaluation")
    return {"scores": scores, "labels": test_y, "evaluations": evaluations, "best": best,
            "encoder_unchanged": True, "seconds": seconds}


def run_finetune(model: Any, splits: Splits, train_idx: Any, stream: str,
                 cfg: Mapping[str, Any], device: Any, seed: int, progress: Progress
                 ) -> dict[str, Any]:
    """Fine-tune encoder + fc on ``train_idx``; test (eval mode) every eval_interval epochs."""
    from asar_model.training import finetune, uses_bf16

    t0 = time.perf_counter()
    epochs = int(cfg["num_epoch"])
    with progress.bar("fine-tune", total=epochs, unit="epochs") as bar:
        fit = finetune(model.to(device), source(splits, train_idx, device, cfg),
                       source(splits, splits.test, device, cfg), cfg, seed, stream,
                       uses_bf16(cfg, device),
                       on_epoch=lambda e, loss: bar.update(completed=e, loss=f"{loss:.4f}"))
    return {"scores": fit.scores, "labels": fit.labels, "evaluations": fit.evaluations,
            "best": (fit.best_top1, fit.best_epoch),
            "seconds": {"train": round(time.perf_counter() - t0, 3)}}


# -- results -------------------------------------------------------------------------------
def accuracy_block(scores: Any, labels: Any, classes: int,
                   best: tuple[float, int] | None) -> dict[str, Any]:
    """Final top-1/top-5, the best top-1 and its epoch, per-class accuracy, confusion."""
    import math

    from asar_model.heads import confusion_matrix, per_class_accuracy, topk_accuracy

    acc = topk_accuracy(scores, labels)
    conf = confusion_matrix(scores.argmax(dim=1), labels, classes)
    per_class = [None if math.isnan(v) else round(v, 4)
                 for v in per_class_accuracy(conf).tolist()]
    block: dict[str, Any] = {"unit": "percent", "top1": acc[1], "top5": acc[5]}
    if best is not None:
        block.update(best_top1=best[0], best_epoch=best[1], note=BEST_NOTE)
    return {"accuracy": block, "per_class_accuracy": per_class,
            "confusion": conf.tolist()}


def write_outputs(eval_dir: str, result: Mapping[str, Any], scores: Any, name: str,
                  class_names: list[str]) -> None:
    """result.json, confusion.png (titled with the evaluation's ``name``) and scores.npy
    (M, C) float32, each atomically."""
    import numpy as np

    from pipelines.figures import title_line, write_confusion

    buf = io.BytesIO()
    np.save(buf, scores.detach().float().cpu().numpy())
    storage.write_bytes(storage.join(eval_dir, "scores.npy"), buf.getvalue())
    conf = np.asarray(result["confusion"])
    title = title_line(name, result["dataset"], result["benchmark"],
                       f"{result['protocol']} {result['stream']}", result["accuracy"]["top1"])
    write_confusion(storage.join(eval_dir, "confusion.png"), conf, class_names, title)
    storage.write_text(storage.join(eval_dir, "result.json"),
                       json.dumps(finite(result), indent=1, allow_nan=False) + "\n")


def log_tensorboard(eval_dir: str, result: Mapping[str, Any]) -> None:
    """The evaluation's accuracies (every check epoch, and final) as TensorBoard scalars in
    `<eval>/tensorboard` when tensorboard is installed (`pip install 'asar[tensorboard]'`)."""
    if storage.is_url(eval_dir):
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    tag = f"{result['protocol']}/{result['stream']}"
    with SummaryWriter(log_dir=storage.join(eval_dir, "tensorboard")) as tb:
        for e in result.get("evaluations") or []:
            for key in ("top1", "top5", "train_loss"):
                if e.get(key) is not None:
                    tb.add_scalar(f"{tag}/{key}", e[key], e["epoch"])
        acc = result["accuracy"]
        tb.add_scalar(f"{tag}/final_top1", acc["top1"], 0)
        tb.add_scalar(f"{tag}/final_top5", acc["top5"], 0)


def finite(obj: Any) -> Any:
    """A copy of a JSON tree with NaN and infinities (a diverged loss) replaced by None."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def read_result(eval_dir: str) -> dict[str, Any]:
    return json.loads(storage.read_text(storage.join(eval_dir, "result.json")))


def read_scores(eval_dir: str) -> Any:
    """The test class scores (M, C) of a finished evaluation."""
    import numpy as np

    return np.load(io.BytesIO(storage.read_bytes(storage.join(eval_dir, "scores.npy"))),
                   allow_pickle=False)


def _summary(result: Mapping[str, Any]) -> dict[str, Any]:
    acc = result["accuracy"]
    return {"top1": acc["top1"], "top5": acc["top5"], "best_top1": acc.get("best_top1")}


# -- one stream: a stage -------------------------------------------------------------------
@dataclass(frozen=True)
class EvalParams(ConfigParams):
    """One evaluation: folder name, resolved config (with dataset and benchmark), protocol,
    stream, weights file (absolute path/URL, or None for the random-init baseline), k for
    knn, label_fraction for semi."""

    name: str
    config: Mapping[str, Any]
    protocol: str = "linear"
    stream: str = "joint"
    weights: str | None = None
    k: int = 20
    label_fraction: float | None = None

    def __post_init__(self) -> None:
        from pipelines.config import validate_config

        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}: expected one of "
                              f"{', '.join(PROTOCOLS)}")
        if self.stream not in STREAMS:
            raise ConfigError(f"unknown stream {self.stream!r}: expected "
                              f"{', '.join(STREAMS)} or all")
        if self.protocol == "semi" and not (self.label_fraction and
                                            0 < self.label_fraction <= 1):
            raise ConfigError("protocol semi needs a label fraction in (0, 1] "
                              "(--label-fraction 0.01 or 0.1)")
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, not {self.k}")
        object.__setattr__(self, "config",
                           validate_config(self.config, CONFIG_KIND[self.protocol])[0])



class _Evaluation(Stage):
    """What every evaluation stage shares: an atomic folder whose result.json is the
    result (params have dataset, benchmark, protocol, stream, name)."""

    output_kind = "atomic"

    def output(self, ws: Workspace, p: Any) -> Output:
        return ws.evaluation(p.dataset, p.name)

    def finish(self, run: Run) -> dict[str, Any]:
        return _summary(run.state["result"])

    def details(self, run: Run, summary: Mapping[str, Any]) -> dict[str, Any]:
        p = run.params
        result = run.state.get("result") or read_result(run.output.store)
        return {"result": result, "eval_dir": run.output.store, "dataset": p.dataset,
                "benchmark": p.benchmark, "protocol": p.protocol, "stream": p.stream}


class Evaluate(_Evaluation):
    name, version = "evaluate", 1

    def __init__(self) -> None:
        self.weights_recorded: str | None = None  # as the inputs record it (relative inside)

    def command(self, p: EvalParams) -> str:
        return f"evaluate {p.protocol} {p.stream} {p.dataset} {p.benchmark}"

    def inputs(self, ws: Workspace, p: EvalParams, state: dict[str, Any]) -> dict[str, Input]:
        inputs = {"frames": frames_input(ws, p.dataset, p.frames),
                  "weights": weights_input(ws, p.weights)}
        self.weights_recorded = inputs["weights"].location
        return inputs

    def fingerprint_params(self, p: EvalParams) -> dict[str, Any]:
        params = {k: v for k, v in p.config.items() if k not in RUNTIME_KEYS}
        params.update(
            protocol=p.protocol, stream=p.stream,
            weights=self.weights_recorded,
            k=p.k if p.protocol == "knn" else None,
            label_fraction=p.label_fraction if p.protocol == "semi" else None)
        return params

    def run_shard(self, run: Run[EvalParams], shard: int) -> None:
        from asar_model.heads import class_balanced_subset
        from asar_model.training import pick_device

        p, cfg = run.params, run.params.config
        t0 = time.perf_counter()
        device = pick_device(cfg.get("device"))
        splits = open_splits(run.ws.resolve(frames_input(run.ws, p.dataset, p.frames).location),
                             p.benchmark, cfg)
        model, loaded = load_model(p.weights, cfg, splits.classes, p.seed)
        model = model.to(device)
        run.progress.note(f"evaluate {p.protocol} {p.stream} on {p.dataset} {p.benchmark}: "
                          f"{len(splits.train)} train, {len(splits.test)} test samples on "
                          f"{device}; weights {loaded}")
        train_idx = splits.train
        if p.protocol in ("linear", "knn"):
            out = run_frozen(model, splits, p.stream, cfg, device, p.protocol, p.k, p.seed,
                             run.progress)
        else:
            if p.protocol == "semi":
                pos = class_balanced_subset(splits.store.labels[train_idx], p.label_fraction,
                                            p.seed)
                train_idx = train_idx[pos]
            out = run_finetune(model, splits, train_idx, p.stream, cfg, device, p.seed,
                               run.progress)
        result = {
            "format": RESULT_FORMAT, "protocol": p.protocol, "stream": p.stream,
            "dataset": p.dataset, "benchmark": p.benchmark, "weights": p.weights,
            "weights_loaded": loaded, "classes": splits.classes,
            "train_samples": len(train_idx), "test_samples": len(splits.test),
            "k": p.k if p.protocol == "knn" else None,
            "label_fraction": p.label_fraction if p.protocol == "semi" else None,
            **accuracy_block(out["scores"], out["labels"], splits.classes, out["best"]),
            "evaluations": out["evaluations"],
            "encoder_unchanged": out.get("encoder_unchanged"),
            "seconds": {**out["seconds"], "total": round(time.perf_counter() - t0, 3)},
        }
        write_outputs(run.where, result, out["scores"], p.name,
                      store_action_names(splits.store, splits.classes))
        if cfg.get("tensorboard", True):
            log_tensorboard(run.where, result)
        run.state["result"] = finite(result)


# -- three streams: the ensemble stage -----------------------------------------------------
@dataclass(frozen=True)
class EnsembleParams:
    """The 3-stream ensemble of finished evaluations (stream -> eval folder name)."""

    name: str
    dataset: str
    benchmark: str
    protocol: str
    frames: int
    streams: Mapping[str, str] = field(default_factory=dict)
    stream: str = ALL


class Ensemble(_Evaluation):
    name, version = "evaluate", 1   # an evaluation like the others

    def command(self, p: EnsembleParams) -> str:
        return f"evaluate {p.protocol} all {p.dataset} {p.benchmark}"

    def fingerprint_params(self, p: EnsembleParams) -> dict[str, Any]:
        return {"protocol": p.protocol, "streams": list(STREAMS), "ensemble": "mean of scores"}

    def inputs(self, ws: Workspace, p: EnsembleParams, state: dict[str, Any]
               ) -> dict[str, Input]:
        out = {}
        for s in STREAMS:
            d = ws.eval_dir(p.dataset, p.streams[s])
            m = Manifest.load(storage.join(d, "manifest.json"))
            out[s] = Input(ws.relative(d), m.fingerprint if m else "", "store")
        return out

    def run_shard(self, run: Run[EnsembleParams], shard: int) -> None:
        import numpy as np
        import torch

        from asar_data.frames_store import FramesStore

        p = run.params
        dirs = {s: run.ws.eval_dir(p.dataset, p.streams[s]) for s in STREAMS}
        subs = {s: read_result(d) for s, d in dirs.items()}
        store = FramesStore(frames_location(run.ws, p.dataset, p.frames))
        labels = store.labels[np.sort(store.split(p.benchmark, "test"))].astype(np.int64)
        scores = ensemble_scores([read_scores(d) for d in dirs.values()])
        result = {
            "format": RESULT_FORMAT, "protocol": p.protocol, "stream": ALL,
            "dataset": p.dataset, "benchmark": p.benchmark,
            "ensemble": "mean of the streams' test class scores (after each stream's last "
                        "epoch)",
            "weights": {s: r["weights"] for s, r in subs.items()},
            "classes": int(next(iter(subs.values()))["classes"]),
            "streams": {s: {"eval_dir": dirs[s], **r["accuracy"]} for s, r in subs.items()},
            **accuracy_block(scores, torch.from_numpy(labels),
                             int(next(iter(subs.values()))["classes"]), None),
        }
        write_outputs(run.where, result, scores, p.name,
                      store_action_names(store, int(result["classes"])))
        run.state["result"] = finite(result)


def ensemble_scores(scores: list[Any]) -> Any:
    """The 3-stream ensemble: the mean of the streams' class scores, each (M, C) -> (M, C)."""
    import torch

    return torch.stack([torch.as_tensor(s, dtype=torch.float32) for s in scores]).mean(dim=0)


# -- the entry point -----------------------------------------------------------------------
def evaluate(
    ws: Workspace,
    cfg: Mapping[str, Any],
    weights: str | Mapping[str, str | None] | None = None,
    protocol: str = "linear",
    stream: str | None = None,
    *,
    name: str | None = None,
    k: int = 20,
    label_fraction: float | None = None,
    force: bool = False,
    progress: Progress | None = None,
    wait: bool = False,
) -> StageResult:
    """Run (or skip, when unchanged) one evaluation described by a resolved config.

    ``weights``: a weights file (path or URL; None = the seeded random-init baseline); for
    ``stream="all"`` a mapping stream -> file (or None). ``stream`` None: ``cfg["stream"]``.
    ``k``: neighbours for knn. ``label_fraction``: for semi (default ``cfg["label_fraction"]``).
    ``name``: the eval folder (default `default_name`). The result's details hold
    ``result`` (result.json), ``eval_dir`` and, for stream all, ``streams``.
    """
    stream = stream or cfg.get("stream", "joint")
    if protocol == "semi":
        label_fraction = label_fraction or cfg.get("label_fraction")
    seed, bench = int(cfg.get("seed", 0)), cfg.get("benchmark")
    options = Options(force=force, wait=wait)
    if stream != ALL:
        if isinstance(weights, Mapping):
            weights = weights.get(stream)
        if name is None:
            name = default_name(protocol, stream, weights, k, label_fraction, seed, bench)
        params = EvalParams(name, dict(cfg), protocol, stream, weights, k, label_fraction)
        return execute(Evaluate(), ws, params, options, progress)
    if isinstance(weights, str):
        raise ConfigError("stream all needs one weights file per stream "
                          "(a mapping joint/motion/bone -> file)")
    per = {s: (weights or {}).get(s) for s in STREAMS}
    if name is not None:
        from pipelines.workspace import check_name

        check_name("evaluation", name)
    subs = {s: evaluate(ws, cfg, per[s], protocol, s,
                        name=None if name is None else f"{name}-{s}", k=k,
                        label_fraction=label_fraction, force=force, progress=progress,
                        wait=wait)
            for s in STREAMS}
    if name is None:
        name = default_name(protocol, ALL, per, k, label_fraction, seed, bench)
    params = EnsembleParams(name, str(cfg["dataset"]), str(bench), protocol,
                            int(cfg.get("frames", 50)),
                            {s: os.path.basename(r.output) for s, r in subs.items()})
    result = execute(Ensemble(), ws, params, options, progress)
    result.details["streams"] = subs
    return result


# -- embeddings and t-SNE ------------------------------------------------------------------
def split_features(ws: Workspace, dataset: str, benchmark: str, split: str,
                   weights: str | None, stream: str = "joint", *, indices: Any = None,
                   model_args: Mapping[str, Any] | None = None, frames: int = 50,
                   device: str | None = None, batch_size: int = 256, seed: int = 0,
                   progress: Progress | None = None) -> tuple[Any, Any]:
    """Pooled features (N, D) float32 and labels (N,) of one split (or positions
    ``indices`` within it), in ascending store order, encoder in eval mode."""
    import numpy as np

    from asar_model.training import pick_device

    progress = progress or Progress()
    if split not in ("train", "test"):
        raise ConfigError(f"split must be train or test, not {split!r}")
    store_loc = frames_location(ws, dataset, frames)
    cfg = {"model_args": dict(model_args or {}), "test_batch_size": batch_size}
    splits = open_splits(store_loc, benchmark, cfg)
    idx = getattr(splits, split)
    if indices is not None:
        idx = np.sort(idx[np.asarray(indices, np.int64)])
    dev = pick_device(device)
    model, loaded = load_model(weights, cfg, splits.classes, seed)
    progress.note(f"embed {dataset} {benchmark} {split} ({len(idx)} samples): {loaded}")
    feats, labels = features(model.to(dev), source(splits, idx, dev, cfg), stream, cfg, dev,
                             progress, f"features ({split})")
    return feats.cpu().numpy(), labels.cpu().numpy()


def embed(ws: Workspace, dataset: str, benchmark: str, split: str, weights: str | None,
          out: str, stream: str = "joint", **options: Any) -> Any:
    """Write the pooled features (N, 256) float32 of one split to ``out`` (.npy,
    atomically); returns the labels (N,) int64 in the same order. ``options`` as
    `split_features`."""
    import numpy as np

    feats, labels = split_features(ws, dataset, benchmark, split, weights, stream, **options)
    buf = io.BytesIO()
    np.save(buf, feats.astype(np.float32))
    storage.write_bytes(out, buf.getvalue())
    return labels.astype(np.int64)


def tsne_figure(ws: Workspace, dataset: str, benchmark: str, weights: str | None, out: str,
                stream: str = "joint", *, samples: int = 0, seed: int = 0,
                split: str = "test", perplexity: float = 30.0, iterations: int = 750,
                **options: Any) -> dict[str, Any]:
    """t-SNE of the embeddings of a split (``samples`` > 0: a seeded random subset of that
    many), coloured by class with the action names, written as a PNG to ``out`` with the
    coordinates beside it (`pipelines.figures.write_tsne`). ``options`` as
    `split_features` (model_args, frames, device, batch_size, progress). Returns a
    summary (points, classes, files, seconds)."""
    import numpy as np
    import torch

    from asar_data.frames_store import FramesStore
    from asar_model.tsne import tsne
    from pipelines.figures import title_line, write_tsne

    t0 = time.perf_counter()
    store = FramesStore(frames_location(ws, dataset, int(options.get("frames", 50))))
    side = store.split(benchmark, split)
    pick = np.random.default_rng(seed).permutation(len(side))[:samples or len(side)]
    feats, labels = split_features(ws, dataset, benchmark, split, weights, stream,
                                   indices=pick, seed=seed, **options)
    t1 = time.perf_counter()
    progress = options.get("progress") or Progress()
    with progress.bar("t-SNE", total=iterations, unit="iterations") as bar:
        points = tsne(torch.from_numpy(feats), perplexity, iterations, seed=seed,
                      on_iteration=lambda done, total: bar.update(completed=done)).numpy()
    names = store.names[np.sort(side[pick])]               # split_features' order
    title = title_line(f"t-SNE of {weights_stem(weights, seed)} ({stream})", dataset,
                       f"{benchmark} {split}")
    files = write_tsne(out, points, labels,
                       store_action_names(store, int(store.attrs.get("classes")
                                                     or labels.max() + 1)),
                       [str(n) for n in names], title, seed)
    return {**files, "points": len(points), "classes": int(len(np.unique(labels))),
            "seconds": {"features": round(t1 - t0, 3),
                        "tsne": round(time.perf_counter() - t1, 3)}}
