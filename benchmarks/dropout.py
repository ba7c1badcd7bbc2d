"""Does the hand-written CPU Dropout (`asar_model.stgcn.Dropout`) earn its place?

    python benchmarks/dropout.py [--threads T] [--batch 128] [--reps 3] [--no-step]

At NTU-60 size (batch 128 skeletons = 256 bodies, the quarter-width ST-GCN of the
pre-training presets, CPU), against `torch.nn.Dropout(0.5, inplace=True)` (F.dropout,
the reference's layer):

1. The dropout layers alone: every activation a pre-training step drops (blocks 2-10 of
   the query and the key encoder, channels-last as the encoder makes them), forward, and
   the backward of the query encoder's masks. Best of ``--reps`` rounds, interleaved.
2. One whole pre-training step (the ntu60-xview preset's learner: queue 32768, before
   the active-sampling epoch, so the step is at its cheapest and dropout's share at its
   largest): forward, backward, SGD, with each Dropout module of the same learner
   swapped for nn.Dropout. Median of ``--reps`` interleaved rounds (one warm-up each).

Prints seconds and the saving as a share of the whole step: the layer stays only if that
share matters (here: at least 5% of a step).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from asar_model import stgcn  # noqa: E402
from asar_model.training import build_learner  # noqa: E402
from pipelines.config import load_preset  # noqa: E402

MATTERS = 0.05   # a saving below 5% of a whole step does not pay for hand-written code


def activation_shapes(batch: int, hidden: int, hidden_dim: int, frames: int = 50,
                      joints: int = 25, bodies: int = 2) -> list[tuple[int, int, int, int]]:
    """(N*M, C, T, V) of the activations Dropout sees in blocks 2-10 of one encoder."""
    n, h = batch * bodies, hidden
    t2, t4 = (frames + 1) // 2, ((frames + 1) // 2 + 1) // 2
    plan = [(h, frames)] * 3 + [(2 * h, t2)] * 3 + [(4 * h, t4)] * 2 + [(hidden_dim, t4)]
    return [(n, c, t, joints) for c, t in plan]


def time_layers(layer: nn.Module, xs: list[torch.Tensor], grads: list[torch.Tensor]) -> float:
    """Seconds to drop every activation of two encoders and back-propagate one's masks
    (the inputs are copied before the clock starts: the layers drop in place)."""
    keys = [x.clone() for x in xs]
    leaves = [x.clone().requires_grad_() for x in xs]
    queries = [x.clone() for x in leaves]          # non-leaves, as BN's outputs in the encoder
    t0 = time.perf_counter()
    with torch.no_grad():
        for x in keys:                             # the key encoder: forward only
            layer(x)
    for x, g in zip(queries, grads, strict=True):  # the query encoder: forward + backward
        layer(x).backward(g)
    return time.perf_counter() - t0


def swap_dropout(model: nn.Module) -> nn.Module:
    """The same model with every `stgcn.Dropout` replaced by nn.Dropout (same p, in place)."""
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, stgcn.Dropout):
                setattr(module, name, nn.Dropout(child.p, inplace=child.inplace))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-step", action="store_true", help="only the layers (part 1)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_preset("pretrain", "ntu60-xview")
    margs = cfg["model_args"]
    p = float(margs["dropout"])
    layers = {"hand-written": stgcn.Dropout(p, inplace=True).train(),
              "nn.Dropout": nn.Dropout(p, inplace=True).train()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"p {p}", flush=True)

    gen = torch.Generator().manual_seed(0)
    shapes = activation_shapes(args.batch, margs["hidden_channels"], margs["hidden_dim"])
    xs = [torch.randn(s, generator=gen).contiguous(memory_format=torch.channels_last)
          for s in shapes]
    grads = [torch.randn(s, generator=gen).contiguous(memory_format=torch.channels_last)
             for s in shapes]
    elements = sum(x.numel() for x in xs)
    layer_s: dict[str, list[float]] = {k: [] for k in layers}
    for layer in layers.values():
        time_layers(layer, xs, grads)               # warm-up
    for _ in range(args.reps):
        for name, layer in layers.items():
            layer_s[name].append(time_layers(layer, xs, grads))
    best = {k: min(v) for k, v in layer_s.items()}
    print(f"\n1. dropout layers of one step ({2 * elements / 1e6:.0f} M elements dropped, "
          f"{elements / 1e6:.0f} M back-propagated), best of {args.reps}:")
    for name, s in best.items():
        print(f"   {name:13s} {s:7.3f} s")
    saved = best["nn.Dropout"] - best["hand-written"]
    print(f"   saving        {saved:7.3f} s per step "
          f"({best['nn.Dropout'] / best['hand-written']:.2f}x on the layers)", flush=True)
    if args.no_step:
        return

    cfg["batch_size"] = args.batch
    torch.manual_seed(0)
    learners = {"hand-written": build_learner(cfg.get("model_args")).train()}
    learners["nn.Dropout"] = swap_dropout(build_learner(cfg.get("model_args")).train())
    optims = {k: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
              for k, m in learners.items()}
    x = torch.randn(args.batch, 3, 50, 25, 2, generator=gen)

    def step(name: str) -> float:
        t0 = time.perf_counter()
        loss, _ = learners[name](x, x.flip(2), epoch=0, generator=gen)
        optims[name].zero_grad(set_to_none=True)
        loss.backward()
        optims[name].step()
        return time.perf_counter() - t0

    step_s: dict[str, list[float]] = {k: [] for k in learners}
    for name in learners:
        step(name)                                  # warm-up
    for _ in range(args.reps):
        for name in learners:
            step_s[name].append(step(name))
    med = {k: statistics.median(v) for k, v in step_s.items()}
    print(f"\n2. whole pre-training step (ntu60-xview preset, epoch 0), median of {args.reps}:")
    for name, s in med.items():
        print(f"   {name:13s} {s:7.3f} s   (rounds: {', '.join(f'{t:.2f}' for t in step_s[name])})")
    share = saved / med["nn.Dropout"]
    verdict = "keep it" if share >= MATTERS else "use nn.Dropout"
    print(f"   the layers' saving is {100 * share:.1f}% of a step with nn.Dropout; "
          f"step difference measured {100 * (1 - med['hand-written'] / med['nn.Dropout']):.1f}%"
          f" -> {verdict} (threshold {100 * MATTERS:.0f}%)")


if __name__ == "__main__":
    main()
