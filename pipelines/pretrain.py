"""The pretrain stage: ASAR pre-training of an ST-GCN encoder on one benchmark's training split.

A run lives in `<workdir>/<dataset>/runs/<run>/`: the resolved `config.yaml`,
`checkpoint.pt` (rewritten atomically after every epoch), `metrics.jsonl` (one line
per epoch) and `manifest.json` (an epoch is a shard). The same command started
again resumes after the last finished epoch; every random choice of an epoch
(batch order, augmentation, BN shuffle, k-means seeds, dropout) is drawn from
generators seeded by (seed, epoch), so a resumed run repeats an uninterrupted one.

Under torchrun (`torchrun --nproc-per-node N -m cli pretrain ...`) the stage trains on
N ranks with DistributedDataParallel (`asar_model.distributed`): the global batch stays
`batch_size`, each rank takes its block of `batch_size / N` rows of the batch a single
process would draw, with the augmentation a single process would give those rows;
keys, the BN shuffle and active sampling work across ranks as in MoCo. Rank 0 alone
writes the run folder; the checkpoint holds the whole state, so a run resumes on any
number of ranks.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from asar_data import storage
from pipelines.config import RUNTIME_KEYS, ConfigError, dump, get_key
from pipelines.errors import NonFiniteLoss
from pipelines.progress import Progress
from pipelines.stage import Input, ShardLog, plan
from pipelines.stages import PRETRAIN
from pipelines.workspace import Workspace, WorkspaceError

CHECKPOINT_FORMAT = "asar-pretrain/1"
# RUNTIME_KEYS (imported above) lives in pipelines.config; evaluate still imports it from here


@dataclass
class PretrainResult:
    dataset: str
    benchmark: str
    run_dir: str
    action: str
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)


def epoch_seed(seed: int, epoch: int, purpose: str) -> int:
    """A 62-bit seed for one purpose in one epoch (independent streams, reproducible)."""
    h = hashlib.sha256(f"{seed}/{epoch}/{purpose}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 2


def learning_rate(cfg: dict[str, Any], epoch: int) -> float:
    """The reference schedule: base_lr x 0.1 for each step epoch reached (epochs 0-based)."""
    drops = sum(1 for s in cfg.get("step") or [] if epoch >= s)
    return float(cfg["base_lr"]) * (0.1 ** drops)


def fingerprint_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in RUNTIME_KEYS}


def pick_device(name: str | None, local_rank: int | None = None):
    """The training device. Under torchrun (``local_rank`` given): cuda:LOCAL_RANK or the CPU."""
    import torch

    if local_rank is not None:
        from asar_model.distributed import device_for

        try:
            return device_for(name, local_rank)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for, but no CUDA device is available")
    return dev


def save_checkpoint(location: str, state: dict[str, Any]) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    storage.write_bytes(location, buf.getvalue())


def load_checkpoint(location: str) -> dict[str, Any]:
    import torch

    return torch.load(io.BytesIO(storage.read_bytes(location)), map_location="cpu",
                      weights_only=True)


def build_learner(cfg: dict[str, Any], distributed: bool = False):
    """The ASAR learner of ``model_args``; the torch.distributed one on several ranks."""
    from asar_model.learner import ASAR

    args = dict(cfg.get("model_args") or {})
    args.pop("base_encoder", None)
    if distributed:
        from asar_model.distributed import DistributedASAR

        return DistributedASAR(**args)
    return ASAR(**args)


def augment_rows(x, gen, rows: slice, total: int, padding_ratio: int, shear_amplitude: float):
    """``normal_augment`` of rows ``rows`` of a global batch of ``total``: the parameters of
    all ``total`` samples are drawn, in normal_augment's order, and this rank's applied,
    so a sample is augmented as in a single process. x (b, C, T, V, M) -> same shape."""
    from asar_data.augment import apply_shear, apply_temporal_crop, crop_starts, shear_matrices

    if padding_ratio > 0:
        starts = crop_starts(total, x.shape[2], gen, padding_ratio, x.device)[rows]  # (b,)
        x = apply_temporal_crop(x, starts, padding_ratio)
    if shear_amplitude > 0:
        r = shear_matrices(total, gen, shear_amplitude, x.device, x.dtype)[rows]  # (b, 3, 3)
        x = apply_shear(x, r)
    return x


def _check_run_dir(run, run_dir: str, force: bool) -> None:
    """Refuse to overwrite a run made with other settings unless --force."""
    if run.action != "start" or force or run.reason in ("no previous output", "output missing"):
        return
    old = run.manifest
    done = len(old.shards_done) if old else 0
    raise WorkspaceError(
        f"run {run_dir} was made with other settings ({run.reason}; {done} epochs done): "
        "name a new run with --run NAME, or overwrite it with --force"
    )


def pretrain(
    ws: Workspace,
    cfg: dict[str, Any],
    run_name: str,
    force: bool = False,
    progress: Progress | None = None,
) -> PretrainResult:
    """Run (or resume, or skip) a pre-training run described by a resolved config.

    Started by torchrun (or inside an initialised process group of several ranks), every
    rank calls this; rank 0 writes the run folder while the others wait at barriers.
    """
    from asar_model import distributed

    device = pick_device(cfg.get("device"), distributed.local_rank())
    ranks = distributed.setup(device)
    try:
        return _pretrain(ws, cfg, run_name, force, progress, device, ranks)
    finally:
        distributed.teardown(ranks)


def _pretrain(ws: Workspace, cfg: dict[str, Any], run_name: str, force: bool,
              progress: Progress | None, device, ranks) -> PretrainResult:
    import numpy as np
    import torch

    from asar_data.frames_store import FramesStore
    from asar_data.loader import make_source, rank_rows
    from asar_model import distributed

    lead = ranks is None or ranks.lead
    rank, world = (0, 1) if ranks is None else (ranks.rank, ranks.world_size)
    progress = (progress or Progress()) if lead else Progress()
    dataset, benchmark = cfg["dataset"], cfg["benchmark"]
    frames = int(cfg.get("frames", 50))
    store_out = ws.frames(dataset, frames)
    store_manifest = ws.complete_manifest(
        store_out, f"{frames}-frame store of {dataset}",
        f"asar-cli downsample {dataset}" + ("" if frames == 50 else f" --frames {frames}"),
    )
    run_dir = ws.run_dir(dataset, run_name)
    manifest_path = storage.join(run_dir, "manifest.json")
    ckpt_path = storage.join(run_dir, "checkpoint.pt")
    epochs = int(cfg["num_epoch"])
    inputs = {"frames": Input(ws.relative(store_out.store), store_manifest.fingerprint, "store")}
    run = plan(PRETRAIN, manifest_path, run_dir, fingerprint_params(cfg), inputs, force=force)
    _check_run_dir(run, run_dir, force)
    if run.action == "skip":
        progress.note(f"pretrain: run {run_dir} is complete ({epochs} epochs) - skipped")
        return PretrainResult(dataset, benchmark, run_dir, "skip", run.reason,
                              run.manifest.summary)
    batch = int(cfg["batch_size"])
    if batch % world:
        raise ConfigError(f"batch_size {batch} does not split over {world} ranks: give a "
                          f"multiple of {world} (it is the global batch, {world} ranks share it)")
    distributed.barrier(ranks)  # every rank has read the old manifest before rank 0 writes
    log = None
    if lead:
        if run.action == "start":
            storage.remove(run_dir)
        storage.makedirs(run_dir)
        storage.write_text(storage.join(run_dir, "config.yaml"), dump(cfg))
        log = ShardLog(run, epochs)
    distributed.barrier(ranks)

    seed = int(cfg.get("seed", 0))
    if cfg.get("deterministic"):
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)
    model = build_learner(cfg, distributed=ranks is not None).to(device)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=float(cfg["base_lr"]),
        momentum=float(cfg.get("momentum", 0.9)), weight_decay=float(cfg["weight_decay"]),
        nesterov=bool(cfg.get("nesterov", False)),
    )
    start_epoch = 0
    history: list[dict[str, Any]] = []
    if run.action == "resume" and storage.exists(ckpt_path):
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        start_epoch = int(state["epoch"])
        history = [json.loads(line) for line in _read_metrics(run_dir)][:start_epoch]
        progress.note(f"pretrain: resuming {run_dir} after epoch {start_epoch}")
    # epochs the manifest lists beyond the checkpoint (a kill between the two writes) are redone
    if log is not None:
        log.manifest.shards_done = [e for e in log.manifest.shards_done if e < start_epoch]
        log.flush()

    store = FramesStore(store_out.store)
    train_idx = store.split(benchmark, "train")
    if len(train_idx) < int(cfg["batch_size"]):
        raise ConfigError(f"{dataset} {benchmark} has {len(train_idx)} training samples, fewer "
                          f"than one batch ({cfg['batch_size']}): lower batch_size")
    budget = int(float(cfg.get("memory_budget_gb", 4)) * 2**30)
    source = make_source(store, train_idx, device, budget)
    steps = len(source) // batch
    rows = rank_rows(batch, rank, world)
    amp = cfg.get("amp") in ("bf16", True) and device.type == "cuda"
    step_fn = model if ranks is None else distributed.wrap(model, device)
    if cfg.get("compile") and device.type == "cuda":
        step_fn = torch.compile(step_fn)
    tb = _tensorboard(run_dir) if lead and cfg.get("tensorboard", True) else None
    where = f"{device}" if ranks is None else f"{world} ranks ({ranks.backend}, {device.type})"
    progress.note(
        f"pretrain {dataset} {benchmark}: {len(train_idx)} samples, {steps} steps/epoch, "
        f"{epochs} epochs on {where}, data {type(source).__name__}"
    )

    loop = _EpochLoop(cfg, model, step_fn, optimizer, source, device, ranks, batch, steps,
                      rows, amp, seed, ckpt_path)
    t_run = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        record = loop.run(epoch, epochs, progress)
        history.append(record)
        if lead:
            _save_epoch(cfg, run_dir, ckpt_path, epoch, epochs, model, optimizer, history, tb,
                        log)
        distributed.barrier(ranks)  # the others go on once epoch + 1 is on disk
    if tb is not None:
        tb.close()
    summary = {
        "epochs": epochs,
        "final_loss": history[-1]["loss"] if history else None,
        "seconds": round(time.perf_counter() - t_run, 3),
        "samples_per_s": float(np.mean([r["samples_per_s"] for r in history])) if history
        else None,
        "checkpoint": ckpt_path,
    }
    if log is not None:
        log.finish(summary)
    distributed.barrier(ranks)
    return PretrainResult(dataset, benchmark, run_dir, run.action, run.reason, summary)


@dataclass
class _EpochLoop:
    """One training epoch: its learning rate and seeds, batches, augmentation, steps."""

    cfg: dict[str, Any]
    model: Any
    step_fn: Any  # the model, or its DDP / compiled wrapper
    optimizer: Any
    source: Any
    device: Any
    ranks: Any
    batch: int
    steps: int
    rows: slice
    amp: bool
    seed: int
    ckpt_path: str

    def augment(self, x, gen):
        """Two views' worth of augmentation: crop then shear, per-sample parameters from gen."""
        from asar_data.augment import normal_augment
        from asar_data.streams import to_stream

        feeder = self.cfg.get("train_feeder_args") or {}
        shear = float(feeder.get("shear_amplitude", 0.5))
        pad = int(feeder.get("temperal_padding_ratio", 6))
        if self.ranks is None:
            x = normal_augment(x, gen, padding_ratio=pad, shear_amplitude=shear)
        else:
            x = augment_rows(x, gen, self.rows, self.batch, pad, shear)
        return to_stream(x, self.cfg.get("stream", "joint"))

    def check_finite(self, value: float, epoch: int, where: str) -> None:
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"loss became {value} in epoch {epoch + 1}{where}: stopped; the last good "
                f"checkpoint (after epoch {epoch}) is kept in {self.ckpt_path}")

    def run(self, epoch: int, epochs: int, progress: Progress) -> dict[str, Any]:
        """Train one epoch; returns its metrics record."""
        import torch

        from asar_model import distributed

        lr = learning_rate(self.cfg, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rank, world = (0, 1) if self.ranks is None else (self.ranks.rank, self.ranks.world_size)
        gen = torch.Generator(device=self.device).manual_seed(epoch_seed(self.seed, epoch, "data"))
        # dropout masks: rank 0 draws a single process's stream, each other rank its own
        stream = "dropout" if rank == 0 else f"dropout/{rank}"
        torch.manual_seed(epoch_seed(self.seed, epoch, stream))
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        c_sum = torch.zeros((), device=self.device)
        log_every = int(self.cfg.get("log_every", 10))
        t0 = time.perf_counter()
        with progress.bar(f"epoch {epoch + 1}/{epochs}", total=self.steps, unit="steps") as bar:
            batches = self.source.batches(self.batch, gen, rank=rank, world_size=world)
            for i, (x, _) in enumerate(batches):
                v1, v2 = self.augment(x, gen), self.augment(x, gen)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss, stats = self.step_fn(v1, v2, epoch=epoch, generator=gen)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                loss_sum += stats["loss"].float()
                c_sum += stats["relabel_c"].float()
                if (i + 1) % log_every == 0 or i + 1 == self.steps:  # the only host syncs
                    mean = (distributed.mean_over_ranks(loss_sum, self.ranks) / (i + 1)).item()
                    self.check_finite(mean, epoch, f", step {i + 1}")
                    rate = (i + 1) * self.batch / (time.perf_counter() - t0)
                    bar.update(completed=i + 1, loss=f"{mean:.4f}", lr=f"{lr:g}",
                               samples_s=f"{rate:.0f}")
        seconds = time.perf_counter() - t0
        steps = max(self.steps, 1)
        mean_loss = (distributed.mean_over_ranks(loss_sum, self.ranks) / steps).item()
        self.check_finite(mean_loss, epoch, "")
        record = {
            "epoch": epoch + 1, "loss": mean_loss, "lr": lr,
            "relabel_c": (distributed.mean_over_ranks(c_sum, self.ranks) / steps).item(),
            "active_sampling": epoch >= int(get_key(self.cfg, "model_args.active_epoch", 150)),
            "seconds": round(seconds, 3),
            "samples_per_s": round(self.steps * self.batch / seconds, 1),
        }
        if self.ranks is not None:
            record["world_size"] = world
        return record


def _save_epoch(cfg: dict[str, Any], run_dir: str, ckpt_path: str, epoch: int, epochs: int,
                model, optimizer, history: list[dict[str, Any]], tb, log: ShardLog) -> None:
    """Rank 0's writes after an epoch: checkpoint, snapshot, metrics, tensorboard, manifest."""
    import torch

    record = history[-1]
    rng = {"torch": torch.get_rng_state()}
    save_checkpoint(ckpt_path, {
        "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "rng": rng, "config": cfg,
        "dataset": cfg["dataset"], "benchmark": cfg["benchmark"],
    })
    interval = int(cfg.get("save_interval") or 0)
    if interval and (epoch + 1) % interval == 0 and epoch + 1 < epochs:
        storage.write_bytes(storage.join(run_dir, f"epoch{epoch + 1:03d}.pt"),
                            storage.read_bytes(ckpt_path))
    storage.write_text(storage.join(run_dir, "metrics.jsonl"),
                       "".join(json.dumps(r) + "\n" for r in history))
    if tb is not None:
        for k in ("loss", "lr", "relabel_c", "samples_per_s"):
            tb.add_scalar(f"pretrain/{k}", record[k], epoch + 1)
    log.done([epoch])
    log.flush()


def _read_metrics(run_dir: str) -> list[str]:
    loc = storage.join(run_dir, "metrics.jsonl")
    if not storage.exists(loc):
        return []
    return [line for line in storage.read_text(loc).splitlines() if line.strip()]


def _tensorboard(run_dir: str):
    """A SummaryWriter when tensorboard is installed (and the run dir is local), else None."""
    if storage.is_url(run_dir):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=storage.join(run_dir, "tensorboard"))
