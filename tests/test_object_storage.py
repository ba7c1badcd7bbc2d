"""Raw folders and whole workspaces on object storage (`s3://bucket/prefix`).

Against moto's S3 server, started here on loopback. Credentials and the endpoint
come from the standard AWS environment variables only, as on a real deployment;
every CLI output and every object written is searched for them afterwards.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from asar_data import storage
from asar_data.errors import AsarError
from pipelines.downsample import downsample
from pipelines.ingest import ingest_ntu
from pipelines.manifest import Manifest
from pipelines.workspace import Workspace

pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e .[test])")
pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e .[test])")

REPO = Path(__file__).resolve().parents[1]
BUCKET = "asar-test"
RAW = f"s3://{BUCKET}/raw/ntu"
SAMPLES = 48
SHARD_FILES = 8
CHUNK = 16
TINY_PRETRAIN = ["--set", "model_args.hidden_channels=4", "--set", "model_args.hidden_dim=16",
                 "--set", "model_args.queue_size=64", "--set", "batch_size=16",
                 "--set", "num_epoch=1"]


@dataclass
class S3:
    """The moto server, a filesystem on it, and everything the CLI printed so far."""

    endpoint: str
    key_id: str
    secret: str
    fs: object
    outputs: list[str] = field(default_factory=list)

    def files(self, url: str) -> dict[str, bytes]:
        """Every object under a prefix by relative key: equal dicts mean identical stores."""
        prefix = url.split("://", 1)[1].rstrip("/") + "/"
        return {p[len(prefix):]: self.fs.cat_file(p) for p in sorted(self.fs.find(prefix))}

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run asar-cli; returns stdout + stderr (kept for the credential check)."""
        out = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                             text=True, timeout=180, env=env or cli_env())
        self.outputs.append(out.stdout + out.stderr)
        assert out.returncode == 0, out.stderr
        return out.stdout + out.stderr


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def local_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with the synthetic NTU files under RAW (in NTU's own sub-folder name)."""
    import fsspec
    from moto.server import ThreadedMotoServer

    from asar_data.synth import write_ntu_dataset

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith(("AWS_", "FSSPEC_S3"))]:
            mp.delenv(var)
        creds = {"AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
                 "AWS_SECRET_ACCESS_KEY": "s3cr3t-" + secrets.token_hex(16)}
        mp.setenv("AWS_ACCESS_KEY_ID", creds["AWS_ACCESS_KEY_ID"])
        mp.setenv("AWS_SECRET_ACCESS_KEY", creds["AWS_SECRET_ACCESS_KEY"])
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        nowhere = str(tmp_path_factory.mktemp("no-aws-files") / "none")
        mp.setenv("AWS_CONFIG_FILE", nowhere)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
        server.start()
        try:
            fs = fsspec.filesystem("s3", skip_instance_cache=True)
            fs.mkdir(BUCKET)
            local = tmp_path_factory.mktemp("raw") / "nturgb+d_skeletons"
            write_ntu_dataset(local, samples=SAMPLES, classes=6, seed=5)
            fs.put(str(local) + "/", RAW.split("://", 1)[1] + "/nturgb+d_skeletons/",
                   recursive=True)
            yield S3(f"http://127.0.0.1:{port}", creds["AWS_ACCESS_KEY_ID"],
                     creds["AWS_SECRET_ACCESS_KEY"], fs)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def local_reference(s3, tmp_path_factory) -> Path:
    """The same raw folder on S3 ingested and downsampled into a local workspace, in-process."""
    root = tmp_path_factory.mktemp("local_ws")
    ws = Workspace(str(root))
    ingest_ntu(ws, RAW, workers=1, shard_files=SHARD_FILES)
    downsample(ws, "ntu60", workers=1, chunk=CHUNK)
    return root / "ntu60"


@pytest.fixture(scope="module")
def s3_workspace(s3) -> str:
    """An S3 workspace built by the CLI; downsample's shards run on two forked local
    worker processes, which find the credentials in their environment as the driver does."""
    work = f"s3://{BUCKET}/work"
    s3.cli("ingest", "ntu", "--raw", RAW, "--workdir", work, "--workers", "1",
           "--shard-files", str(SHARD_FILES))
    out = s3.cli("downsample", "--workdir", work, "--workers", "2", "--chunk", str(CHUNK))
    assert "3 shards on 2 local worker processes" in out
    return work


def status_rows(text: str) -> dict[str, str]:
    """Stage -> its row of an `asar-cli status` table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[1] == "ntu60":
            rows[cells[2] if cells[2] != "pretrain" else cells[3].rsplit("/", 1)[1]] = line
    return rows


def test_s3_workspace_holds_the_bytes_of_a_local_workspace(s3, s3_workspace, local_reference):
    for store in ("raw.zarr", "frames50.zarr"):
        remote = s3.files(f"{s3_workspace}/ntu60/{store}")
        local = local_files(local_reference / store)
        differ = sorted(k for k in set(remote) | set(local) if remote.get(k) != local.get(k))
        assert remote and not differ, (store, differ)
    report = s3.fs.cat_file(f"{BUCKET}/work/ntu60/ingest-report.csv")
    assert report == (local_reference / "ingest-report.csv").read_bytes()
    assert not s3.fs.exists(f"{BUCKET}/work/ntu60/raw.parts")  # no part files: shards are the store
    for name in ("raw", "frames50"):
        m = Manifest.load(f"{s3_workspace}/ntu60/{name}.manifest.json")
        assert m.complete and m.output == f"{s3_workspace}/ntu60/{name}.zarr"
    raw_input = Manifest.load(f"{s3_workspace}/ntu60/raw.manifest.json").inputs["raw"]
    assert raw_input["location"] == RAW


def test_unchanged_s3_stages_are_skipped_and_status_reads_the_s3_workspace(s3, s3_workspace):
    again = s3.cli("ingest", "ntu", "--raw", RAW, "--workdir", s3_workspace, "--workers", "1",
                   "--shard-files", str(SHARD_FILES))
    assert "up to date" in again and "shards on" not in again
    again = s3.cli("downsample", "--workdir", s3_workspace, "--workers", "2", "--chunk",
                   str(CHUNK))
    assert "up to date" in again and "shards on" not in again
    rows = status_rows(s3.cli("status", "--workdir", s3_workspace))
    assert "complete" in rows["ingest"] and f"{SAMPLES} samples" in rows["ingest"], rows
    assert "complete" in rows["downsample"] and f"{s3_workspace}/ntu60/frames50.zarr" in rows[
        "downsample"], rows


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL"])
def test_the_endpoint_is_read_from_either_environment_variable(s3, s3_workspace, variable):
    env = {k: v for k, v in cli_env().items() if k != "AWS_ENDPOINT_URL"}
    env[variable] = s3.endpoint
    rows = status_rows(s3.cli("status", "--workdir", s3_workspace, env=env))
    assert "complete" in rows["ingest"] and "complete" in rows["downsample"], rows


def test_a_changed_raw_object_makes_status_stale_and_ingest_rerun(s3, tmp_path):
    raw = f"s3://{BUCKET}/raw-changed"
    s3.fs.copy(RAW.split("://", 1)[1], raw.split("://", 1)[1], recursive=True)
    ws = Workspace(f"s3://{BUCKET}/work-changed")
    assert ingest_ntu(ws, raw, workers=1).action == "start"
    assert ingest_ntu(ws, raw, workers=1).action == "skip"
    victim = sorted(s3.fs.find(raw.split("://", 1)[1]))[5]
    time.sleep(1.1)  # S3 modification times have whole seconds
    s3.fs.pipe_file(victim, s3.fs.cat_file(victim) + b"\r\n")
    status = s3.cli("status", "--workdir", ws.root)
    assert "stale" in status and "input raw changed" in status, status
    rerun = ingest_ntu(ws, raw, workers=1)
    assert rerun.action == "start" and "input raw changed" in rerun.reason


def test_killed_ingest_on_s3_resumes_to_the_store_of_an_uninterrupted_run(s3, tmp_path):
    work = f"s3://{BUCKET}/work-killed"
    manifest = f"{work}/ntu60/raw.manifest.json"
    cmd = [sys.executable, "-m", "cli", "ingest", "ntu", "--raw", RAW, "--workdir", work,
           "--workers", "1", "--shard-files", "1"]  # 48 shards
    proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            m = Manifest.load(manifest)
            if m is not None and len(m.shards_done) >= 3:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    m = Manifest.load(manifest)
    assert m is not None and not m.complete and 0 < len(m.shards_done) < m.shards_total
    status = s3.cli("status", "--workdir", work)
    assert "partial" in status and f"/{m.shards_total} shards done" in status
    out = s3.cli(*cmd[3:])
    assert "resuming" in out and f"{len(m.shards_done)} of {m.shards_total}" in out
    assert Manifest.load(manifest).complete
    whole = Workspace(str(tmp_path / "whole"))  # the shards are the store: same shard files
    ingest_ntu(whole, RAW, workers=1, shard_files=1)
    assert s3.files(f"{work}/ntu60/raw.zarr") == local_files(tmp_path / "whole" / "ntu60" /
                                                             "raw.zarr")


def test_pretrain_checkpoints_into_the_s3_workspace_and_status_sees_the_run(s3, s3_workspace):
    out = s3.cli("pretrain", "--workdir", s3_workspace, "--run", "tiny", *TINY_PRETRAIN)
    assert "1/1 epochs" in out
    run = f"{BUCKET}/work/ntu60/runs/tiny"
    assert {"checkpoint.pt", "config.yaml", "manifest.json", "metrics.jsonl"} <= {
        p.rsplit("/", 1)[1] for p in s3.fs.find(run)}
    metrics = [json.loads(line) for line in s3.fs.cat_file(f"{run}/metrics.jsonl").splitlines()]
    assert [m["epoch"] for m in metrics] == [1]
    rows = status_rows(s3.cli("status", "--workdir", s3_workspace))
    assert "complete" in rows["tiny"] and "1 epochs" in rows["tiny"], rows


def test_listings_see_objects_another_process_wrote_after_the_first_listing(s3):
    folder = f"s3://{BUCKET}/listing"
    storage.write_text(f"{folder}/a.txt", "a")
    assert [e.name for e in storage.list_files(folder)] == ["a.txt"]
    assert not storage.exists(f"{folder}/b.txt")
    s3.fs.pipe_file(f"{BUCKET}/listing/b.txt", b"b")  # another client: a worker, a machine
    assert [e.name for e in storage.list_files(folder)] == ["a.txt", "b.txt"]
    assert storage.exists(f"{folder}/b.txt")
    s3.fs.rm(f"{BUCKET}/listing/a.txt")
    assert [e.name for e in storage.list_files(folder)] == ["b.txt"]


def test_reference_arrays_on_s3_are_refused_with_the_reason(tmp_path):
    from pipelines.ingest import ingest_reference

    with pytest.raises(AsarError, match="memory-mapped, so they must be on a local"):
        ingest_reference(Workspace(str(tmp_path)), "ref", f"s3://{BUCKET}/ref/train_data.npy",
                         f"s3://{BUCKET}/ref/train_label.pkl", workers=1)


def test_credentials_never_reach_outputs_manifests_reports_or_stores(s3, s3_workspace):
    """Searches everything in the bucket and everything the CLI printed in this module so far
    (run last, it covers the pretrain run, the killed ingest and the status tables too)."""
    written = {p: s3.fs.cat_file(p) for p in s3.fs.find(BUCKET)}
    assert any(p.endswith("raw.manifest.json") for p in written)
    for needle in (s3.secret, s3.key_id):
        assert not [p for p, data in written.items() if needle.encode() in data], needle
        assert not [o for o in s3.outputs if needle in o], needle
    assert s3.outputs  # the CLI did print
