"""Configuration: presets valid as they are, bad keys and values refused in one line before
any work, the reference implementation's own config files accepted as far as they mean
something here."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from pipelines.config import (
    SCHEMAS,
    ConfigError,
    apply_overrides,
    dump,
    load_preset,
    load_yaml,
    preset_names,
    resolve_config,
    validate_config,
)
from pipelines.workspace import Workspace

# A pre-training file in the reference implementation's style: its keys, its paths, its
# GPU list, and `1e-4`, which YAML 1.1 reads as text.
REFERENCE_PRETEXT = """\
work_dir: /data/someone/ntu60_cv/pretext
train_feeder: feeder.ntu_feeder.Feeder_triple
train_feeder_args:
  data_path: /data/ntu60_frame50/xview/train_position.npy
  label_path: /data/ntu60_frame50/xview/train_label.pkl
  shear_amplitude: 0.5
  temperal_padding_ratio: 6
  mmap: True
model: net.asar.ASAR
model_args:
  base_encoder: net.st_gcn.Model
  pretrain: True
  feature_dim: 128
  queue_size: 32768
  momentum: 0.999
  Temperature: 0.07
  mlp: True
  in_channels: 3
  hidden_channels: 16
  hidden_dim: 256
  num_class: 60
  dropout: 0.5
  graph_args: {layout: 'ntu-rgb+d', strategy: 'spatial'}
  edge_importance_weighting: True
nesterov: False
weight_decay: 1e-4
base_lr: 0.1
optimizer: SGD
step: [250]
device: [0]
batch_size: 128
test_batch_size: 128
num_epoch: 300
start_epoch: 0
stream: 'joint'
topk: 1
mining_epoch: 0
save_interval: 5
eval_interval: -1
"""

REFERENCE_LINEAR = """\
work_dir: /data/someone/ntu60_cv/linear_eval
weights: /data/someone/epoch300_model.pt
ignore_weights: [encoder_q.fc, encoder_k, queue]
train_feeder_args: {data_path: /x.npy, label_path: /x.pkl, shear_amplitude: -1,
                    temperal_padding_ratio: -1, mmap: True}
test_feeder_args: {data_path: /y.npy, label_path: /y.pkl, mmap: True}
model_args: {base_encoder: net.st_gcn.Model, pretrain: False, in_channels: 3,
             hidden_channels: 16, hidden_dim: 256, num_class: 60, dropout: 0.5,
             graph_args: {layout: 'ntu-rgb+d', strategy: 'spatial'},
             edge_importance_weighting: True}
nesterov: False
weight_decay: 0.0
base_lr: 3.
optimizer: SGD
step: [80]
device: [0, 1]
batch_size: 128
test_batch_size: 128
num_epoch: 100
stream: 'joint'
save_interval: -1
eval_interval: 5
"""


def pretrain_with(*overrides: str) -> dict:
    cfg = apply_overrides(load_preset("pretrain", "ntu60-xview"), list(overrides))
    return validate_config(cfg, "pretrain")[0]


def one_line_refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as e:
        pretrain_with(*overrides)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_every_preset_is_valid_and_unchanged():
    for kind in SCHEMAS:
        for name in preset_names(kind):
            cfg = {**load_preset(kind, name), "seed": 0}
            assert validate_config(cfg, kind) == (cfg, []), (kind, name)


def test_a_misspelt_key_is_refused_with_a_did_you_mean():
    assert "did you mean 'num_epoch'?" in one_line_refusal("num_epochs=1")
    assert "did you mean 'model_args.queue_size'?" in one_line_refusal("queue_size=1024")


def test_an_unknown_nested_key_is_refused_with_its_sections_keys():
    message = one_line_refusal("model_args.foo=1")
    assert "'model_args.foo'" in message and "model_args takes: feature_dim" in message
    assert "did you mean 'model_args.graph_args.strategy'" in one_line_refusal(
        "model_args.graph_args.stratgy=spatial")


@pytest.mark.parametrize("override", ["num_epoch=0", "batch_size=-16", "batch_size=0",
                                      "base_lr=0", "memory_budget_gb=-1", "num_epoch=",
                                      "model_args.dropout=1.5", "weight_decay=-0.1"])
def test_zero_or_negative_sizes_and_rates_are_refused_naming_key_value_and_range(override):
    key, _, value = override.partition("=")
    message = one_line_refusal(override)
    assert f"configuration key {key}: {value or 'null'} is not allowed; expected " in message


@pytest.mark.parametrize("override, allowed", [
    ("step=250", "a list of epochs"), ("stream=Joint", "joint, motion or bone"),
    ("device=gpu0", "auto, cpu, cuda or cuda:N"), ("amp=fp16", "false, bf16 or true"),
    ("compile=1", "true or false"), ("num_epoch=2.5", "an integer >= 1"),
    ("model_args.key_init=shared", "independent or copy"), ("optimizer=Adam", "SGD"),
])
def test_values_of_the_wrong_kind_are_refused_saying_what_is_allowed(override, allowed):
    assert allowed in one_line_refusal(override)


def test_keys_that_contradict_each_other_are_refused():
    assert "smaller than batch_size 128" in one_line_refusal("model_args.queue_size=64")


def test_the_learners_options_are_known():
    cfg = pretrain_with("model_args.key_init=copy", "model_args.kmeans_check_every=null",
                        "deterministic=true", "log_every=5")
    assert cfg["model_args"]["key_init"] == "copy"


def test_a_reference_pretraining_file_loads_with_its_meaningless_keys_named(tmp_path):
    path = tmp_path / "pretext.yaml"
    path.write_text(REFERENCE_PRETEXT)
    cfg, notes = validate_config({**load_yaml(path), "dataset": "ntu60",
                                  "benchmark": "xview"}, "pretrain")
    assert len(notes) == 1
    for key in ("work_dir", "train_feeder_args.data_path", "model_args.base_encoder",
                "mining_epoch", "test_batch_size", "eval_interval"):
        assert key in notes[0]
        assert key.split(".")[-1] not in str(cfg)
    assert cfg["device"] == "cuda:0" and cfg["weight_decay"] == 1e-4
    assert cfg["model_args"]["queue_size"] == 32768
    assert cfg["train_feeder_args"] == {"shear_amplitude": 0.5, "temperal_padding_ratio": 6}


def test_a_reference_linear_file_loads_and_several_gpus_point_at_nproc(tmp_path):
    path = tmp_path / "linear.yaml"
    path.write_text(REFERENCE_LINEAR)
    cfg, notes = validate_config({**load_yaml(path), "dataset": "ntu60",
                                  "benchmark": "xview"}, "linear")
    assert cfg["device"] == "cuda" and cfg["base_lr"] == 3.0
    assert "weights: give --weights" in notes[0] and "model_args.pretrain" in notes[0]
    assert "--nproc 2" in notes[1] and "CUDA_VISIBLE_DEVICES=0,1" in notes[1]


def test_resolve_config_refuses_before_any_work_and_applies_the_device_option(workspace_copy):
    ws = Workspace(str(workspace_copy))
    with pytest.raises(ConfigError, match="batch_size: 0 is not allowed"):
        resolve_config("pretrain", ws, None, None, None, None, ("batch_size=0",))
    cfg = resolve_config("linear", ws, None, None, None, None, (), device="cpu")
    assert cfg["device"] == "cpu"


def test_resolve_config_reads_a_reference_file_and_warns(workspace_copy, tmp_path):
    path = tmp_path / "pretext.yaml"
    path.write_text(REFERENCE_PRETEXT)
    notes: list[str] = []
    cfg = resolve_config("pretrain", Workspace(str(workspace_copy)), None, str(path), None,
                         None, (), warn=notes.append)
    assert (cfg["dataset"], cfg["benchmark"], cfg["device"]) == ("ntu60", "xview", "cuda:0")
    assert len(notes) == 1 and "work_dir" in notes[0]


def test_resolve_config_asks_the_chooser_when_the_workspace_holds_several(workspace_copy,
                                                                        tmp_path):
    import shutil

    shutil.copytree(workspace_copy / "ntu60", workspace_copy / "ntu60b")
    ws = Workspace(str(workspace_copy))
    no_dataset = tmp_path / "linear.yaml"
    no_dataset.write_text(dump({k: v for k, v in load_preset("linear", "ntu60-xview").items()
                                if k not in ("dataset", "benchmark")}))
    asked = []
    cfg = resolve_config("linear", ws, None, str(no_dataset), None, None, (),
                         choose=lambda names: asked.append(names) or "ntu60b")
    assert asked == [["ntu60", "ntu60b"]] and cfg["dataset"] == "ntu60b"


def test_the_cli_refuses_a_misspelt_key_in_one_line_with_status_2(workspace_copy):
    out = CliRunner().invoke(cli.main, ["pretrain", "--set", "num_epochs=1",
                                        "--workdir", str(workspace_copy)])
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'num_epoch'?" in lines[0]
    assert not (Path(workspace_copy) / "ntu60" / "runs").exists()
