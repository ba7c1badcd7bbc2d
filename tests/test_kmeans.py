import torch

from asar_model.kmeans import kmeans


def loop_kmeans(x, k, gen, tol, max_iter):
    """The reference rule with a Python while-loop and host-side stop test."""
    c = x[torch.randperm(x.shape[0], generator=gen)[:k]].clone()
    it = 0
    while True:
        assign = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        old = c.clone()
        for j in range(k):
            if (assign == j).any():
                c[j] = x[assign == j].mean(0)
        it += 1
        if ((c - old) ** 2).sum() <= tol or it >= max_iter:
            return assign, c


def test_matches_the_loop_rule_for_any_tolerance():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    for tol in (1e9, 1e-1, 0.0):
        for iters in (1, 3, 100):
            got = kmeans(x, 6, torch.Generator().manual_seed(7), tol, iters)
            want = loop_kmeans(x, 6, torch.Generator().manual_seed(7), tol, iters)
            assert torch.equal(got[0], want[0])
            torch.testing.assert_close(got[1], want[1])


def test_large_tolerance_stops_after_the_first_assignment():
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    assign, _ = kmeans(x, 5, torch.Generator().manual_seed(3), tol=1e9)
    init = x[torch.randperm(30, generator=torch.Generator().manual_seed(3))[:5]]
    assert torch.equal(assign, torch.cdist(x, init).argmin(dim=1))


def test_separated_blobs_are_found():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = (centres[:, None] + 0.1 * torch.randn(3, 20, 2, generator=g)).reshape(60, 2)
    # A seed whose initial centroids fall in three different blobs (no local minimum).
    seed = next(s for s in range(100)
                if len(set((torch.randperm(60, generator=torch.Generator().manual_seed(s))[:3]
                            // 20).tolist())) == 3)
    assign, c = kmeans(x, 3, torch.Generator().manual_seed(seed), tol=0.0)
    assert all(len(assign[i * 20:(i + 1) * 20].unique()) == 1 for i in range(3))
    assert len(assign.unique()) == 3
    torch.testing.assert_close(c[assign[::20]], x.view(3, 20, 2).mean(1))


def test_same_seed_same_result_and_early_check_changes_nothing():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    a = kmeans(x, 10, torch.Generator().manual_seed(5), tol=1e-6)
    b = kmeans(x, 10, torch.Generator().manual_seed(5), tol=1e-6)
    c = kmeans(x, 10, torch.Generator().manual_seed(5), tol=1e-6, check_every=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[0], c[0])
    torch.testing.assert_close(a[1], c[1])


def test_empty_cluster_keeps_its_centroid():
    x = torch.ones(6, 3)
    assign, c = kmeans(x, 2, torch.Generator().manual_seed(0))
    assert (assign == 0).all() and torch.equal(c, torch.ones(2, 3))
