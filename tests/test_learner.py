import copy
import math

import pytest
import torch
import torch.nn.functional as F
from test_stgcn import reference_keys
from torch import nn

from asar_data.errors import AsarError
from asar_model.learner import ASAR
from asar_model.stgcn import Model, reference_init

SMALL = dict(feature_dim=8, queue_size=24, hidden_channels=2, hidden_dim=8, topk=3,
             active_epoch=2, dropout=0.0)


def small(**kw) -> ASAR:
    torch.manual_seed(0)
    return ASAR(**{**SMALL, **kw})


def batch(b: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, 8, 25, 2, generator=torch.Generator().manual_seed(seed))


class ReferenceASAR(nn.Module):
    """The reference learner's constructor (net/asar.py, ``pretrain=True``) restated: its
    modules and buffers, created (and drawn) in its order. Its base encoder is our `Model`,
    whose keys test_stgcn pins to net.st_gcn.Model's and which builds its layers in the
    same order; the queue has 128 rows whatever feature_dim is, as in the reference."""

    def __init__(self, queue_size: int, mlp: bool = True, **encoder_args) -> None:
        super().__init__()
        self.encoder_q = Model(num_class=128, **encoder_args)
        self.encoder_k = Model(num_class=128, **encoder_args)
        if mlp:
            width = self.encoder_q.fc.weight.shape[1]
            self.encoder_q.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), self.encoder_q.fc)
            self.encoder_k.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), self.encoder_k.fc)
        for p_q, p_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            p_k.data.copy_(p_q.data)
            p_k.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(128, queue_size), dim=0))
        self.register_buffer("labels", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.criterion = nn.CrossEntropyLoss()


def init_by_class_name(m: nn.Module) -> None:
    """The reference trainer's weights_init, applied with ``learner.apply`` after building:
    matched by class name, conv/linear N(0, 0.02) and bias 0, BatchNorm N(1, 0.02) and 0."""
    name = type(m).__name__
    if any(s in name for s in ("Conv1d", "Conv2d", "Linear")):
        m.weight.data.normal_(0.0, 0.02)
        if m.bias is not None:
            m.bias.data.fill_(0)
    elif "BatchNorm" in name:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


def reference_learner(seed: int = 0, queue_size: int = 24, **encoder_args) -> ReferenceASAR:
    """What the reference's pre-training starts from after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    m = ReferenceASAR(queue_size, **encoder_args)
    m.apply(init_by_class_name)
    return m


def test_state_dict_has_reference_keys_and_a_reference_one_loads_strictly():
    m = ASAR()
    head = ("fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias")
    # A module's own buffers come before its children's: queue, labels, queue_ptr, encoders.
    want = ["queue", "labels", "queue_ptr"] + [
        f"encoder_{e}.{k}" for e in "qk" for k in reference_keys(head)]
    sd = m.state_dict()
    assert list(sd) == want
    assert sd["queue"].shape == (128, 32768) and sd["queue_ptr"].dtype == torch.long
    assert sd["labels"].dtype == torch.long and torch.equal(sd["labels"], torch.full((32768,), -1))
    assert sd["encoder_q.fc.0.weight"].shape == (256, 256)
    assert sd["encoder_k.fc.2.weight"].shape == (128, 256)
    torch.testing.assert_close(sd["queue"].norm(dim=0), torch.ones(32768))
    reference = {k: torch.randn(v.shape) if v.is_floating_point() else v + 3 for k, v in sd.items()}
    ASAR().load_state_dict(reference, strict=True)


TINY = dict(hidden_channels=2, hidden_dim=8, dropout=0.0)


def test_initial_state_equals_the_reference_constructor_and_init_with_the_same_seed():
    torch.manual_seed(3)
    ours = ASAR(feature_dim=128, queue_size=24, **TINY)
    ref = reference_learner(3, 24, **TINY)
    want = ref.state_dict()
    assert list(ours.state_dict()) == list(want)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, want[key]), key
    # encoder_k has its own draw: its conv, linear and BN weights are not encoder_q's.
    w_q, w_k = (e.st_gcn_networks[1].tcn[2].weight for e in (ours.encoder_q, ours.encoder_k))
    assert not torch.equal(w_q, w_k)
    assert not torch.equal(ours.encoder_q.fc[2].weight, ours.encoder_k.fc[2].weight)
    assert not any(p.requires_grad for p in ours.encoder_k.parameters())


def test_key_init_copy_starts_the_key_encoder_as_a_copy_of_the_query_encoder():
    torch.manual_seed(5)
    m = ASAR(feature_dim=8, queue_size=24, key_init="copy", **TINY)
    for p_q, p_k in zip(m.encoder_q.parameters(), m.encoder_k.parameters(), strict=True):
        assert not p_k.requires_grad and torch.equal(p_q, p_k)
    # the start this learner had before the option: init encoder_q, copy, draw the queue
    torch.manual_seed(5)
    q, k = Model(num_class=8, **TINY), Model(num_class=8, **TINY)
    for enc in (q, k):
        enc.fc = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), enc.fc)
    reference_init(q)
    assert torch.equal(m.queue, F.normalize(torch.randn(8, 24), dim=0))
    for (name, value), want in zip(m.encoder_q.state_dict().items(), q.state_dict().values(),
                                   strict=True):
        assert torch.equal(value, want), name


def test_unknown_key_init_is_refused_naming_the_option():
    with pytest.raises(AsarError, match=r"model_args\.key_init is 'zeros'"):
        ASAR(feature_dim=8, queue_size=24, key_init="zeros", **TINY)


def test_labels_buffer_is_kept_and_a_checkpoint_without_it_still_loads_strictly():
    m = small()
    sd = m.state_dict()
    assert torch.equal(sd["labels"], torch.full((24,), -1))
    del sd["labels"]                                   # a checkpoint from before the buffer
    fresh = small()
    fresh.load_state_dict(sd, strict=True)
    assert torch.equal(fresh.labels, torch.full((24,), -1))
    del sd["queue_ptr"]                                # other keys stay required
    with pytest.raises(RuntimeError, match="queue_ptr"):
        fresh.load_state_dict(sd, strict=True)


def test_momentum_update_is_m_k_plus_1_minus_m_q():
    m = small(momentum=0.9)
    with torch.no_grad():
        for p in m.encoder_q.parameters():
            p.add_(1.0)
    before = [(p_q.clone(), p_k.clone()) for p_q, p_k in
              zip(m.encoder_q.parameters(), m.encoder_k.parameters(), strict=True)]
    m.momentum_update()
    for (q, k), p_k in zip(before, m.encoder_k.parameters(), strict=True):
        torch.testing.assert_close(p_k, 0.9 * k + 0.1 * q)


def loop_targets(k, queue, t2, n):
    """Relabeling targets sample by sample."""
    rows = []
    for kb in k:
        s = kb @ queue / t2
        p = torch.softmax(s, 0)
        c = 1 - (-(p * p.log()).sum()) / math.log(queue.shape[1])
        row = torch.zeros(1 + queue.shape[1])
        row[0] = 1
        for j in torch.argsort(s, descending=True)[:n]:
            row[1 + j] = c
        rows.append(row / row.sum())
    return torch.stack(rows)


def test_relabel_targets_and_loss_match_a_loop_implementation():
    m = small(relabel_temperature=0.1, Temperature=0.2)
    g = torch.Generator().manual_seed(1)
    k = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    q = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    target = m.relabel_targets(k, m.queue)
    want = loop_targets(k, m.queue, 0.1, 3)
    torch.testing.assert_close(target, want)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ m.queue], 1) / 0.2
    loss = sum(-(want[i] * torch.log_softmax(logits[i], 0)).sum() for i in range(5)) / 5
    torch.testing.assert_close(m.contrastive_loss(q, k, m.queue, target), loss)


def test_topk_zero_is_mocos_hard_label_cross_entropy():
    m = small(topk=0, Temperature=0.2)
    g = torch.Generator().manual_seed(1)
    q, k = (F.normalize(torch.randn(5, 8, generator=g), dim=1) for _ in range(2))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ m.queue], 1) / 0.2
    loss = m.contrastive_loss(q, k, m.queue, m.relabel_targets(k, m.queue))
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.zeros(5, dtype=torch.long)))


def test_closed_form_key_gradient_equals_autograd():
    g = torch.Generator().manual_seed(2)
    q = F.normalize(torch.randn(4, 8, generator=g), dim=1)
    k1 = F.normalize(torch.randn(8, 8, generator=g), dim=1).requires_grad_()
    (auto,) = torch.autograd.grad(F.cross_entropy(q @ k1.T, torch.arange(4)), k1)
    torch.testing.assert_close(ASAR.key_gradient(q, k1.detach()), auto)


def test_selection_takes_tiers_from_the_end_of_each_cluster_in_tier_order():
    assign = torch.tensor([2, 2, 0, 2, 1, 1, 2, 3])   # clusters 0..3, 8 candidates
    # tier 1 = last members (2, 5, 6, 7), tier 2 = second-to-last (3, 4), tier 3 (1), tier 4 (0)
    assert ASAR.select_tiers(assign, 4, 4).tolist() == [2, 5, 6, 7]
    assert ASAR.select_tiers(assign, 4, 6).tolist() == [2, 5, 6, 7, 3, 4]
    assert ASAR.select_tiers(assign, 4, 8).tolist() == [2, 5, 6, 7, 3, 4, 1, 0]
    # departure: tiers 1-3 hold 3 < 4 candidates, tier 4 fills up (the reference takes all 8)
    assert ASAR.select_tiers(torch.zeros(8, dtype=torch.long), 4, 4).tolist() == [7, 6, 5, 0]


def test_selection_equals_the_reference_on_random_assignments(reference_active):
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        b = int(torch.randint(1, 17, (), generator=g))
        used = int(torch.randint(1, b + 1, (), generator=g))     # few clusters: tier 4 needed
        assign = torch.randint(0, used, (2 * b,), generator=g)
        assign = torch.randperm(b, generator=g)[assign]          # any cluster ids in [0, b)
        want = reference_active.select_reference(assign, b)
        assert ASAR.select_tiers(assign, b, b).tolist() == want


def test_enqueue_writes_the_oldest_columns_and_wraps_around():
    m = small(queue_size=10)
    keys = F.normalize(torch.randn(4, 8), dim=1)
    old = m.queue.clone()
    m.enqueue(keys)
    assert m.queue_ptr.item() == 4
    torch.testing.assert_close(m.queue[:, :4], keys.T)
    assert torch.equal(m.queue[:, 4:], old[:, 4:])
    m.enqueue(keys)
    m.enqueue(keys)                                    # columns 8, 9, 0, 1
    assert m.queue_ptr.item() == 2
    torch.testing.assert_close(m.queue[:, [8, 9, 0, 1]], keys.T)


@pytest.mark.parametrize("tol", [1e-4, 0.0])
def test_consecutive_active_updates_equal_the_reference(reference_active, tol):
    m = small(queue_size=20, kmeans_tol=tol).double()
    g = torch.Generator().manual_seed(3)
    for step in range(5):                              # ptr 0, 6, 12, 18 (wraps), 4
        q, k = (F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
                for _ in range(2))
        pick = torch.randperm(12, generator=torch.Generator().manual_seed(step))[:6]
        want, ptr, order = reference_active.active_update_reference(
            q, k, m.queue.clone(), int(m.queue_ptr), pick, tol)
        chosen = m.active_enqueue(q, k, torch.Generator().manual_seed(step))
        assert chosen.tolist() == order
        assert torch.equal(m.queue, want) and int(m.queue_ptr) == ptr


def test_active_learner_steps_equal_the_reference_update(reference_active):
    """forward at the active epoch, step after step: q and k as the learner computes them,
    the initial k-means pick as its generator draws it (after the BN shuffle's permutation)."""
    m = small(queue_size=20).double()
    g = torch.Generator().manual_seed(11)
    for step in range(4):
        im_q, im_k = batch(6, step).double(), batch(6, 10 + step).double()
        replay, twin = torch.Generator(), copy.deepcopy(m)
        replay.set_state(g.get_state())
        q = F.normalize(twin.encoder_q(im_q), dim=1).detach()
        twin.momentum_update()
        k = twin.key_forward(im_k, replay)
        pick = torch.randperm(12, generator=replay)[:6]
        want, ptr, _ = reference_active.active_update_reference(
            q, k, m.queue.clone(), int(m.queue_ptr), pick)
        loss, _ = m(im_q, im_k, epoch=2, generator=g)
        assert torch.equal(m.queue, want) and int(m.queue_ptr) == ptr


def test_key_forward_with_shuffled_bn_equals_the_plain_key_encoder():
    m = small()
    x = batch()
    want = F.normalize(m.encoder_k(x), dim=1)
    torch.testing.assert_close(m.key_forward(x, torch.Generator().manual_seed(0)), want)


@pytest.mark.parametrize("epoch", [0, 2])
def test_forward_returns_loss_and_stats_and_enqueues(epoch):
    m = small()
    expected = copy.deepcopy(m)
    expected.momentum_update()
    keys = expected.key_forward(batch(seed=1))
    loss, stats = m(batch(), batch(seed=1), epoch=epoch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(stats) == {"loss", "relabel_c", "pos_sim"}
    assert all(p.grad is not None for p in m.encoder_q.parameters())
    assert m.queue_ptr.item() == 6 and 0 < stats["relabel_c"] < 1
    if epoch < 2:
        torch.testing.assert_close(m.queue[:, :6], keys.T)


def test_any_batch_size_works_across_the_queue_end():
    m = small(queue_size=20)
    for step in range(4):                              # 7 keys a step: ptr 7, 14, 1, 8
        loss, _ = m(batch(7, step), batch(7, step + 10), epoch=5)
        loss.backward()
    assert m.queue_ptr.item() == 8
    torch.testing.assert_close(m.queue.norm(dim=0), torch.ones(20))
