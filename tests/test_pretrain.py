"""The pretrain stage: runs, checkpoints, resumes exactly, refuses silent overwrites."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from asar_data.frames_store import FramesStore
from asar_data.loader import ResidentSource, StreamedSource
from asar_model.training import NonFiniteLoss
from pipelines.config import apply_overrides, load_preset
from pipelines.manifest import Manifest
from pipelines.pretrain import load_checkpoint, pretrain
from pipelines.workspace import Workspace, WorkspaceError

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = [
    "model_args.hidden_channels=4", "model_args.hidden_dim=16", "model_args.queue_size=64",
    "batch_size=16", "save_interval=0",
]


def tiny_config(epochs: int = 2, **extra: object) -> dict:
    cfg = apply_overrides(load_preset("pretrain", "ntu60-xview"),
                          TINY_MODEL + [f"num_epoch={epochs}", "model_args.active_epoch=1"])
    cfg.update({"dataset": "ntu60", "benchmark": "xview", "seed": 0, "deterministic": True})
    cfg.update(extra)
    return cfg


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_config_checkpoint_metrics_and_skips_when_complete(workspace_copy):
    ws = Workspace(str(workspace_copy))
    result = pretrain(ws, tiny_config(), "r")
    run_dir = Path(result.run_dir)
    assert {"config.yaml", "checkpoint.pt", "metrics.jsonl", "manifest.json"} <= set(
        os.listdir(run_dir))
    state = load_checkpoint(str(run_dir / "checkpoint.pt"))
    assert state["epoch"] == 2 and "encoder_q.fc.2.weight" in state["model"]
    assert [m["epoch"] for m in metrics(run_dir)] == [1, 2]
    assert [m["active_sampling"] for m in metrics(run_dir)] == [False, True]
    assert pretrain(ws, tiny_config(), "r").action == "skip"


def test_changed_settings_are_refused_unless_forced(workspace_copy):
    ws = Workspace(str(workspace_copy))
    pretrain(ws, tiny_config(epochs=1), "r")
    with pytest.raises(WorkspaceError, match="--run NAME"):
        pretrain(ws, tiny_config(epochs=1, base_lr=0.05), "r")
    assert pretrain(ws, tiny_config(epochs=1, base_lr=0.05), "r", force=True).action == "start"


def test_missing_store_names_the_command_to_run_first(tmp_path):
    ws = Workspace(str(tmp_path))
    with pytest.raises(WorkspaceError, match="asar-cli downsample ntu60"):
        pretrain(ws, tiny_config(), "r")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(workspace_copy, monkeypatch):
    from asar_model.training import Augmentation

    real = Augmentation.__call__
    calls = {"n": 0}
    steps_per_epoch = len(FramesStore(str(workspace_copy / "ntu60" / "frames50.zarr"))
                          .split("xview", "train")) // 16

    def poisoned(self, x, *args, **kwargs):
        calls["n"] += 1
        out = real(self, x, *args, **kwargs)
        return out * float("nan") if calls["n"] > 2 * steps_per_epoch else out

    monkeypatch.setattr(Augmentation, "__call__", poisoned)
    ws = Workspace(str(workspace_copy))
    with pytest.raises(NonFiniteLoss, match="after epoch 1"):
        pretrain(ws, tiny_config(epochs=3), "r")
    run_dir = workspace_copy / "ntu60" / "runs" / "r"
    assert load_checkpoint(str(run_dir / "checkpoint.pt"))["epoch"] == 1
    m = Manifest.load(str(run_dir / "manifest.json"))
    assert m.shards_done == [0] and not m.complete


def test_killed_run_resumes_with_the_losses_of_an_uninterrupted_run(workspace_copy, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(workspace_copy, other)
    args = ["pretrain", "--deterministic", "--set", "num_epoch=6", "--set",
            "model_args.active_epoch=3", "--run", "r"]
    for item in TINY_MODEL:
        args += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "cli", *args]
    subprocess.run(cmd + ["--workdir", str(other)], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(cmd + ["--workdir", str(workspace_copy)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = workspace_copy / "ntu60" / "runs" / "r" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        m = Manifest.load(str(manifest))
        if m is not None and len(m.shards_done) >= 2:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = Manifest.load(str(manifest))
    assert 2 <= len(m.shards_done) < 6 and not m.complete
    out = subprocess.run(cmd + ["--workdir", str(workspace_copy)], check=True, env=env,
                         capture_output=True, text=True)
    assert "resuming" in out.stderr
    resumed = metrics(workspace_copy / "ntu60" / "runs" / "r")
    whole = metrics(other / "ntu60" / "runs" / "r")
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]
    a = load_checkpoint(str(workspace_copy / "ntu60" / "runs" / "r" / "checkpoint.pt"))["model"]
    b = load_checkpoint(str(other / "ntu60" / "runs" / "r" / "checkpoint.pt"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_streamed_source_yields_every_sample_once_per_epoch(frames_workspace):
    store = FramesStore(str(frames_workspace / "ntu60" / "frames50.zarr"))
    idx = store.split("xview", "train")
    streamed = StreamedSource(store, idx, torch.device("cpu"), window_chunks=1)
    gen = torch.Generator().manual_seed(3)
    seen = torch.cat([y for _, y in streamed.batches(7, gen, drop_last=False)])
    assert sorted(seen.tolist()) == sorted(store.labels[idx].tolist())
    resident = ResidentSource.from_store(store, idx, torch.device("cpu"))
    batches = list(resident.batches(16, torch.Generator().manual_seed(3)))
    assert len(batches) == len(idx) // 16 and batches[0][0].shape == (16, 3, 50, 25, 2)
    again = list(resident.batches(16, torch.Generator().manual_seed(3)))
    assert torch.equal(batches[0][0], again[0][0])
    picked = np.array([idx[7], idx[2]])
    np.testing.assert_array_equal(store.read(picked), store.data[:][picked])


def test_a_kill_between_the_checkpoint_and_the_manifest_resumes_from_the_checkpoint(
        workspace_copy, tmp_path, monkeypatch):
    """The checkpoint holds epoch 2 but the manifest lists only epoch 1: the resumed run
    counts epoch 2 as done (it used to redo it, or fail at the end with 'shards not done')."""
    import shutil

    import asar_model.training as training

    other = tmp_path / "other"
    shutil.copytree(workspace_copy, other)
    whole = metrics(Path(pretrain(Workspace(str(other)), tiny_config(epochs=3), "r").run_dir))
    real = training.learning_rate

    def stop_at_third(cfg, epoch):
        if epoch >= 2:
            raise KeyboardInterrupt
        return real(cfg, epoch)

    ws = Workspace(str(workspace_copy))
    monkeypatch.setattr(training, "learning_rate", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        pretrain(ws, tiny_config(epochs=3), "r")
    monkeypatch.setattr(training, "learning_rate", real)
    manifest = ws.run("ntu60", "r").manifest
    m = Manifest.load(manifest)
    m.shards_done = [0]                          # as if killed before recording epoch 2
    m.save(manifest)
    result = pretrain(ws, tiny_config(epochs=3), "r")
    assert result.action == "resume"
    assert [r["loss"] for r in metrics(Path(result.run_dir))] == [r["loss"] for r in whole]
    assert Manifest.load(manifest).complete
