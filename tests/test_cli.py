"""The CLI: help everywhere, fast start, workspace defaults, clear errors, status states."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from pipelines.stage import Input, ShardLog, StageId, plan
from pipelines.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from all_commands(cmd, (*prefix, name))


def test_every_command_explains_itself():
    assert run("--help").exit_code == 0
    for path, cmd in all_commands(cli.main):
        out = run(*path, "--help")
        assert out.exit_code == 0, path
        first = " ".join((cmd.help or "").split("\n")[0].split())
        assert first and first in " ".join(out.output.split()), path


def test_every_option_has_help_text():
    for path, cmd in all_commands(cli.main):
        for param in getattr(cmd, "params", []):
            if getattr(param, "param_type_name", "") == "option" and param.name != "help":
                assert param.help, (path, param.name)


def test_every_stage_command_takes_workdir():
    for path, cmd in all_commands(cli.main):
        if not hasattr(cmd, "commands") and path[0] not in ("synth",):
            assert "--workdir" in run(*path, "--help").output, path


def test_help_starts_without_heavy_imports():
    code = ("import sys, cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'dask', 'zarr', 'numba', 'distributed') "
            "if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert "HEAVY []" in out.stdout


def test_bad_input_is_one_clear_line_and_exit_status_2(tmp_path):
    out = CliRunner().invoke(cli.main, ["ingest", "ntu", "--raw", str(tmp_path / "nope"),
                                        "--workdir", str(tmp_path)])
    assert out.exit_code == 2
    assert "raw folder not found" in out.output and "Traceback" not in out.output


def test_bare_downsample_acts_on_the_only_dataset_and_asks_when_several(workspace_copy):
    out = run("downsample", "--workdir", str(workspace_copy))
    assert out.exit_code == 0 and "up to date" in out.output
    shutil.copytree(workspace_copy / "ntu60", workspace_copy / "ntu120")
    out = CliRunner().invoke(cli.main, ["downsample", "--workdir", str(workspace_copy)])
    assert out.exit_code == 2 and "ntu120, ntu60" in out.output


def test_workdir_defaults_to_the_environment_variable(workspace_copy):
    out = run("status", env={"ASAR_WORKDIR": str(workspace_copy)})
    assert out.exit_code == 0 and "frames50.zarr" in out.output


def test_pretrain_defaults_to_the_datasets_default_benchmark_and_preset(workspace_copy):
    cfg = cli.resolve_config("pretrain", Workspace(str(workspace_copy)), None, None, None, None,
                             ("num_epoch=3",))
    assert (cfg["dataset"], cfg["benchmark"], cfg["num_epoch"]) == ("ntu60", "xview", 3)
    assert cfg["model_args"]["queue_size"] == 32768 and cfg["base_lr"] == 0.1
    xsub = cli.resolve_config("pretrain", Workspace(str(workspace_copy)), "ntu60-xsub", None,
                              None, None, ())
    assert xsub["benchmark"] == "xsub"
    with pytest.raises(ValueError, match="no benchmark 'xset'"):
        cli.resolve_config("pretrain", Workspace(str(workspace_copy)), None, None, None, "xset",
                           ())


def test_status_shows_complete_partial_stale_and_missing(workspace_copy):
    ws = Workspace(str(workspace_copy))
    toy = StageId("downsample", 1)  # a partial run written by hand: 1 of 3 shards
    partial = plan(toy, ws.frames("ntu60", 20).manifest, ws.frames("ntu60", 20).store,
                   {"frames": 20}, {"raw": Input(ws.raw("ntu60").store, "x", "store")})
    ShardLog(partial, 3).done([0])

    def states() -> dict[str, str]:
        out = run("status", "--workdir", str(workspace_copy)).output
        found = {}
        for line in out.splitlines():
            for store in ("raw.zarr", "frames50.zarr", "frames20.zarr"):
                if f"ntu60/{store}" in line:
                    found[store] = line
        return found

    lines = states()
    assert "complete" in lines["raw.zarr"] and "complete" in lines["frames50.zarr"]
    assert "partial" in lines["frames20.zarr"] and "1/3 shards" in lines["frames20.zarr"]
    shutil.rmtree(workspace_copy / "ntu60" / "frames50.zarr")
    assert "missing" in states()["frames50.zarr"]
    m = ws.raw("ntu60").load_manifest()
    m.code_version = "asar-0.0.1/ingest-v0"
    m.save(ws.raw("ntu60").manifest)
    raw_line = states()["raw.zarr"]
    assert "stale" in raw_line and "code version changed" in raw_line


def test_evaluate_embed_and_tsne_commands_write_their_outputs(workspace_copy, tmp_path):
    import json

    import numpy as np

    small = ["--set", "model_args.hidden_channels=4", "--set", "model_args.hidden_dim=16",
             "--set", "num_epoch=5", "--set", "batch_size=16"]
    out = run("evaluate", "--workdir", str(workspace_copy), *small)
    assert out.exit_code == 0 and "random init" in out.output and "top-1 (final)" in out.output
    result = workspace_copy / "ntu60" / "eval" / "linear-joint-xview-random-seed0"
    assert json.loads((result / "result.json").read_text())["protocol"] == "linear"
    assert (result / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run("evaluate", "--workdir", str(workspace_copy), *small)
    assert "(cached)" in again.output
    feats = tmp_path / "f.npy"
    out = run("embed", "ntu60", "--workdir", str(workspace_copy), "--split", "test",
              "--out", str(feats))
    assert out.exit_code == 0 and np.load(feats).shape[1] == 256
    png = tmp_path / "t.png"
    out = run("tsne", "--workdir", str(workspace_copy), "--samples", "30", "--out", str(png))
    assert out.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_go_to_stdout_json_on_request_and_quiet_hides_progress(workspace_copy):
    import json

    runner = CliRunner()                               # stdout and stderr apart
    out = runner.invoke(cli.main, ["downsample", "--workdir", str(workspace_copy), "--json"])
    assert out.exit_code == 0
    data = json.loads(out.stdout)                      # one JSON object, nothing else
    assert data["stage"] == "downsample" and data["action"] == "skip"
    out = runner.invoke(cli.main, ["status", "--workdir", str(workspace_copy), "--json"])
    states = {o["stage"]: o["state"] for o in json.loads(out.stdout)["outputs"]}
    assert states == {"ingest": "complete", "downsample": "complete"}
    out = runner.invoke(cli.main, ["downsample", "--workdir", str(workspace_copy), "--quiet"])
    assert "samples" in out.stdout and out.stderr.strip() == ""
