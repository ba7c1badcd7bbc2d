"""Shared by benchmarks/gpu_check.py and benchmarks/learning.py: running CLI commands as
subprocesses (logged, with timeouts that end the whole process group), a time budget
split between sections, and atomic JSON output.

Nothing here imports torch: learning.py drives the stages through the CLI only.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the repository root
ERROR_LINE = re.compile(r"^(error: |[\w.]*(Error|Exception)\b[^ ]*: )")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with the repository root first on PYTHONPATH (so `python -m asar`
    runs this checkout, installed or not) and unbuffered output."""
    env = dict(os.environ)
    parts = [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def asar(*args: str) -> list[str]:
    """argv of one CLI command: ``python -m asar ARGS``."""
    return [sys.executable, "-m", "asar", *args]


@dataclass
class Ran:
    """One finished (or stopped) command."""

    argv: list[str]
    returncode: int | None
    seconds: float
    log: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 15) -> str:
        return tail(self.log, lines)

    def record(self) -> dict[str, Any]:
        return {"argv": short_argv(self.argv), "returncode": self.returncode,
                "seconds": round(self.seconds, 2), "timed_out": self.timed_out, "log": self.log}

    def error(self) -> str:
        """How the command failed: its last error line (``error: ...`` from the CLI, or an
        exception's), else its output's last lines."""
        how = "timed out" if self.timed_out else f"exit {self.returncode}"
        lines = tail(self.log, 400).splitlines()
        errors = [x for x in lines if ERROR_LINE.match(x) and "ChildFailedError" not in x]
        return (f"{' '.join(short_argv(self.argv)[:4])} ... {how}: "
                + (errors[-1].strip() if errors else self.tail(8)))


def short_argv(argv: Sequence[str]) -> list[str]:
    """argv with the interpreter's path shortened to `python`."""
    return ["python" if a == sys.executable else a for a in argv]


def tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def descendants(pid: int) -> list[int]:
    """Process ids started (directly or not) by ``pid``, from /proc (empty where there is
    no /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal a process started with ``start_new_session=True``, its process group, and its
    descendants that left the group (torchrun may start workers in sessions of their own)."""
    pids = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """End a process started by `start` and everything it started: SIGTERM, then SIGKILL
    after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None and not descendants(proc.pid):
            return
        kill_tree(proc, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start(argv: Sequence[str], log: str | Path, env: Mapping[str, str] | None = None
          ) -> subprocess.Popen:
    """Start a command in its own process group, its output (stdout + stderr) to ``log``."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(short_argv(argv))}\n".encode())
        out.flush()
        return subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=ROOT,
                                env=dict(env) if env is not None else child_env(),
                                start_new_session=True)


def run(argv: Sequence[str], log: str | Path, timeout: float | None = None,
        env: Mapping[str, str] | None = None) -> Ran:
    """Run a command to the end (or ``timeout`` seconds, then stop its whole group)."""
    t0 = time.perf_counter()
    proc = start(argv, log, env)
    timed_out = False
    try:
        proc.wait(timeout=None if timeout is None else max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_group(proc)
    except BaseException:
        stop_group(proc)
        raise
    return Ran(list(argv), proc.returncode, time.perf_counter() - t0, str(log), timed_out)


def run_many(commands: Sequence[tuple[Sequence[str], str | Path]], jobs: int,
             deadline: float | None = None, env: Mapping[str, str] | None = None) -> list[Ran]:
    """Run (argv, log) pairs, ``jobs`` at a time, each stopped at the monotonic ``deadline``."""
    def one(cmd: tuple[Sequence[str], str | Path]) -> Ran:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return Ran(list(cmd[0]), None, 0.0, str(cmd[1]), timed_out=True)
        return run(cmd[0], cmd[1], left, env)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, commands))


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (a temporary name in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- the time budget ---------------------------------------------------------------------

@dataclass
class Clock:
    """A section's share of the budget: seconds left until its deadline (monotonic)."""

    deadline: float

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, seconds: float) -> bool:
        return self.left() >= seconds


@dataclass
class Budget:
    """``total_s`` seconds shared by sections run in order, by their weights.

    A section's allowance is the time left times its weight over the weights of the
    sections not yet run: time a section leaves over goes to the later ones, and a
    section that overruns takes from them.
    """

    total_s: float
    weights: dict[str, float]
    t0: float = field(default_factory=time.monotonic)
    done: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.t0 + self.total_s - time.monotonic()

    def clock(self, section: str) -> Clock:
        later = [s for s in self.weights if s not in self.done]
        share = self.weights[section] / max(sum(self.weights[s] for s in later), 1e-9)
        self.done.append(section)
        return Clock(time.monotonic() + max(self.left(), 0.0) * share)

    def allowance(self, section: str) -> float:
        """The seconds ``clock(section)`` would give now (without starting it)."""
        later = [s for s in self.weights if s not in self.done]
        share = self.weights[section] / max(sum(self.weights[s] for s in later), 1e-9)
        return max(self.left(), 0.0) * share
