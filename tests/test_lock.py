"""One writer per output: a second run is refused naming the holder, waits with --wait, and
takes over a lock whose process is gone. Every test runs two real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.lock import LockHeld, OutputLock, inspect

REPO = Path(__file__).resolve().parents[1]
HOLD = textwrap.dedent("""
    import sys, time
    from pipelines.lock import OutputLock
    lock = OutputLock(sys.argv[1], "the test output", "holder").acquire()
    lock.beat(force=True, epoch=3, epochs=10)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
""")


def hold(location: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the lock for ``seconds`` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(location), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    lock_file = tmp_path / "raw.lock"
    other = hold(lock_file, 30)
    try:
        with pytest.raises(LockHeld, match=rf"pid {other.pid} on .* --wait"):
            OutputLock(str(lock_file), "the test output", "second").acquire()
        state, holder = inspect(str(lock_file))
        assert state == "running" and holder.pid == other.pid
        assert holder.beat["epoch"] == 3
    finally:
        other.kill()
        other.wait()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    lock_file = tmp_path / "raw.lock"
    other = hold(lock_file, 30)
    os.kill(other.pid, signal.SIGKILL)
    other.wait()
    state, holder = inspect(str(lock_file))
    assert state == "stopped" and holder.pid == other.pid    # status stays truthful
    with OutputLock(str(lock_file), "the test output", "next") as mine:
        assert inspect(str(lock_file))[1].pid == os.getpid() == mine.holder.pid
    assert inspect(str(lock_file)) == ("free", None)         # a clean exit removes it


def test_wait_polls_until_the_holder_is_done(tmp_path):
    lock_file = tmp_path / "raw.lock"
    other = hold(lock_file, 1.5)
    waited = []
    lock = OutputLock(str(lock_file), "the test output", "waiter")
    lock.acquire(wait=True, on_wait=waited.append)
    try:
        assert other.wait(timeout=30) == 0
        assert [h.pid for h in waited] == [other.pid]
    finally:
        lock.release()


def test_a_second_ingest_of_the_same_output_is_refused_with_exit_2(tmp_path, synth_ntu):
    work = tmp_path / "ws"
    other = hold(work / "ntu60" / "raw.lock", 60)
    try:
        out = subprocess.run([sys.executable, "-m", "asar", "ingest", "ntu", "--raw",
                              str(synth_ntu), "--workdir", str(work)], capture_output=True,
                             text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                             timeout=300)
        assert out.returncode == 2, out.stderr
        assert f"pid {other.pid}" in out.stderr and "Traceback" not in out.stderr
        assert not (work / "ntu60" / "raw.zarr").exists()       # nothing was written
    finally:
        other.kill()
        other.wait()


def test_a_second_pretrain_of_the_same_run_is_refused(workspace_copy):
    from pipelines.config import apply_overrides, load_preset
    from pipelines.pretrain import pretrain
    from pipelines.workspace import Workspace

    ws = Workspace(str(workspace_copy))
    other = hold(Path(ws.run("ntu60", "xview-joint").lock), 60)
    try:
        cfg = apply_overrides(load_preset("pretrain", "ntu60-xview"), ["num_epoch=1"])
        cfg.update(dataset="ntu60", benchmark="xview")
        with pytest.raises(LockHeld, match=f"pid {other.pid}"):
            pretrain(ws, cfg, "xview-joint")
        assert not os.path.exists(ws.run_dir("ntu60", "xview-joint"))   # nothing trained
    finally:
        other.kill()
        other.wait()


def test_status_tells_a_running_run_from_a_stopped_one(workspace_copy):
    from click.testing import CliRunner

    import cli
    from pipelines.stage import Input, ShardLog, StageId, plan
    from pipelines.workspace import Workspace

    ws = Workspace(str(workspace_copy))
    out = ws.run("ntu60", "r")
    partial = plan(StageId("pretrain", 1), out.manifest, out.store, {"num_epoch": 10},
                   {"frames": Input(ws.frames("ntu60").store, "x", "store")})
    ShardLog(partial, 10).done([0, 1])

    def line() -> str:
        text = CliRunner().invoke(cli.main, ["status", "--workdir", str(workspace_copy)]).output
        return next(ln for ln in text.splitlines() if "runs/r" in ln)

    other = hold(Path(out.lock), 60)
    try:
        assert "running" in line() and f"pid {other.pid}" in line() and "epoch 3/10" in line()
    finally:
        other.kill()
        other.wait()
    assert "stopped" in line() and "2/10 epochs" in line() and "is gone" in line()
