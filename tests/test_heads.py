import math

import numpy as np
import pytest
import torch

from asar_model.heads import (
    best_of,
    class_balanced_subset,
    confusion_matrix,
    eval_epochs,
    knn_scores,
    learning_rate,
    new_fc,
    per_class_accuracy,
    steps_per_epoch,
    topk_accuracy,
    train_linear,
)

SCORES = torch.tensor([
    [0.9, 0.05, 0.03, 0.02],   # label 0: top-1 hit
    [0.5, 0.3, 0.15, 0.05],    # label 1: second
    [0.1, 0.2, 0.3, 0.4],      # label 0: last
    [0.2, 0.15, 0.6, 0.05],    # label 1: third
])
LABELS = torch.tensor([0, 1, 0, 1])


def test_topk_accuracy_counts_labels_among_the_k_best_scores():
    acc = topk_accuracy(SCORES, LABELS, ks=(1, 2, 3))
    assert acc == {1: 25.0, 2: 50.0, 3: 75.0}


def test_topk_is_capped_at_the_number_of_classes():
    assert topk_accuracy(SCORES[:, :3], LABELS, ks=(1, 5))[5] == 100.0


def test_confusion_rows_are_true_classes_and_absent_classes_have_no_accuracy():
    pred = torch.tensor([0, 1, 1, 1, 2])
    true = torch.tensor([0, 0, 1, 1, 2])
    conf = confusion_matrix(pred, true, 4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(conf)
    assert acc[:3].tolist() == [50.0, 100.0, 100.0] and math.isnan(acc[3])


def test_knn_classifies_separable_features():
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 8) * 5
    y_tr, y_te = torch.arange(60) % 3, torch.arange(30) % 3
    x_tr = centres[y_tr] + torch.randn(60, 8, generator=gen)
    x_te = centres[y_te] + torch.randn(30, 8, generator=gen)
    scores = knn_scores(x_tr, y_tr, x_te, 3, k=5, chunk=7)
    assert topk_accuracy(scores, y_te)[1] == 100.0


def test_knn_majority_wins_and_a_tie_goes_to_the_larger_summed_similarity():
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[1.0, 0.0]])           # similarities 1.0, 0.6, 0.6, 0.0
    assert knn_scores(train, labels, query, 3, k=3).argmax().item() == 1   # 2 votes beat 1
    # k = 2: class 0 (sim 1.0) and class 1 (sim 0.6) tie on one vote; class 0 is closer.
    tie = knn_scores(train[[0, 1]], labels[[0, 1]], query, 3, k=2)
    assert tie.argmax().item() == 0 and tie[0, 0] > tie[0, 1] > tie[0, 2]


def test_subset_is_class_balanced_seeded_and_keeps_every_class():
    labels = np.repeat(np.arange(5), [200, 100, 50, 30, 3])
    np.random.default_rng(0).shuffle(labels)
    pos = class_balanced_subset(labels, 0.1, seed=1)
    assert np.bincount(labels[pos], minlength=5).tolist() == [20, 10, 5, 3, 1]
    assert np.array_equal(pos, class_balanced_subset(labels, 0.1, seed=1))
    assert not np.array_equal(pos, class_balanced_subset(labels, 0.1, seed=2))
    assert np.all(np.diff(pos) > 0)
    one = class_balanced_subset(labels, 0.01, seed=1)
    assert np.bincount(labels[one], minlength=5).tolist() == [2, 1, 1, 1, 1]


def test_subset_refuses_a_fraction_outside_zero_one():
    with pytest.raises(ValueError, match="label fraction"):
        class_balanced_subset(np.zeros(10, np.int64), 0.0, seed=0)


def test_schedule_drops_lr_tenfold_at_each_step_epoch_counted_from_zero():
    cfg = {"base_lr": 3.0, "step": [80]}
    assert learning_rate(cfg, 79) == 3.0
    assert learning_rate(cfg, 80) == pytest.approx(0.3)
    assert learning_rate({"base_lr": 1.0, "step": [2, 4]}, 5) == pytest.approx(0.01)


def test_reference_evaluates_every_interval_and_after_the_last_epoch():
    assert eval_epochs(12, 5) == {5, 10, 12}
    assert eval_epochs(3, 0) == {3}


def test_drop_last_counts_full_batches_and_refuses_an_empty_epoch():
    assert steps_per_epoch(300, 128, drop_last=True) == 2
    assert steps_per_epoch(300, 128, drop_last=False) == 3
    with pytest.raises(ValueError, match="no full batch"):
        steps_per_epoch(100, 128, drop_last=True)


def test_best_top1_prefers_the_later_of_equal_evaluations():
    evals = [{"epoch": 5, "top1": 70.0}, {"epoch": 10, "top1": 80.0},
             {"epoch": 15, "top1": 80.0}, {"epoch": 20, "top1": 75.0}]
    assert best_of(evals) == (80.0, 15)


def test_new_fc_has_the_reference_init():
    fc = new_fc(256, 400, torch.Generator().manual_seed(0))
    assert fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(fc.bias) == 0


def toy_features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    return torch.eye(4, 16)[y] + 0.15 * torch.randn(n, 16, generator=gen), y


CFG = {"base_lr": 3.0, "step": [8], "num_epoch": 12, "batch_size": 16, "eval_interval": 5,
       "momentum": 0.9, "weight_decay": 0.0, "nesterov": False}


def test_linear_probe_learns_separable_features_and_reports_final_and_best():
    x_tr, y_tr = toy_features(100, 0)
    x_te, y_te = toy_features(40, 1)
    run = train_linear(x_tr, y_tr, x_te, y_te, 4, CFG, seed=0)
    assert [e["epoch"] for e in run.evaluations] == [5, 10, 12]
    assert run.final["top1"] == run.evaluations[-1]["top1"] == 100.0
    assert run.best_top1 == max(e["top1"] for e in run.evaluations)
    assert run.scores.shape == (40, 4) and run.weight.shape == (4, 16)


def test_linear_probe_is_reproducible_for_a_seed_and_varies_with_it():
    x_tr, y_tr = toy_features(100, 0)
    x_te, y_te = toy_features(40, 1)
    a = train_linear(x_tr, y_tr, x_te, y_te, 4, CFG, seed=3)
    b = train_linear(x_tr, y_tr, x_te, y_te, 4, CFG, seed=3)
    c = train_linear(x_tr, y_tr, x_te, y_te, 4, CFG, seed=4)
    assert torch.equal(a.scores, b.scores)
    assert not torch.equal(a.scores, c.scores)


def test_linear_probe_drops_the_last_incomplete_batch_by_default(monkeypatch):
    x_tr, y_tr = toy_features(20, 0)
    x_te, y_te = toy_features(8, 1)
    steps = []
    original = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step",
                        lambda self, *a, **kw: steps.append(1) or original(self, *a, **kw))
    cfg = {**CFG, "num_epoch": 2, "batch_size": 16}
    train_linear(x_tr, y_tr, x_te, y_te, 4, cfg, seed=0)
    assert len(steps) == 2                      # 20 samples: one batch of 16 per epoch
    train_linear(x_tr, y_tr, x_te, y_te, 4, {**cfg, "drop_last": False}, seed=0)
    assert len(steps) == 2 + 4                  # 16 + 4 per epoch
    with pytest.raises(ValueError, match="no full batch"):
        train_linear(x_tr[:10], y_tr[:10], x_te, y_te, 4, cfg, seed=0)


def test_linear_probe_restores_the_thread_count_it_changes():
    x_tr, y_tr = toy_features(32, 0)
    torch.set_num_threads(2)
    train_linear(x_tr, y_tr, x_tr, y_tr, 4, {**CFG, "num_epoch": 1}, seed=0)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
