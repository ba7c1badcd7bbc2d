"""The GPU check's correctness section: the learner's step on the CPU and on CUDA, k-means
and the selection, host synchronisations, bf16 and torch.compile against float32."""
from __future__ import annotations

import contextlib
import copy
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gpu_common import (
    Context,
    Section,
    Trainer,
    ensure_data,
    rel,
    strict_fp32,
    sync,
    where,
)

TOL = {"loss_rel": 1e-4, "grad_rel": 1e-3, "state_rel": 1e-3, "bf16_rel": 0.05,
       "compile_rel": 0.02}


def section_correctness(ctx: Context, sec: Section) -> None:
    s = ctx.sizes
    ensure_data(ctx)
    other = "CUDA" if ctx.cuda else "CPU with another thread count"
    sec.item("step_plain_cpu_vs_device", lambda: compare_step(ctx, 0), 5)
    sec.item("step_active_cpu_vs_device", lambda: compare_step(ctx, ctx.active_epoch), 5)
    sec.item("kmeans_and_selection_cpu_vs_device", lambda: compare_kmeans(ctx), 2)
    sec.item("no_host_sync_in_steps", lambda: host_syncs(ctx), 5,
             needs=None if ctx.cuda else "no CUDA (host synchronisation is a CUDA matter)")
    sec.item("bf16_and_compile_20_steps", lambda: trajectories(ctx), 10)
    first = ctx.shared.get("compile_first_step_s", 30.0)
    sec.item("compile_active_steps", lambda: compile_active(ctx), 2 * first + 10 * s.active_steps,
             needs=None if "compiled" in ctx.shared else "the compiled trainer is missing")
    sec.items.setdefault("note", {"status": "info", "summary": (
        f"comparisons: CPU vs {other}; TF32 off and dropout 0 for the CPU/device steps")})


def step_state(model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor, epoch: int,
               device: torch.device | str, seed: int, threads: int | None = None,
               dtype: torch.dtype = torch.float32
               ) -> tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One forward/backward of a copy of ``model`` on ``device``: (loss, grads, state after)."""
    from asar_model.heads import cpu_threads

    m = copy.deepcopy(model).to(device=device, dtype=dtype).train()
    gen = torch.Generator().manual_seed(seed)  # a CPU generator on both sides: same draws
    threads_ctx = (cpu_threads(threads, torch.device("cpu")) if threads
                   else contextlib.nullcontext())
    with threads_ctx, strict_fp32():
        loss, _ = m(x1.to(device, dtype), x2.to(device, dtype), epoch=epoch, generator=gen)
        loss.backward()
    grads = {n: p.grad.detach().cpu() for n, p in m.named_parameters() if p.grad is not None}
    state = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
    return float(loss.detach()), grads, state


def flat(grads: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([grads[n].double().flatten() for n in names])


def compare_step(ctx: Context, epoch: int) -> dict[str, Any]:
    """The learner's step on the CPU and on the device from the same weights and batch.

    Loss: relative difference. Gradients: each float32 side against a float64 CPU run (the
    device must be about as close to it as the CPU: within 4x the CPU's error, or 1e-4).
    State after the step (queue, momentum encoder, BN statistics): elementwise within
    1e-3 relative + 1e-5 absolute; integer buffers equal.
    """
    from asar_data.augment import normal_augment

    b = ctx.sizes.batch
    model = ctx.learner(seed=1, device="cpu", dropout=0.0)
    g = torch.Generator().manual_seed(2)
    x = ctx.batch(b, seed=1)
    x1, x2 = normal_augment(x, g), normal_augment(x, g)
    ref = step_state(model, x1, x2, epoch, "cpu", seed=3, dtype=torch.float64)
    cpu = step_state(model, x1, x2, epoch, "cpu", seed=3)
    if ctx.cuda:
        oth = step_state(model, x1, x2, epoch, ctx.device, seed=3)
    else:
        now = torch.get_num_threads()
        oth = step_state(model, x1, x2, epoch, "cpu", seed=3, threads=2 if now == 1 else 1)
    loss_rel = abs(cpu[0] - oth[0]) / max(abs(cpu[0]), 1e-12)
    names = sorted(ref[1])
    err_cpu = rel(flat(ref[1], names), flat(cpu[1], names))
    err_oth = rel(flat(ref[1], names), flat(oth[1], names))
    grads_ok = err_oth <= max(4 * err_cpu, TOL["grad_rel"])
    off: dict[str, int] = {}
    int_diff = []
    for k, v in cpu[2].items():
        w = oth[2][k]
        if v.is_floating_point():
            bad = int(((v.double() - w.double()).abs()
                       > 1e-5 + TOL["state_rel"] * v.double().abs()).sum())
            if bad:
                off[k] = bad
        elif not torch.equal(v, w):
            int_diff.append(k)
    res: dict[str, Any] = {
        "epoch": epoch, "batch": b, "loss_cpu": cpu[0], "loss_other": oth[0],
        "loss_float64": ref[0], "loss_rel": loss_rel,
        "grad_err_cpu_vs_float64": err_cpu, "grad_err_other_vs_float64": err_oth,
        "grad_rel_cpu_vs_other": rel(flat(cpu[1], names), flat(oth[1], names)),
        "state_elements_off": off, "int_buffers_differ": int_diff, "tolerance": TOL}
    if "queue" in cpu[2]:
        cols = (cpu[2]["queue"] - oth[2]["queue"]).abs().amax(dim=0)         # (K,)
        res["queue_columns_differ"] = int((cols > 1e-3).sum())
    ok = loss_rel <= TOL["loss_rel"] and grads_ok and not off and not int_diff
    res["status"] = "ok" if ok else "fail"
    res["summary"] = (f"loss rel {loss_rel:.1e}; gradient error vs float64: CPU "
                      f"{err_cpu:.1e}, other {err_oth:.1e}; state "
                      + (f"off in {len(off)} tensors ({', '.join(list(off)[:3])})" if off
                         else "within tolerance")
                      + (f", queue columns differing {res['queue_columns_differ']}"
                         if "queue_columns_differ" in res else "")
                      + (f", int buffers differ {int_diff}" if int_diff else ""))
    return res


def compare_kmeans(ctx: Context) -> dict[str, Any]:
    """k-means on the same inputs and CPU seeds, CPU vs device; early stop vs fixed length;
    the cluster-covering selection (when the learner still exposes it) on both."""
    from asar_model.kmeans import kmeans
    from asar_model.learner import ASAR

    b, d = ctx.sizes.batch, int(ctx.cfg["model_args"].get("feature_dim", 128))
    dev = ctx.device if ctx.cuda else torch.device("cpu")
    g = torch.Generator().manual_seed(4)
    centres = torch.randn(b // 2, d, generator=g)
    inputs = {
        "gradient-scale noise": torch.randn(2 * b, d, generator=g) * 4e-3,
        "clustered": centres[torch.randint(0, b // 2, (2 * b,), generator=g)]
        + 0.05 * torch.randn(2 * b, d, generator=g),
    }
    res: dict[str, Any] = {}
    ok = True
    for name, x in inputs.items():
        a1, c1 = kmeans(x, b, torch.Generator().manual_seed(5))
        a2, c2 = kmeans(x.to(dev), b, torch.Generator().manual_seed(5))
        a3, _ = kmeans(x.to(dev), b, torch.Generator().manual_seed(5), 1e-4, 100, 1)
        agree = float((a1 == a2.cpu()).float().mean())
        early = bool(torch.equal(a2, a3))
        entry = {"assign_agree": agree, "centroid_rel": rel(c1, c2),
                 "early_stop_same_assign": early}
        cover = getattr(ASAR, "cover_clusters", None)  # the learner's own; may be renamed
        if cover is not None:
            try:
                s1, s2 = cover(a1, b, b), cover(a2, b, b)
                entry["selection_equal"] = bool(torch.equal(s1, s2.cpu()))
            except Exception as e:  # another signature: checked through the active step only
                entry["selection"] = f"not called directly ({type(e).__name__}: {e})"[:200]
        ok &= agree == 1.0 and early and entry.get("selection_equal", True)
        res[name] = entry
    res["status"] = "ok" if ok else "fail"
    res["summary"] = "; ".join(
        f"{k}: assignments agree {v['assign_agree']:.3f}, early stop same "
        f"{v['early_stop_same_assign']}"
        + (f", selection equal {v['selection_equal']}" if "selection_equal" in v else "")
        for k, v in res.items() if isinstance(v, dict))
    return res


def host_syncs(ctx: Context) -> dict[str, Any]:
    """Each part of a plain and an active step under CUDA sync debug mode "warn": the
    synchronising calls, located (file:line of the Python frame that made them)."""
    tr = Trainer(ctx, ctx.learner(seed=6), seed=6)
    x = ctx.batch(ctx.sizes.batch, seed=6).to(ctx.device)
    for ep in (0, ctx.active_epoch):  # warm-up: lazy initialisation may synchronise
        tr.step(x, ep)
    sync(ctx.device)
    loss_sum = torch.zeros((), device=ctx.device)
    parts: dict[str, Any] = {}
    state: dict[str, Any] = {}

    mode = {"name": "warn"}

    def watch(name: str, fn: Callable[[], Any]) -> None:
        """"warn": every sync, located by the warning; "error" (when warnings do not reach
        Python): the first one, located by the traceback, and the part left unfinished."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode(mode["name"])
            try:
                fn()
                err = None
            except RuntimeError as e:
                if "synchroniz" not in str(e).lower():
                    raise
                err = e
            finally:
                torch.cuda.set_sync_debug_mode("default")
        hits = [f"{where(w.filename)}:{w.lineno}" for w in caught
                if "synchroniz" in str(w.message).lower()]
        if err is not None:
            frames = traceback.extract_tb(err.__traceback__)
            hits.append(f"{where(frames[-1].filename)}:{frames[-1].lineno}")
        parts[name] = {"syncs": len(hits), "where": sorted(set(hits))}

    watch("control: .item()", lambda: loss_sum.item())  # a planted sync must be seen
    if parts["control: .item()"]["syncs"] == 0:
        mode["name"] = "error"
        watch("control: .item()", lambda: loss_sum.item())
    control = parts.pop("control: .item()")
    if control["syncs"] == 0:
        return {"status": "error", "summary": "the sync detector missed a planted .item() "
                "(neither warn nor error mode reported it)"}
    for ep, tag in ((0, "plain"), (ctx.active_epoch, "active")):
        state.clear()  # in "error" mode a part stopped at its sync leaves no output
        watch(f"{tag}: augment", lambda: state.update(views=tr.views(x)))
        if "views" in state:
            watch(f"{tag}: forward", lambda ep=ep: state.update(
                loss=tr.forward(*state["views"], ep)))
        if "loss" in state:
            watch(f"{tag}: backward + SGD", lambda: tr.update(state["loss"]))
            watch(f"{tag}: loss sum", lambda: loss_sum.add_(state["loss"].detach().float()))
    sync(ctx.device)
    active_syncs = sum(v["syncs"] for k, v in parts.items() if k.startswith("active"))
    total = sum(v["syncs"] for v in parts.values())
    places = sorted({p for v in parts.values() for p in v["where"]})
    return {"status": "ok" if total == 0 else "fail", "parts": parts, "mode": mode["name"],
            "active_step_syncs": active_syncs, "total_syncs": total,
            "summary": (f"{total} host syncs in a plain + an active step ({active_syncs} in "
                        f"the active one)" + (f" at {', '.join(places[:4])}" if places else ""))}


def trajectories(ctx: Context) -> dict[str, Any]:
    """float32, bf16 autocast and torch.compile: 20 steps each from the same weights,
    batches and augmentation draws (a variant that raises is recorded, the others run)."""
    base = ctx.learner(seed=7, dropout=0.0)
    xs = [ctx.batch(ctx.sizes.batch, seed=100 + i).to(ctx.device)
          for i in range(ctx.sizes.compare_steps)]
    runs = {"float32": (False, None), "bf16": (True, None), "compile": (False, ctx.backend)}
    losses: dict[str, list[float]] = {}
    res: dict[str, Any] = {"steps": len(xs), "compile_backend": ctx.backend}
    for name, (amp, backend) in runs.items():
        try:
            tr = Trainer(ctx, copy.deepcopy(base), amp=amp, backend=backend, seed=8)
            out = []
            for i, x in enumerate(xs):
                t0 = time.perf_counter()
                out.append(float(tr.step(x, 0)))
                if i == 0:
                    res[f"{name}_first_step_s"] = round(time.perf_counter() - t0, 2)
        except Exception as e:  # recorded; the other variants still run
            res[name] = {"error": f"{type(e).__name__}: {e}"[:2000],
                         "traceback": traceback.format_exc(limit=8)[-3000:]}
            continue
        losses[name] = out
        ctx.shared["trajectory_" + name] = tr
    if "trajectory_compile" in ctx.shared:
        ctx.shared["compiled"] = ctx.shared.pop("trajectory_compile")
        ctx.shared["compile_first_step_s"] = res["compile_first_step_s"]
    res["losses"] = losses
    if "float32" not in losses:
        return {**res, "status": "error", "summary": f"float32: {res['float32']['error']}"}
    ref = np.array(losses["float32"])
    ok = bool(np.isfinite(ref).all())
    parts = [f"float32 {ref[0]:.3f} -> {ref[-1]:.3f}"]
    for name, tol in (("bf16", TOL["bf16_rel"]), ("compile", TOL["compile_rel"])):
        if name not in losses:
            ok = False
            parts.append(f"{name}: {res[name]['error'][:200]}")
            continue
        arr = np.array(losses[name])
        finite = bool(np.isfinite(arr).all())
        worst = float(np.max(np.abs(arr - ref) / np.abs(ref)))
        res[name] = {"finite": finite, "max_rel_to_float32": worst, "tolerance": tol,
                     "first_rel": float(abs(arr[0] - ref[0]) / abs(ref[0]))}
        ok &= finite and worst <= tol
        parts.append(f"{name}{f' ({ctx.backend})' if name == 'compile' else ''} max rel "
                     f"{worst:.1e}{'' if finite else ' NOT FINITE'}")
    if "compile_first_step_s" in res:
        parts.append(f"first compiled step {res['compile_first_step_s']} s")
    res["status"] = "ok" if ok else "fail"
    res["summary"] = "; ".join(parts)
    return res


def compile_active(ctx: Context) -> dict[str, Any]:
    """The compiled and the eager trainer, continued into active-sampling epochs."""
    eager, comp = ctx.shared["trajectory_float32"], ctx.shared["compiled"]
    xs = [ctx.batch(ctx.sizes.batch, seed=200 + i).to(ctx.device)
          for i in range(ctx.sizes.active_steps)]
    a, c, first = [], [], None
    for i, x in enumerate(xs):
        a.append(float(eager.step(x, ctx.active_epoch + i)))
        t0 = time.perf_counter()
        c.append(float(comp.step(x, ctx.active_epoch + i)))
        if i == 0:
            first = round(time.perf_counter() - t0, 2)
    a_arr, c_arr = np.array(a), np.array(c)
    worst = float(np.max(np.abs(c_arr - a_arr) / np.abs(a_arr)))
    ok = bool(np.isfinite(c_arr).all()) and worst <= TOL["compile_rel"]
    return {"status": "ok" if ok else "fail", "eager": a, "compiled": c,
            "max_rel": worst, "first_active_step_s": first,
            "summary": f"{len(xs)} active steps, compiled vs eager max rel {worst:.1e}, first "
                       f"compiled active step {first} s (recompilation)"}
