"""Training plumbing shared by pre-training, fine-tuning and the feature passes.

One place for what every training loop needs: the device, the per-epoch random
streams, the reference's learning-rate schedule and SGD, the normal augmentation read
from a config, bf16 autocast, the frozen-encoder feature pass, and the two epoch loops
(a pre-training epoch of the ASAR learner, a supervised fine-tuning epoch). Nothing here
reads or writes files; callers pass batches sources (`asar_data.loader`) and callbacks.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from asar_data.errors import AsarError
from asar_data.streams import to_stream

# the reference processor's default when a config gives no weight_decay
DEFAULT_WEIGHT_DECAY = 1e-4


class NonFiniteLoss(AsarError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class DeviceError(AsarError):
    """A device that does not exist here (``--device``)."""


# -- device and random streams -----------------------------------------------------------
def pick_device(name: str | None, local_rank: int | None = None) -> torch.device:
    """The training device: ``auto``/None = CUDA when present, else the CPU; ``cpu``,
    ``cuda``, ``cuda:N``. Under torchrun (``local_rank`` given): cuda:LOCAL_RANK or the CPU."""
    if local_rank is not None:
        from asar_model.distributed import device_for

        try:
            return device_for(name, local_rank)
        except ValueError as e:
            raise DeviceError(str(e)) from None
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(name))
    except RuntimeError:
        raise DeviceError(f"--device {name!r} is not a device: give auto, cpu, cuda or "
                          "cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device cuda was asked for, but no CUDA device is available: "
                              "use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} GPUs are "
                              "visible")
    elif dev.type != "cpu":
        raise DeviceError(f"--device {name!r}: only cpu and cuda devices are supported")
    return dev


def epoch_seed(seed: int, epoch: int, purpose: str) -> int:
    """A 62-bit seed for one purpose in one epoch (independent streams, reproducible)."""
    h = hashlib.sha256(f"{seed}/{epoch}/{purpose}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 2


def epoch_generator(seed: int, epoch: int, device: torch.device, rank: int = 0
                    ) -> torch.Generator:
    """The epoch's data generator (batch order, augmentation, BN shuffle, k-means), and
    torch's global stream reseeded for the epoch's dropout masks: rank 0 draws a single
    process's stream, every other rank its own."""
    torch.manual_seed(epoch_seed(seed, epoch, "dropout" if rank == 0 else f"dropout/{rank}"))
    return torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch, "data"))


# -- optimisation ---------------------------------------------------------------------------
def learning_rate(cfg: Mapping[str, Any], epoch: int) -> float:
    """The reference schedule: base_lr x 0.1 for each ``step`` epoch reached (0-based epochs)."""
    drops = sum(1 for s in cfg.get("step") or [] if epoch >= s)
    return float(cfg["base_lr"]) * (0.1 ** drops)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def make_sgd(params: Any, cfg: Mapping[str, Any]) -> torch.optim.SGD:
    """SGD from a config's base_lr, momentum (0.9), weight_decay (the reference's 1e-4) and
    nesterov (false)."""
    return torch.optim.SGD(params, lr=float(cfg["base_lr"]),
                           momentum=float(cfg.get("momentum", 0.9)),
                           weight_decay=float(cfg.get("weight_decay", DEFAULT_WEIGHT_DECAY)),
                           nesterov=bool(cfg.get("nesterov", False)))


def memory_budget(cfg: Mapping[str, Any]) -> int:
    """Bytes of training data the device may hold (``memory_budget_gb``, default 4)."""
    return int(float(cfg.get("memory_budget_gb", 4)) * 2**30)


def uses_bf16(cfg: Mapping[str, Any], device: torch.device) -> bool:
    """``amp: bf16`` asks for bfloat16 autocast; it applies on CUDA only."""
    return cfg.get("amp") in ("bf16", True) and device.type == "cuda"


def autocast(device: torch.device, enabled: bool) -> Any:
    """bf16 autocast when enabled, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


# -- augmentation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Augmentation:
    """The reference's "normal" augmentation: temporal crop (reflect-pad T // padding_ratio
    frames) then shear (amplitude); from a config's ``train_feeder_args``."""

    padding_ratio: int = 6
    shear_amplitude: float = 0.5

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Augmentation:
        feeder = cfg.get("train_feeder_args") or {}
        return cls(int(feeder.get("temperal_padding_ratio", 6)),
                   float(feeder.get("shear_amplitude", 0.5)))

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None,
                 rows: slice | None = None, total: int | None = None) -> torch.Tensor:
        """Augment x (b, C, T, V, M). With ``rows`` of a global batch of ``total`` (several
        ranks), the parameters of all ``total`` samples are drawn in the single-process
        order and this rank's rows applied, so a sample is augmented as in one process."""
        from asar_data.augment import (
            apply_shear,
            apply_temporal_crop,
            crop_starts,
            shear_matrices,
        )

        n = x.shape[0] if total is None else total
        pick = slice(None) if rows is None else rows
        if self.padding_ratio > 0:
            starts = crop_starts(n, x.shape[2], gen, self.padding_ratio, x.device)[pick]
            x = apply_temporal_crop(x, starts, self.padding_ratio)
        if self.shear_amplitude > 0:
            x = apply_shear(x, shear_matrices(n, gen, self.shear_amplitude, x.device,
                                              x.dtype)[pick])
        return x


# -- passes over a source -------------------------------------------------------------------
def encode(model: torch.nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
           stream: str, bf16: bool = False, head: bool = False,
           on_batch: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode pass in the batches' order -> (features (N, D) or, with ``head``, class
    scores (N, C), float32; labels (N,)), on the model's device."""
    model.eval()
    fn = model if head else model.forward_features
    outs, labels = [], []
    with torch.no_grad():
        for x, y in batches:
            with autocast(x.device, bf16):
                outs.append(fn(to_stream(x, stream)).float())
            labels.append(y)
            if on_batch is not None:
                on_batch(len(y))
    return torch.cat(outs), torch.cat(labels)


def check_finite(value: float, what: str) -> None:
    if not math.isfinite(value):
        raise NonFiniteLoss(f"loss became {value} {what}")


def finetune_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   batches: Iterator[tuple[torch.Tensor, torch.Tensor]], gen: torch.Generator,
                   stream: str, augment: Augmentation, bf16: bool = False) -> float:
    """One supervised epoch of every weight on augmented batches -> mean cross-entropy."""
    model.train()
    loss_sum, steps = None, 0
    for x, y in batches:
        x = to_stream(augment(x, gen), stream)
        with autocast(x.device, bf16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        steps += 1
    return 0.0 if loss_sum is None else (loss_sum / steps).item()


@dataclass
class FinetuneRun:
    """Outcome of `finetune`: accuracies in percent, epochs 1-based."""

    evaluations: list[dict[str, float]]   # {"epoch", "top1", "top5", "train_loss"} per check
    scores: torch.Tensor                  # (M, C) test class scores after the last epoch
    labels: torch.Tensor                  # (M,)
    best_top1: float
    best_epoch: int


def finetune(model: torch.nn.Module, train: Any, test: Any, cfg: Mapping[str, Any],
             seed: int, stream: str = "joint", bf16: bool = False,
             on_epoch: Callable[[int, float], None] | None = None) -> FinetuneRun:
    """Train every weight (encoder + fc) on the ``train`` source with the config's schedule
    (SGD, step learning rate, the normal augmentation), testing in eval mode on ``test``
    after every ``eval_interval``-th epoch and the last. Sources are `asar_data.loader`
    ones on the model's device; ``on_epoch(epoch, mean loss)`` after each epoch."""
    from asar_model.heads import best_of, eval_epochs, steps_per_epoch, topk_accuracy

    batch, drop_last = int(cfg["batch_size"]), bool(cfg.get("drop_last", True))
    test_batch = int(cfg.get("test_batch_size") or batch)
    steps_per_epoch(len(train), batch, drop_last)
    optimizer = make_sgd(model.parameters(), cfg)
    augment = Augmentation.from_config(cfg)
    epochs = int(cfg["num_epoch"])
    checks = eval_epochs(epochs, int(cfg.get("eval_interval", 5)))
    device = next(model.parameters()).device
    evaluations: list[dict[str, float]] = []
    scores = labels = torch.zeros(0)
    for epoch in range(epochs):
        set_learning_rate(optimizer, learning_rate(cfg, epoch))
        gen = epoch_generator(seed, epoch, device)
        loss = finetune_epoch(model, optimizer, train.batches(batch, gen, drop_last), gen,
                              stream, augment, bf16)
        if epoch + 1 in checks:
            scores, labels = encode(model, test.batches(test_batch, None, drop_last=False),
                                    stream, bf16, head=True)
            acc = topk_accuracy(scores, labels)
            evaluations.append({"epoch": epoch + 1, "top1": acc[1], "top5": acc[5],
                                "train_loss": loss})
        if on_epoch is not None:
            on_epoch(epoch + 1, loss)
    best, best_epoch = best_of(evaluations)
    return FinetuneRun(evaluations, scores, labels, best, best_epoch)


@dataclass
class PretrainEpoch:
    """One pre-training epoch of the ASAR learner: batches, two augmented views, steps.

    ``step_fn`` is the learner or its DDP / compiled wrapper; ``ranks`` the
    `asar_model.distributed.Ranks` of a multi-process run (None alone). Host syncs happen
    only every ``log_every`` steps (the loss check and ``on_log``).
    """

    model: Any
    step_fn: Any
    optimizer: torch.optim.Optimizer
    source: Any                      # asar_data.loader source
    device: torch.device
    batch: int
    steps: int
    augment: Augmentation
    stream: str = "joint"
    bf16: bool = False
    seed: int = 0
    ranks: Any = None
    log_every: int = 10
    active_epoch: int = 150

    def run(self, epoch: int, lr: float,
            on_log: Callable[[int, float, float], None] | None = None) -> dict[str, Any]:
        """Train one epoch (0-based) at ``lr``; ``on_log(step, mean loss, samples/s)``.
        Returns its metrics record (1-based epoch)."""
        from asar_data.loader import rank_rows
        from asar_model import distributed

        set_learning_rate(self.optimizer, lr)
        rank, world = (0, 1) if self.ranks is None else (self.ranks.rank,
                                                         self.ranks.world_size)
        rows = None if world == 1 else rank_rows(self.batch, rank, world)
        total = None if world == 1 else self.batch
        gen = epoch_generator(self.seed, epoch, self.device, rank)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        c_sum = torch.zeros((), device=self.device)
        t0 = time.perf_counter()
        where = f"in epoch {epoch + 1}"
        for i, (x, _) in enumerate(self.source.batches(self.batch, gen, rank=rank,
                                                       world_size=world)):
            v1 = to_stream(self.augment(x, gen, rows, total), self.stream)
            v2 = to_stream(self.augment(x, gen, rows, total), self.stream)
            with autocast(self.device, self.bf16):
                loss, stats = self.step_fn(v1, v2, epoch=epoch, generator=gen)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += stats["loss"].float()
            c_sum += stats["relabel_c"].float()
            if (i + 1) % self.log_every == 0 or i + 1 == self.steps:  # the only host syncs
                mean = (distributed.mean_over_ranks(loss_sum, self.ranks) / (i + 1)).item()
                check_finite(mean, f"{where}, step {i + 1}")
                if on_log is not None:
                    on_log(i + 1, mean, (i + 1) * self.batch / (time.perf_counter() - t0))
        seconds = time.perf_counter() - t0
        steps = max(self.steps, 1)
        mean_loss = (distributed.mean_over_ranks(loss_sum, self.ranks) / steps).item()
        check_finite(mean_loss, where)
        record = {
            "epoch": epoch + 1, "loss": mean_loss, "lr": lr,
            "relabel_c": (distributed.mean_over_ranks(c_sum, self.ranks) / steps).item(),
            "active_sampling": epoch >= self.active_epoch,
            "seconds": round(seconds, 3),
            "samples_per_s": round(self.steps * self.batch / seconds, 1),
        }
        if world > 1:
            record["world_size"] = world
        return record


def build_learner(model_args: Mapping[str, Any] | None, distributed: bool = False) -> Any:
    """The ASAR learner of a config's ``model_args``; the torch.distributed one on ranks."""
    from asar_model.learner import ASAR

    args = dict(model_args or {})
    args.pop("base_encoder", None)
    if distributed:
        from asar_model.distributed import DistributedASAR

        return DistributedASAR(**args)
    return ASAR(**args)


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms for the block (CPU runs then repeat exactly)."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
