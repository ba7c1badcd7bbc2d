"""ST-GCN encoder with the reference ``net.st_gcn.Model`` parameter layout.

Module, parameter and buffer names equal the reference's, so its state_dicts load
strictly: ``A``, ``data_bn``, ``st_gcn_networks.{i}.gcn.conv``, ``.tcn.{0,2,3}``
(BN, temporal conv, BN; ReLU at 1, Dropout at 4), ``.residual.{0,1}`` (1x1 conv + BN
where the shape changes), ``edge_importance.{i}``, ``fc``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asar_model.graph import Graph

TEMPORAL_KERNEL = 9


class GraphConv(nn.Module):
    """Spatial graph conv: the reference's 1x1 conv to K*C_out channels, then a sum over
    partitions k and joints v with A (``einsum('nkctv,kvw->nctw')``).

    Same maths, cheaper order, on channels-last activations (every reshape a view); the
    conv bias goes through A's column sums. Narrow blocks (C_in * C_out <= ``FOLD_MAX``)
    fold conv and A into one (V*C_in, V*C_out) matrix: one GEMM. Wider blocks aggregate
    the C_in input channels over joints first (a batched matmul with A), then one GEMM.
    x (n, C_in, T, V), A (K, V, V) -> (n, C_out, T, V) in channels-last memory format.
    """

    FOLD_MAX = 512  # measured on CPU: folding wins up to 16 -> 32 channels, loses from 32 -> 64

    def __init__(self, in_channels: int, out_channels: int, partitions: int) -> None:
        super().__init__()
        self.partitions = partitions
        self.fold = in_channels * out_channels <= self.FOLD_MAX
        self.conv = nn.Conv2d(in_channels, out_channels * partitions, kernel_size=1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        n, ci, t, v = x.shape
        k = self.partitions
        w = self.conv.weight.view(k, -1, ci)                                 # (K, C, C_in)
        bias = torch.einsum("kc,kvw->wc", self.conv.bias.view(k, -1), a)     # (W, C)
        rows = x.permute(0, 2, 3, 1).reshape(n * t, v * ci)                  # (n*T, V*C_in)
        if self.fold:
            m = torch.einsum("kvw,kcu->vuwc", a, w).reshape(v * ci, -1)      # (V*C_in, W*C)
            y = torch.addmm(bias.reshape(-1), rows, m)                       # (n*T, W*C)
        else:
            a_wk = a.permute(2, 0, 1).reshape(v * k, v)                      # (W*K, V)
            z = torch.bmm(a_wk.expand(n * t, -1, -1), rows.view(n * t, v, ci))  # (n*T, W*K, C_in)
            w_kc = w.transpose(1, 2).reshape(k * ci, -1)                     # (K*C_in, C)
            # matmul's result is not a view, so the in-place add costs no autograd copy.
            y = torch.matmul(z.view(n * t, v, k * ci), w_kc).add_(bias)      # (n*T, W, C)
        return y.view(n, t, v, -1).permute(0, 3, 1, 2)                      # (n, C, T, W)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a faster CPU mask (same distribution, another random stream).

    On the CPU torch's Bernoulli draw dominates a quarter of the ST-GCN forward; when
    ``256 * p`` is a whole number (p = 0.5 here) the keep mask is one random byte per
    element compared with ``256 * p``, the bytes cut from full-range int64 draws. Other
    devices and other ``p`` use ``F.dropout``. Worth it: 4-5x faster than F.dropout on a
    step's dropout layers, about 10% of a whole NTU-60 pre-training step on the CPU
    (``benchmarks/dropout.py``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p
        if not self.training or p == 0.0:
            return x
        if x.device.type != "cpu" or p >= 1.0 or not (256 * p).is_integer():
            return F.dropout(x, p, True, self.inplace)
        words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64, device=x.device)
        noise = words.random_(-(2**63), None).view(torch.uint8)[: x.numel()]   # uniform bytes
        cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        noise = noise.as_strided(x.shape, x.stride()) if cl else noise.view(x.shape)
        scale = noise.to(x.dtype).ge_(int(256 * p))                 # 1 with probability 1 - p
        return x * scale.mul_(1.0 / (1.0 - p))


class PointwiseConv2d(nn.Conv2d):  # "Conv2d" in the name: the reference's init matches it
    """``nn.Conv2d(in, out, 1, stride=(s, 1))`` (same parameters, same maths) that on the CPU
    takes every s-th frame itself and runs a stride-1 1x1 conv.

    Works around a heap corruption in torch's bundled oneDNN (torch 2.13 CPU, oneDNN 3.12):
    the ``jit_1x1`` backward-weights kernel of a strided 1x1 conv on channels-last input with
    fewer input channels than its block (16 with AVX-512, 8 with AVX2) writes past its
    reduce-to-unit-stride workspace (uxlfoundation/oneDNN#6035), so narrow encoders
    (hidden_channels < 16) crash in ``backward()``. Stride 1 never takes that path.
    x (n, C_in, T, V) -> (n, C_out, ceil(T / s), V).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1, stride=(stride, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or self.stride[0] == 1:
            return super().forward(x)
        return F.conv2d(x[:, :, :: self.stride[0]], self.weight, self.bias)


class STGCNBlock(nn.Module):
    """Graph conv, BN-ReLU-temporal conv-BN-Dropout, residual, ReLU.

    x (n, C_in, T, V) -> (n, C_out, ceil(T / stride), V).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        partitions: int,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
    ) -> None:
        super().__init__()
        pad = (TEMPORAL_KERNEL - 1) // 2
        self.gcn = GraphConv(in_channels, out_channels, partitions)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (TEMPORAL_KERNEL, 1), (stride, 1), (pad, 0)),
            nn.BatchNorm2d(out_channels),
            Dropout(dropout, inplace=True),
        )
        # residual: None (no residual), "identity", or a 1x1 conv + BN module.
        self.residual: nn.Module | str | None
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = "identity"
        else:
            self.residual = nn.Sequential(
                PointwiseConv2d(in_channels, out_channels, stride),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x, a))
        if self.residual == "identity":
            y = y.add_(x)
        elif self.residual is not None:
            y = y.add_(self.residual(x))
        return F.relu(y, inplace=True)


class Model(nn.Module):
    """ST-GCN: (N, C, T, V, M) skeletons -> (N, num_class) via a pooled hidden_dim feature.

    Constructor arguments are the reference ``model_args`` names; ``dropout`` applies to
    blocks 2-10 (block 1 has none), as in the reference.
    """

    def __init__(
        self,
        in_channels: int = 3,
        hidden_channels: int = 16,
        hidden_dim: int = 256,
        num_class: int = 60,
        graph_args: dict | None = None,
        edge_importance_weighting: bool = True,
        dropout: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__()
        if kwargs:
            raise TypeError(f"unexpected ST-GCN arguments: {sorted(kwargs)}")
        graph = Graph(**(graph_args or {"layout": "ntu-rgb+d", "strategy": "spatial"}))
        self.register_buffer("A", torch.tensor(graph.A, dtype=torch.float32))
        k, v = self.A.shape[:2]
        h = hidden_channels
        self.data_bn = nn.BatchNorm1d(in_channels * v)
        # (in, out, temporal stride) per block.
        plan = [(in_channels, h, 1), (h, h, 1), (h, h, 1), (h, h, 1), (h, 2 * h, 2),
                (2 * h, 2 * h, 1), (2 * h, 2 * h, 1), (2 * h, 4 * h, 2), (4 * h, 4 * h, 1),
                (4 * h, hidden_dim, 1)]
        self.st_gcn_networks = nn.ModuleList(
            STGCNBlock(i, o, k, s, dropout=0.0 if b == 0 else dropout, residual=b > 0)
            for b, (i, o, s) in enumerate(plan)
        )
        self.edge_importance = (
            nn.ParameterList(nn.Parameter(torch.ones(k, v, v)) for _ in plan)
            if edge_importance_weighting else None
        )
        self.fc: nn.Module = nn.Linear(hidden_dim, num_class)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> pooled feature (N, hidden_dim), the input of ``fc``."""
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)          # (N*M, V*C, T)
        x = self.data_bn(x)
        x = x.view(n * m, v, c, t).permute(0, 3, 1, 2).contiguous()    # (N*M, T, V, C)
        x = x.permute(0, 3, 1, 2)                                       # (N*M, C, T, V), chan.-last
        for b, block in enumerate(self.st_gcn_networks):
            a = self.A if self.edge_importance is None else self.A * self.edge_importance[b]
            x = block(x, a)                                             # (N*M, C_b, T_b, V)
        # Sum then scale: the mean's backward would materialise a full-size gradient.
        x = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])                # (N*M, hidden_dim)
        return x.view(n, m, -1).mean(dim=1)                               # (N, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, num_class) (or the MLP head's output)."""
        return self.fc(self.forward_features(x))


def reference_init(module: nn.Module, linear: bool = True) -> nn.Module:
    """Reference init: conv (and linear) weights N(0, 0.02), biases 0; BN weight N(1, 0.02), bias 0.

    The reference ``weights_init`` matches Conv1d/Conv2d/BatchNorm by class name;
    METHOD.md adds Linear (``linear=True``); ``linear=False`` leaves Linear at torch's default.
    """
    types = (nn.Conv1d, nn.Conv2d, nn.Linear) if linear else (nn.Conv1d, nn.Conv2d)
    for mod in module.modules():
        if isinstance(mod, types):
            nn.init.normal_(mod.weight, 0.0, 0.02)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(mod.weight, 1.0, 0.02)
            nn.init.zeros_(mod.bias)
    return module
