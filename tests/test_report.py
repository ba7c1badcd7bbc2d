"""The report: one self-contained page of runs, evaluations and figures; a cached stage;
rendered by a real browser."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.config import apply_overrides, load_preset
from pipelines.report import report
from pipelines.stage import Input, ShardLog, StageId, plan
from pipelines.workspace import Workspace

TINY = ["model_args.hidden_channels=4", "model_args.hidden_dim=16", "num_epoch=5",
        "batch_size=16"]


def fake_run(ws: Workspace, name: str, epochs: int, done: int) -> Path:
    """A pre-training run folder as the stage leaves it after ``done`` of ``epochs``."""
    out = ws.run("ntu60", name)
    os.makedirs(out.store, exist_ok=True)
    Path(out.store, "config.yaml").write_text(
        "benchmark: xview\nbatch_size: 64\nbase_lr: 0.1\nmodel_args: {queue_size: 512, "
        "topk: 5, active_epoch: 2}\n")
    records = [{"epoch": e + 1, "loss": 5.0 - 0.3 * e, "lr": 0.1, "relabel_c": 0.01 * e,
                "active_sampling": e >= 2, "seconds": 1.0, "samples_per_s": 100.0}
               for e in range(done)]
    Path(out.store, "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    p = plan(StageId("pretrain", 1), out.manifest, out.store, {"num_epoch": epochs},
             {"frames": Input(ws.relative(ws.frames("ntu60").store), "x", "store")})
    log = ShardLog(p, epochs)
    log.done(range(done))
    if done == epochs:
        log.finish({"final_loss": records[-1]["loss"]})
    return Path(out.store)


@pytest.fixture
def reported(workspace_copy) -> tuple[Workspace, object]:
    from pipelines.evaluate import evaluate

    ws = Workspace(str(workspace_copy))
    cfg = apply_overrides(load_preset("linear", "ntu60-xview"), TINY)
    cfg.update(dataset="ntu60", benchmark="xview")
    evaluate(ws, cfg, None)
    fake_run(ws, "asar", epochs=4, done=4)
    return ws, report(ws)


def test_the_page_shows_runs_evaluations_and_embedded_figures(reported):
    ws, result = reported
    page = Path(result.page).read_text()
    assert result.action == "start" and result.summary["runs"] == 1
    assert "asar" in page and "final loss" in page and "4.1000" in page       # the run
    assert "linear-joint-xview-random-seed0" in page and "top-1 (final)" in page
    assert "best top-1 over evaluations (reference&#x27;s number, chosen on test)" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 2        # curves, confusion
    assert not re.search(r'(src|href)="(https?:)?//', page)                  # no network


def test_the_report_is_skipped_until_a_run_or_evaluation_changes(reported):
    ws, first = reported
    assert report(ws).action == "skip"
    fake_run(ws, "moco", epochs=4, done=2)
    again = report(ws)
    assert again.action == "start" and "moco" in Path(again.page).read_text()
    from pipelines.status import workspace_status

    states = {r.output: r.state for r in workspace_status(ws)}
    assert states[ws.report().store] == "complete"
    fake_run(ws, "moco", epochs=4, done=3)
    states = {r.output: r.state for r in workspace_status(ws)}
    assert states[ws.report().store] == "stale"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs "
                                               "it with apt-get)")
def test_a_real_browser_renders_the_page_and_it_is_not_blank(reported, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    _, result = reported
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'ud'}",
                    f"--screenshot={shot}", "--window-size=1280,2000",
                    f"file://{result.page}"], check=True, capture_output=True, timeout=120)
    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[0] >= 1000
    dark = (pixels.mean(axis=2) < 0.5).mean()        # text, lines and figures
    colours = len(np.unique((pixels * 15).astype(int).reshape(-1, 3), axis=0))
    assert 0.002 < dark < 0.5 and colours > 20


def test_status_names_each_evaluations_weakest_class(reported):
    from asar_data.actions import action_names
    from pipelines.status import workspace_status

    ws, _ = reported
    detail = next(r.detail for r in workspace_status(ws) if r.stage == "evaluate")
    assert detail.startswith("top-1 ")
    assert detail.split("weakest: '")[1].split("'")[0] in action_names("ntu60", 60)
