"""The error policy: an expected failure is one line and exit 2, a bug one line naming a
crash log and exit 1; never a traceback. Names are names: nothing outside a stage's own
output is ever removed."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli


def invoke(*args: str, home: Path | None = None):
    env = {"HOME": str(home)} if home else None
    return CliRunner().invoke(cli.main, list(args), env=env)


def one_line_error(out, code: int) -> str:
    assert out.exit_code == code, out.output
    assert "Traceback" not in out.output
    lines = [ln for ln in out.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out.output
    return lines[0]


def test_a_bug_is_one_line_naming_a_crash_log_with_the_traceback(tmp_path, monkeypatch):
    import pipelines.status

    def broken(ws):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pipelines.status, "workspace_status", broken)
    line = one_line_error(invoke("status", "--workdir", str(tmp_path), home=tmp_path), 1)
    assert "ZeroDivisionError" in line and "please report it" in line
    log = Path(line.split("traceback is in ")[1].split(" - ")[0])
    assert log.is_file() and "Traceback" in log.read_text() and "a bug" in log.read_text()


def test_a_value_error_from_a_bug_is_not_passed_off_as_a_user_error(tmp_path, monkeypatch):
    import pipelines.status

    def broken(ws):
        raise KeyError("internal")

    monkeypatch.setattr(pipelines.status, "workspace_status", broken)
    one_line_error(invoke("status", "--workdir", str(tmp_path), home=tmp_path), 1)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_full_disk_or_read_only_workspace_is_one_line_and_exit_2(workspace_copy, monkeypatch,
                                                                    code):
    from asar_data import storage

    def refuse(location, data):
        raise OSError(code, os.strerror(code), location)

    monkeypatch.setattr(storage, "write_bytes", refuse)
    line = one_line_error(invoke("downsample", "--workdir", str(workspace_copy), "--frames",
                                 "20"), 2)
    assert os.strerror(code) in line


def test_workdir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert "is a file" in one_line_error(invoke("status", "--workdir", str(f)), 2)


def test_weights_that_are_a_folder_and_an_unknown_device_are_refused(workspace_copy, tmp_path):
    line = one_line_error(invoke("evaluate", "--workdir", str(workspace_copy), "--weights",
                                 str(tmp_path)), 2)
    assert "is a folder" in line
    line = one_line_error(invoke("evaluate", "--workdir", str(workspace_copy), "--device",
                                 "foo", "--set", "num_epoch=1"), 2)
    assert "device" in line and "foo" in line


def test_a_truncated_weights_file_is_one_line(workspace_copy, tmp_path):
    bad = tmp_path / "cut.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    line = one_line_error(invoke("evaluate", "--workdir", str(workspace_copy), "--weights",
                                 str(bad), "--set", "num_epoch=1"), 2)
    assert "cut.pt" in line


@pytest.mark.parametrize("name", ["..", "/tmp/elsewhere", "a/b", "", ".hidden"])
def test_run_and_evaluation_names_are_names_and_nothing_outside_is_removed(workspace_copy, name):
    """`pretrain --run ..` used to wipe the dataset folder; `--name /abs` wrote outside."""
    before = sorted(p.relative_to(workspace_copy) for p in workspace_copy.rglob("*"))
    line = one_line_error(invoke("pretrain", "--workdir", str(workspace_copy), "--run", name,
                                 "--set", "num_epoch=1"), 2)
    assert "not a plain name" in line
    line = one_line_error(invoke("evaluate", "--workdir", str(workspace_copy), "--name", name,
                                 "--set", "num_epoch=1"), 2)
    assert "not a plain name" in line
    after = sorted(p.relative_to(workspace_copy) for p in workspace_copy.rglob("*"))
    assert after == before


def test_an_ingest_name_that_is_a_path_is_refused(tmp_path, synth_ntu):
    line = one_line_error(invoke("ingest", "ntu", "--raw", str(synth_ntu), "--name",
                                 str(tmp_path / "abs"), "--workdir", str(tmp_path / "ws")), 2)
    assert "not a plain name" in line
    assert not (tmp_path / "abs").exists()


def test_removing_an_output_refuses_anything_outside_a_dataset_folder(tmp_path):
    from pipelines.runner import remove_own_output
    from pipelines.workspace import Workspace

    ws = Workspace(str(tmp_path / "ws"))
    (tmp_path / "ws" / "ntu60" / "runs").mkdir(parents=True)
    for victim in (str(tmp_path), str(tmp_path / "ws"), str(tmp_path / "ws" / "ntu60"),
                   str(tmp_path / "ws" / "ntu60" / "runs" / "..")):
        with pytest.raises(RuntimeError, match="refusing to remove"):
            remove_own_output(ws, victim)
    assert (tmp_path / "ws" / "ntu60" / "runs").is_dir()
