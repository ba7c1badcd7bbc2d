import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asar_data import frames_store
from asar_model.checkpoint import CheckpointError
from asar_model.heads import topk_accuracy
from asar_model.stgcn import Model
from pipelines.checkpoints import load_encoder
from pipelines.config import ConfigError, load_preset
from pipelines.evaluate import (
    FrozenEncoderChanged,
    default_name,
    embed,
    evaluate,
    resolve_weights,
    tsne_figure,
    weights_stem,
)
from pipelines.manifest import Manifest
from pipelines.workspace import Workspace, WorkspaceError

CLASSES, T, N = 4, 16, 128
ARGS = dict(hidden_channels=4, hidden_dim=16, num_class=CLASSES, dropout=0.0)


def synthetic(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise skeletons whose class is the frequency of a vertical oscillation of body 1."""
    g = np.random.default_rng(seed)
    y = np.arange(n) // 2 % CLASSES                      # pairs: one train, one test sample
    x = g.normal(0, 1.0, (n, 3, T, 25, 2)).astype(np.float32)
    wave = 3.0 * np.sin(2 * np.pi * (y[:, None] + 1) * np.arange(T) / T)   # (n, T)
    x[:, 1, :, :, 0] += wave[:, :, None]
    return x, y


DATA = synthetic()
TRAIN, TEST = np.arange(0, N, 2), np.arange(1, N, 2)     # every class on both sides


def make_workspace(root) -> Workspace:
    """A workspace holding a complete 16-frame 'ntu60' store with one benchmark (xview)."""
    ws = Workspace(str(root))
    out = ws.frames("ntu60")
    x, y = DATA
    frames_store.create(out.store, N, T, 32)
    for a in range(0, N, 32):
        frames_store.write_block(out.store, a, x[a:a + 32], np.full(32, T, np.int32))
    frames_store.finalise(out.store, y, np.array([f"s{i:03d}" for i in range(N)]),
                          {"xview": (TRAIN, TEST)},
                          {"dataset": "ntu60", "benchmarks": ["xview"], "classes": CLASSES})
    Manifest("downsample", "frames-fp", "test", {}, {}, out.store, complete=True).save(
        out.manifest)
    return ws


def linear_cfg(**kw) -> dict:
    cfg = load_preset("linear", "ntu60-xview")
    cfg["model_args"].update(ARGS)
    cfg.update(num_epoch=20, step=[15], batch_size=16, test_batch_size=64, base_lr=0.5)
    cfg.update(kw)
    return cfg



@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    """Encoder weights in the reference learner layout, trained supervised on the train split.

    A stand-in for a pre-trained encoder: the linear protocol measures how linearly
    decodable the classes are from frozen features, and a supervised encoder makes them
    decodable, so a pipeline that loads, freezes and uses its weights must show it.
    """
    x, y = (torch.from_numpy(a[TRAIN]) for a in DATA)
    torch.manual_seed(1)
    model = Model(**ARGS)                   # torch's default init trains fast enough here
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        i = torch.randint(0, len(x), (16,), generator=gen)
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("weights") / "asar_small.pt"
    sd = {f"encoder_q.{k}": v for k, v in model.state_dict().items()}
    sd.update({"queue": torch.zeros(8, 16), "queue_ptr": torch.zeros(1, dtype=torch.long)})
    torch.save(sd, path)
    return str(path)


def test_linear_on_a_trained_encoder_beats_the_random_init_baseline(tmp_path, trained):
    ws = make_workspace(tmp_path)
    good = evaluate(ws, linear_cfg(), trained)
    base = evaluate(ws, linear_cfg(), None)
    acc = good.result["accuracy"]
    assert acc["top1"] >= 90.0
    assert base.result["accuracy"]["top1"] <= acc["top1"] - 40.0
    assert [e["epoch"] for e in good.result["evaluations"]] == [5, 10, 15, 20]
    assert acc["best_top1"] == max(e["top1"] for e in good.result["evaluations"])
    assert "best" in acc["note"] and good.result["encoder_unchanged"] is True
    assert np.array(good.result["confusion"]).sum() == len(TEST)
    assert good.eval_dir.endswith("linear-joint-xview-asar_small")
    assert base.eval_dir.endswith("linear-joint-xview-random-seed0")
    for f in ("result.json", "confusion.png", "scores.npy", "manifest.json"):
        assert os.path.exists(os.path.join(good.eval_dir, f))
    with open(os.path.join(good.eval_dir, "result.json")) as f:
        assert json.load(f) == good.result


def test_linear_refuses_a_result_when_the_feature_pass_changed_the_encoder(
        tmp_path, trained, monkeypatch):
    ws = make_workspace(tmp_path)
    monkeypatch.setattr(Model, "eval", lambda self: self)   # BN stays in train mode
    with pytest.raises(FrozenEncoderChanged, match="frozen encoder"):
        evaluate(ws, linear_cfg(), trained)
    eval_dir = ws.eval_dir("ntu60", "linear-joint-xview-asar_small")
    assert not os.path.exists(eval_dir)          # nothing half-written is left behind
    assert os.listdir(os.path.dirname(eval_dir)) == []


def test_unchanged_evaluation_is_skipped_and_a_changed_input_reruns(tmp_path, trained):
    ws = make_workspace(tmp_path)
    weights = str(tmp_path / "w.pt")
    with open(trained, "rb") as src, open(weights, "wb") as dst:
        dst.write(src.read())
    cfg = linear_cfg(num_epoch=5)
    assert evaluate(ws, cfg, weights).action == "start"
    assert evaluate(ws, cfg, weights).action == "skip"
    changed = evaluate(ws, linear_cfg(num_epoch=5, base_lr=0.4), weights)
    assert changed.action == "start" and "base_lr" in changed.reason
    st = os.stat(weights)
    os.utime(weights, (st.st_atime, st.st_mtime + 10))
    touched = evaluate(ws, linear_cfg(num_epoch=5, base_lr=0.4), weights)
    assert touched.action == "start" and "weights" in touched.reason


def test_a_moved_workspace_keeps_its_evaluations_of_its_own_runs(tmp_path, trained):
    ws = make_workspace(tmp_path / "a")
    run = ws.run_dir("ntu60", "asar300")
    os.makedirs(run)
    shutil.copy2(trained, os.path.join(run, "checkpoint.pt"))
    first = evaluate(ws, linear_cfg(num_epoch=5), resolve_weights(ws, "ntu60", "asar300"))
    assert first.action == "start" and first.eval_dir.endswith("linear-joint-xview-asar300")
    os.rename(tmp_path / "a", tmp_path / "b")
    moved_ws = Workspace(str(tmp_path / "b"))
    moved = evaluate(moved_ws, linear_cfg(num_epoch=5), resolve_weights(moved_ws, "ntu60",
                                                                         "asar300"))
    assert moved.action == "skip" and moved.eval_dir.startswith(str(tmp_path / "b"))


def test_missing_frames_store_names_the_command_to_run(tmp_path):
    with pytest.raises(WorkspaceError, match="asar-cli downsample ntu60"):
        evaluate(Workspace(str(tmp_path)), linear_cfg(), None)


def test_bad_weights_file_is_refused_naming_the_file_and_keys(tmp_path, trained):
    ws = make_workspace(tmp_path)
    sd = torch.load(trained, weights_only=True)
    sd["encoder_q.st_gcn_networks.3.extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(CheckpointError, match=r"bad\.pt: encoder_q\.st_gcn_networks\.3\.extra"):
        evaluate(ws, linear_cfg(num_epoch=5), str(bad))
    with pytest.raises(CheckpointError, match=r"absent\.pt not found"):
        evaluate(ws, linear_cfg(num_epoch=5), str(tmp_path / "absent.pt"))


def test_three_streams_use_their_own_weights_and_the_ensemble_averages_scores(
        tmp_path, trained):
    ws = make_workspace(tmp_path)
    weights = {"joint": trained, "motion": None, "bone": trained}
    res = evaluate(ws, linear_cfg(num_epoch=5), weights, stream="all")
    assert set(res.streams) == {"joint", "motion", "bone"}
    assert res.streams["motion"].result["weights"] is None
    assert res.streams["bone"].result["weights"] == trained
    scores = [np.load(os.path.join(r.eval_dir, "scores.npy")) for r in res.streams.values()]
    mean = np.load(os.path.join(res.eval_dir, "scores.npy"))
    np.testing.assert_allclose(mean, np.mean(scores, axis=0), rtol=1e-6)
    labels = torch.from_numpy(DATA[1][TEST])
    assert res.result["accuracy"]["top1"] == topk_accuracy(torch.from_numpy(mean), labels)[1]
    assert res.result["streams"]["joint"]["top1"] == res.streams["joint"].result["accuracy"]["top1"]
    assert evaluate(ws, linear_cfg(num_epoch=5), weights, stream="all").action == "skip"
    with pytest.raises(ConfigError, match="one weights file per stream"):
        evaluate(ws, linear_cfg(num_epoch=5), trained, stream="all")


def test_knn_on_frozen_trained_features_needs_no_training(tmp_path, trained):
    ws = make_workspace(tmp_path)
    res = evaluate(ws, linear_cfg(), trained, "knn", k=5)
    assert res.eval_dir.endswith("knn5-joint-xview-asar_small")
    assert res.result["accuracy"]["top1"] >= 90.0
    assert res.result["evaluations"] == [] and "best_top1" not in res.result["accuracy"]


def test_semi_fine_tunes_on_a_class_balanced_fraction_of_the_training_split(tmp_path, trained):
    ws = make_workspace(tmp_path)
    cfg = load_preset("semi", "ntu60-xview")
    cfg["model_args"].update(ARGS)
    cfg.update(num_epoch=2, eval_interval=1, batch_size=4, test_batch_size=64)
    res = evaluate(ws, cfg, trained, "semi", label_fraction=0.25)
    assert res.eval_dir.endswith("semi25-joint-xview-asar_small")
    assert res.result["train_samples"] == 16              # 4 of each class's 16
    assert [e["epoch"] for e in res.result["evaluations"]] == [1, 2]
    whole = {k: v for k, v in cfg.items() if k != "label_fraction"}
    full = evaluate(ws, {**whole, "num_epoch": 1, "batch_size": 32}, trained, "finetune")
    assert full.result["train_samples"] == len(TRAIN)


def test_embed_writes_the_encoders_pooled_features_of_a_split(tmp_path, trained):
    ws = make_workspace(tmp_path)
    out = str(tmp_path / "test_features.npy")
    labels = embed(ws, "ntu60", "xview", "test", trained, out, model_args=ARGS)
    model, _ = load_encoder(trained, ARGS)
    model.eval()
    with torch.no_grad():
        want = model.forward_features(torch.from_numpy(DATA[0][TEST]))
    np.testing.assert_allclose(np.load(out), want.numpy(), rtol=1e-5, atol=1e-6)
    assert np.array_equal(labels, DATA[1][TEST])


def test_tsne_figure_draws_a_png_of_a_seeded_subset(tmp_path, trained):
    ws = make_workspace(tmp_path)
    out = str(tmp_path / "tsne.png")
    summary = tsne_figure(ws, "ntu60", "xview", trained, out, samples=40, iterations=300,
                          model_args=ARGS)
    assert summary["points"] == 40 and summary["classes"] == CLASSES
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    points = np.load(summary["coordinates"], allow_pickle=False)
    with open(summary["names"]) as f:
        assert points.shape == (40, 2) and len(f.read().splitlines()) == 40


def test_default_names_say_protocol_stream_and_weights():
    assert weights_stem("/w/ntu60/runs/asar300/checkpoint.pt") == "asar300"
    assert weights_stem("/w/ntu60/runs/asar300/epoch050.pt") == "asar300-epoch050"
    assert weights_stem("s3://bucket/ref model.pth") == "ref_model"
    assert weights_stem(None, seed=2) == "random-seed2"
    assert default_name("knn", "bone", "a/b.pt", k=20) == "knn20-bone-b"
    assert default_name("semi", "joint", "b.pt", label_fraction=0.01) == "semi1-joint-b"
    streams = {"joint": "j.pt", "motion": "m.pt", "bone": None}
    assert default_name("linear", "all", streams) == "linear-all-j+m+random-seed0"


def test_default_names_of_two_benchmarks_never_share_a_folder():
    """--benchmark xsub used to overwrite the xview result of the same weights."""
    run = "/w/ntu60/runs/xview-joint/checkpoint.pt"
    assert default_name("linear", "joint", run, benchmark="xview") == "linear-joint-xview-joint"
    assert default_name("linear", "joint", run, benchmark="xsub") == \
        "linear-joint-xsub-xview-joint"
    assert default_name("linear", "joint", None, benchmark="xview") == \
        "linear-joint-xview-random-seed0"


def test_a_relative_weights_path_is_recorded_absolute(tmp_path, trained, monkeypatch):
    """A relative --weights used to be recorded as given, so status resolved it inside the
    workspace and called the evaluation stale."""
    ws = make_workspace(tmp_path / "ws")
    shutil.copy2(trained, tmp_path / "w.pt")
    monkeypatch.chdir(tmp_path)
    location = resolve_weights(ws, "ntu60", "w.pt")
    assert location == str(tmp_path / "w.pt")
    res = evaluate(ws, linear_cfg(num_epoch=5), location)
    from pipelines.status import workspace_status

    detail = {r.output: r.detail for r in workspace_status(ws)}[res.eval_dir]
    assert "weights" not in detail            # (this test's frames store is a stand-in)


def test_diverged_training_is_recorded_with_null_losses_not_invalid_json(tmp_path, trained):
    ws = make_workspace(tmp_path)
    res = evaluate(ws, linear_cfg(num_epoch=5, base_lr=1e38), trained)
    with open(os.path.join(res.eval_dir, "result.json")) as f:
        on_disk = json.load(f)
    assert on_disk["evaluations"][-1]["train_loss"] is None
    assert on_disk == res.result


def test_weights_are_a_file_or_a_run_name_of_the_dataset(tmp_path, trained):
    ws = Workspace(str(tmp_path))
    assert resolve_weights(ws, "ntu60", trained) == trained
    assert resolve_weights(ws, "ntu60", None) is None
    ckpt = os.path.join(ws.run_dir("ntu60", "asar300"), "checkpoint.pt")
    os.makedirs(os.path.dirname(ckpt))
    open(ckpt, "wb").close()
    assert resolve_weights(ws, "ntu60", "asar300") == ckpt
    with pytest.raises(CheckpointError, match="not a file, nor a run of ntu60"):
        resolve_weights(ws, "ntu60", "asar301")


def test_evaluation_metrics_go_to_tensorboard_when_it_is_installed(tmp_path, trained):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = evaluate(make_workspace(tmp_path), linear_cfg(), trained)
    events = EventAccumulator(os.path.join(res.eval_dir, "tensorboard"))
    events.Reload()
    top1 = events.Scalars("linear/joint/top1")
    assert [e.step for e in top1] == [5, 10, 15, 20]
    assert top1[-1].value == pytest.approx(res.result["evaluations"][-1]["top1"])
