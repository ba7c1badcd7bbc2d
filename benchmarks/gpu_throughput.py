"""The GPU check's throughput section: step rates, epochs (resident and streamed, with the
time waiting for data), the 300-epoch projection and the linear evaluation at NTU-60 xview
sizes."""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from gpu_common import (
    GOALS,
    Clock,
    Context,
    Section,
    Trainer,
    ensure_data,
    peak_gb,
    reset_peak,
    sync,
)


def section_throughput(ctx: Context, sec: Section) -> None:
    """Step rates, then the epochs and the linear evaluation (the goals' measures), then
    bf16 + compile (a second compilation), then the projection from all of them."""
    s = ctx.sizes
    ensure_data(ctx)
    sec.item("tiled_data", lambda: tiled_data(ctx), 2)
    if "train_x" not in ctx.shared:
        return
    first = ctx.shared.get("compile_first_step_s", 60.0 if ctx.cuda else 20.0)

    def rate(name: str, amp: bool, comp: bool, epoch: int, dropout: float | None = None
             ) -> None:
        compiles = comp and (amp or "compiled" not in ctx.shared)
        sec.item(f"rate_{name}", lambda: step_rate(ctx, name, amp, comp, epoch, dropout),
                 2 + (first if compiles else 0))

    rate("plain", False, False, 0)
    rate("active", False, False, ctx.active_epoch)
    rate("bf16", True, False, 0)
    if "compiled" in ctx.shared:
        rate("plain_dropout0", False, False, 0, 0.0)
    rate("compile", False, True, 0)
    per_step = ctx.shared.get("step_s_plain", 0.05)
    steps = s.epoch_samples // s.batch
    for name, streamed, epoch in (("epoch_resident_plain", False, 0),
                                  ("epoch_resident_active", False, ctx.active_epoch),
                                  ("epoch_streamed_plain", True, 0)):
        sec.item(name, lambda streamed=streamed, epoch=epoch, name=name:
                 epoch_time(ctx, sec.clock, name, streamed, epoch), min(steps, 20) * per_step)
    sec.item("features_and_linear_xview_size", lambda: linear_eval(ctx), 5)
    rate("bf16_compile", True, True, 0)
    sec.item("projected_300_epochs", lambda: projection(ctx), 0)


def tiled_data(ctx: Context) -> dict[str, Any]:
    """The base data tiled to the training and test sizes, on the device."""
    s = ctx.sizes
    n = s.epoch_samples + s.test_samples
    idx = torch.arange(n) % len(ctx.base_x)
    t0 = time.perf_counter()
    base = ctx.base_x.to(ctx.device)
    x = base[idx.to(ctx.device)]
    y = ctx.base_y.to(ctx.device)[idx.to(ctx.device)]
    sync(ctx.device)
    ctx.shared.update(train_x=x[:s.epoch_samples], train_y=y[:s.epoch_samples],
                      test_x=x[s.epoch_samples:], test_y=y[s.epoch_samples:])
    gb = x.numel() * 4 / 2**30
    return {"status": "info", "samples": n, "gb": round(gb, 2), "from": ctx.data_from,
            "seconds_to_device": round(time.perf_counter() - t0, 2),
            "summary": f"{s.epoch_samples} train + {s.test_samples} test samples tiled from "
                       f"{len(ctx.base_x)} ({ctx.data_from}), {gb:.2f} GB on {ctx.device}"}


def batches_forever(ctx: Context) -> Iterator[torch.Tensor]:
    from asar_data.loader import ResidentSource

    src = ResidentSource(ctx.shared["train_x"], ctx.shared["train_y"])
    gen = torch.Generator(device=ctx.device).manual_seed(9)
    while True:
        for x, _ in src.batches(ctx.sizes.batch, gen):
            yield x


def step_rate(ctx: Context, name: str, amp: bool, comp: bool, epoch: int,
              dropout: float | None = None) -> dict[str, Any]:
    """Samples/s of the stage's step at the batch size, after warm-up (compilation).

    The compiled variants reuse the correctness section's compiled learner (one compilation
    less), whose dropout is 0: `rate_plain_dropout0` is their eager counterpart."""
    s = ctx.sizes
    if comp and "compiled" in ctx.shared:
        tr = ctx.shared["compiled"]          # already compiled for float32 (correctness)
        tr.amp = amp
        dropout = 0.0
    else:
        over = {} if dropout is None else {"dropout": dropout}
        tr = Trainer(ctx, ctx.learner(seed=10, **over), amp=amp,
                     backend=ctx.backend if comp else None, seed=10)
        dropout = float(ctx.model_args(**over).get("dropout", 0.5))
    ctx.shared[f"dropout_{name}"] = dropout
    data = batches_forever(ctx)
    reset_peak(ctx.device)
    t0 = time.perf_counter()
    for _ in range(s.warm_steps):
        tr.step(next(data), epoch)
    sync(ctx.device)
    warm = time.perf_counter() - t0
    loss_sum = torch.zeros((), device=ctx.device)
    t0 = time.perf_counter()
    for _ in range(s.timed_steps):
        loss_sum += tr.step(next(data), epoch)
    sync(ctx.device)
    dt = time.perf_counter() - t0
    loss = float(loss_sum) / s.timed_steps
    rate = s.batch * s.timed_steps / dt
    ctx.shared[f"step_s_{name}"] = dt / s.timed_steps
    if name == "plain":
        ctx.shared["trainer_plain"] = tr
    return {"status": "ok" if math.isfinite(loss) else "fail", "samples_per_s": round(rate, 1),
            "ms_per_step": round(1000 * dt / s.timed_steps, 2), "warm_up_s": round(warm, 2),
            "peak_gb": peak_gb(ctx.device), "mean_loss": loss, "batch": s.batch,
            "dropout": dropout,
            "summary": f"{rate:.0f} samples/s ({1000 * dt / s.timed_steps:.1f} ms/step), "
                       f"warm-up {warm:.1f} s" + (", dropout 0" if dropout == 0 else "")
                       + (f", peak {peak_gb(ctx.device)} GB" if ctx.cuda else "")}


def tiled_store(ctx: Context) -> str:
    """The training part of the tiled data as a 50-frame store on disk (written once)."""
    from asar_data import frames_store

    if "store" in ctx.shared:
        return ctx.shared["store"]
    s = ctx.sizes
    loc = str(ctx.work / "tiled.zarr")
    base = ctx.base_x.numpy()
    n, chunk = s.epoch_samples, 256
    t0 = time.perf_counter()
    frames_store.create(loc, n, base.shape[2], chunk)
    for a in range(0, n, chunk):
        src = np.arange(a, min(a + chunk, n)) % len(base)
        frames_store.write_block(loc, a, base[src], np.full(len(src), base.shape[2]))
    src = np.arange(n) % len(base)
    frames_store.finalise(loc, ctx.base_y.numpy()[src], np.array([f"s{i}" for i in range(n)]),
                          {"xview": (np.arange(n), np.arange(0))},
                          {"dataset": "tiled", "benchmarks": ["xview"],
                           "default_benchmark": "xview", "classes": ctx.classes})
    ctx.shared["store"] = loc
    ctx.shared["store_write_s"] = round(time.perf_counter() - t0, 2)
    return loc


def epoch_time(ctx: Context, clock: Clock, name: str, streamed: bool, epoch: int
               ) -> dict[str, Any]:
    """One epoch through the stage's loop body (a loss sync every 10 steps, as the stage's
    log_every), resident or streamed; stopped and extrapolated when the budget runs short.
    Data waiting: the host's time blocked on the next batch, and (streamed) the epoch's
    excess over the resident one."""
    from asar_data.frames_store import FramesStore
    from asar_data.loader import ResidentSource, StreamedSource

    s = ctx.sizes
    tr = ctx.shared.get("trainer_plain")
    if tr is None:
        tr = Trainer(ctx, ctx.learner(seed=10), seed=10)
        x = ctx.shared["train_x"][:s.batch]
        tr.step(x, 0)
        tr.step(x, ctx.active_epoch)
        ctx.shared["trainer_plain"] = tr
    if streamed:
        store = FramesStore(tiled_store(ctx))
        source = StreamedSource(store, np.arange(s.epoch_samples), ctx.device)
    else:
        source = ResidentSource(ctx.shared["train_x"], ctx.shared["train_y"])
    max_s = max(clock.left() * 0.25, 1.0)  # the rest: the other epochs, linear, bf16+compile
    steps = len(source) // s.batch
    gen = torch.Generator(device=ctx.device).manual_seed(11)
    loss_sum = torch.zeros((), device=ctx.device)
    wait, done, mean = 0.0, 0, float("nan")
    reset_peak(ctx.device)
    sync(ctx.device)
    t0 = time.perf_counter()
    it = source.batches(s.batch, gen)
    try:
        for _ in range(steps):
            tw = time.perf_counter()
            x, _ = next(it)
            wait += time.perf_counter() - tw
            loss_sum += tr.step(x, epoch)
            done += 1
            if done % 10 == 0 or done == steps:
                mean = float(loss_sum) / done                       # the stage's sync
                if time.perf_counter() - t0 > max_s and done < steps:
                    break
    finally:
        it.close()
    sync(ctx.device)
    elapsed = time.perf_counter() - t0
    epoch_s = elapsed / done * steps
    ctx.shared[name] = epoch_s
    res = {"status": "ok" if math.isfinite(mean) else "fail", "samples": len(source),
           "steps": steps, "steps_run": done, "extrapolated": done < steps,
           "epoch_s": round(epoch_s, 3), "samples_per_s": round(done * s.batch / elapsed, 1),
           "host_wait_s": round(wait, 3), "host_wait_share": round(wait / elapsed, 4),
           "peak_gb": peak_gb(ctx.device), "mean_loss": mean, "goal_epoch_s": GOALS["epoch_s"],
           "source": type(source).__name__}
    if streamed:
        res["store_write_s"] = ctx.shared.get("store_write_s")
        resident = ctx.shared.get("epoch_resident_plain")
        if resident:
            res["excess_over_resident_share"] = round(max(0.0, 1 - resident / epoch_s), 4)
    share = res.get("excess_over_resident_share", res["host_wait_share"])
    res["data_wait_share"] = share
    res["summary"] = (f"{epoch_s:.2f} s for {len(source)} samples"
                      + (f" (extrapolated from {done} of {steps} steps)" if done < steps else "")
                      + f", data waiting {100 * share:.1f}% (host blocked "
                      f"{100 * res['host_wait_share']:.1f}%)"
                      + (f", peak {res['peak_gb']} GB" if ctx.cuda else "")
                      + f"; goal <= {GOALS['epoch_s']:.0f} s"
                      + (" (at the full size)" if ctx.args.quick else ""))
    return res


def projection(ctx: Context) -> dict[str, Any]:
    """300 epochs of the preset (plain until active_epoch, active after) from the measured
    resident epochs; also at the fastest measured step variant's speed."""
    plain, active = ctx.shared.get("epoch_resident_plain"), ctx.shared.get(
        "epoch_resident_active")
    if plain is None or active is None:
        return {"status": "skipped", "summary": "skipped: the resident epochs were not measured"}
    scale = ctx.sizes.epoch_samples / 37646
    epochs, act = int(ctx.cfg["num_epoch"]), ctx.active_epoch
    total = (act * plain + (epochs - act) * active) / scale
    res: dict[str, Any] = {"status": "info", "projected_s": round(total, 1),
                           "goal_s": GOALS["projected_300_epochs_s"],
                           "plain_epoch_s": plain / scale, "active_epoch_s": active / scale}
    steps = {k[len("step_s_"):]: v for k, v in ctx.shared.items() if k.startswith("step_s_")}
    # each variant's speed-up over the eager float32 step with the same dropout
    plain_of = {0.0: steps.get("plain_dropout0")}
    plain_of[ctx.shared.get("dropout_plain")] = steps.get("plain")
    gains = {k: plain_of[ctx.shared.get(f"dropout_{k}")] / v for k, v in steps.items()
             if k not in ("active", "plain", "plain_dropout0")
             and plain_of.get(ctx.shared.get(f"dropout_{k}"))}
    if gains:
        best = max(gains, key=gains.get)
        res.update(fastest_variant=best, speedup=round(gains[best], 3),
                   projected_fastest_s=round(total / gains[best], 1))
    res["summary"] = (f"{total / 60:.1f} min for {epochs} epochs of 37,646 samples (float32, "
                      f"resident)" + (f"; {res['projected_fastest_s'] / 60:.1f} min at "
                                      f"{res['fastest_variant']}'s step speed"
                                      if "fastest_variant" in res else "")
                      + f"; goal <= {GOALS['projected_300_epochs_s'] / 60:.0f} min")
    return res


def linear_eval(ctx: Context) -> dict[str, Any]:
    """Frozen random-init encoder features of the tiled train and test splits, then the
    linear protocol (asar_model.heads.train_linear, the preset's schedule)."""
    from asar_data.loader import ResidentSource
    from asar_data.streams import to_stream
    from asar_model.checkpoint import build_encoder
    from asar_model.heads import train_linear

    cfg = dict(ctx.linear_cfg)
    cfg["num_epoch"] = ctx.sizes.linear_epochs
    cfg["step"] = [max(1, round(0.8 * ctx.sizes.linear_epochs))]
    cfg["batch_size"] = min(int(cfg["batch_size"]), ctx.sizes.epoch_samples)
    model = build_encoder(cfg["model_args"], ctx.classes, 0).to(ctx.device).eval()
    batch = int(cfg.get("test_batch_size") or 128)
    t0 = time.perf_counter()
    feats = {}
    with torch.no_grad():
        for side in ("train", "test"):
            src = ResidentSource(ctx.shared[f"{side}_x"], ctx.shared[f"{side}_y"])
            outs = [model.forward_features(to_stream(x, cfg.get("stream", "joint"))).float()
                    for x, _ in src.batches(batch, None, drop_last=False)]
            feats[side] = torch.cat(outs)
    sync(ctx.device)
    t_feat = time.perf_counter() - t0
    t1 = time.perf_counter()
    run_ = train_linear(feats["train"], ctx.shared["train_y"], feats["test"],
                        ctx.shared["test_y"], ctx.classes, cfg, 0)
    sync(ctx.device)
    t_lin = time.perf_counter() - t1
    return {"status": "ok", "features_s": round(t_feat, 2), "linear_s": round(t_lin, 2),
            "total_s": round(t_feat + t_lin, 2), "linear_epochs": cfg["num_epoch"],
            "train": len(feats["train"]), "test": len(feats["test"]),
            "top1_final": run_.final["top1"],
            "summary": f"features {t_feat:.1f} s + linear {cfg['num_epoch']} epochs "
                       f"{t_lin:.1f} s for {len(feats['train'])} / {len(feats['test'])} samples"}
