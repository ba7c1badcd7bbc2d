"""Pre-training speed: our step vs a reference-style step, and one NTU-60 xview epoch.

    python benchmarks/pretrain.py [--batch 128] [--steps 1] [--reps 4] [--threads T]
        [--workers 2] [--epoch-steps 4] [--epoch-samples 37646] [--epoch-runs plain active]
        [--no-epoch] [--encoder] [--json OUT]

Data: a small synthetic NTU-60 set made the real way (`asar_data.synth` ->
`ingest_ntu` -> `downsample`, 240 samples, 60 classes), in a temporary folder.

1. Step table (batch ``--batch``, the ntu60-xview pre-training preset), BEFORE the
   active-sampling epoch (epoch 0) and AFTER it (epoch ``active_epoch`` = 150), in one
   run, the four cases interleaved in each of ``--reps`` rounds; each case's figure is
   the best round (a round = ``--steps`` consecutive steps, after one untimed warm-up
   step per case). Wall and CPU seconds per step (CPU: this process's threads plus,
   for the reference-style rows, its DataLoader worker processes, read from /proc).
   - ours: the stage's path - a device-resident batch (`ResidentSource`), two
     `normal_augment` views drawn in batch on the device, `ASAR.forward`, backward, SGD.
   - reference-style (`benchmarks/reference_style.py`, for benchmarking only): per-sample
     NumPy augmentation in ``--workers`` DataLoader worker processes, the reference
     ST-GCN formulation, and after the active epoch the autograd key gradient (a second
     backward through the query encoder), k-means with a host sync per iteration and
     the selection loop with host syncs. Every batch fetch is timed. One DataLoader
     iterator serves all rounds (its workers forked once, before the warm-ups), so the
     rounds see its steady state: the queue of prefetched batches refilled while the
     steps run.
   Besides: both augmentations of one batch alone, and our active-sampling queue update
   alone against the plain one (best of 5), the precise cost of active sampling.
   ``--encoder`` adds the encoder alone (the rows of the former `step_speed.py`): the
   reference formulation of the ST-GCN forward against ours, under no_grad in train mode
   (as the key encoder runs) and with a backward, best of ``--reps``.
2. One epoch of ``--epoch-samples`` (37,646 = NTU-60 xview training size) through the
   real stage, `pipelines.pretrain.pretrain`, on the CPU: a 50-frame store of that size
   is written by TILING the small synthetic store (`frames_store.create/write_block/
   finalise`, plus a 256-sample test split). The stage runs once with active sampling off
   and once on (``active_epoch`` 0); a progress hook timestamps every step and stops the
   run after ``--epoch-steps`` steps, and the epoch is EXTRAPOLATED as
   first step + (steps per epoch - 1) x mean of the later steps (0: the whole epoch is
   run and the stage's own epoch time reported); the epoch at the best measured step's
   speed is given too (the machine's load varies). Loading the store into memory and
   building the model (before the epoch clock) are reported apart.
   With a GPU (``torch.cuda.is_available()``) the table and the epochs are measured there
   too: three whole epochs (warm-up, plain, active), the stage's own epoch times.

Goals: with active sampling on, our CPU step takes at most half the reference-style
step's time; active sampling adds at most 10% to our plain step; one H200 epoch of
37,646 samples in at most 6 s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from asar_data import frames_store  # noqa: E402
from asar_data.augment import normal_augment  # noqa: E402
from asar_data.frames_store import FramesStore  # noqa: E402
from asar_data.loader import ResidentSource  # noqa: E402
from asar_data.streams import to_stream  # noqa: E402
from asar_model.stgcn import Model, reference_init  # noqa: E402
from asar_model.training import build_learner  # noqa: E402
from pipelines.config import get_key, load_preset  # noqa: E402
from pipelines.manifest import Manifest  # noqa: E402
from pipelines.pretrain import pretrain  # noqa: E402
from pipelines.progress import Bar, Progress  # noqa: E402
from pipelines.workspace import Workspace  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_style import (  # noqa: E402
    ReferenceStyleASAR,
    augment_one,
    check_equivalence,
    make_loader,
    reference_forward,
    reference_step,
)

PRESET = "ntu60-xview"
BASE_SAMPLES = 240
TEST_SAMPLES = 256
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- data --------------------------------------------------------------------------------

def base_store(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, float]:
    """synth -> ingest -> downsample into root; returns data, labels, names, attrs, seconds."""
    from asar_data.synth import write_ntu_dataset
    from pipelines.downsample import downsample
    from pipelines.ingest import ingest_ntu

    t0 = time.perf_counter()
    write_ntu_dataset(root / "raw", samples=BASE_SAMPLES, classes=60, seed=0)
    ws = Workspace(str(root / "base"))
    ingest_ntu(ws, str(root / "raw"), workers=1)
    downsample(ws, "ntu60", workers=1)
    store = FramesStore(ws.frames("ntu60").store)
    idx = np.arange(len(store))
    return (store.read(idx), store.labels[idx], store.names, store.attrs,
            time.perf_counter() - t0)


def tiled_store(ws: Workspace, data: np.ndarray, labels: np.ndarray, names: np.ndarray,
                attrs: dict, n_train: int, chunk: int = 256) -> float:
    """A complete ntu60 50-frame store of n_train + TEST_SAMPLES samples, sample i being
    base sample i % n (benchmark xview: the first n_train train). Returns seconds."""
    t0 = time.perf_counter()
    n, base = n_train + TEST_SAMPLES, len(data)
    out = ws.frames("ntu60")
    frames_store.create(out.store, n, data.shape[2], chunk)
    for a in range(0, n, chunk):
        src = np.arange(a, min(a + chunk, n)) % base
        frames_store.write_block(out.store, a, data[src], np.full(len(src), data.shape[2]))
    src = np.arange(n) % base
    frames_store.finalise(
        out.store, labels[src], np.array([f"{names[j]}.{i}" for i, j in enumerate(src)]),
        {"xview": (np.arange(n_train), np.arange(n_train, n))},
        {**attrs, "benchmarks": ["xview"], "default_benchmark": "xview"})
    Manifest("downsample", f"tiled-{n}", "bench", {}, {}, out.store, complete=True).save(
        out.manifest)
    return time.perf_counter() - t0


# -- timing helpers ----------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of other processes, from /proc (0 for a gone one)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK            # utime, stime
    return total


def best_of(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_sgd(model: torch.nn.Module, cfg: dict) -> torch.optim.SGD:
    """The stage's optimiser."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                           lr=float(cfg["base_lr"]), momentum=float(cfg.get("momentum", 0.9)),
                           weight_decay=float(cfg["weight_decay"]),
                           nesterov=bool(cfg.get("nesterov", False)))


class Case:
    """One row of the step table: ``window(steps)`` runs that many steps and returns
    (wall s, CPU s, last loss)."""

    def __init__(self, name: str, epoch: int, window):
        self.name, self.epoch, self.window = name, epoch, window
        self.rounds: list[tuple[float, float]] = []
        self.loss = float("nan")


def our_case(model, opt, cfg: dict, source: ResidentSource, device: torch.device,
             batch: int, epoch: int, name: str) -> Case:
    feeder = cfg.get("train_feeder_args") or {}
    pad, amp = int(feeder.get("temperal_padding_ratio", 6)), float(feeder["shear_amplitude"])
    stream = cfg.get("stream", "joint")
    gen = torch.Generator(device=device).manual_seed(epoch)

    def window(steps: int) -> tuple[float, float, float]:
        batches = source.batches(batch, gen)
        loss_sum = torch.zeros((), device=device)
        sync(device)
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):            # the stage's loop body
            x, _ = next(batches)
            v1 = to_stream(normal_augment(x, gen, pad, amp), stream)
            v2 = to_stream(normal_augment(x, gen, pad, amp), stream)
            loss, stats = model(v1, v2, epoch=epoch, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += stats["loss"].float()
        sync(device)
        w1, c1 = time.perf_counter(), time.process_time()
        return w1 - w0, c1 - c0, float(stats["loss"])

    return Case(name, epoch, window)


def ref_case(model, opt, batches, pids: list[int], device: torch.device, epoch: int,
             name: str) -> Case:
    """``batches``: one long-lived DataLoader iterator (its workers ``pids``), shared."""
    def window(steps: int) -> tuple[float, float, float]:
        sync(device)
        w0, c0 = time.perf_counter(), time.process_time() + proc_cpu(pids)
        for _ in range(steps):
            loss = reference_step(model, opt, next(batches), epoch, device)
        sync(device)
        w1, c1 = time.perf_counter(), time.process_time() + proc_cpu(pids)
        return w1 - w0, c1 - c0, loss

    return Case(name, epoch, window)


def step_table(device: torch.device, cfg: dict, data: np.ndarray, labels: np.ndarray,
               args: argparse.Namespace) -> dict[str, Any]:
    batch, steps = args.batch, args.steps
    active = int(get_key(cfg, "model_args.active_epoch"))
    torch.manual_seed(0)
    ours = build_learner(cfg.get("model_args")).to(device).train()
    ref = ReferenceStyleASAR(**cfg["model_args"]).to(device).train()
    ref.load_state_dict(ours.state_dict())
    opt_ours, opt_ref = make_sgd(ours, cfg), make_sgd(ref, cfg)
    rows = max(len(data), batch * (steps + 1))
    src = np.arange(rows) % len(data)
    source = ResidentSource(torch.from_numpy(data[src]).to(device),
                            torch.from_numpy(labels[src].astype(np.int64)).to(device))
    # One iterator for the whole table: its workers are forked once, before any warm-up (a
    # fork makes the parent's next writes copy pages: a fresh iterator per round would
    # charge that to the timed step, where the reference pays it once an epoch).
    n_batches = 2 * (1 + args.reps * steps) + 2 * max(args.workers, 1) + 1
    loader = make_loader(data, labels, batch, args.workers, batch * n_batches,
                         pin_memory=device.type == "cuda")
    batches = iter(loader)
    pids = [w.pid for w in getattr(batches, "_workers", [])]
    cases = [
        our_case(ours, opt_ours, cfg, source, device, batch, 0, "ours, before active epoch"),
        our_case(ours, opt_ours, cfg, source, device, batch, active, "ours, active sampling"),
        ref_case(ref, opt_ref, batches, pids, device, 0, "reference-style, before active epoch"),
        ref_case(ref, opt_ref, batches, pids, device, active, "reference-style, active sampling"),
    ]
    for case in cases:
        case.window(1)                                   # warm-up
    for r in range(args.reps):
        for case in cases:
            wall, cpu, case.loss = case.window(steps)
            case.rounds.append((wall, cpu))
            print(f"    round {r + 1}/{args.reps}  {case.name:<38s} {wall / steps:7.3f} s/step",
                  flush=True)
    getattr(batches, "_shutdown_workers", lambda: None)()  # the workers stop
    out: dict[str, Any] = {"isolated": isolated(ours, device, batch, data)}
    for case in cases:
        wall, cpu = min(case.rounds)
        out[case.name] = {"epoch": case.epoch, "wall_s_per_step": wall / steps,
                          "cpu_s_per_step": cpu / steps, "samples_per_s": batch * steps / wall,
                          "last_loss": case.loss,
                          "rounds_wall_s_per_step": [w / steps for w, _ in case.rounds]}
    return out


def isolated(ours, device: torch.device, batch: int, data: np.ndarray) -> dict[str, float]:
    """Best-of-5 seconds of: the two views of one batch (ours on the device, batched; the
    reference-style per-sample NumPy in this process), and our queue updates alone."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.from_numpy(data[np.arange(batch) % len(data)]).to(device)
    host = data[np.arange(batch) % len(data)]

    def ours_aug() -> None:
        normal_augment(x, g), normal_augment(x, g)
        sync(device)

    def ref_aug() -> None:
        for s in host:
            augment_one(np.array(s)), augment_one(np.array(s))

    q = torch.nn.functional.normalize(torch.randn(batch, ours.queue.shape[0], device=device))
    k = torch.nn.functional.normalize(torch.randn(batch, ours.queue.shape[0], device=device))

    def plain() -> None:
        ours.enqueue(k)
        sync(device)

    def act() -> None:
        ours.active_enqueue(q, k, g)
        sync(device)

    return {"augment_two_views_ours_s": best_of(ours_aug, 5),
            "augment_two_views_reference_per_sample_s": best_of(ref_aug, 5),
            "queue_update_plain_s": best_of(plain, 5),
            "queue_update_active_sampling_s": best_of(act, 5)}


def encoder_rows(device: torch.device, args: argparse.Namespace) -> dict[str, float]:
    """Best-of-reps seconds of the encoder alone (train mode, batch ``--batch``), the
    reference formulation against ours: forward under no_grad, and forward + backward."""
    torch.manual_seed(0)
    model = reference_init(Model(num_class=128)).to(device).train()
    x = torch.randn(args.batch, 3, 50, 25, 2, device=device)

    def fwd(f):
        def run() -> None:
            with torch.no_grad():
                f(model, x)
            sync(device)
        return run

    def fwd_bwd(f):
        def run() -> None:
            f(model, x).square().sum().backward()
            sync(device)
        return run

    rows = {"forward, reference formulation": fwd(reference_forward),
            "forward, ours": fwd(Model.forward),
            "forward + backward, reference formulation": fwd_bwd(reference_forward),
            "forward + backward, ours": fwd_bwd(Model.forward)}
    return {name: best_of(fn, args.reps) for name, fn in rows.items()}


# -- the epoch through the stage ----------------------------------------------------------

class _Stop(Exception):
    pass


class _ClockBar(Bar):
    def __init__(self, clock: StepClock):
        self.clock = clock

    def update(self, completed: int | None = None, **fields: Any) -> None:
        c = self.clock
        c.marks.append((completed, time.perf_counter(), time.process_time()))
        if c.stop_after and completed is not None and completed >= c.stop_after:
            raise _Stop


class StepClock(Progress):
    """Timestamps every bar update of the stage; stops it after ``stop_after`` steps (0: never)."""

    def __init__(self, stop_after: int):
        self.stop_after = stop_after
        self.opened: list[tuple[float, float]] = []
        self.totals: list[int | None] = []
        self.marks: list[tuple[int | None, float, float]] = []

    def bar(self, description: str, total: int | None, completed: int = 0,
            unit: str = "") -> Bar:
        self.opened.append((time.perf_counter(), time.process_time()))
        self.totals.append(total)
        return _ClockBar(self)


def epoch_cpu(ws: Workspace, cfg: dict, stop_after: int, run: str) -> dict[str, Any]:
    """One epoch of the stage on the CPU, measured (stop_after 0) or extrapolated."""
    cfg = {**cfg, "num_epoch": 1, "device": "cpu", "log_every": 1, "tensorboard": False}
    clock = StepClock(stop_after)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        pretrain(ws, cfg, run, force=True, progress=clock)
        stopped = False
    except _Stop:
        stopped = True
    (o_wall, o_cpu), total = clock.opened[0], clock.totals[0]
    walls = np.diff([o_wall] + [w for _, w, _ in clock.marks])
    cpus = np.diff([o_cpu] + [c for _, _, c in clock.marks])
    later_w = walls[1:] if len(walls) > 1 else walls
    later_c = cpus[1:] if len(cpus) > 1 else cpus
    res = {"steps_per_epoch": total, "steps_run": len(walls), "extrapolated": stopped,
           "setup_s": o_wall - t0, "setup_cpu_s": o_cpu - c0, "first_step_s": float(walls[0]),
           "later_step_s": float(np.mean(later_w)), "later_step_cpu_s": float(np.mean(later_c)),
           "step_s": [float(w) for w in walls], "step_cpu_s": [float(c) for c in cpus]}
    if stopped:  # first step + (steps - 1) x the later steps' mean (and best)
        res["epoch_s"] = float(walls[0]) + (total - 1) * res["later_step_s"]
        res["epoch_cpu_s"] = float(cpus[0]) + (total - 1) * res["later_step_cpu_s"]
        res["epoch_s_at_best_step"] = float(walls[0]) + (total - 1) * float(np.min(later_w))
    else:  # the stage's own epoch time
        metrics = Path(ws.run_dir("ntu60", run)) / "metrics.jsonl"
        res["epoch_s"] = json.loads(metrics.read_text().splitlines()[0])["seconds"]
        res["epoch_cpu_s"] = float(np.sum(cpus))
    return res


def epochs_gpu(ws: Workspace, cfg: dict) -> dict[str, Any]:
    """Three whole epochs on the GPU (warm-up, plain, active): the stage's own epoch times."""
    cfg = {**cfg, "num_epoch": 3, "device": "cuda", "tensorboard": False,
           "model_args": {**cfg["model_args"], "active_epoch": 2}}
    pretrain(ws, cfg, "gpu", force=True)
    lines = (Path(ws.run_dir("ntu60", "gpu")) / "metrics.jsonl").read_text().splitlines()
    sec = [json.loads(line)["seconds"] for line in lines]
    return {"warm_up_epoch_s": sec[0], "epoch_s": sec[1], "active_epoch_s": sec[2]}


# -- report ------------------------------------------------------------------------------

def print_table(dev: str, table: dict[str, Any], batch: int, steps: int, reps: int) -> None:
    print(f"\n[{dev}] training step, batch {batch}: best of {reps} rounds of {steps} steps")
    print(f"  {'case':<38s} {'wall s/step':>11s} {'CPU s/step':>11s} {'samples/s':>10s} "
          f"{'loss':>8s}")
    for name, r in table.items():
        if name == "isolated":
            continue
        print(f"  {name:<38s} {r['wall_s_per_step']:11.3f} {r['cpu_s_per_step']:11.3f} "
              f"{r['samples_per_s']:10.1f} {r['last_loss']:8.3f}")
    iso = table["isolated"]
    ref_aug = iso["augment_two_views_reference_per_sample_s"]
    print(f"  two views of one batch: ours {iso['augment_two_views_ours_s'] * 1e3:.1f} ms, "
          f"reference-style per-sample NumPy {ref_aug * 1e3:.1f} ms (one process)")
    print(f"  our queue update alone: plain {iso['queue_update_plain_s'] * 1e3:.2f} ms, "
          f"active sampling {iso['queue_update_active_sampling_s'] * 1e3:.2f} ms")


def goals(table: dict[str, Any]) -> dict[str, Any]:
    o0 = table["ours, before active epoch"]["wall_s_per_step"]
    o1 = table["ours, active sampling"]["wall_s_per_step"]
    r1 = table["reference-style, active sampling"]["wall_s_per_step"]
    iso = table["isolated"]
    added = iso["queue_update_active_sampling_s"] - iso["queue_update_plain_s"]
    return {"ours_active_over_reference_active": o1 / r1,
            "reference_active_over_ours_active": r1 / o1,
            "ours_active_over_ours_plain": o1 / o0,
            "active_sampling_isolated_over_plain_step": added / o0,
            "half_of_reference": o1 <= 0.5 * r1,
            "active_adds_at_most_10pct": o1 <= 1.10 * o0,
            "active_adds_at_most_10pct_isolated": added <= 0.10 * o0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1, help="steps per timed round")
    ap.add_argument("--reps", type=int, default=4, help="rounds (best of)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads (default: torch's, here %(default)s)")
    ap.add_argument("--workers", type=int, default=2,
                    help="DataLoader workers of the reference-style step")
    ap.add_argument("--epoch-steps", type=int, default=4,
                    help="CPU epoch: steps run before extrapolating (0: the whole epoch)")
    ap.add_argument("--epoch-samples", type=int, default=37646)
    ap.add_argument("--epoch-runs", nargs="+", choices=("plain", "active"),
                    default=["plain", "active"],
                    help="CPU epoch: without / with active sampling (default both)")
    ap.add_argument("--no-epoch", action="store_true", help="skip the epoch measurement")
    ap.add_argument("--encoder", action="store_true",
                    help="also time the encoder alone, reference formulation vs ours")
    ap.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_preset("pretrain", PRESET)
    cfg["batch_size"] = args.batch
    gpu = torch.cuda.is_available()
    report: dict[str, Any] = {
        "command": " ".join(sys.argv), "torch": torch.__version__, "threads": args.threads,
        "cpus": os.cpu_count(), "workers": args.workers, "batch": args.batch,
        "steps": args.steps, "reps": args.reps, "load_average_start": os.getloadavg(),
        "gpu": torch.cuda.get_device_name() if gpu else None}
    print(f"torch {torch.__version__}, {args.threads} torch threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; reference-style DataLoader workers: "
          f"{args.workers}; preset pretrain/{PRESET}; "
          + (f"GPU: {report['gpu']}" if gpu else "no GPU"))
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="asar-bench-pretrain-") as tmp:
        root = Path(tmp)
        data, labels, names, attrs, sec = base_store(root)
        print(f"base store: {len(data)} synthetic samples (synth -> ingest -> downsample) "
              f"in {sec:.1f} s")
        report["checks"] = check_equivalence()
        print(f"reference-style vs ours, max abs differences: {report['checks']}")
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if gpu else [])
        report["steps_table"] = {}
        for dev in devices:
            print(f"\n[{dev}] timing rounds ...", flush=True)
            table = step_table(dev, cfg, data, labels, args)
            report["steps_table"][dev.type] = table
            report.setdefault("goals", {})[dev.type] = goals(table)
            if args.encoder:
                report.setdefault("encoder", {})[dev.type] = encoder_rows(dev, args)
        if not args.no_epoch:
            ws = Workspace(str(root / "epoch"))
            sec = tiled_store(ws, data, labels, names, attrs, args.epoch_samples)
            print(f"\nepoch store: {args.epoch_samples} train + {TEST_SAMPLES} test samples "
                  f"(the base store tiled), written in {sec:.1f} s")
            report["epoch"] = {"cpu": {}}
            for run in args.epoch_runs:
                active = 0 if run == "active" else int(get_key(cfg, "model_args.active_epoch"))
                c = {**cfg, "model_args": {**cfg["model_args"], "active_epoch": active}}
                print(f"[cpu] stage epoch, {run} ...", flush=True)
                report["epoch"]["cpu"][run] = epoch_cpu(ws, c, args.epoch_steps, run)
            if gpu:
                report["epoch"]["cuda"] = epochs_gpu(ws, cfg)
    report["load_average_end"] = os.getloadavg()
    report["total_s"] = time.perf_counter() - t_start

    print(f"\n=== results (one run; load average {report['load_average_start'][0]:.2f} at "
          f"start, {report['load_average_end'][0]:.2f} at end) ===")
    for dev, table in report["steps_table"].items():
        print_table(dev, table, args.batch, args.steps, args.reps)
        g = report["goals"][dev]
        print(f"  reference-style / ours, active sampling on: "
              f"{g['reference_active_over_ours_active']:.2f}x  -> goal 'ours <= half': "
              f"{'met' if g['half_of_reference'] else 'NOT met'}")
        print(f"  ours active / ours plain, step table: {g['ours_active_over_ours_plain']:.3f}"
              f" -> goal '<= +10%': {'met' if g['active_adds_at_most_10pct'] else 'NOT met'}")
        print(f"  active sampling's added work alone (queue update, active - plain): "
              f"+{g['active_sampling_isolated_over_plain_step'] * 100:.2f}% of the plain step "
              f"-> goal '<= +10%': "
              f"{'met' if g['active_adds_at_most_10pct_isolated'] else 'NOT met'}")
    for dev, rows in report.get("encoder", {}).items():
        print(f"\n[{dev}] encoder alone, batch {args.batch}, train mode, best of {args.reps}")
        for name, sec in rows.items():
            print(f"  {name:<44s} {sec:7.3f} s")
    if "epoch" in report:
        for run, e in report["epoch"]["cpu"].items():
            how = (f"EXTRAPOLATED from {e['steps_run']} steps" if e["extrapolated"]
                   else "measured, whole epoch")
            print(f"\n[cpu] one epoch of {args.epoch_samples} samples, {run} "
                  f"({e['steps_per_epoch']} steps of {args.batch}), real stage: "
                  f"{e['epoch_s']:.1f} s wall, {e['epoch_cpu_s']:.1f} s CPU ({how}: first step "
                  f"{e['first_step_s']:.2f} s, later steps {e['later_step_s']:.2f} s wall / "
                  f"{e['later_step_cpu_s']:.2f} s CPU each"
                  + (f"; at the best step's speed {e['epoch_s_at_best_step']:.1f} s"
                     if e["extrapolated"] else "") + "); before the epoch clock "
                  f"(store into memory, model) {e['setup_s']:.1f} s")
        if "cuda" in report["epoch"]:
            e = report["epoch"]["cuda"]
            print(f"[cuda] epoch {e['epoch_s']:.2f} s, active epoch {e['active_epoch_s']:.2f} s "
                  f"(warm-up epoch {e['warm_up_epoch_s']:.2f} s) -> goal '<= 6 s': "
                  f"{'met' if max(e['epoch_s'], e['active_epoch_s']) <= 6 else 'NOT met'}")
    if not gpu:
        print("\nno GPU: the GPU figures (step table on the device, H200 epoch <= 6 s) "
              "are not measured")
    print(f"total {report['total_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
