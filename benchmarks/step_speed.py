"""CPU timings of the ST-GCN forward and of one pre-training step (batch 128, T = 50).

    python benchmarks/step_speed.py [--batch 128] [--threads 1 2] [--reps 3]

Rows: the reference formulation of the forward (NCHW, 1x1 conv then einsum, torch's
dropout) next to ours (channels-last, folded graph conv, byte-mask dropout), both in
train mode under no_grad (as the key encoder runs) and with a backward; then one full
training step (query forward + backward + SGD, key forward, queue update) as MoCo
(before ``active_epoch``) and as ASAR with active sampling on. Minimum over ``--reps``
after one warm-up run.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from asar_model.learner import ASAR
from asar_model.stgcn import Model, reference_init


def reference_forward(m: Model, x: torch.Tensor) -> torch.Tensor:
    """The reference's formulation of the same network, for timing."""
    n, c, t, v, mm = x.shape
    x = m.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n * mm, v * c, t))
    x = x.view(n, mm, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * mm, c, t, v)
    for i, blk in enumerate(m.st_gcn_networks):
        a = m.A * m.edge_importance[i]
        res = 0 if i == 0 else x if blk.residual == "identity" else blk.residual(x)
        y = blk.gcn.conv(x)
        y = torch.einsum("nkctv,kvw->nctw", y.view(y.shape[0], 3, -1, *y.shape[2:]), a)
        tcn = blk.tcn
        y = tcn[3](tcn[2](F.relu(tcn[0](y.contiguous()))))
        y = F.dropout(y, tcn[4].p, m.training)                        # torch's Bernoulli mask
        x = F.relu(y + res)
    x = F.avg_pool2d(x, x.shape[2:]).view(n, mm, -1).mean(dim=1)
    return m.fc(x)


def best_of(fn: Callable[[], object], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 50, 25, 2)
    x2 = torch.randn(args.batch, 3, 50, 25, 2)
    model = reference_init(Model(num_class=128)).train()
    learner = ASAR(active_epoch=1).train()
    opt = torch.optim.SGD(learner.encoder_q.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step(epoch: int) -> None:
        loss, _ = learner(x, x2, epoch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def no_grad(f: Callable[[Model, torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return f(model, x)
        return run

    rows = [
        ("forward, reference formulation", no_grad(reference_forward)),
        ("forward, ours", no_grad(Model.forward)),
        ("forward + backward, reference formulation",
         lambda: reference_forward(model, x).square().sum().backward()),
        ("forward + backward, ours", lambda: model(x).square().sum().backward()),
        ("train step, MoCo (epoch < active_epoch)", lambda: step(0)),
        ("train step, ASAR with active sampling", lambda: step(1)),
    ]
    print(f"batch {args.batch} x (3, 50, 25, 2), train mode, best of {args.reps}, seconds")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, fn in rows:
            label = f"{threads} thread{'s' if threads > 1 else ' '}"
            print(f"  {label}  {name:<44s} {best_of(fn, args.reps):7.3f}")


if __name__ == "__main__":
    main()
