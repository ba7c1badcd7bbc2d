"""The pretrain stage: ASAR pre-training of an ST-GCN encoder on one benchmark's training split.

A run lives in `<workdir>/<dataset>/runs/<run>/`: the resolved `config.yaml`,
`checkpoint.pt` (rewritten atomically after every epoch), `metrics.jsonl` (one line
per epoch) and `manifest.json` (an epoch is a shard); its lock is `runs/<run>.lock`.
The same command started again resumes after the last finished epoch; every random
choice of an epoch (batch order, augmentation, BN shuffle, k-means seeds, dropout) is
drawn from generators seeded by (seed, epoch), so a resumed run repeats an
uninterrupted one.

Under torchrun (`torchrun --nproc-per-node N -m asar pretrain ...`) the stage trains on
N ranks with DistributedDataParallel (`asar_model.distributed`): the global batch stays
`batch_size`, each rank takes its block of `batch_size / N` rows of the batch a single
process would draw, with the augmentation a single process would give those rows;
keys, the BN shuffle and active sampling work across ranks as in MoCo. Rank 0 alone
writes the run folder; the checkpoint holds the whole state, so a run resumes on any
number of ranks.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asar_data import storage
from pipelines.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from pipelines.config import RUNTIME_KEYS, ConfigError, ConfigParams, dump, get_key
from pipelines.runner import Options, Run, Stage, StageResult, execute
from pipelines.stage import Input
from pipelines.workspace import Output, Workspace, WorkspaceError

__all__ = ["CHECKPOINT_FORMAT", "RUNTIME_KEYS", "Pretrain", "PretrainParams", "pretrain",
           "load_checkpoint"]


@dataclass(frozen=True)
class PretrainParams(ConfigParams):
    """A run: its name and the resolved configuration (the reference keys, with
    ``dataset`` and ``benchmark``; see `pipelines.config`)."""

    run: str
    config: Mapping[str, Any]

    def __post_init__(self) -> None:
        from pipelines.config import validate_config

        # the configuration to run with: checked, reference keys normalised (one line each)
        object.__setattr__(self, "config", validate_config(self.config, "pretrain")[0])

    @property
    def epochs(self) -> int:
        return int(self.config["num_epoch"])


class Pretrain(Stage[PretrainParams]):
    name, version, unit = "pretrain", 1, "epochs"

    def __init__(self) -> None:
        self.device: Any = None
        self.ranks: Any = None

    # -- ranks -----------------------------------------------------------------------------
    def setup(self, p: PretrainParams) -> bool:
        from asar_model import distributed
        from asar_model.training import pick_device

        self.device = pick_device(p.config.get("device"), distributed.local_rank())
        self.ranks = distributed.setup(self.device)
        return self.ranks is None or self.ranks.lead

    def barrier(self, run: Run[PretrainParams] | None) -> None:
        from asar_model import distributed

        distributed.barrier(self.ranks)

    def teardown(self) -> None:
        from asar_model import distributed

        distributed.teardown(self.ranks)

    # -- declaration -------------------------------------------------------------------------
    def output(self, ws: Workspace, p: PretrainParams) -> Output:
        return ws.run(p.dataset, p.run)

    def command(self, p: PretrainParams) -> str:
        return f"pretrain {p.dataset} run {p.run}"

    def fingerprint_params(self, p: PretrainParams) -> dict[str, Any]:
        return {k: v for k, v in p.config.items() if k not in RUNTIME_KEYS}

    def inputs(self, ws: Workspace, p: PretrainParams, state: dict[str, Any]
               ) -> dict[str, Input]:
        out = ws.frames(p.dataset, p.frames)
        m = ws.complete_manifest(
            out, f"{p.frames}-frame store of {p.dataset}",
            f"asar-cli downsample {p.dataset}" + ("" if p.frames == 50 else
                                                  f" --frames {p.frames}"))
        return {"frames": Input(ws.relative(out.store), m.fingerprint, "store")}

    def shard_weights(self, run: Run[PretrainParams]) -> list[int]:
        return [1] * run.params.epochs

    def refuse_start(self, run: Run[PretrainParams], force: bool) -> None:
        """Never overwrite a run made with other settings without --force."""
        if force or run.plan.reason in ("no previous output", "output missing"):
            return
        from pipelines.manifest import Manifest

        old = Manifest.load(run.output.manifest)
        done = len(old.shards_done) if old else 0
        raise WorkspaceError(
            f"run {run.output.store} was made with other settings ({run.plan.reason}; {done} "
            "epochs done): name a new run with --run NAME, or overwrite it with --force")

    def details(self, run: Run[PretrainParams], summary: Mapping[str, Any]) -> dict[str, Any]:
        return {"dataset": run.params.dataset, "benchmark": run.params.benchmark,
                "run": run.params.run, "run_dir": run.output.store}

    # -- work --------------------------------------------------------------------------------
    def begin(self, run: Run[PretrainParams]) -> None:
        import torch

        from asar_data.frames_store import FramesStore
        from asar_data.loader import make_source
        from asar_model import distributed
        from asar_model.training import (
            Augmentation,
            PretrainEpoch,
            build_learner,
            make_sgd,
            memory_budget,
            uses_bf16,
        )

        p, cfg, device, ranks = run.params, run.params.config, self.device, self.ranks
        world = 1 if ranks is None else ranks.world_size
        batch = int(cfg["batch_size"])
        if batch % world:
            raise ConfigError(f"batch_size {batch} does not split over {world} ranks: give a "
                              f"multiple of {world} (it is the global batch, {world} ranks "
                              "share it)")
        ckpt = storage.join(run.where, "checkpoint.pt")
        if run.lead:
            storage.makedirs(run.where)
            storage.write_text(storage.join(run.where, "config.yaml"), dump(dict(cfg)))
        seed = int(cfg.get("seed", 0))
        if cfg.get("deterministic"):
            from asar_model.determinism import make_deterministic

            make_deterministic()
        torch.manual_seed(seed)
        model = build_learner(cfg.get("model_args"), distributed=ranks is not None).to(device)
        optimizer = make_sgd([q for q in model.parameters() if q.requires_grad], cfg)
        start_epoch, history = 0, []
        if run.plan.action == "resume" and storage.exists(ckpt):
            state = load_checkpoint(ckpt)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"]["torch"])
            start_epoch = int(state["epoch"])
            history = read_metrics(run.where)[:start_epoch]
            run.progress.note(f"pretrain: resuming {run.where} after epoch {start_epoch}")
        # a kill between the checkpoint's and the manifest's writes: the checkpoint decides
        run.redo({e for e in run.done if e >= start_epoch})
        run.adopt(set(range(start_epoch)))

        store = FramesStore(run.ws.frames(p.dataset, p.frames).store)
        train_idx = store.split(p.benchmark, "train")
        if len(train_idx) < batch:
            raise ConfigError(f"{p.dataset} {p.benchmark} has {len(train_idx)} training "
                              f"samples, fewer than one batch ({batch}): lower batch_size")
        source = make_source(store, train_idx, device, memory_budget(cfg))
        steps = len(source) // batch
        step_fn = model if ranks is None else distributed.wrap(model, device)
        if cfg.get("compile") and device.type == "cuda":
            step_fn = torch.compile(step_fn)
        where = f"{device}" if ranks is None else f"{world} ranks ({ranks.backend}, " \
                                                  f"{device.type})"
        run.progress.note(
            f"pretrain {p.dataset} {p.benchmark}: {len(train_idx)} samples, {steps} steps/epoch, "
            f"{p.epochs} epochs on {where}, data {type(source).__name__}")
        run.state.update(
            model=model, optimizer=optimizer, history=history, ckpt=ckpt, steps=steps,
            t0=time.perf_counter(), epochs_here=0,
            tb=_tensorboard(run.where) if run.lead and cfg.get("tensorboard", True) else None,
            loop=PretrainEpoch(
                model, step_fn, optimizer, source, device, batch, steps,
                Augmentation.from_config(cfg), str(cfg.get("stream", "joint")),
                uses_bf16(cfg, device), seed, ranks, int(cfg.get("log_every", 10)),
                int(get_key(cfg, "model_args.active_epoch", 150))))

    def run_shard(self, run: Run[PretrainParams], epoch: int) -> dict[str, Any]:
        from asar_model.training import NonFiniteLoss, learning_rate

        s, epochs = run.state, run.params.epochs
        lr = learning_rate(run.params.config, epoch)
        with run.progress.bar(f"epoch {epoch + 1}/{epochs}", total=s["steps"],
                              unit="steps") as bar:
            def on_log(step: int, loss: float, rate: float) -> None:
                bar.update(completed=step, loss=f"{loss:.4f}", lr=f"{lr:g}",
                           samples_s=f"{rate:.0f}")
                run.beat(epoch=epoch + 1, epochs=epochs, step=step, steps=s["steps"],
                         loss=round(loss, 6), samples_per_s=round(rate, 1),
                         eta_s=_eta(s, epoch, epochs, step, rate, run.params))

            try:
                record = s["loop"].run(epoch, lr, on_log)
            except NonFiniteLoss as e:
                raise NonFiniteLoss(f"{e}: stopped; the last good checkpoint (after epoch "
                                    f"{epoch}) is kept in {s['ckpt']}") from None
        s["history"].append(record)
        s["epochs_here"] += 1
        if run.lead:
            self._save_epoch(run, epoch)
        self.barrier(run)  # the others go on once epoch + 1 is on disk
        return record

    def _save_epoch(self, run: Run[PretrainParams], epoch: int) -> None:
        """Rank 0's writes after an epoch: checkpoint, snapshot, metrics, tensorboard."""
        import torch

        s, cfg, epochs = run.state, run.params.config, run.params.epochs
        save_checkpoint(s["ckpt"], {
            "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "model": s["model"].state_dict(),
            "optimizer": s["optimizer"].state_dict(), "rng": {"torch": torch.get_rng_state()},
            "config": dict(cfg), "dataset": run.params.dataset,
            "benchmark": run.params.benchmark,
        })
        interval = int(cfg.get("save_interval") or 0)
        if interval and (epoch + 1) % interval == 0 and epoch + 1 < epochs:
            storage.write_bytes(storage.join(run.where, f"epoch{epoch + 1:03d}.pt"),
                                storage.read_bytes(s["ckpt"]))
        storage.write_text(storage.join(run.where, "metrics.jsonl"),
                           "".join(json.dumps(r) + "\n" for r in s["history"]))
        if s["tb"] is not None:
            for k in ("loss", "lr", "relabel_c", "samples_per_s"):
                s["tb"].add_scalar(f"pretrain/{k}", s["history"][-1][k], epoch + 1)

    def finish(self, run: Run[PretrainParams]) -> dict[str, Any]:
        s = run.state
        if s.get("tb") is not None:
            s["tb"].close()
        history = s["history"]
        return {
            "epochs": run.params.epochs,
            "final_loss": history[-1]["loss"] if history else None,
            "samples_per_s": (sum(r["samples_per_s"] for r in history) / len(history))
            if history else None,
            "checkpoint": s["ckpt"],
        }


def _eta(s: Mapping[str, Any], epoch: int, epochs: int, step: int, rate: float,
         p: PretrainParams) -> float | None:
    """Seconds left for the whole run, from this session's pace."""
    if rate <= 0:
        return None
    batch = int(p.config["batch_size"])
    per_epoch = s["steps"] * batch / rate
    left = (s["steps"] - step) * batch / rate + (epochs - epoch - 1) * per_epoch
    return round(left, 1)


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
    """The per-epoch records of a run (empty when it has none yet)."""
    loc = storage.join(run_dir, "metrics.jsonl")
    if not storage.exists(loc):
        return []
    return [json.loads(line) for line in storage.read_text(loc).splitlines() if line.strip()]


def _tensorboard(run_dir: str):
    """A SummaryWriter when tensorboard is installed (and the run dir is local), else None."""
    if storage.is_url(run_dir):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=storage.join(run_dir, "tensorboard"))


def pretrain(ws: Workspace, cfg: Mapping[str, Any], run_name: str, force: bool = False,
             progress: Any = None, wait: bool = False) -> StageResult:
    """Run (or resume, or skip) a pre-training run described by a resolved config.

    Started by torchrun (or inside an initialised process group of several ranks), every
    rank calls this; rank 0 writes the run folder while the others wait at barriers.
    """
    return execute(Pretrain(), ws, PretrainParams(run_name, cfg),
                   Options(force=force, wait=wait), progress)
