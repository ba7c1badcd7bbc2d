"""Linear evaluation: our stage (features computed once) vs a reference-style linear step.

    python benchmarks/evaluate.py [--train 1024] [--test 512] [--ref-epochs 1] [--device cpu]

One run, same data (a synthetic 50-frame store written with `asar_data.frames_store`,
60 classes), same weights (a reference-layout ASAR state_dict):

- ours: the whole `pipelines.evaluate.evaluate(..., "linear")` stage call with the
  ntu60-xview linear preset (100 epochs, batch 128, test every 5 epochs): features of
  both splits once, the fc trained on them, result.json + confusion.png written.
- reference-style: what the reference's linear processor does each epoch: every training
  batch goes through the frozen encoder (eval mode, autograd on, as there) into the fc,
  loss, backward, SGD step; the whole test split is encoded every 5 epochs. It is timed
  on ``--ref-epochs`` epochs and one test pass and EXTRAPOLATED to 100 epochs + 20 test
  passes. Its encoder is our (faster) ST-GCN formulation and its data are already in
  memory (no per-sample NumPy feeder), so the ratio understates the reference's cost.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from asar_data import frames_store
from asar_data.loader import ResidentSource
from asar_model.heads import eval_epochs, learning_rate, make_sgd, new_fc
from asar_model.learner import ASAR
from pipelines.checkpoints import load_encoder
from pipelines.config import load_preset
from pipelines.evaluate import evaluate
from pipelines.manifest import Manifest
from pipelines.workspace import Workspace

CLASSES, FRAMES = 60, 50


def write_store(ws: Workspace, n_train: int, n_test: int, seed: int = 0) -> None:
    """A complete 'ntu60' 50-frame store (benchmark xview) of class-dependent noise."""
    n = n_train + n_test
    g = np.random.default_rng(seed)
    y = g.integers(0, CLASSES, n)
    out = ws.frames("ntu60")
    chunk = 256
    frames_store.create(out.store, n, FRAMES, chunk)
    wave = np.sin(np.outer(y + 1, np.arange(FRAMES)) * 2 * np.pi / FRAMES)   # (n, T)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        x = g.normal(0, 0.3, (b - a, 3, FRAMES, 25, 2)).astype(np.float32)
        x[:, 1, :, :, 0] += wave[a:b, :, None]
        frames_store.write_block(out.store, a, x, np.full(b - a, FRAMES, np.int32))
    frames_store.finalise(out.store, y, np.array([f"s{i:05d}" for i in range(n)]),
                          {"xview": (np.arange(n_train), np.arange(n_train, n))},
                          {"dataset": "ntu60", "benchmarks": ["xview"], "classes": CLASSES})
    Manifest("downsample", "synthetic", "bench", {}, {}, out.store, complete=True).save(
        out.manifest)


def write_weights(path: str) -> None:
    """A reference-layout pre-training state_dict (encoder_q/encoder_k/queue)."""
    torch.manual_seed(0)
    torch.save(ASAR(num_class=CLASSES).state_dict(), path)


def reference_style(ws: Workspace, weights: str, cfg: dict, ref_epochs: int,
                    device: torch.device) -> dict[str, float]:
    """Seconds per epoch and per test pass of the encode-every-batch linear step."""
    from asar_data.frames_store import FramesStore

    store = FramesStore(ws.frames("ntu60").store)
    train = ResidentSource.from_store(store, store.split("xview", "train"), device)
    test = ResidentSource.from_store(store, store.split("xview", "test"), device)
    encoder, _ = load_encoder(weights, cfg["model_args"], CLASSES)
    encoder = encoder.to(device).eval()
    for p in encoder.parameters():
        p.requires_grad = False
    fc = new_fc(256, CLASSES, torch.Generator().manual_seed(0)).to(device)
    opt = make_sgd(fc.parameters(), cfg)
    gen = torch.Generator(device=device).manual_seed(0)
    t0 = time.perf_counter()
    for epoch in range(ref_epochs):
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, epoch)
        for x, y in train.batches(int(cfg["batch_size"]), gen, drop_last=True):
            loss = F.cross_entropy(fc(encoder.forward_features(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    _sync(device)
    per_epoch = (time.perf_counter() - t0) / ref_epochs
    t1 = time.perf_counter()
    with torch.no_grad():
        for x, _ in test.batches(int(cfg["test_batch_size"]), None, drop_last=False):
            fc(encoder.forward_features(x))
    _sync(device)
    return {"epoch": per_epoch, "test": time.perf_counter() - t1}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1024)
    parser.add_argument("--test", type=int, default=512)
    parser.add_argument("--ref-epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = load_preset("linear", "ntu60-xview")
    cfg["device"] = args.device
    epochs = int(cfg["num_epoch"])
    tests = len(eval_epochs(epochs, int(cfg["eval_interval"])))
    with tempfile.TemporaryDirectory() as root:
        ws = Workspace(root)
        write_store(ws, args.train, args.test)
        weights = os.path.join(root, "asar.pt")
        write_weights(weights)
        t0 = time.perf_counter()
        res = evaluate(ws, cfg, weights, "linear")
        ours = time.perf_counter() - t0
        ref = reference_style(ws, weights, cfg, args.ref_epochs, device)
    total = epochs * ref["epoch"] + tests * ref["test"]
    sec = res.result["seconds"]
    print(f"data: {args.train} train + {args.test} test samples, T={FRAMES}, {CLASSES} classes, "
          f"{device}, {torch.get_num_threads()} threads; linear preset: {epochs} epochs, "
          f"batch {cfg['batch_size']}, {tests} test passes")
    print(f"ours (whole stage call): {ours:8.2f} s  (features {sec['features']:.2f} s, "
          f"fc training {sec['train']:.2f} s); top-1 {res.result['accuracy']['top1']:.1f}%")
    print(f"reference-style, measured: {ref['epoch']:.2f} s/epoch over {args.ref_epochs} "
          f"epoch(s), {ref['test']:.2f} s per test pass")
    print(f"reference-style, extrapolated: {epochs} x {ref['epoch']:.2f} + {tests} x "
          f"{ref['test']:.2f} = {total:8.2f} s")
    print(f"ratio (extrapolated reference / ours): {total / ours:.1f}x")


if __name__ == "__main__":
    main()
