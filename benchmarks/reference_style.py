"""A reference-style ASAR training step, FOR BENCHMARKING ONLY (`benchmarks/pretrain.py`).

Not part of the package and not for training: it is written from the description of
the reference implementation in `../shared/spec/METHOD.md` ("Known quirks") to put
the reference's *costs* next to ours, on the same network and the same maths. It
computes a valid ASAR step (MoCo loss with adaptive relabeling, queue update, active
sampling from ``active_epoch`` on); its numbers are not meant to match ours draw for
draw. What it reproduces:

- data: a map-style dataset augmenting ONE SAMPLE AT A TIME in NumPy (temporal crop
  with the reference's mirrored padding ``x[:p][::-1]`` / ``x[-p:][::-1]``, then shear
  as ``data^T . R^T`` in float64, cast back to float32), two views per sample, run in
  torch DataLoader worker processes and collated into batches on the host;
- the reference formulation of the ST-GCN forward (NCHW, 1x1 conv then
  ``einsum('nkctv,kvw->nctw')``, torch's Bernoulli dropout, average pooling) over our
  modules' parameters (`reference_forward`);
- MoCo as the reference writes it: a Python loop over parameters for the momentum
  update, BN shuffle by index, the queue pointer read to the host (``int(ptr)``) and
  written by slice (so the batch size must divide the queue size);
- active sampling: the key gradient by AUTOGRAD - the candidates' cross-entropy is
  back-propagated through the whole query encoder (a second full backward pass; the
  encoder gradients it leaves are thrown away by the next ``zero_grad``); k-means with
  a host sync (``.item()``) on the convergence test of every iteration (plus the
  reference's CUDA synchronise and cache flush there on a GPU); the tiered selection
  as a Python loop over the 2B candidates with ``.item()`` syncs.

One departure, which costs the same: the candidates are the queue's entries (the
reference concatenates the untransposed (D, B) queue block, which only runs at B = D).
The loss is read to the host every step (``.item()``), as a per-iteration log does.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from asar_model.learner import ASAR
from asar_model.stgcn import Model

# -- per-sample NumPy augmentation (one sample (C, T, V, M) at a time) -----------------


def crop_one(x: np.ndarray, start: int, padding_ratio: int = 6) -> np.ndarray:
    """Mirror-pad p = T // ratio frames on each side, keep T frames from ``start``.

    x (C, T, V, M) -> (C, T, V, M); the padding repeats the edge frame (``x[:p][::-1]``).
    """
    t = x.shape[1]
    p = t // padding_ratio
    padded = np.concatenate((x[:, :p][:, ::-1], x, x[:, -p:][:, ::-1]), axis=1)
    return padded[:, start:start + t]


def shear_matrix(s: np.ndarray) -> np.ndarray:
    """R (3, 3) float64 from six draws: s1 = (R01, R10, R20), s2 = (R02, R12, R21)."""
    return np.array([[1.0, s[0], s[3]],
                     [s[1], 1.0, s[4]],
                     [s[2], s[5], 1.0]])


def shear_one(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """xyz' = R xyz as ``data^T . R^T`` in float64, back to float32. x (3, T, V, M)."""
    out = np.dot(x.transpose(1, 2, 3, 0), r.T)                        # (T, V, M, 3) float64
    return out.transpose(3, 0, 1, 2).astype(np.float32)


def augment_one(x: np.ndarray, padding_ratio: int = 6, amplitude: float = 0.5) -> np.ndarray:
    """The "normal" augmentation of one sample with NumPy's global random state."""
    p = x.shape[1] // padding_ratio
    x = crop_one(x, np.random.randint(0, 2 * p + 1), padding_ratio)
    return shear_one(x, shear_matrix(np.random.uniform(-amplitude, amplitude, 6)))


class ReferenceFeeder(torch.utils.data.Dataset):
    """Two augmented views of sample ``i % n`` of ``data`` (n, C, T, V, M), one at a time.

    ``length`` sets the epoch size (the data are reused cyclically).
    """

    def __init__(self, data: np.ndarray, labels: np.ndarray, length: int):
        self.data, self.labels, self.length = data, labels, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        j = i % len(self.data)
        x = np.array(self.data[j])                      # a copy, as from a memory-mapped .npy
        return augment_one(x), augment_one(x), int(self.labels[j])


def make_loader(data: np.ndarray, labels: np.ndarray, batch: int, workers: int, length: int,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """Shuffled batches of (view1, view2, label) from `ReferenceFeeder` in ``workers``
    worker processes (0: in the main process)."""
    return torch.utils.data.DataLoader(
        ReferenceFeeder(data, labels, length), batch_size=batch, shuffle=True,
        num_workers=workers, drop_last=True, pin_memory=pin_memory)


# -- the reference formulation of the ST-GCN forward ------------------------------------


def reference_forward(m: Model, x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, V, M) -> (N, out) through ``m``'s parameters, written as the reference does."""
    n, c, t, v, mm = x.shape
    x = m.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n * mm, v * c, t))   # (N*M, V*C, T)
    x = x.view(n, mm, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * mm, c, t, v)  # NCHW
    for i, blk in enumerate(m.st_gcn_networks):
        a = m.A * m.edge_importance[i]                                  # (K, V, V)
        res = 0 if blk.residual is None else x if blk.residual == "identity" else blk.residual(x)
        y = blk.gcn.conv(x)                                             # (N*M, K*C, T, V)
        y = torch.einsum("nkctv,kvw->nctw", y.view(y.shape[0], a.shape[0], -1, *y.shape[2:]), a)
        tcn = blk.tcn
        y = tcn[3](tcn[2](F.relu(tcn[0](y.contiguous()))))
        y = F.dropout(y, tcn[4].p, m.training)                          # torch's Bernoulli mask
        x = F.relu(y + res)
    x = F.avg_pool2d(x, x.shape[2:]).view(n, mm, -1).mean(dim=1)       # (N, hidden_dim)
    return m.fc(x)


# -- active sampling with host syncs ----------------------------------------------------


def kmeans_host_sync(x: torch.Tensor, k: int, tol: float = 1e-4,
                     max_iter: int = 100) -> torch.Tensor:
    """Euclidean k-means of the rows of x (n, d), random initial points, the reference's
    rule (an empty cluster's new centroid is 0; stop with this iteration's assignment); the
    convergence test reads the summed squared centroid move to the host every iteration."""
    n = x.shape[0]
    centroids = x[torch.randperm(n, device=x.device)[:k]]               # (k, d)
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    for _ in range(max_iter):
        assign = torch.cdist(x, centroids).argmin(dim=1)                # (n,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)[:, None]           # (k, 1)
        new = sums / counts.clamp(min=1)                                # 0 for an empty one
        shift = (new - centroids).pow(2).sum()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        if shift.item() <= tol:                                          # host sync
            break
        centroids = new
    return assign


def select_loop(assign: torch.Tensor, num_clusters: int, count: int) -> torch.Tensor:
    """The reference's tiers candidate by candidate in Python: a running count per cluster
    (its size) sends a candidate to tier min(count, 4), counts above 1 drop by one; the first
    ``count`` of tiers 1-4 in order. -> chosen indices (count,), in enqueue order."""
    left = torch.bincount(assign, minlength=num_clusters)
    tiers: list[list[int]] = [[], [], [], []]
    for i in range(assign.shape[0]):
        c = assign[i].item()                                            # host sync
        n = int(left[c].item())                                         # host sync
        tiers[min(n, 4) - 1].append(i)
        if n > 1:
            left[c] -= 1
    return torch.tensor((tiers[0] + tiers[1] + tiers[2] + tiers[3])[:count], device=assign.device)


class ReferenceStyleASAR(ASAR):
    """ASAR's step with the reference's costs (see the module docstring). Same parameters,
    buffers and maths as `ASAR`; forward(im_q, im_k, epoch) -> (loss, stats)."""

    @torch.no_grad()
    def momentum_update(self) -> None:
        for p_q, p_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(),
                            strict=True):
            p_k.data = p_k.data * self.m + p_q.data * (1.0 - self.m)

    @torch.no_grad()
    def key_forward(self, im_k: torch.Tensor, generator=None) -> torch.Tensor:
        idx = torch.randperm(im_k.shape[0], device=im_k.device)          # BN shuffle
        k = F.normalize(reference_forward(self.encoder_k, im_k[idx]), dim=1)
        return k[torch.argsort(idx)]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        b, ptr = keys.shape[0], int(self.queue_ptr)                      # host sync
        if self.K % b:
            raise ValueError(f"the reference-style queue needs batch {b} to divide {self.K}")
        self.queue[:, ptr:ptr + b] = keys.T
        self.queue_ptr[0] = (ptr + b) % self.K

    def active_sample(self, q: torch.Tensor, k: torch.Tensor) -> None:
        """Key gradient by autograd through the query encoder, k-means and loop selection."""
        b, ptr = k.shape[0], int(self.queue_ptr)                         # host sync
        if self.K % b:
            raise ValueError(f"the reference-style queue needs batch {b} to divide {self.K}")
        k1 = torch.cat([k, self.queue[:, ptr:ptr + b].T]).detach().requires_grad_(True)
        ce = F.cross_entropy(q @ k1.T, torch.arange(b, device=q.device))
        ce.backward(retain_graph=True)           # through encoder_q too; its grads are dropped
        grad = k1.grad                                                   # (2B, D)
        with torch.no_grad():
            assign = kmeans_host_sync(grad, b, self.kmeans_tol, self.kmeans_iters)
            chosen = select_loop(assign, b, b)
            self.queue[:, ptr:ptr + b] = k1[chosen].T
            self.queue_ptr[0] = (ptr + b) % self.K

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor, epoch: int = 0,
                generator=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        q = F.normalize(reference_forward(self.encoder_q, im_q), dim=1)  # (B, D)
        with torch.no_grad():
            self.momentum_update()
            k = self.key_forward(im_k)                                   # (B, D)
            queue = self.queue.clone().detach()
            target = self.relabel_targets(k, queue)                      # (B, 1 + K)
        loss = self.contrastive_loss(q, k, queue, target)
        if epoch >= self.active_epoch:
            self.active_sample(q, k)
        else:
            self.enqueue(k)
        return loss, {"loss": loss.detach()}


def reference_step(model: ReferenceStyleASAR, opt: torch.optim.Optimizer,
                   batch: tuple[torch.Tensor, ...], epoch: int, device: torch.device) -> float:
    """One reference-style iteration on a collated host batch; returns the loss (host)."""
    v1, v2 = (t.to(device, non_blocking=True).float() for t in batch[:2])
    loss, _ = model(v1, v2, epoch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


# -- self-checks: the same kind of computation as ours ----------------------------------


def check_equivalence(seed: int = 0) -> dict[str, float]:
    """Max abs differences from our batched code on small inputs (all should be ~0):
    per-sample crop + shear vs `asar_data.augment`, autograd key gradient vs the closed
    form, and the loop selection vs `ASAR.select_tiers` (count of mismatches)."""
    from asar_data.augment import apply_shear, apply_temporal_crop

    g = np.random.default_rng(seed)
    x = g.normal(size=(5, 3, 50, 25, 2)).astype(np.float32)
    starts = g.integers(0, 2 * (50 // 6) + 1, 5)
    s = g.uniform(-0.5, 0.5, (5, 6))
    ours = apply_shear(apply_temporal_crop(torch.from_numpy(x), torch.from_numpy(starts)),
                       torch.from_numpy(np.stack([shear_matrix(r) for r in s])).float())
    ref = np.stack([shear_one(crop_one(x[i], int(starts[i])), shear_matrix(s[i]))
                    for i in range(5)])
    aug = float(np.abs(ours.numpy() - ref).max())

    torch.manual_seed(seed)
    q = F.normalize(torch.randn(8, 16), dim=1)
    k1 = F.normalize(torch.randn(16, 16), dim=1).requires_grad_(True)
    F.cross_entropy(q @ k1.T, torch.arange(8)).backward()
    grad = float((k1.grad - ASAR.key_gradient(q, k1.detach())).abs().max())

    assign = torch.randint(0, 8, (16,))
    sel = int((select_loop(assign, 8, 8) != ASAR.select_tiers(assign, 8, 8)).sum())
    return {"augment_max_abs": aug, "key_gradient_max_abs": grad, "selection_mismatches": sel}
