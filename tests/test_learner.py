import copy
import math

import pytest
import torch
import torch.nn.functional as F
from test_stgcn import reference_keys

from asar_model.learner import ASAR

SMALL = dict(feature_dim=8, queue_size=24, hidden_channels=2, hidden_dim=8, topk=3,
             active_epoch=2, dropout=0.0)


def small(**kw) -> ASAR:
    torch.manual_seed(0)
    return ASAR(**{**SMALL, **kw})


def batch(b: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, 8, 25, 2, generator=torch.Generator().manual_seed(seed))


def test_state_dict_has_reference_keys_and_a_reference_one_loads_strictly():
    m = ASAR()
    head = ("fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias")
    # A module's own buffers come before its children's: queue, queue_ptr, encoder_q, encoder_k.
    want = ["queue", "queue_ptr"] + [f"encoder_{e}.{k}" for e in "qk" for k in reference_keys(head)]
    sd = m.state_dict()
    assert list(sd) == want
    assert sd["queue"].shape == (128, 32768) and sd["queue_ptr"].dtype == torch.long
    assert sd["encoder_q.fc.0.weight"].shape == (256, 256)
    assert sd["encoder_k.fc.2.weight"].shape == (128, 256)
    torch.testing.assert_close(sd["queue"].norm(dim=0), torch.ones(32768))
    reference = {k: torch.randn(v.shape) if v.is_floating_point() else v + 3 for k, v in sd.items()}
    ASAR().load_state_dict(reference, strict=True)


def test_key_encoder_starts_as_a_copy_and_takes_no_gradient():
    m = small()
    for p_q, p_k in zip(m.encoder_q.parameters(), m.encoder_k.parameters(), strict=True):
        assert not p_k.requires_grad and torch.equal(p_q, p_k)


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


def test_selection_takes_one_per_cluster_first_then_second_members():
    assign = torch.tensor([2, 2, 0, 2, 1, 1, 2, 3])   # clusters 0..3 (4 of them), 8 candidates
    assert ASAR.cover_clusters(assign, 5, 4).tolist() == [0, 2, 4, 7]   # first members
    assert ASAR.cover_clusters(assign, 5, 6).tolist() == [0, 1, 2, 4, 5, 7]  # + 2nd of 2 and 1
    assert ASAR.cover_clusters(assign, 5, 7).tolist() == [0, 1, 2, 3, 4, 5, 7]  # + 3rd of 2


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


def test_active_enqueue_writes_cluster_covering_candidates_at_the_pointer():
    m = small(queue_size=10)
    m.queue_ptr.fill_(8)                               # slots 8, 9, 0, 1: wraps around
    g = torch.Generator().manual_seed(3)
    q, k = (F.normalize(torch.randn(4, 8, generator=g), dim=1) for _ in range(2))
    k1 = torch.cat([k, m.queue[:, [8, 9, 0, 1]].T])   # candidates: keys, then queue entries
    from asar_model.kmeans import kmeans
    assign, _ = kmeans(ASAR.key_gradient(q, k1), 4, torch.Generator().manual_seed(9))
    chosen = m.active_enqueue(q, k, torch.Generator().manual_seed(9))
    assert torch.equal(chosen, ASAR.cover_clusters(assign, 4, 4))
    assert len(assign[chosen].unique()) == len(assign.unique())
    torch.testing.assert_close(m.queue[:, [8, 9, 0, 1]], k1[chosen].T)
    assert m.queue_ptr.item() == 2


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
