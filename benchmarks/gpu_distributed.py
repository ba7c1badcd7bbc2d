"""The GPU check's distributed section: the torchrun path through the CLI (kill, resume),
and DistributedDataParallel at world size 1 in this process."""
from __future__ import annotations

import datetime
import json
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

from gpu_common import DATASET, PRESET, Context, Section, Trainer, rel
from runkit import kill_tree, run, start, stop_group, tail


def section_distributed(ctx: Context, sec: Section) -> None:
    need = None if ctx.workspace_ok else "the CLI dataset of the setup section is missing"
    sec.item("torchrun_epoch_kill_resume", lambda: torchrun_resume(ctx), 20, needs=need)
    sec.item("torchrun_more_epochs_on_finished_run", lambda: torchrun_extend(ctx), 10,
             needs=need or (None if "ddp_argv" in ctx.shared else "no finished run"))
    sec.item("ddp_world1_in_process", lambda: ddp_world1(ctx), 5)


def torchrun_argv(ctx: Context, epochs: int) -> list[str]:
    s = ctx.sizes
    sets = {"num_epoch": epochs, "batch_size": s.ddp_batch, "model_args.queue_size": 1024,
            "model_args.active_epoch": 1, "save_interval": 0}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "1", "-m", "asar", "pretrain", "--workdir", str(ctx.ws), "--dataset", DATASET,
            "--benchmark", "xview", "--preset", PRESET, "--run-name", "ddp-check", "--device",
            ctx.device.type, *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]


def metrics_lines(ctx: Context) -> list[str]:
    path = ctx.ws / DATASET / "runs" / "ddp-check" / "metrics.jsonl"
    try:
        return [x for x in path.read_text().splitlines() if x.strip()]
    except OSError:
        return []


def torchrun_resume(ctx: Context) -> dict[str, Any]:
    """Start the run, SIGKILL it (torchrun and its worker) once epoch 1 is on disk, start
    the same command again: it must resume and continue metrics.jsonl."""
    epochs = ctx.sizes.ddp_epochs
    argv = torchrun_argv(ctx, epochs)
    log = ctx.log("torchrun-first")
    t0 = time.perf_counter()
    proc = start(argv, log, ctx.env)
    limit = t0 + max(ctx.args.budget_s * 0.08, 20)
    killed_after = None
    try:
        while proc.poll() is None and time.perf_counter() < limit:
            lines = metrics_lines(ctx)
            if lines:
                kill_tree(proc)
                killed_after = len(lines)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            stop_group(proc)
        proc.wait()
    first_s = time.perf_counter() - t0
    before = metrics_lines(ctx)
    if killed_after is None:
        return {"status": "fail", "returncode": proc.returncode, "summary": (
            f"no epoch finished before the kill (exit {proc.returncode}): {tail(log, 5)}")}
    ran = run(argv, ctx.log("torchrun-resume"), timeout=max(ctx.args.budget_s * 0.08, 20),
              env=ctx.env)
    after = metrics_lines(ctx)
    text = Path(ran.log).read_text(errors="replace")
    m = re.search(r"resuming .* after epoch (\d+)", text)
    resumed = int(m.group(1)) if m else None
    numbers = [json.loads(x).get("epoch") for x in after]
    ok = (ran.ok and len(after) == epochs and after[:len(before)] == before
          and numbers == list(range(1, epochs + 1)) and resumed is not None)
    ctx.shared["ddp_argv"] = argv
    world = sorted({json.loads(x).get("world_size", 1) for x in after})
    note = ("; at world size 1 the stage trains without a process group (no NCCL/DDP: see "
            "ddp_world1_in_process)" if world == [1] else "")
    return {"status": "ok" if ok else "fail", "epochs": epochs, "killed_with_epochs_done":
            len(before), "resumed_after_epoch": resumed, "final_epochs": len(after),
            "prefix_kept": after[:len(before)] == before, "first_s": round(first_s, 1),
            "resume_s": round(ran.seconds, 1), "returncode": ran.returncode,
            "world_sizes_logged": world,
            "summary": (f"killed after {len(before)} epoch(s), resumed after epoch {resumed}, "
                        f"{len(after)}/{epochs} epochs in metrics.jsonl, earlier lines kept "
                        f"{after[:len(before)] == before}" + note
                        + ("" if ran.ok else f"; {ran.error()}"))}


def torchrun_extend(ctx: Context) -> dict[str, Any]:
    """The finished run started again with one more epoch: recorded as it happens."""
    epochs = ctx.sizes.ddp_epochs + 1
    argv = torchrun_argv(ctx, epochs)
    ran = run(argv, ctx.log("torchrun-extend"), timeout=max(ctx.args.budget_s * 0.05, 15),
              env=ctx.env)
    after = metrics_lines(ctx)
    msg = [x for x in tail(ran.log, 60).splitlines() if x.startswith("error:")]
    return {"status": "info", "returncode": ran.returncode, "epochs_in_metrics": len(after),
            "message": msg[-1] if msg else "",
            "summary": (f"num_epoch {epochs - 1} -> {epochs} on the finished run: exit "
                        f"{ran.returncode}, {len(after)} epochs in metrics.jsonl"
                        + (f" ({msg[-1].strip()[:160]})" if msg else ""))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_world1(ctx: Context) -> dict[str, Any]:
    """DistributedASAR in DistributedDataParallel (NCCL on CUDA, gloo on the CPU) at world
    size 1 in this process, 3 steps against the plain learner from the same weights."""
    import torch.distributed as dist

    from asar_model.distributed import DistributedASAR, wrap

    backend = "nccl" if ctx.cuda else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                            world_size=1, timeout=datetime.timedelta(seconds=60))
    try:
        plain = ctx.learner(seed=12, dropout=0.0)
        ddp_model = ctx.learner(seed=12, dropout=0.0, cls=DistributedASAR)
        ddp_model.load_state_dict(plain.state_dict())
        a = Trainer(ctx, plain, seed=13)
        b = Trainer(ctx, ddp_model, seed=13, wrap=lambda m: wrap(m, ctx.device))
        xs = [ctx.batch(ctx.sizes.batch, seed=300 + i).to(ctx.device) for i in range(3)]
        epochs = [0, ctx.active_epoch, ctx.active_epoch]
        la = [float(a.step(x, e)) for x, e in zip(xs, epochs, strict=True)]
        lb = [float(b.step(x, e)) for x, e in zip(xs, epochs, strict=True)]
        worst = max(abs(p - q) / abs(p) for p, q in zip(la, lb, strict=True))
        sa, sb = plain.state_dict(), ddp_model.state_dict()
        state = max(rel(sa[k], sb[k]) for k in sa if sa[k].is_floating_point())
    finally:
        dist.destroy_process_group()
    ok = worst <= 1e-4 and state <= 1e-3
    return {"status": "ok" if ok else "fail", "backend": backend, "losses_plain": la,
            "losses_ddp": lb, "loss_max_rel": worst, "state_max_rel": state,
            "summary": f"{backend}, world 1: 3 steps (1 plain, 2 active) vs the plain learner, "
                       f"loss max rel {worst:.1e}, state max rel {state:.1e}"}
