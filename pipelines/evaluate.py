"""The evaluate stage: linear, k-NN, semi-supervised and fine-tuning protocols.

An evaluation lives in `<workdir>/<dataset>/eval/<name>/`: `result.json`,
`confusion.png`, `scores.npy` (the test samples' class scores, (M, C) float32, in
ascending store order) and `manifest.json`. Its inputs are the 50-frame store (by its
manifest fingerprint) and the weights file (name, size, mtime); its parameters the
resolved config and the protocol options. Unchanged -> skipped.

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
  the whole training split. Training augments with the normal augmentation (crop +
  shear) on the device; testing runs in eval mode.
- stream ``all``: joint, motion and bone evaluated each with its own weights (each its
  own cached evaluation), and the 3-stream ensemble (the mean of the three streams'
  test class scores) reported beside them.
"""
from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asar_data import storage
from pipelines.config import ConfigError, get_key
from pipelines.fingerprint import digest, file_fingerprint
from pipelines.pretrain import RUNTIME_KEYS, epoch_seed, pick_device
from pipelines.progress import Progress
from pipelines.stage import Input, ShardLog, plan
from pipelines.stages import EVALUATE
from pipelines.workspace import Workspace

PROTOCOLS = ("linear", "knn", "semi", "finetune")
STREAMS = ("joint", "motion", "bone")
ALL = "all"
RESULT_FORMAT = "asar-eval/1"
BEST_NOTE = ("top1/top5: after the last epoch. best_top1: the best top-1 of the evaluations "
             "every eval_interval epochs, chosen on the test set - the number the reference "
             "reports.")


class FrozenEncoderChanged(RuntimeError):
    """The encoder's weights changed during an evaluation that must keep them frozen."""


@dataclass
class EvalResult:
    """One evaluation: where it is, whether it ran, and its result.json."""

    dataset: str
    benchmark: str
    protocol: str
    stream: str
    eval_dir: str
    action: str
    reason: str
    result: dict[str, Any] = field(default_factory=dict)
    streams: dict[str, EvalResult] = field(default_factory=dict)   # stream "all" only


@dataclass
class Splits:
    """The store and the sample indices (ascending) an evaluation reads."""

    store: Any                 # asar_data.frames_store.FramesStore
    train: Any                 # np.ndarray (n,) int64
    test: Any                  # np.ndarray (m,) int64
    classes: int


# -- names and inputs ----------------------------------------------------------------------
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


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


def default_name(protocol: str, stream: str, weights: str | Mapping[str, str] | None,
                 k: int = 20, label_fraction: float | None = None, seed: int = 0) -> str:
    """`<protocol tag>-<stream>-<weights stem>`, e.g. `linear-joint-asar300`."""
    if isinstance(weights, Mapping):
        stems = list(dict.fromkeys(weights_stem(weights.get(s), seed) for s in STREAMS))
        stem = "+".join(stems)
    else:
        stem = weights_stem(weights, seed)
    return f"{protocol_tag(protocol, k, label_fraction)}-{stream}-{stem}"


def resolve_weights(ws: Workspace, dataset: str, spec: str | None) -> str | None:
    """A weights file from a path/URL, or a run name of the dataset (its checkpoint.pt)."""
    if spec is None or storage.exists(spec):
        return spec
    ckpt = storage.join(ws.run_dir(dataset, spec), "checkpoint.pt")
    if storage.exists(ckpt):
        return ckpt
    from asar_model.checkpoint import CheckpointError

    raise CheckpointError(f"weights {spec} not found: not a file, nor a run of {dataset} "
                          f"(no {ckpt})")


def weights_input(ws: Workspace, location: str | None) -> Input:
    """The weights as a stage input: name/size/mtime fingerprint, or the random-init marker.

    Files inside the workspace are recorded relative to its root (a moved workspace stays
    valid)."""
    if location is None:
        return Input("random-init", digest("random-init"), "value")
    from asar_model.checkpoint import CheckpointError

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


def frames_location(ws: Workspace, dataset: str, frames: int = 50) -> str:
    """Where the complete frames store is (raises like `frames_input` when it is not)."""
    return ws.resolve(frames_input(ws, dataset, frames).location)


def stage_params(cfg: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """What an evaluation's output depends on: the config (less runtime keys) + options."""
    params = {k: v for k, v in cfg.items() if k not in RUNTIME_KEYS}
    params.update(options)
    return params


# -- data ----------------------------------------------------------------------------------
def open_splits(store_location: str, benchmark: str, cfg: Mapping[str, Any]) -> Splits:
    """The benchmark's train/test indices and the number of classes (store attrs first)."""
    import numpy as np

    from asar_data.frames_store import FramesStore

    store = FramesStore(store_location)
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

    budget = int(float(cfg.get("memory_budget_gb", 4)) * 2**30)
    return make_source(splits.store, indices, device, budget)


def autocast(device: Any, cfg: Mapping[str, Any]) -> Any:
    """bf16 autocast on CUDA when the config asks for it (``amp: bf16``), else a no-op."""
    import torch

    enabled = cfg.get("amp") in ("bf16", True) and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def encode(model: Any, src: Any, stream: str, cfg: Mapping[str, Any], device: Any,
           progress: Progress, what: str, head: bool = False) -> tuple[Any, Any]:
    """Eval-mode pass over a source in store order -> (features (N, D) or, with ``head``,
    class scores (N, C), float32; labels (N,)), both on the device."""
    import torch

    from asar_data.streams import to_stream

    batch = int(cfg.get("test_batch_size") or cfg.get("batch_size", 128))
    model.eval()
    outs, labels = [], []
    fn = model if head else model.forward_features
    with torch.no_grad(), progress.bar(what, total=len(src), unit="samples") as bar:
        for x, y in src.batches(batch, None, drop_last=False):
            with autocast(device, cfg):
                outs.append(fn(to_stream(x, stream)).float())
            labels.append(y)
            bar.advance(len(y))
    return torch.cat(outs), torch.cat(labels)


# -- encoders ------------------------------------------------------------------------------
def load_model(weights: str | None, cfg: Mapping[str, Any], classes: int, seed: int
               ) -> tuple[Any, str]:
    """(encoder with a new fc of ``classes`` outputs, a description of its weights)."""
    from asar_model.checkpoint import build_encoder, load_encoder

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


# -- protocols -----------------------------------------------------------------------------
def frozen_features(model: Any, splits: Splits, stream: str, cfg: Mapping[str, Any],
                    device: Any, progress: Progress) -> tuple[Any, Any, Any, Any, float]:
    """Pooled features and labels of the train and test splits, computed once.

    Returns (train_x (N, 256), train_y, test_x, test_y, seconds).
    """
    t0 = time.perf_counter()
    train_x, train_y = encode(model, source(splits, splits.train, device, cfg), stream, cfg,
                              device, progress, "features (train)")
    test_x, test_y = encode(model, source(splits, splits.test, device, cfg), stream, cfg,
                            device, progress, "features (test)")
    return train_x, train_y, test_x, test_y, round(time.perf_counter() - t0, 3)


def run_linear(model: Any, splits: Splits, stream: str, cfg: Mapping[str, Any], device: Any,
               seed: int, progress: Progress) -> dict[str, Any]:
    """Linear protocol on features computed once; the encoder checked unchanged after."""
    from asar_model.checkpoint import state_digest
    from asar_model.heads import train_linear

    before = state_digest(model)
    train_x, train_y, test_x, test_y, seconds = frozen_features(model, splits, stream, cfg,
                                                                device, progress)
    t1 = time.perf_counter()
    epochs = int(cfg["num_epoch"])
    with progress.bar("linear fc", total=epochs, unit="epochs") as bar:
        run = train_linear(train_x, train_y, test_x, test_y, splits.classes, cfg, seed,
                           on_epoch=lambda e, loss: bar.update(completed=e, loss=f"{loss:.4f}"))
    check_frozen(model, before, "linear evaluation")
    return {"scores": run.scores, "labels": test_y, "evaluations": run.evaluations,
            "best": (run.best_top1, run.best_epoch), "encoder_unchanged": True,
            "seconds": {"features": seconds, "train": round(time.perf_counter() - t1, 3)}}


def run_knn(model: Any, splits: Splits, stream: str, cfg: Mapping[str, Any], device: Any,
            k: int, progress: Progress) -> dict[str, Any]:
    """Cosine k-NN on frozen features."""
    from asar_model.checkpoint import state_digest
    from asar_model.heads import knn_scores

    before = state_digest(model)
    train_x, train_y, test_x, test_y, seconds = frozen_features(model, splits, stream, cfg,
                                                                device, progress)
    t1 = time.perf_counter()
    scores = knn_scores(train_x, train_y, test_x, splits.classes, k)
    check_frozen(model, before, "k-NN evaluation")
    return {"scores": scores, "labels": test_y, "evaluations": [], "best": None,
            "encoder_unchanged": True,
            "seconds": {"features": seconds, "knn": round(time.perf_counter() - t1, 3)}}


def finetune_epoch(model: Any, opt: Any, src: Any, stream: str, cfg: Mapping[str, Any],
                   device: Any, seed: int, epoch: int) -> float:
    """One training epoch of every weight on augmented batches -> mean loss."""
    import torch
    import torch.nn.functional as F

    from asar_data.augment import normal_augment
    from asar_data.streams import to_stream

    feeder = cfg.get("train_feeder_args") or {}
    shear = float(feeder.get("shear_amplitude", 0.5))
    pad = int(feeder.get("temperal_padding_ratio", 6))
    batch, drop_last = int(cfg["batch_size"]), bool(cfg.get("drop_last", True))
    gen = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch, "data"))
    torch.manual_seed(epoch_seed(seed, epoch, "dropout"))
    model.train()
    loss_sum, steps = torch.zeros((), device=device), 0
    for x, y in src.batches(batch, gen, drop_last):
        x = to_stream(normal_augment(x, gen, padding_ratio=pad, shear_amplitude=shear), stream)
        with autocast(device, cfg):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        steps += 1
    return (loss_sum / max(steps, 1)).item()


def run_finetune(model: Any, splits: Splits, train_idx: Any, stream: str,
                 cfg: Mapping[str, Any], device: Any, seed: int, progress: Progress
                 ) -> dict[str, Any]:
    """Fine-tune encoder + fc on ``train_idx``; test (eval mode) every eval_interval epochs."""
    from asar_model.heads import (
        best_of,
        eval_epochs,
        learning_rate,
        make_sgd,
        steps_per_epoch,
        topk_accuracy,
    )

    t0 = time.perf_counter()
    model = model.to(device)
    train_src = source(splits, train_idx, device, cfg)
    test_src = source(splits, splits.test, device, cfg)
    steps_per_epoch(len(train_src), int(cfg["batch_size"]), bool(cfg.get("drop_last", True)))
    opt = make_sgd(model.parameters(), cfg)
    epochs = int(cfg["num_epoch"])
    checks = eval_epochs(epochs, int(cfg.get("eval_interval", 5)))
    evaluations, scores, labels = [], None, None
    with progress.bar("fine-tune", total=epochs, unit="epochs") as bar:
        for epoch in range(epochs):
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, epoch)
            loss = finetune_epoch(model, opt, train_src, stream, cfg, device, seed, epoch)
            if epoch + 1 in checks:
                scores, labels = encode(model, test_src, stream, cfg, device, Progress(),
                                        "test", head=True)
                acc = topk_accuracy(scores, labels)
                evaluations.append({"epoch": epoch + 1, "top1": acc[1], "top5": acc[5],
                                    "train_loss": loss})
            bar.update(completed=epoch + 1, loss=f"{loss:.4f}")
    return {"scores": scores, "labels": labels, "evaluations": evaluations,
            "best": best_of(evaluations), "train_samples": len(train_idx),
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


def write_outputs(eval_dir: str, result: Mapping[str, Any], scores: Any) -> None:
    """result.json, confusion.png and scores.npy (M, C) float32, each atomically."""
    import numpy as np

    from asar_data.actions import action_names
    from pipelines.figures import title_line, write_confusion

    buf = io.BytesIO()
    np.save(buf, scores.detach().float().cpu().numpy())
    storage.write_bytes(storage.join(eval_dir, "scores.npy"), buf.getvalue())
    conf = np.asarray(result["confusion"])
    title = title_line(eval_dir.rstrip("/").rsplit("/", 1)[-1], result["dataset"],
                       result["benchmark"], f"{result['protocol']} {result['stream']}",
                       result["accuracy"]["top1"])
    write_confusion(storage.join(eval_dir, "confusion.png"), conf,
                    action_names(result["dataset"], len(conf)), title)
    storage.write_text(storage.join(eval_dir, "result.json"),
                       json.dumps(finite(result), indent=1, allow_nan=False) + "\n")


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

    return np.load(io.BytesIO(storage.read_bytes(storage.join(eval_dir, "scores.npy"))))


# -- the stage -----------------------------------------------------------------------------
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
) -> EvalResult:
    """Run (or skip, when unchanged) one evaluation described by a resolved config.

    ``weights``: a weights file (path or URL; None = the seeded random-init baseline); for
    ``stream="all"`` a mapping stream -> file (or None). ``stream`` None: ``cfg["stream"]``.
    ``k``: neighbours for knn. ``label_fraction``: for semi (default ``cfg["label_fraction"]``).
    ``name``: the eval folder (default `default_name`).
    """
    progress = progress or Progress()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    stream = stream or cfg.get("stream", "joint")
    if protocol == "semi":
        label_fraction = label_fraction or cfg.get("label_fraction")
        if not label_fraction:
            raise ConfigError("protocol semi needs a label fraction (e.g. 0.01 or 0.1)")
    if stream == ALL:
        return evaluate_all(ws, cfg, weights, protocol, name, k, label_fraction, force, progress)
    if stream not in STREAMS:
        raise ConfigError(f"unknown stream {stream!r}: expected {', '.join(STREAMS)} or all")
    if isinstance(weights, Mapping):
        weights = weights.get(stream)
    return evaluate_stream(ws, cfg, weights, protocol, stream, name, k, label_fraction, force,
                           progress)


def evaluate_stream(ws: Workspace, cfg: Mapping[str, Any], weights: str | None, protocol: str,
                    stream: str, name: str | None, k: int, label_fraction: float | None,
                    force: bool, progress: Progress) -> EvalResult:
    """One stream's evaluation as a stage run in its own eval folder."""
    dataset, benchmark = cfg["dataset"], cfg["benchmark"]
    seed = int(cfg.get("seed", 0))
    frames = int(cfg.get("frames", 50))
    name = name or default_name(protocol, stream, weights, k, label_fraction, seed)
    eval_dir = ws.eval_dir(dataset, name)
    inputs = {"frames": frames_input(ws, dataset, frames),
              "weights": weights_input(ws, weights)}
    options = {"protocol": protocol, "stream": stream, "weights": inputs["weights"].location,
               "k": k if protocol == "knn" else None,
               "label_fraction": label_fraction if protocol == "semi" else None}
    run = plan(EVALUATE, storage.join(eval_dir, "manifest.json"),
               storage.join(eval_dir, "result.json"), stage_params(cfg, **options), inputs,
               force=force)
    if run.action == "skip":
        progress.note(f"evaluate: {eval_dir} is up to date - skipped")
        return EvalResult(dataset, benchmark, protocol, stream, eval_dir, "skip", run.reason,
                          read_result(eval_dir))
    storage.remove(eval_dir)
    storage.makedirs(eval_dir)
    log = ShardLog(run, 1)
    result = compute(cfg, ws.resolve(inputs["frames"].location), weights, protocol, stream, k,
                     label_fraction, progress, eval_dir)
    log.done([0])
    log.finish({"top1": result["accuracy"]["top1"], "top5": result["accuracy"]["top5"],
                "best_top1": result["accuracy"].get("best_top1")})
    return EvalResult(dataset, benchmark, protocol, stream, eval_dir, run.action, run.reason,
                      result)


def compute(cfg: Mapping[str, Any], store_location: str, weights: str | None, protocol: str,
            stream: str, k: int, label_fraction: float | None, progress: Progress,
            eval_dir: str) -> dict[str, Any]:
    """Load, run the protocol, write the outputs; returns the result dict."""
    from asar_model.heads import class_balanced_subset

    t0 = time.perf_counter()
    seed = int(cfg.get("seed", 0))
    device = pick_device(cfg.get("device"))
    splits = open_splits(store_location, cfg["benchmark"], cfg)
    model, loaded = load_model(weights, cfg, splits.classes, seed)
    model = model.to(device)
    progress.note(f"evaluate {protocol} {stream} on {cfg['dataset']} {cfg['benchmark']}: "
                  f"{len(splits.train)} train, {len(splits.test)} test samples on {device}; "
                  f"weights {loaded}")
    train_idx = splits.train
    if protocol == "linear":
        out = run_linear(model, splits, stream, cfg, device, seed, progress)
    elif protocol == "knn":
        out = run_knn(model, splits, stream, cfg, device, k, progress)
    else:
        if protocol == "semi":
            pos = class_balanced_subset(splits.store.labels[train_idx], label_fraction, seed)
            train_idx = train_idx[pos]
        out = run_finetune(model, splits, train_idx, stream, cfg, device, seed, progress)
    result = {
        "format": RESULT_FORMAT, "protocol": protocol, "stream": stream,
        "dataset": cfg["dataset"], "benchmark": cfg["benchmark"], "weights": weights,
        "weights_loaded": loaded, "classes": splits.classes,
        "train_samples": len(train_idx), "test_samples": len(splits.test),
        "k": k if protocol == "knn" else None,
        "label_fraction": label_fraction if protocol == "semi" else None,
        **accuracy_block(out["scores"], out["labels"], splits.classes, out["best"]),
        "evaluations": out["evaluations"],
        "encoder_unchanged": out.get("encoder_unchanged"),
        "seconds": {**out["seconds"], "total": round(time.perf_counter() - t0, 3)},
    }
    write_outputs(eval_dir, result, out["scores"])
    return finite(result)


def evaluate_all(ws: Workspace, cfg: Mapping[str, Any],
                 weights: str | Mapping[str, str | None] | None, protocol: str,
                 name: str | None, k: int, label_fraction: float | None, force: bool,
                 progress: Progress) -> EvalResult:
    """Joint, motion and bone, each with its own weights, and their score-average ensemble."""
    if isinstance(weights, str):
        raise ConfigError("stream all needs one weights file per stream "
                          "(a mapping joint/motion/bone -> file)")
    per = {s: (weights or {}).get(s) for s in STREAMS}
    subs = {s: evaluate_stream(ws, cfg, per[s], protocol, s, name and f"{name}-{s}", k,
                               label_fraction, force, progress) for s in STREAMS}
    dataset, benchmark = cfg["dataset"], cfg["benchmark"]
    seed = int(cfg.get("seed", 0))
    name = name or default_name(protocol, ALL, per, k, label_fraction, seed)
    eval_dir = ws.eval_dir(dataset, name)
    inputs = {s: Input(ws.relative(r.eval_dir), _manifest_fingerprint(r.eval_dir), "store")
              for s, r in subs.items()}
    params = {"protocol": protocol, "streams": list(STREAMS), "ensemble": "mean of scores"}
    run = plan(EVALUATE, storage.join(eval_dir, "manifest.json"),
               storage.join(eval_dir, "result.json"), params, inputs, force=force)
    if run.action == "skip":
        return EvalResult(dataset, benchmark, protocol, ALL, eval_dir, "skip", run.reason,
                          read_result(eval_dir), subs)
    storage.remove(eval_dir)
    storage.makedirs(eval_dir)
    log = ShardLog(run, 1)
    store = frames_location(ws, dataset, int(cfg.get("frames", 50)))
    result, scores = ensemble_result(subs, protocol, store)
    write_outputs(eval_dir, result, scores)
    result = finite(result)
    log.done([0])
    log.finish({"top1": result["accuracy"]["top1"], "top5": result["accuracy"]["top5"]})
    return EvalResult(dataset, benchmark, protocol, ALL, eval_dir, run.action, run.reason,
                      result, subs)


def _manifest_fingerprint(eval_dir: str) -> str:
    from pipelines.manifest import Manifest

    m = Manifest.load(storage.join(eval_dir, "manifest.json"))
    return m.fingerprint if m is not None else ""


def ensemble_scores(scores: list[Any]) -> Any:
    """The 3-stream ensemble: the mean of the streams' class scores, each (M, C) -> (M, C)."""
    import torch

    return torch.stack([torch.as_tensor(s, dtype=torch.float32) for s in scores]).mean(dim=0)


def ensemble_result(subs: Mapping[str, EvalResult], protocol: str, store_location: str
                    ) -> tuple[dict[str, Any], Any]:
    """(result.json of an ensemble: each stream's accuracies and the ensemble's; its scores)."""
    import numpy as np
    import torch

    from asar_data.frames_store import FramesStore

    first = next(iter(subs.values()))
    store = FramesStore(store_location)
    labels = store.labels[np.sort(store.split(first.benchmark, "test"))].astype(np.int64)
    scores = ensemble_scores([read_scores(r.eval_dir) for r in subs.values()])
    result = {
        "format": RESULT_FORMAT, "protocol": protocol, "stream": ALL,
        "dataset": first.dataset, "benchmark": first.benchmark,
        "ensemble": "mean of the streams' test class scores (after each stream's last epoch)",
        "weights": {s: r.result["weights"] for s, r in subs.items()},
        "streams": {s: {"eval_dir": r.eval_dir, **r.result["accuracy"]}
                    for s, r in subs.items()},
        **accuracy_block(scores, torch.from_numpy(labels), int(first.result["classes"]), None),
    }
    return result, scores


# -- embeddings and t-SNE ------------------------------------------------------------------
def split_features(ws: Workspace, dataset: str, benchmark: str, split: str,
                   weights: str | None, stream: str = "joint", *, indices: Any = None,
                   model_args: Mapping[str, Any] | None = None, frames: int = 50,
                   device: str | None = None, batch_size: int = 256, seed: int = 0,
                   progress: Progress | None = None) -> tuple[Any, Any]:
    """Pooled features (N, D) float32 and labels (N,) of one split (or positions
    ``indices`` within it), in ascending store order, encoder in eval mode."""
    import numpy as np

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
    feats, labels = encode(model.to(dev), source(splits, idx, dev, cfg), stream, cfg, dev,
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

    from asar_data.actions import action_names
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
    points = tsne(torch.from_numpy(feats), perplexity, iterations, seed=seed).numpy()
    names = store.names[np.sort(side[pick])]               # split_features' order
    title = title_line(f"t-SNE of {weights_stem(weights, seed)} ({stream})", dataset,
                       f"{benchmark} {split}")
    files = write_tsne(out, points, labels,
                       action_names(dataset, int(store.attrs.get("classes") or labels.max() + 1)),
                       [str(n) for n in names], title, seed)
    return {**files, "points": len(points), "classes": int(len(np.unique(labels))),
            "seconds": {"features": round(t1 - t0, 3),
                        "tsne": round(time.perf_counter() - t1, 3)}}
