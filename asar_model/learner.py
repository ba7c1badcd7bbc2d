"""ASAR: MoCo on ST-GCN with adaptive relabeling and active sampling (ICIP 2023).

One small builder in the spirit of MoCo's: a query encoder, its momentum encoder, a
queue of keys, and each step of the method a short method. The state_dict has the
reference ASAR layout (``encoder_q.*``, ``encoder_k.*``, ``queue`` (D, K), ``labels``
(K,), ``queue_ptr`` (1,)), so the reference's checkpoints load into it with
``strict=True`` and ours into the reference's ``ASAR``.

Departures from the reference (the maths is the same): the active-sampling gradient is
the closed form instead of a second backward pass; candidates are the queue's entries
(the reference concatenates the untransposed (D, B) block, which only runs at B = D);
when the first three selection tiers hold fewer than B candidates the fourth fills up
to B (the reference enqueues all 2B and overruns its queue); selection and k-means run
without host syncs; the queue pointer stays on the device and writes wrap around, so
any batch size works.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from asar_data.errors import AsarError
from asar_model.kmeans import kmeans
from asar_model.stgcn import Model, reference_init

KEY_INITS = ("independent", "copy")  # model_args.key_init: the key encoder's start


class ASAR(nn.Module):
    """Pre-training learner: ``forward(im_q, im_k, epoch) -> (loss, stats)``, im (B, C, T, V, M).

    Reference ``model_args`` names are accepted (``base_encoder`` and ``pretrain`` only
    for compatibility: the encoder is always ``asar_model.stgcn.Model``).

    ``key_init`` is the key encoder's start. ``"independent"`` (default, the reference's):
    both encoders are built, the queue drawn, then the reference init is applied to the
    whole learner, so encoder_k gets its own draw; with the same torch seed the initial
    state equals the reference constructor's followed by its ``weights_init``, bit for
    bit (on the CPU). ``"copy"``: encoder_q is initialised and copied into encoder_k
    (MoCo's start, and this learner's before the option existed), then the queue drawn.
    """

    def __init__(
        self,
        feature_dim: int = 128,
        queue_size: int = 32768,
        momentum: float = 0.999,
        Temperature: float = 0.07,  # noqa: N803 - the reference config key
        relabel_temperature: float = 0.07,
        topk: int = 5,
        active_epoch: int = 150,
        kmeans_tol: float = 1e-4,
        kmeans_iters: int = 100,
        kmeans_check_every: int | None = None,
        mlp: bool = True,
        in_channels: int = 3,
        hidden_channels: int = 16,
        hidden_dim: int = 256,
        num_class: int = 60,
        dropout: float = 0.5,
        graph_args: dict | None = None,
        edge_importance_weighting: bool = True,
        base_encoder: str | None = None,
        pretrain: bool = True,
        key_init: str = "independent",
    ) -> None:
        super().__init__()
        if not pretrain:
            raise ValueError("ASAR is for pre-training; evaluate with asar_model.stgcn.Model")
        if key_init not in KEY_INITS:
            raise AsarError(f"model_args.key_init is {key_init!r}: give 'independent' (the "
                            "reference's start, encoder_k drawn on its own) or 'copy'")
        self.K, self.m, self.t1, self.t2 = queue_size, momentum, Temperature, relabel_temperature
        self.topk, self.active_epoch = topk, active_epoch
        self.kmeans_tol, self.kmeans_iters = kmeans_tol, kmeans_iters
        # k-means early-stop test every n iterations; None: every iteration on the CPU (where
        # it costs nothing and skips the frozen iterations: runs usually stop within a few),
        # never on accelerators (no host sync).
        self.kmeans_check_every = kmeans_check_every
        args = dict(in_channels=in_channels, hidden_channels=hidden_channels, hidden_dim=hidden_dim,
                    num_class=feature_dim, dropout=dropout, graph_args=graph_args,
                    edge_importance_weighting=edge_importance_weighting)
        self.encoder_q, self.encoder_k = Model(**args), Model(**args)
        if mlp:  # fc -> Linear, ReLU, fc: keys fc.0.*, fc.2.*
            for enc in (self.encoder_q, self.encoder_k):
                enc.fc = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), enc.fc)
        # independent: the reference's order of random draws (encoders and heads built, the
        # queue drawn, then the init over both encoders); copy: init, copy, queue.
        if key_init == "copy":
            reference_init(self.encoder_q)
            for p_q, p_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(),
                                strict=True):
                p_k.data.copy_(p_q.data)
        self.register_buffer("queue", F.normalize(torch.randn(feature_dim, queue_size), dim=0))
        # The reference registers it and never reads it; kept for checkpoint interop.
        self.register_buffer("labels", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        if key_init == "independent":
            reference_init(self.encoder_q)
            reference_init(self.encoder_k)
        for p_k in self.encoder_k.parameters():
            p_k.requires_grad = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Checkpoints written before the ``labels`` buffer existed load (strictly otherwise)."""
        state_dict.setdefault(prefix + "labels", self.labels.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- distributed hooks: single process by default; a DDP subclass overrides these ----
    def _all_gather(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate ``x`` (b, ...) over ranks in rank order -> (world * b, ...)."""
        return x

    def _broadcast(self, x: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``x`` on every rank."""
        return x

    def _rank(self) -> tuple[int, int]:
        """(rank, world size)."""
        return 0, 1

    # -- MoCo -------------------------------------------------------------------------
    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_k <- m * theta_k + (1 - m) * theta_q, for every parameter."""
        p_k = [p.data for p in self.encoder_k.parameters()]
        p_q = [p.data for p in self.encoder_q.parameters()]
        torch._foreach_mul_(p_k, self.m)
        torch._foreach_add_(p_k, p_q, alpha=1.0 - self.m)

    @torch.no_grad()
    def key_forward(self, im_k: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Keys with shuffled BN: (b, C, T, V, M) -> L2-normalised (b, D).

        The gathered batch is permuted (rank 0's permutation, broadcast), each rank encodes
        its slice, and the inverse permutation restores the order.
        """
        rank, world = self._rank()
        x = self._all_gather(im_k)                                     # (world * b, ...)
        gen_device = generator.device if generator is not None else x.device
        perm = self._broadcast(torch.randperm(x.shape[0], generator=generator,
                                              device=gen_device).to(x.device))
        mine = perm.view(world, -1)[rank]                              # (b,)
        k = F.normalize(self.encoder_k(x[mine]), dim=1)                # (b, D), shuffled
        k = self._all_gather(k)                                        # (world * b, D)
        return k[torch.argsort(perm).view(world, -1)[rank]]            # (b, D), in order

    # -- adaptive relabeling and the loss ---------------------------------------------
    @torch.no_grad()
    def relabel_weights(self, k: torch.Tensor,
                        queue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-n queue neighbours of each key (B, n) and their weight c (B,).

        s = k . queue / T2 (B, K); c = 1 - H(softmax(s)) / log K.
        """
        s = k @ queue / self.t2                                        # (B, K)
        logp = F.log_softmax(s, dim=1)
        entropy = -(logp.exp() * logp).sum(dim=1)                      # (B,)
        return s.topk(self.topk, dim=1).indices, 1.0 - entropy / math.log(queue.shape[1])

    @torch.no_grad()
    def relabel_targets(self, k: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        """Soft targets (B, 1 + K): 1 at the key, c at its top-n queue neighbours, normalised."""
        return self.soft_targets(*self.relabel_weights(k, queue), queue.shape[1])

    @staticmethod
    def soft_targets(nbr: torch.Tensor, c: torch.Tensor, size: int) -> torch.Tensor:
        """Neighbours (B, n) with weights c (B,) -> normalised targets (B, 1 + size)."""
        target = torch.zeros(nbr.shape[0], 1 + size, device=c.device, dtype=c.dtype)
        target[:, 0] = 1.0
        target.scatter_(1, nbr + 1, c[:, None].expand_as(nbr))         # logit column = 1 + entry
        return target / target.sum(dim=1, keepdim=True)

    def contrastive_loss(
        self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Soft-target cross-entropy of logits [q.k, q.queue] / T1."""
        l_pos = (q * k).sum(dim=1, keepdim=True)                       # (B, 1)
        l_neg = q @ queue                                              # (B, K)
        logits = torch.cat([l_pos, l_neg], dim=1) / self.t1            # (B, 1 + K)
        return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()

    # -- queue updates ----------------------------------------------------------------
    def _slots(self, n: int) -> torch.Tensor:
        """Queue columns written next: (ptr + arange(n)) % K, on the device (no host sync)."""
        if n > self.K:
            raise ValueError(f"cannot enqueue {n} keys into a queue of {self.K}")
        return (self.queue_ptr + torch.arange(n, device=self.queue.device)) % self.K

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """MoCo: write keys (B, D) over the oldest B columns; ptr <- (ptr + B) % K."""
        keys = self._all_gather(keys)
        self.queue.index_copy_(1, self._slots(keys.shape[0]), keys.T.to(self.queue.dtype))
        self.queue_ptr.add_(keys.shape[0]).remainder_(self.K)

    @staticmethod
    def key_gradient(q: torch.Tensor, k1: torch.Tensor) -> torch.Tensor:
        """d CE(q k1^T, arange(B)) / d k1 in closed form: (softmax(q k1^T) - onehot)^T q / B.

        q (B, D), k1 (N, D) with N >= B, the first B rows the positives -> (N, D).
        """
        b = q.shape[0]
        p = torch.softmax(q @ k1.T, dim=1)                             # (B, N)
        p[:, :b].diagonal().sub_(1.0)
        return p.T @ q / b                                             # (N, D)

    @staticmethod
    def select_tiers(assign: torch.Tensor, num_clusters: int, count: int) -> torch.Tensor:
        """The reference's selection: ``count`` candidates covering the clusters, in enqueue order.

        A candidate's tier is the number of its cluster's members from it to the end (in
        index order), capped at 4: tier 1 holds every cluster's LAST member, tier 2 the
        second-to-last, tier 3 the third-to-last, tier 4 the rest. The result is the
        first ``count`` of tier 1, 2, 3, 4, each tier in index order. (The reference stops
        at tier 3 and takes all candidates when tiers 1-3 hold fewer than ``count``.)
        assign (N,) in [0, num_clusters) -> indices (count,).
        """
        n = assign.shape[0]
        onehot = F.one_hot(assign, num_clusters)                        # (N, C)
        left = onehot.flip(0).cumsum(dim=0).flip(0)                     # members from row on
        tier = left.gather(1, assign[:, None])[:, 0].clamp(max=4)       # (N,) 1 = last member
        return torch.argsort(tier * n + torch.arange(n, device=assign.device))[:count]

    @torch.no_grad()
    def active_enqueue(
        self, q: torch.Tensor, k: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Active sampling: enqueue B of [k ; the B queue entries about to be overwritten].

        Candidates k1 (2B, D); their key gradients are clustered into B clusters and
        `select_tiers` picks B of them, written in its order over slots ptr..ptr+B-1.
        Returns the selected candidate indices (B,), in that order.
        """
        q, k = self._all_gather(q), self._all_gather(k)                 # (B, D) each
        b = k.shape[0]
        slots = self._slots(b)
        k1 = torch.cat([k, self.queue[:, slots].T.to(k.dtype)], dim=0)  # (2B, D)
        grad = self.key_gradient(q, k1)                                  # (2B, D)
        check = self.kmeans_check_every
        if check is None:
            check = 1 if grad.device.type == "cpu" else 0
        assign, _, _ = kmeans(grad, b, generator, self.kmeans_tol, self.kmeans_iters, check)
        chosen = self._broadcast(self.select_tiers(assign, b, b))        # (B,), same on all ranks
        self.queue.index_copy_(1, slots, k1[chosen].T.to(self.queue.dtype))
        self.queue_ptr.add_(b).remainder_(self.K)
        return chosen

    # -- one training step --------------------------------------------------------------
    def forward(
        self, im_q: torch.Tensor, im_k: torch.Tensor, epoch: int = 0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one step, and the queue updated. Active sampling from ``active_epoch`` on.

        ``generator`` drives the BN shuffle and the k-means initialisation (default: torch's).
        Stats are detached tensors (no host sync): loss, relabel weight c (mean), pos. logit.
        """
        q = F.normalize(self.encoder_q(im_q), dim=1)                    # (B, D)
        with torch.no_grad():
            self.momentum_update()
            k = self.key_forward(im_k, generator)                        # (B, D)
            queue = self.queue.clone()                                   # (D, K), pre-update
            nbr, c = self.relabel_weights(k, queue)                      # (B, n), (B,)
            target = self.soft_targets(nbr, c, self.K)                   # (B, 1 + K)
        loss = self.contrastive_loss(q, k, queue, target)
        with torch.no_grad():
            if epoch >= self.active_epoch:
                self.active_enqueue(q.detach(), k, generator)
            else:
                self.enqueue(k)
        pos = (q.detach() * k).sum(dim=1)                                # (B,)
        stats = {"loss": loss.detach(), "relabel_c": c.mean(), "pos_sim": pos.mean()}
        return loss, stats
