"""The GPU check runs end to end on the CPU at its quick size, so it never rots.

Statuses and times are not asserted (the machine's load decides what fits the budget):
only that every section is reported and both outputs are written.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("setup", "correctness", "throughput", "distributed", "learning")


@pytest.mark.slow
def test_quick_cpu_run_reports_every_section(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
         "--quick", "--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert set(SECTIONS) <= set(report["sections"])
    for name in SECTIONS:
        section = report["sections"][name]
        assert section["status"] in ("ok", "fail", "error", "partial", "skipped")
        for item in section["items"].values():
            assert item["status"] in ("ok", "fail", "error", "skipped", "info")
    assert set(report["goals"]) == {"epoch_s", "projected_300_epochs_s", "data_wait_share"}
    table = (out / "gpu_check.md").read_text()
    assert "| goal | target | measured | met |" in table
    assert all(f"## {name}:" in table for name in SECTIONS)
