"""The README's commands are real: each `asar-cli` line parses with the CLI as written.

Parsing checks the command path, every option and every choice value; the stages the
lines run are exercised by the stage tests and the demo in `.ci/run`.
"""
from __future__ import annotations

import shlex
import subprocess
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
