"""The README's commands are real: each `asar-cli` line parses with the CLI as written.

Parsing checks the command path, every option and every choice value; the stages the
lines run are exercised by the stage tests and the demo in `.ci/run`.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import click

import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def readme_commands() -> list[str]:
    """Indented code lines of the README that call asar-cli (after any `&&`)."""
    out = []
    for line in README.splitlines():
        if not line.startswith("    "):
            continue
        for part in line.strip().split("&&"):
            part = part.strip()
            if part.startswith("asar-cli"):
                out.append(part)
    return out


def parse(command: str) -> click.Context:
    """Parse a command line the way asar-cli would, without running it."""
    args = shlex.split(command)[1:]
    cmd: click.Command = cli.main
    path = ["asar-cli"]
    while isinstance(cmd, click.Group):
        name = args.pop(0)
        sub = cmd.commands.get(name)
        assert sub is not None, f"unknown command {name!r} in {command!r}"
        cmd, path = sub, [*path, name]
    return cmd.make_context(" ".join(path), args, resilient_parsing=False)


def test_readme_has_many_commands():
    assert len(readme_commands()) > 30


def test_every_readme_command_parses_with_the_cli():
    for command in readme_commands():
        try:
            parse(command)
        except click.UsageError as e:
            raise AssertionError(f"README command does not parse: {command}\n{e}") from e


def test_ci_runs_the_readme_test_command():
    out = subprocess.run(
        ["awk", "/<!-- ci: test command -->/ {getline; getline; print; exit}", "README.md"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert out.startswith("python3 -m venv .venv") and "pytest" in out
    assert "<!-- ci: test command -->" in (REPO / ".ci" / "run").read_text()
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    assert out in quickstart and "asar-cli demo" in quickstart


def test_the_readme_python_api_example_runs(tmp_path, frames_workspace):
    """The example under `<!-- api example -->`, on a workspace shaped like the demo's."""
    import shutil

    from asar_model.learner import ASAR
    from pipelines.checkpoints import CHECKPOINT_FORMAT, save_checkpoint

    code = README.split("<!-- api example -->", 1)[1].split("```python", 1)[1].split("```")[0]
    work = tmp_path / "asar-work"
    shutil.copytree(frames_workspace / "ntu60", work / "synth60")
    run = work / "synth60" / "runs" / "asar"
    run.mkdir(parents=True)
    save_checkpoint(str(run / "checkpoint.pt"), {"format": CHECKPOINT_FORMAT, "epoch": 1,
                                                 "model": ASAR(queue_size=64).state_dict()})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "256)" in out.stdout
