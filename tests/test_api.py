"""The public `asar` API: datasets as arrays and torch datasets, encoders, embeddings; and
module names a user's own files cannot shadow."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import asar

REPO = Path(__file__).resolve().parents[1]


def test_a_benchmark_split_as_arrays_and_as_a_torch_dataset(frames_workspace):
    data = asar.open_dataset("ntu60", workdir=str(frames_workspace))
    assert data.benchmarks == ["xsub", "xview"] and len(data) == 120
    x, y = data.split("xview", "test")
    assert x.shape[1:] == (3, 50, 25, 2) and x.dtype == np.float32 and len(y) == len(x)
    test = data.torch_dataset("xview", "test")
    assert len(test) == len(x)
    for i in (0, len(test) // 2, len(test) - 1):
        xi, yi = test[i]
        assert torch.equal(xi, torch.from_numpy(x[i])) and yi == y[i]
    loader = torch.utils.data.DataLoader(test, batch_size=16)
    xb, yb = next(iter(loader))
    assert xb.shape == (16, 3, 50, 25, 2) and torch.equal(yb, torch.from_numpy(y[:16]))


def test_an_encoder_embeds_like_the_embed_command(frames_workspace, tmp_path):
    from click.testing import CliRunner

    import cli

    data = asar.open_dataset(workdir=str(frames_workspace))
    x, _ = data.split("xview", "test")
    features = asar.embed(asar.load_encoder(None, seed=3), x, batch_size=7)
    out = tmp_path / "f.npy"
    done = CliRunner().invoke(cli.main, ["embed", "ntu60", "--workdir", str(frames_workspace),
                                         "--seed", "3", "--out", str(out)])
    assert done.exit_code == 0, done.output
    np.testing.assert_allclose(features, np.load(out), rtol=1e-5, atol=1e-6)


def test_a_missing_dataset_or_benchmark_is_a_clear_error(frames_workspace, tmp_path):
    from asar_data.errors import AsarError

    with pytest.raises(AsarError, match="no dataset"):
        asar.open_dataset(workdir=str(tmp_path))
    with pytest.raises(AsarError, match="no benchmark 'xset'"):
        asar.open_dataset("ntu60", workdir=str(frames_workspace)).split("xset", "test")


def test_a_users_own_cli_configs_and_pipelines_cannot_shadow_ours(tmp_path):
    """`python -m` puts the working directory first on sys.path; the torchrun relaunch uses
    `python -P -m asar`, and the console script never looks there."""
    for decoy in ("cli.py", "configs/__init__.py", "pipelines/__init__.py",
                  "asar_data/__init__.py"):
        path = tmp_path / decoy
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("raise SystemExit('decoy imported')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cmd in ([sys.executable, "-P", "-m", "asar", "status", "--workdir", "w"],
                [str(Path(sys.executable).parent / "asar-cli"), "status", "--workdir", "w"]):
        out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env)
        assert out.returncode == 0 and "decoy" not in out.stderr, (cmd, out.stderr)
