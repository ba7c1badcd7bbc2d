import pytest
import torch

from asar_model.kmeans import kmeans


def reference_run(reference_active, monkeypatch, x, k, pick, tol, max_iter):
    """The oracle's assignment and the number of iterations it ran (one cdist each)."""
    calls = []
    cdist = torch.cdist
    monkeypatch.setattr(torch, "cdist", lambda *a, **kw: calls.append(1) or cdist(*a, **kw))
    assign = reference_active.kmeans_reference(x, k, pick, tol, max_iter)
    monkeypatch.setattr(torch, "cdist", cdist)
    return assign, len(calls)


def point_sets():
    """(x (2b, 6) float64, b, initial pick): gradient-sized to unit-sized random points, and
    points repeating a few rows away from 0 (equal initial centroids leave clusters empty)."""
    g = torch.Generator().manual_seed(0)
    for b in (3, 5, 8, 12):
        for scale in (4e-3, 1e-1, 1.0):
            yield (scale * torch.randn(2 * b, 6, generator=g, dtype=torch.float64), b,
                   torch.randperm(2 * b, generator=g)[:b])
            rows = 5 + torch.randn(b + 1, 6, generator=g, dtype=torch.float64)
            yield (scale * rows[torch.randint(0, b + 1, (2 * b,), generator=g)], b,
                   torch.randperm(2 * b, generator=g)[:b])


def test_stop_iteration_and_assignment_equal_the_reference(reference_active, monkeypatch):
    longer = 0
    for x, b, pick in point_sets():
        for tol in (1e-4, 1e-8, 0.0):
            for max_iter in (1, 2, 100):
                want, its = reference_run(reference_active, monkeypatch, x, b, pick, tol,
                                          max_iter)
                for check in (0, 1, 3):
                    assign, _, n_iter = kmeans(x, b, None, tol, max_iter, check, pick=pick)
                    assert torch.equal(assign, want)
                    assert int(n_iter) == its
                longer += its > 1
    assert longer > 40  # most runs go past the first iteration


def test_an_empty_clusters_new_centroid_is_zero_and_counts_in_the_error(
        reference_active, monkeypatch):
    # Two equal initial centroids: cluster 1 gets no point, its new centroid is 0, far from
    # every point: the next iteration moves nothing and stops with every point in cluster 0.
    # (Keeping the empty centroid at 100 would split off the two 100s instead.)
    x = torch.tensor([[100.0], [100.0], [110.0], [111.0], [120.0]], dtype=torch.float64)
    pick = torch.tensor([0, 1])
    assign, centroids, n_iter = kmeans(x, 2, pick=pick)
    want, its = reference_run(reference_active, monkeypatch, x, 2, pick, 1e-4, 100)
    assert torch.equal(assign, want) and assign.tolist() == [0, 0, 0, 0, 0]
    assert int(n_iter) == its == 2
    assert centroids[:, 0].tolist() == pytest.approx([108.2, 0.0])


def test_stopping_returns_that_iterations_assignment_not_the_next():
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    pick = torch.arange(4)
    first = torch.cdist(x, x[pick]).argmin(dim=1)
    assign, centroids, n_iter = kmeans(x, 4, tol=1e9, pick=pick)
    assert torch.equal(assign, first) and int(n_iter) == 1
    assert torch.equal(centroids, x[pick])  # not replaced on the stopping iteration


def test_large_tolerance_stops_after_the_first_assignment():
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    assign, _, _ = kmeans(x, 5, torch.Generator().manual_seed(3), tol=1e9)
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
    assign, c, _ = kmeans(x, 3, torch.Generator().manual_seed(seed), tol=0.0)
    assert all(len(assign[i * 20:(i + 1) * 20].unique()) == 1 for i in range(3))
    assert len(assign.unique()) == 3
    torch.testing.assert_close(c[assign[::20]], x.view(3, 20, 2).mean(1))


def test_same_seed_same_result_and_early_check_changes_nothing():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    a = kmeans(x, 10, torch.Generator().manual_seed(5), tol=1e-6)
    b = kmeans(x, 10, torch.Generator().manual_seed(5), tol=1e-6)
    c = kmeans(x, 10, torch.Generator().manual_seed(5), tol=1e-6, check_every=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[0], c[0])
    assert torch.equal(a[1], c[1]) and torch.equal(a[2], c[2])
