"""GPU readiness in one command: correctness, throughput, distributed and learning on one GPU.

Device tool, one call (about 9 minutes; the wheels fetched here first, see below):

    run(carry=[".whl"], timeout_s=600, command=
        "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade
         --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
         PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT")

    (the command joined into one line; gpu_check.json, gpu_check.md, learning.json and
    gpu_check.log come back; the markdown tables are also the end of the output)

The machine's image has torch, numpy, numba, click, rich, pyyaml and fsspec, not zarr.
Fetch zarr and its needs once, here, in the repository root (9.7 MB):

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl \\
        zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0

Nothing is installed from the project: the script puts the repository root on sys.path and
on its commands' PYTHONPATH and runs the CLI as `python -m asar` (ingest and downsample with
--workers 1: in process, no dask). Here, the same script at a tiny size (the CUDA
comparisons become CPU/CPU or say "skipped: no CUDA"):

    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check

Sections, each independent (an item that fails or raises is recorded with its error and
the script goes on), under one time budget (``--budget-s``) shared by weight; an item that
no longer fits is skipped, saying so. Results: ``<out>/gpu_check.json`` (rewritten after
every section), ``<out>/gpu_check.md`` (the tables), ``<out>/gpu_check.log`` (the
commands' output).

- setup: a small synthetic NTU dataset made with the CLI (synth, ingest, downsample) in a
  temporary workspace; its 50-frame data are tiled to the sizes below. In the full run the
  learning section's 6,000-sample dataset is made in the background meanwhile.
- correctness: one plain and one active-sampling step of the learner (its public
  ``forward(im_q, im_k, epoch, generator)``) from the same weights and batch on the CPU and
  on CUDA (TF32 off, dropout 0, one CPU generator for both, so the BN shuffle and k-means
  seeds agree): loss, gradients (each float32 side against a float64 CPU run) and the state
  after the step (queue, momentum encoder, BN statistics) within float32 tolerances;
  k-means (and the cluster-covering selection) on both; bf16 autocast and torch.compile,
  20 steps each from the same start, finite and close to float32's; host synchronisations
  in each part of a step (CUDA sync debug mode "warn", each one located; a planted .item()
  must be seen), which the active step must not make.
- throughput (batch 128, NTU-60 xview sizes): samples/s and peak memory of a step, plain,
  active, bf16, compile, bf16 + compile; one epoch of 37,646 samples with the data
  device-resident (plain and active) and streamed from a tiled 50-frame store on disk
  (StreamedSource, background prefetch), with the time spent waiting for data; the
  projected 300-epoch time of the preset; frozen features + the linear protocol on an
  NTU-60 xview-size split (37,646 / 18,932).
- distributed: the torchrun path at world size 1 through the CLI (`torch.distributed.run
  --nproc-per-node 1 -m asar pretrain`), killed after its first epoch and started again:
  it must resume and continue metrics.jsonl; a finished run started again with more
  epochs (what happens is recorded); and DistributedDataParallel with NCCL (gloo on the
  CPU) at world size 1 in this process, step for step against the plain learner.
- learning: benchmarks/learning.py (ASAR vs plain MoCo vs random init, linear and k-NN).

Goals (printed beside the measures, not asserted): an epoch of 37,646 samples in <= 6 s
(300 epochs under 30 minutes) on one H200, data waiting under 5% of the step.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runkit import (  # noqa: E402
    ROOT,
    Budget,
    Clock,
    asar,
    run,
    start,
    stop_group,
    tail,
    write_json,
    write_text,
)

sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_common import (  # noqa: E402
    DATASET,
    FULL,
    GOALS,
    PRESET,
    QUICK,
    Context,
    Section,
    random_data,
)
from gpu_correctness import section_correctness  # noqa: E402
from gpu_distributed import section_distributed  # noqa: E402
from gpu_throughput import section_throughput  # noqa: E402

WEIGHTS = {"setup": 0.05, "correctness": 0.22, "throughput": 0.30, "distributed": 0.08,
           "learning": 0.35}
SECTIONS = tuple(WEIGHTS)


def section_setup(ctx: Context, sec: Section) -> None:
    sec.item("machine", lambda: machine(ctx))
    if "learning" in ctx.args.sections and not ctx.args.quick:
        sec.item("learning_data_background", lambda: start_learning_prep(ctx))
    sec.item("synthetic_dataset", lambda: synthetic_dataset(ctx))
    if ctx.base_x is None:
        sec.item("random_data", lambda: random_data(ctx))


def machine(ctx: Context) -> dict[str, Any]:
    info: dict[str, Any] = {"status": "info", "torch": torch.__version__,
                            "python": platform.python_version(), "cpus": os.cpu_count(),
                            "device": str(ctx.device), "torch_threads": torch.get_num_threads()}
    for mod in ("numpy", "zarr", "numba"):
        with contextlib.suppress(Exception):
            info[mod] = __import__(mod).__version__
    if ctx.cuda:
        p = torch.cuda.get_device_properties(ctx.device)
        info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                    memory_gb=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(),
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    tf32_cudnn=torch.backends.cudnn.allow_tf32)
    info["summary"] = (f"{info.get('gpu', 'CPU')}, torch {torch.__version__}, "
                       f"{info['cpus']} CPUs")
    return info


def start_learning_prep(ctx: Context) -> dict[str, Any]:
    """The learning section's dataset (synth, ingest, downsample), made in the background."""
    argv = [sys.executable, str(ROOT / "benchmarks" / "learning.py"), *ctx.sizes.learning,
            "--workdir", str(ctx.work / "learning"), "--prepare-only"]
    ctx.prep = start(argv, ctx.log("learning-prepare"), ctx.env)
    return {"status": "info", "summary": "started: learning.py --prepare-only"}


def synthetic_dataset(ctx: Context) -> dict[str, Any]:
    """synth -> ingest -> downsample through the CLI; the 50-frame data loaded."""
    s = ctx.sizes
    ws = ctx.work / "ws"
    steps = {
        "synth": asar("synth", "ntu", "--out", str(ctx.work / "raw"), "--samples",
                      str(s.base_samples), "--classes", str(s.classes), "--seed", "0"),
        "ingest": asar("ingest", "ntu", "--raw", str(ctx.work / "raw"), "--workdir", str(ws),
                       "--name", DATASET, "--workers", "1"),
        "downsample": asar("downsample", DATASET, "--workdir", str(ws), "--workers", "1"),
    }
    seconds = {}
    for name, argv in steps.items():
        ran = run(argv, ctx.log(name), timeout=max(ctx.args.budget_s * 0.3, 30), env=ctx.env)
        seconds[name] = round(ran.seconds, 1)
        if not ran.ok:
            return {"status": "error", "summary": f"{name} failed", "error": ran.error(),
                    "seconds_by_step": seconds}
    from asar_data.frames_store import FramesStore

    store = FramesStore(str(ws / DATASET / "frames50.zarr"))
    idx = np.arange(len(store))
    ctx.base_x = torch.from_numpy(store.read(idx))
    ctx.base_y = torch.from_numpy(store.labels[idx].astype(np.int64))
    ctx.classes = int(store.attrs.get("classes") or int(ctx.base_y.max()) + 1)
    ctx.data_from = "synthetic store (CLI)"
    ctx.workspace_ok = True
    ctx.ws = ws
    train = len(store.split("xview", "train"))
    return {"samples": len(idx), "xview_train": train, "classes": ctx.classes,
            "seconds_by_step": seconds,
            "summary": f"{len(idx)} samples ({train} xview train), {ctx.classes} classes, "
                       f"synth/ingest/downsample {seconds['synth']}/{seconds['ingest']}/"
                       f"{seconds['downsample']} s"}


def section_learning(ctx: Context, sec: Section) -> None:
    sec.item("learning_table", lambda: learning(ctx, sec.clock), 20)


def learning(ctx: Context, clock: Clock) -> dict[str, Any]:
    """benchmarks/learning.py on its synthetic dataset (full) or the setup's (quick)."""
    script = [sys.executable, str(ROOT / "benchmarks" / "learning.py")]
    out_json = ctx.out / "learning.json"
    if ctx.args.quick:
        if not ctx.workspace_ok:
            return {"status": "skipped", "summary": "skipped: the setup's CLI dataset is missing"}
        argv = [*script, *ctx.sizes.learning, "--workdir", str(ctx.ws), "--dataset", DATASET,
                "--benchmark", "xview", "--preset", PRESET, "--device", ctx.device.type]
        if ctx.args.threads:
            argv += ["--threads", str(ctx.args.threads)]
    else:
        argv = [*script, *ctx.sizes.learning, "--workdir", str(ctx.work / "learning")]
        if ctx.prep is not None:  # the data made in the background: wait for it
            with contextlib.suppress(Exception):
                ctx.prep.wait(timeout=max(clock.left() - 120, 1))
            if ctx.prep.poll() is None:
                stop_group(ctx.prep)
                return {"status": "error", "summary": "the learning dataset was not ready in "
                        f"time: {tail(ctx.log('learning-prepare'), 3)}"}
            if ctx.prep.returncode != 0:
                return {"status": "error", "summary": "making the learning dataset failed: "
                        f"{tail(ctx.log('learning-prepare'), 5)}"}
    argv += ["--json", str(out_json)]
    ran = run(argv, ctx.log("learning"), timeout=max(clock.left(), 5), env=ctx.env)
    try:
        res = json.loads(out_json.read_text())
    except (OSError, ValueError):
        res = {}
    rows = res.get("rows", [])
    failed = [f"{r['encoder']} {r['protocol']}" for r in rows if r.get("error")]
    failed += [f"pretrain {k}" for k, v in (res.get("pretrain") or {}).items() if v.get("error")]
    status = "error" if not rows or ran.timed_out else "fail" if failed or not ran.ok else "ok"
    lines = tail(ran.log, 14)
    return {"status": status, "returncode": ran.returncode, "timed_out": ran.timed_out,
            "rows": rows, "schedule": res.get("schedule"), "pretrain": res.get("pretrain"),
            "dataset": res.get("dataset"), "train_samples": res.get("train_samples"),
            "test_samples": res.get("test_samples"),
            "classes": res.get("classes_present", res.get("classes")),
            "error": None if ran.ok else ran.error(), "table": lines,
            "failed": failed,
            "summary": (f"{len(rows)} rows in {ran.seconds:.0f} s" + (
                "" if ran.ok else f" ({'timed out' if ran.timed_out else 'failed'})")
                + (f"; failed: {', '.join(failed)}" if failed else ""))}


def goals_block(sections: dict[str, Any], quick: bool) -> dict[str, Any]:
    """The goals beside the measures; whether met only at the full size."""
    t = sections.get("throughput", {}).get("items", {})
    epoch = t.get("epoch_resident_plain", {}).get("epoch_s")
    proj = t.get("projected_300_epochs", {}).get("projected_s")
    wait = t.get("epoch_streamed_plain", {}).get("data_wait_share")

    def met(v: float | None, goal: float) -> bool | None:
        return None if v is None or quick else bool(v <= goal)

    return {"epoch_s": {"goal": GOALS["epoch_s"], "measured": epoch,
                        "met": met(epoch, GOALS["epoch_s"])},
            "projected_300_epochs_s": {"goal": GOALS["projected_300_epochs_s"],
                                       "measured": proj,
                                       "met": met(proj, GOALS["projected_300_epochs_s"])},
            "data_wait_share": {"goal": GOALS["data_wait_share"], "measured": wait,
                                "met": met(wait, GOALS["data_wait_share"])}}


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [f"# GPU check: {meta.get('gpu') or meta['device']}, torch {meta['torch']}"
             f"{' (quick)' if meta['quick'] else ''}", "",
             f"{meta['started']}, {meta['wall_s']} s of a {meta['budget_s']} s budget.", "",
             "| goal | target | measured | met |", "|---|---|---|---|"]
    names = {"epoch_s": "epoch of 37,646 samples (s)",
             "projected_300_epochs_s": "300 epochs (s)",
             "data_wait_share": "data waiting (share of the step, streamed)"}
    for k, g in report["goals"].items():
        m = g["measured"]
        lines.append(f"| {names[k]} | <= {g['goal']} | {'-' if m is None else m} | "
                     f"{'-' if g['met'] is None else 'yes' if g['met'] else 'no'} |")
    if meta["quick"]:
        lines += ["", "(quick: tiny sizes, so not judged; the goals are for one H200 at the "
                  "full size)"]
    for name, sec in report["sections"].items():
        lines += ["", f"## {name}: {sec['status']} ({sec.get('seconds', 0)} s)", "",
                  "| item | status | result |", "|---|---|---|"]
        for item, res in sec.get("items", {}).items():
            text = str(res.get("summary", "")).replace("|", "/").replace("\n", " ")
            lines.append(f"| {item} | {res['status']} | {text} |")
        learn = sec.get("items", {}).get("learning_table", {})
        if learn.get("rows"):
            lines += ["", "| encoder | protocol | top-1 | top-5 | best top-1 | best top-5 | "
                      "steps | pretrain s | eval s |", "|---|---|---|---|---|---|---|---|---|"]
            for r in learn["rows"]:
                def f(v):
                    return "-" if v is None else f"{v:.2f}"
                lines.append(f"| {r['encoder']} | {r['protocol']} | {f(r.get('top1'))} | "
                             f"{f(r.get('top5'))} | {f(r.get('best_top1'))} | "
                             f"{f(r.get('best_top5'))} | {r.get('steps', 0)} | "
                             f"{r.get('pretrain_s', 0):.0f} | {r.get('eval_s', 0):.0f} |")
            sched = learn.get("schedule") or {}
            lines += ["", f"{learn.get('dataset')}: {learn.get('train_samples')} train / "
                      f"{learn.get('test_samples')} test, {learn.get('classes')} classes; "
                      f"{sched.get('epochs')} epochs x {sched.get('steps_per_epoch')} steps, "
                      f"batch {sched.get('batch_size')}, queue {sched.get('queue_size')}, "
                      f"active from epoch {sched.get('active_epoch')}. best: over the linear "
                      "protocol's evaluations every 5 epochs (chosen on the test set)."]
    return "\n".join(lines) + "\n"


def collect_logs(ctx: Context) -> None:
    """Every command's output, the last 300 lines of each, into <out>/gpu_check.log."""
    parts = []
    for log in sorted(ctx.logs.glob("*.log")) if ctx.logs.exists() else []:
        parts.append(f"===== {log.name}\n{tail(log, 300)}\n")
    for log in sorted(ctx.work.glob("*/learning-logs/*.log")):
        parts.append(f"===== learning/{log.name}\n{tail(log, 60)}\n")
    write_text(ctx.out / "gpu_check.log", "".join(parts))


RUNNERS = {"setup": section_setup, "correctness": section_correctness,
           "throughput": section_throughput, "distributed": section_distributed,
           "learning": section_learning}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check", help="Output folder [default: ./gpu_check].")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cpu.")
    p.add_argument("--quick", action="store_true", help="Tiny sizes (a CPU smoke run).")
    p.add_argument("--budget-s", type=float, default=None,
                   help="Seconds for everything [default: 520; 100 with --quick].")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"Comma-separated subset of {','.join(SECTIONS)}.")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend [default: inductor on CUDA, eager on the CPU "
                        "(dynamo's capture only: inductor's C++ build takes minutes there)].")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads, here and in every command [default: torch's; 1 with "
                        "--device cpu --quick].")
    p.add_argument("--workdir", default=None,
                   help="Scratch folder, kept [default: a new temporary one, removed at the end "
                        "unless --keep].")
    p.add_argument("--keep", action="store_true", help="Keep the temporary scratch folder.")
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available (use --device cpu)")
    if args.threads is None and args.quick and args.device == "cpu":
        args.threads = 1
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}: choose from {', '.join(SECTIONS)}")
    if args.budget_s is None:
        args.budget_s = (QUICK if args.quick else FULL).budget_s
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = Context(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    budget = Budget(args.budget_s, {s: WEIGHTS[s] for s in args.sections})
    report: dict[str, Any] = {"meta": {
        "device": str(ctx.device), "gpu": torch.cuda.get_device_name(ctx.device)
        if ctx.cuda else None, "torch": torch.__version__, "quick": args.quick,
        "budget_s": args.budget_s, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": sys.argv[1:], "workdir": str(ctx.work), "sizes": ctx.sizes.__dict__,
        "compile_backend": ctx.backend, "threads": args.threads, "wall_s": None},
        "goals": {}, "sections": {}}

    def save() -> None:
        report["meta"]["wall_s"] = round(time.perf_counter() - t0, 1)
        report["goals"] = goals_block(report["sections"], args.quick)
        write_json(ctx.out / "gpu_check.json", report)
        write_text(ctx.out / "gpu_check.md", markdown(report))

    try:
        for name in SECTIONS:
            if name not in args.sections:
                report["sections"][name] = {"status": "skipped", "items": {}, "summary":
                                            "skipped: not selected (--sections)"}
                continue
            sec = Section(name, budget.clock(name))
            try:
                RUNNERS[name](ctx, sec)
            except Exception as e:  # a section's own failure; the next one still runs
                sec.items["section_error"] = {"status": "error", "summary": f"{e}"[:300],
                                              "traceback": traceback.format_exc(limit=8)}
            report["sections"][name] = sec.record()
            save()
    finally:
        if ctx.prep is not None and ctx.prep.poll() is None:
            stop_group(ctx.prep)
        collect_logs(ctx)
        save()
        if args.workdir is None and not args.keep:  # our own temporary folder
            shutil.rmtree(ctx.work, ignore_errors=True)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
