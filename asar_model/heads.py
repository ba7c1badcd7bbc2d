"""Classifier heads and their metrics: linear probe on cached features, k-NN, accuracies.

Everything works on whole tensors on any device; nothing here reads files.

Linear protocol (the reference's ``linear_evaluation`` processor, run on features
computed once): a new Linear(D, C) initialised N(0, 0.02) / bias 0, SGD with the
config's base_lr, momentum, weight_decay and nesterov, lr x0.1 at each ``step`` epoch
(0-based), batches of ``batch_size`` reshuffled every epoch from a seeded generator,
the last incomplete batch dropped (the reference's training DataLoader has
``drop_last=True``; set ``drop_last: false`` to keep it), evaluation on the whole test
set after every ``eval_interval``-th epoch and after the last. The reference reports
the best top-1 over those evaluations; `LinearRun` keeps that and the final one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from asar_data.errors import AsarError
from asar_model.training import learning_rate, make_sgd


class SettingsError(AsarError, ValueError):
    """Settings that cannot train on this data (a batch larger than the split, ...)."""


# -- metrics -------------------------------------------------------------------------------
def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor,
                  ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Percent of samples whose label is among the k highest scores, for each k.

    scores (N, C), labels (N,) -> {k: percent}; k is capped at C. Ties between scores
    are broken by class index (lower first), as ``torch.topk`` does.
    """
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices       # (N, kmax)
    hit = top == labels[:, None].to(top.device)                            # (N, kmax)
    n = max(len(labels), 1)
    return {k: 100.0 * hit[:, :k].any(dim=1).sum().item() / n for k in ks}


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    flat = labels.long().cpu() * num_classes + pred.long().cpu()
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """(C,) percent correct of each true class; NaN for a class with no samples."""
    total = confusion.sum(dim=1).double()
    return 100.0 * confusion.diagonal().double() / total  # 0/0 -> NaN


# -- k-NN ----------------------------------------------------------------------------------
def knn_scores(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
               num_classes: int, k: int = 20, chunk: int = 2048) -> torch.Tensor:
    """Cosine k-NN class scores (N_test, C): votes + summed similarity / (2k + 1).

    Features are L2-normalised; each test sample takes its k most similar training
    samples. A class's score is its vote count plus its summed cosine similarity
    divided by 2k + 1, which lies in (-1/2, 1/2): the majority wins and a tie is
    broken by the larger summed similarity. argmax is the prediction, the ranking
    gives top-5. train (N, D), train_labels (N,), test (M, D).
    """
    k = min(k, train.shape[0])
    train_n = F.normalize(train.float(), dim=1)
    labels = train_labels.long().to(train.device)
    out = []
    for a in range(0, test.shape[0], chunk):
        sim = F.normalize(test[a:a + chunk].float(), dim=1) @ train_n.T    # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)                              # (m, k)
        nbr = labels[top_idx]                                              # (m, k)
        votes = torch.zeros(len(nbr), num_classes, device=sim.device)
        votes.scatter_add_(1, nbr, torch.ones_like(top_sim))
        sims = torch.zeros_like(votes).scatter_add_(1, nbr, top_sim)
        out.append(votes + sims / (2 * k + 1))
    return torch.cat(out) if out else torch.zeros(0, num_classes)


# -- semi-supervised subset ----------------------------------------------------------------
def class_balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions (ascending) of a stratified random subset: from each class of n_c samples
    keep max(1, round(fraction * n_c)) chosen uniformly, reproducibly for ``seed``.

    labels (N,) int -> (n,) int64 positions into ``labels``.
    """
    if not 0.0 < fraction <= 1.0:
        raise SettingsError(f"label fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels, np.int64)
    key = np.random.default_rng(seed).random(len(labels))                 # (N,) random order
    order = np.lexsort((key, labels))                                      # by class, then key
    counts = np.bincount(labels)
    quota = np.maximum(1, np.round(fraction * counts)).astype(np.int64)   # (C,)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(labels)) - starts[labels[order]]                 # place within class
    return np.sort(order[rank < quota[labels[order]]])


# -- linear probe --------------------------------------------------------------------------
@dataclass
class LinearRun:
    """Outcome of `train_linear`; accuracies in percent, epochs 1-based."""

    evaluations: list[dict[str, float]]   # {"epoch", "top1", "top5", "train_loss"} per check
    scores: torch.Tensor                  # (N_test, C) logits after the last epoch
    weight: torch.Tensor                  # (C, D) trained fc
    bias: torch.Tensor                    # (C,)
    final: dict[str, float] = field(default_factory=dict)   # top1, top5 after the last epoch
    best_top1: float = 0.0                # the reference's number: max over evaluations
    best_epoch: int = 0


def new_fc(dim: int, num_classes: int, generator: torch.Generator | None = None
           ) -> torch.nn.Linear:
    """Linear(dim, C) on the CPU with the reference init: weight N(0, 0.02), bias 0."""
    fc = torch.nn.Linear(dim, num_classes)
    with torch.no_grad():
        fc.weight.normal_(0.0, 0.02, generator=generator)
        fc.bias.zero_()
    return fc


def eval_epochs(num_epoch: int, interval: int) -> set[int]:
    """1-based epochs after which the reference evaluates: every ``interval``-th and the last."""
    every = set(range(interval, num_epoch + 1, interval)) if interval > 0 else set()
    return every | {num_epoch}


def steps_per_epoch(n: int, batch: int, drop_last: bool) -> int:
    """Batches an epoch of n samples makes; refuses an epoch with none."""
    steps = n // batch if drop_last else math.ceil(n / batch)
    if steps == 0:
        raise SettingsError(f"{n} training samples make no full batch of {batch}: lower "
                         "batch_size, or set drop_last=false")
    return steps


def best_of(evaluations: Sequence[Mapping[str, float]]) -> tuple[float, int]:
    """(best top-1, its epoch); a later evaluation wins a tie, as the reference's ``>=``."""
    best, epoch = -1.0, 0
    for e in evaluations:
        if e["top1"] >= best:
            best, epoch = e["top1"], int(e["epoch"])
    return best, epoch


@contextmanager
def cpu_threads(n: int, device: torch.device) -> Iterator[None]:
    """Run a block with ``n`` intra-op CPU threads (restored after); no-op off the CPU."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_linear(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    num_classes: int, cfg: Mapping[str, Any], seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> LinearRun:
    """The linear protocol on cached features.

    train_x (N, D), train_y (N,), test_x (M, D), test_y (M,) on one device; cfg keys
    base_lr, step, num_epoch, batch_size, eval_interval, momentum, weight_decay,
    nesterov, drop_last. ``on_epoch(epoch, mean train loss)`` is called after each epoch.
    On the CPU it runs on one thread: the (128 x D) @ (D x C) steps are too small to gain
    from more, and on a busy machine thread synchronisation made it ~10x slower (measured
    30 s vs 2.2 s for 800 steps on 2 shared cores).
    """
    with cpu_threads(1, train_x.device):
        return _train_linear(train_x, train_y, test_x, test_y, num_classes, cfg, seed, on_epoch)


def _train_linear(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    num_classes: int, cfg: Mapping[str, Any], seed: int,
    on_epoch: Callable[[int, float], None] | None,
) -> LinearRun:
    device = train_x.device
    num_epoch, batch = int(cfg["num_epoch"]), int(cfg["batch_size"])
    drop_last = bool(cfg.get("drop_last", True))
    steps = steps_per_epoch(len(train_x), batch, drop_last)
    fc = new_fc(train_x.shape[1], num_classes, torch.Generator().manual_seed(seed)).to(device)
    opt = make_sgd(fc.parameters(), cfg)
    checks = eval_epochs(num_epoch, int(cfg.get("eval_interval", 5)))
    train_y = train_y.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)      # one stream for every epoch
    evaluations = []
    for epoch in range(num_epoch):
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, epoch)
        order = torch.randperm(len(train_x), generator=gen, device=device)
        loss_sum = torch.zeros((), device=device)
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            loss = F.cross_entropy(fc(train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
        mean_loss = (loss_sum / steps).item()
        if on_epoch is not None:
            on_epoch(epoch + 1, mean_loss)
        if epoch + 1 in checks:
            with torch.no_grad():
                acc = topk_accuracy(fc(test_x), test_y)
            evaluations.append({"epoch": epoch + 1, "top1": acc[1], "top5": acc[5],
                                "train_loss": mean_loss})
    with torch.no_grad():
        scores = fc(test_x)
    best, best_epoch = best_of(evaluations)
    final = {"top1": evaluations[-1]["top1"], "top5": evaluations[-1]["top5"]}
    return LinearRun(evaluations, scores, fc.weight.detach(), fc.bias.detach(), final,
                     best, best_epoch)
