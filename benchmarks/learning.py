"""Does the method learn, and does ASAR beat plain MoCo? One schedule, three encoders.

    python benchmarks/learning.py --synthetic [--classes 60] [--samples 6000] [--workdir W]
    python benchmarks/learning.py --workdir W --dataset D [--benchmark B] [--preset P]
      common: [--epochs 100] [--active-epoch 50] [--batch-size 128] [--queue-size auto]
              [--linear-epochs N] [--k 20] [--device auto] [--jobs auto] [--seed 0]
              [--quick] [--prepare-only] [--no-raw-probe] [--json OUT]

Pre-trains ASAR and plain MoCo (adaptive relabeling and active sampling off: the
`moco:` block of pipelines/presets/demo.yaml, i.e. model_args.topk 0 and active_epoch
beyond the schedule) with the same schedule, then evaluates both and a random-init
encoder with the linear protocol and cosine k-NN, and prints one table (top-1/top-5 after
the last epoch, and the best over the linear protocol's evaluations every 5 epochs, which
is the reference's number, chosen on the test set; pre-training steps and seconds). The
table also goes to ``--json`` (default `<workdir>/learning.json`), rewritten after every
stage so a stopped run leaves what it finished.

Everything goes through the CLI (`python -m asar synth|ingest|downsample|pretrain|evaluate`)
and the results are read from the files the stages write: `<workdir>/<dataset>/runs/<run>/
metrics.jsonl` and `<workdir>/<dataset>/eval/<name>/result.json`. Runs and evaluations are
named after the schedule (`learn-asar-e100a50b128k3200s0`, ...), so a rerun reuses what
is done. Besides, unless ``--no-raw-probe``: a linear probe and k-NN on the raw
(standardised, flattened) input, in this process, as a yardstick of how separable the
data already is.

``--synthetic`` makes `synth<classes>x<samples>` in the workspace (synth -> ingest ->
downsample, each cached). Defaults are the GPU budget (60 classes, 6,000 samples, 100
epochs at batch 128, active sampling from epoch 50: about 3,100 steps per encoder);
``--quick`` is a CPU smoke size. The queue (``--queue-size auto``) keeps the reference's
ratio to the training set (32,768 of NTU-60 xview's 37,646), in whole batches; the lr
drops x0.1 at 5/6 of the schedule (the reference's 250 of 300).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runkit import ROOT, Ran, asar, child_env, run, run_many, write_json  # noqa: E402

ENCODERS = ("asar", "moco", "random-init")
PROTOCOLS = ("linear", "knn")
SYNTH_PRESET = "ntu60-xview"
QUEUE_RATIO = 32768 / 37646  # the reference queue over NTU-60 xview's training samples
PRESETS = ROOT / "pipelines" / "presets"
LINEAR_BATCH = 128  # the linear presets' batch size
QUICK = dict(classes=6, samples=120, epochs=2, active_epoch=1, batch_size=16,
             linear_epochs=10, k=5)
FULL = dict(classes=60, samples=6000, epochs=100, active_epoch=50, batch_size=128,
            linear_epochs=None, k=20)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=None,
                   help="Workspace [default: ./asar-work, or ./learning-work with --synthetic].")
    p.add_argument("--dataset", default=None, help="A dataset of the workspace.")
    p.add_argument("--benchmark", default=None, help="[default: the dataset's default].")
    p.add_argument("--preset", default=None,
                   help="Pretrain/linear preset [default: the CLI's choice; ntu60-xview for "
                        "synthetic data].")
    p.add_argument("--synthetic", action="store_true", help="Make a synthetic NTU dataset.")
    p.add_argument("--classes", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--active-epoch", type=int, default=None,
                   help="First epoch (0-based) of active sampling for ASAR.")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--queue-size", default="auto")
    p.add_argument("--linear-epochs", type=int, default=None,
                   help="Linear protocol epochs [default: the preset's 100].")
    p.add_argument("--k", type=int, default=None, help="k-NN neighbours [default 20].")
    p.add_argument("--device", default=None, help="auto, cpu, cuda [default: the CLI's auto].")
    p.add_argument("--jobs", type=int, default=None,
                   help="Commands at a time [default: 3 with CUDA, else 1].")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of every command (OMP_NUM_THREADS) [default: torch's].")
    p.add_argument("--quick", action="store_true", help="A CPU smoke size.")
    p.add_argument("--prepare-only", action="store_true",
                   help="Only make the synthetic dataset (synth, ingest, downsample).")
    p.add_argument("--no-raw-probe", action="store_true")
    p.add_argument("--json", default=None, help="[default: <workdir>/learning.json]")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.synthetic and args.dataset is None:
        args.dataset = f"synth{args.classes}x{args.samples}"
    if args.synthetic and args.preset is None:
        args.preset = SYNTH_PRESET
    if args.workdir is None:
        args.workdir = "learning-work" if args.synthetic else "asar-work"
    if not args.synthetic and args.dataset is None:
        p.error("name a workspace dataset with --dataset, or give --synthetic")
    from pipelines.workspace import NAME_CHARS

    if args.dataset.startswith(".") or not set(args.dataset) <= NAME_CHARS:
        p.error(f"--dataset {args.dataset!r} is a name, not a path")  # it names folders
    if args.active_epoch > args.epochs:
        print(f"note: active epoch {args.active_epoch} is beyond {args.epochs} epochs: ASAR "
              "runs without active sampling", file=sys.stderr)
    return args


class Learning:
    """One comparison: its workspace, schedule, commands and the results so far."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.workdir).resolve()
        self.logs = self.work / "learning-logs"
        self.json = Path(args.json) if args.json else self.work / "learning.json"
        self.t0 = time.perf_counter()
        self.env = child_env({"OMP_NUM_THREADS": str(args.threads)} if args.threads else None)
        self.jobs = args.jobs or 1
        self.out: dict[str, Any] = {
            "dataset": args.dataset, "benchmark": args.benchmark, "preset": args.preset,
            "workdir": str(self.work), "device": args.device or "auto",
            "commands": [], "pretrain": {}, "rows": [], "seconds": None}

    # -- bookkeeping ---------------------------------------------------------------------
    def save(self) -> None:
        self.out["seconds"] = round(time.perf_counter() - self.t0, 1)
        write_json(self.json, self.out)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def done(self, ran: Ran) -> Ran:
        self.out["commands"].append(ran.record())
        return ran

    def common(self) -> list[str]:
        a = self.args
        opts = ["--workdir", str(self.work), "--dataset", a.dataset, "--seed", str(a.seed)]
        if a.benchmark:
            opts += ["--benchmark", a.benchmark]
        if a.preset:
            opts += ["--preset", a.preset]
        if a.device:
            opts += ["--device", a.device]
        return opts

    # -- data ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """synth -> ingest -> downsample (each skipped when done)."""
        a = self.args
        raw = self.work / "synthetic-raw" / a.dataset
        marker = raw.with_name(f"{a.dataset}.complete.json")  # beside: not a raw file
        wanted = json.dumps({"samples": a.samples, "classes": a.classes, "seed": a.seed})
        if not (marker.exists() and marker.read_text() == wanted):
            marker.unlink(missing_ok=True)
            shutil.rmtree(raw, ignore_errors=True)  # our own output: a partial or other size
            dataset = "ntu120" if a.classes > 60 else "ntu60"
            self.check(self.done(run(asar("synth", "ntu", "--out", str(raw), "--samples",
                                          str(a.samples), "--classes", str(a.classes),
                                          "--seed", str(a.seed), "--dataset", dataset),
                                     self.log("synth"), env=self.env)))
            marker.write_text(wanted)
        self.check(self.done(run(asar("ingest", "ntu", "--raw", str(raw), "--workdir",
                                      str(self.work), "--name", a.dataset, "--workers", "1"),
                                 self.log("ingest"), env=self.env)))
        self.check(self.done(run(asar("downsample", a.dataset, "--workdir", str(self.work),
                                      "--workers", "1"), self.log("downsample"), env=self.env)))

    @staticmethod
    def check(ran: Ran) -> None:
        if not ran.ok:
            raise SystemExit(f"learning: {ran.error()}")

    def read_split(self) -> None:
        """Benchmark, split sizes and classes from the 50-frame store."""
        from asar_data.frames_store import FramesStore

        store = FramesStore(str(self.work / self.args.dataset / "frames50.zarr"))
        if self.args.benchmark is None:
            self.args.benchmark = store.attrs.get("default_benchmark") or store.benchmarks[0]
        bench = self.args.benchmark
        self.store = store
        self.train = store.split(bench, "train")
        self.test = store.split(bench, "test")
        self.classes = int(store.attrs.get("classes") or int(store.labels.max()) + 1)
        present = int(len(set(store.labels[self.train].tolist())))
        self.out.update(benchmark=bench, train_samples=len(self.train),
                        test_samples=len(self.test), classes=self.classes,
                        classes_present=present)

    # -- schedule ------------------------------------------------------------------------
    def schedule(self) -> dict[str, Any]:
        a = self.args
        if len(self.train) < a.batch_size:
            raise SystemExit(f"learning: {len(self.train)} training samples, fewer than one "
                             f"batch of {a.batch_size}: lower --batch-size")
        if a.queue_size == "auto":
            queue = int(len(self.train) * QUEUE_RATIO) // a.batch_size * a.batch_size
            queue = max(queue, a.batch_size)
        else:
            queue = int(a.queue_size)
        steps = len(self.train) // a.batch_size
        sched = {"epochs": a.epochs, "active_epoch": a.active_epoch, "batch_size": a.batch_size,
                 "queue_size": queue, "lr_step": [max(1, round(a.epochs * 250 / 300))],
                 "steps_per_epoch": steps, "steps": steps * a.epochs,
                 "linear_epochs": a.linear_epochs or "preset", "k": a.k, "seed": a.seed}
        self.tag = f"e{a.epochs}a{a.active_epoch}b{a.batch_size}k{queue}s{a.seed}"
        self.out["schedule"] = sched
        return sched

    def moco_overrides(self) -> list[str]:
        """`--set` pairs of demo.yaml's `moco:` block (flattened), else topk 0 / no active."""
        import yaml

        try:
            block = yaml.safe_load((PRESETS / "demo.yaml").read_text()).get("moco") or {}
        except (OSError, AttributeError, yaml.YAMLError):
            block = {}
        flat = dict(_flatten(block)) or {"model_args.topk": 0,
                                         "model_args.active_epoch": 1000000}
        return [x for k, v in flat.items() for x in ("--set", f"{k}={json.dumps(v)}")]

    # -- stages --------------------------------------------------------------------------
    def pretrain(self, sched: dict[str, Any]) -> None:
        a = self.args
        sets = {"num_epoch": a.epochs, "batch_size": a.batch_size,
                "step": sched["lr_step"], "model_args.queue_size": sched["queue_size"],
                "save_interval": 0}
        base = self.common() + [x for k, v in sets.items()
                                for x in ("--set", f"{k}={json.dumps(v)}")]
        cmds = {
            "asar": asar("pretrain", *base, "--run", f"learn-asar-{self.tag}",
                         "--set", f"model_args.active_epoch={a.active_epoch}"),
            "moco": asar("pretrain", *base, "--run", f"learn-moco-{self.tag}",
                         *self.moco_overrides()),
        }
        rans = run_many([(c, self.log(f"pretrain-{e}-{self.tag}")) for e, c in cmds.items()],
                        self.jobs, env=self.env)
        for enc, ran in zip(cmds, rans, strict=True):
            self.done(ran)
            self.out["pretrain"][enc] = {"run": f"learn-{enc}-{self.tag}", **self.run_metrics(
                f"learn-{enc}-{self.tag}"), "wall_s": round(ran.seconds, 1),
                "returncode": ran.returncode}
            if not ran.ok:
                self.out["pretrain"][enc]["error"] = ran.error()
        self.save()

    def run_metrics(self, run_name: str) -> dict[str, Any]:
        path = self.work / self.args.dataset / "runs" / run_name / "metrics.jsonl"
        try:
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        except OSError:
            return {"epochs_done": 0}
        steps = (len(self.train) // self.args.batch_size) * len(lines)
        return {"epochs_done": len(lines), "steps": steps,
                "train_s": round(sum(x.get("seconds", 0.0) for x in lines), 1),
                "final_loss": lines[-1].get("loss") if lines else None,
                "first_loss": lines[0].get("loss") if lines else None}

    def evaluate(self) -> None:
        a = self.args
        cmds, keys = [], []
        for enc in ENCODERS:
            if enc != "random-init" and self.out["pretrain"].get(enc, {}).get("error"):
                continue
            for proto in PROTOCOLS:
                name = f"learn-{proto}-{enc}-{self.tag}"
                argv = asar("evaluate", *self.common(), "--protocol", proto, "--name", name)
                if enc != "random-init":
                    argv += ["--weights", f"learn-{enc}-{self.tag}"]
                if proto == "linear":
                    argv += [x for k, v in self.linear_overrides().items()
                             for x in ("--set", f"{k}={json.dumps(v)}")]
                if proto == "knn":
                    argv += ["--k", str(a.k)]
                cmds.append((argv, self.log(name)))
                keys.append((enc, proto, name))
        rans = run_many(cmds, self.jobs, env=self.env)
        for (enc, proto, name), ran in zip(keys, rans, strict=True):
            self.done(ran)
            row = {"encoder": enc, "protocol": proto, "name": name,
                   "eval_s": round(ran.seconds, 1), **self.result(name)}
            pre = self.out["pretrain"].get(enc, {})
            row.update(steps=pre.get("steps", 0), pretrain_s=pre.get("wall_s", 0.0))
            if not ran.ok:
                row["error"] = ran.error()
            self.out["rows"].append(row)
        self.save()

    def linear_overrides(self) -> dict[str, Any]:
        """Linear-protocol keys changed from the preset: ``--linear-epochs`` (lr step at 4/5,
        as the reference's 80 of 100), and a smaller batch when the training split has
        fewer samples than the preset's 128."""
        a = self.args
        sets: dict[str, Any] = {}
        if a.linear_epochs:
            sets.update(num_epoch=a.linear_epochs, step=[max(1, round(a.linear_epochs * 0.8))])
        if len(self.train) < LINEAR_BATCH:
            sets["batch_size"] = min(a.batch_size, len(self.train))
        return sets

    def result(self, name: str) -> dict[str, Any]:
        path = self.work / self.args.dataset / "eval" / name / "result.json"
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        acc = res.get("accuracy", {})
        evals = res.get("evaluations") or []
        return {"top1": acc.get("top1"), "top5": acc.get("top5"),
                "best_top1": acc.get("best_top1"),
                "best_top5": max((e["top5"] for e in evals), default=None)}

    def raw_probe(self) -> None:
        """Linear probe and k-NN on the standardised, flattened raw input (in-process)."""
        import torch
        import yaml

        from asar_model.heads import knn_scores, topk_accuracy, train_linear

        t0 = time.perf_counter()
        if self.args.threads:
            torch.set_num_threads(self.args.threads)
        preset = self.args.preset or f"{self.args.dataset}-{self.args.benchmark}"
        path = PRESETS / "linear" / f"{preset}.yaml"
        cfg = yaml.safe_load((path if path.exists() else
                              PRESETS / "linear" / f"{SYNTH_PRESET}.yaml").read_text())
        cfg.update(self.linear_overrides())
        tr = torch.from_numpy(self.store.read(self.train)).flatten(1)
        te = torch.from_numpy(self.store.read(self.test)).flatten(1)
        mean, std = tr.mean(0), tr.std(0).clamp(min=1e-6)
        tr, te = (tr - mean) / std, (te - mean) / std
        y_tr = torch.from_numpy(self.store.labels[self.train].astype("int64"))
        y_te = torch.from_numpy(self.store.labels[self.test].astype("int64"))
        lin = train_linear(tr, y_tr, te, y_te, self.classes, cfg, self.args.seed)
        knn = topk_accuracy(knn_scores(tr, y_tr, te, self.classes, self.args.k), y_te)
        seconds = round(time.perf_counter() - t0, 1)
        self.out["rows"].append({
            "encoder": "raw input", "protocol": "linear", "top1": lin.final["top1"],
            "top5": lin.final["top5"], "best_top1": lin.best_top1,
            "best_top5": max(e["top5"] for e in lin.evaluations), "steps": 0,
            "pretrain_s": 0.0, "eval_s": seconds,
            "note": "linear protocol on the standardised flattened input (no encoder)"})
        self.out["rows"].append({
            "encoder": "raw input", "protocol": "knn", "top1": knn[1], "top5": knn[5],
            "best_top1": None, "best_top5": None, "steps": 0, "pretrain_s": 0.0,
            "eval_s": seconds})
        self.save()


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in tree.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _num(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def table(out: dict[str, Any]) -> str:
    """The result table as aligned text."""
    head = ("encoder", "protocol", "top-1", "top-5", "best top-1", "best top-5", "steps",
            "pretrain s", "eval s")
    rows = [head]
    for r in out.get("rows", []):
        rows.append((r["encoder"], r["protocol"], _num(r.get("top1")), _num(r.get("top5")),
                     _num(r.get("best_top1")), _num(r.get("best_top5")), str(r.get("steps", 0)),
                     f"{r.get('pretrain_s', 0.0):.0f}", f"{r.get('eval_s', 0.0):.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join(lines)


def caption(out: dict[str, Any]) -> str:
    s = out.get("schedule", {})
    return (f"{out['dataset']} {out['benchmark']}: {out.get('train_samples')} train / "
            f"{out.get('test_samples')} test samples, {out.get('classes_present')} classes "
            f"({out.get('classes')} outputs); "
            f"{s.get('epochs')} epochs x {s.get('steps_per_epoch')} steps at batch "
            f"{s.get('batch_size')}, queue {s.get('queue_size')}, ASAR active sampling from "
            f"epoch {s.get('active_epoch')}. top-1/top-5: after the last epoch; best: over the "
            "linear protocol's evaluations every 5 epochs (the reference's number, chosen on "
            "the test set).")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    job = Learning(args)
    if args.synthetic:
        job.prepare()
        job.save()
    if args.prepare_only:
        return job.out
    job.read_split()
    if args.jobs is None:
        import torch

        cuda = torch.cuda.is_available() and args.device not in ("cpu",)
        args.jobs = 3 if cuda else 1
    job.jobs = args.jobs
    job.out["jobs"] = args.jobs
    job.schedule()
    job.save()
    job.pretrain(job.out["schedule"])
    job.evaluate()
    if not args.no_raw_probe:
        job.raw_probe()
    job.save()
    print(caption(job.out))
    print(table(job.out))
    print(f"(json: {job.json}; {job.out['seconds']} s)")
    failed = [r for r in job.out["rows"] if r.get("error")]
    failed += [v for v in job.out["pretrain"].values() if v.get("error")]
    for f in failed:
        print(f"failed: {f['error']}", file=sys.stderr)
    if failed:
        raise SystemExit(1)
    return job.out


if __name__ == "__main__":
    main()
