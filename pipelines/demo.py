"""`asar-cli demo`: the whole pipeline on the synthetic dataset, in one workspace.

synth -> ingest -> downsample -> pretrain (ASAR, plain MoCo) -> linear evaluation of
both and of a random-init encoder, on the same test split. Every step is a cached
stage, so running the demo again reuses everything and takes seconds. Sizes and
schedules come from `pipelines/presets/demo.yaml`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from asar_data import storage
from pipelines.config import PRESETS, load_preset, load_yaml, merge
from pipelines.progress import Progress
from pipelines.workspace import Workspace

ENCODERS = ("asar", "moco", "random-init")


@dataclass
class DemoRow:
    encoder: str
    top1: float
    top5: float
    best_top1: float | None
    eval_dir: str


def demo_config(small: bool = False) -> dict[str, Any]:
    cfg = load_yaml(PRESETS / "demo.yaml")
    return merge(cfg, cfg.get("small", {})) if small else cfg


def synthesize(ws: Workspace, synth: dict[str, Any], progress: Progress) -> str:
    """Write the synthetic NTU files once; a marker records what was written."""
    from asar_data.synth import write_ntu_dataset

    folder = ws.path("synthetic", "ntu60")
    marker = ws.path("synthetic", "ntu60.complete.json")  # beside the folder: not a raw file
    wanted = json.dumps(synth, sort_keys=True)
    if storage.exists(marker) and storage.read_text(marker) == wanted:
        progress.note(f"synth: {folder} is up to date - skipped")
        return folder
    storage.remove(marker)
    storage.remove(folder)
    with progress.bar("synth ntu", total=int(synth["samples"]), unit="files") as bar:
        write_ntu_dataset(folder, samples=int(synth["samples"]), classes=int(synth["classes"]),
                          seed=int(synth["seed"]), progress=lambda n: bar.update(completed=n))
    storage.write_text(marker, wanted)
    return folder


def run_demo(ws: Workspace, small: bool = False, progress: Progress | None = None,
             workers: int | None = None) -> list[DemoRow]:
    """Run (or reuse) every stage; returns the accuracy table and writes `demo.json`."""
    from pipelines.downsample import downsample
    from pipelines.evaluate import evaluate
    from pipelines.ingest import ingest_ntu
    from pipelines.pretrain import pretrain

    progress = progress or Progress()
    cfg = demo_config(small)
    dataset, benchmark = cfg["dataset"], cfg["benchmark"]
    raw = synthesize(ws, cfg["synth"], progress)
    ingest_ntu(ws, raw, dataset="ntu60", name=dataset, workers=workers or 1, progress=progress)
    downsample(ws, dataset, workers=workers or 1, progress=progress)
    base = {"dataset": dataset, "benchmark": benchmark, "seed": int(cfg["synth"]["seed"])}
    asar_cfg = merge(merge(load_preset("pretrain", "ntu60-xview"), cfg["pretrain"]), base)
    moco_cfg = merge(asar_cfg, cfg["moco"])
    pretrain(ws, asar_cfg, "asar", progress=progress)
    pretrain(ws, moco_cfg, "moco", progress=progress)
    linear = merge(merge(load_preset("linear", "ntu60-xview"), cfg["linear"]), base)
    rows = []
    for encoder in ENCODERS:
        weights = None if encoder == "random-init" else storage.join(
            ws.run_dir(dataset, encoder), "checkpoint.pt")
        result = evaluate(ws, linear, weights, "linear", "joint",
                          name=f"demo-linear-{encoder}", progress=progress)
        acc = result.result["accuracy"]
        rows.append(DemoRow(encoder, acc["top1"], acc["top5"], acc.get("best_top1"),
                            result.eval_dir))
    table = {
        "dataset": dataset, "benchmark": benchmark, "protocol": "linear",
        "metric": "final top-1 / top-5 (%) on the test split",
        "encoders": {r.encoder: {"top1": r.top1, "top5": r.top5, "best_top1": r.best_top1}
                     for r in rows},
    }
    storage.write_text(ws.path("demo.json"), json.dumps(table, indent=2) + "\n")
    return rows
