"""Shared fixtures: where the real sample files and the reference baselines live.

The real files and the reference scripts stay beside the checkout, in
`../shared` (or wherever ASAR_SHARED points); tests that need them skip with a
reason when they are absent.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASAR_SHARED", REPO.parent / "shared"))
REAL = SHARED / "data" / "real"
BENCH = SHARED / "bench"


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_module(name: str, what: str) -> ModuleType:
    """``shared/bench/<name>.py`` imported by path; the test skips when it is absent."""
    path = BENCH / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"{what} not found at {path} (set ASAR_SHARED)")
    return _load_module(path)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """`shared/data/real`: real raw NTU and PKU-MMD files and the official lists."""
    if not REAL.is_dir():
        pytest.skip(f"real sample files not found at {REAL} (set ASAR_SHARED)")
    return REAL


@pytest.fixture(scope="session")
def reference_parse() -> ModuleType:
    """The reference-style NTU reader (`shared/bench/reference_parse.py`)."""
    return _bench_module("reference_parse", "reference reader")


@pytest.fixture(scope="session")
def reference_downsample() -> ModuleType:
    """The reference-style 50-frame transform (`shared/bench/reference_downsample.py`)."""
    return _bench_module("reference_downsample", "reference transform")


@pytest.fixture(scope="session")
def reference_active() -> ModuleType:
    """The reference's active-sampling rules as plain loops (`shared/bench/reference_active.py`)."""
    return _bench_module("reference_active", "reference active sampling")


@pytest.fixture(scope="session")
def synth_ntu(tmp_path_factory) -> Path:
    """A small synthetic NTU-60 folder (120 samples, 6 classes), written once per session."""
    from asar_data.synth import write_ntu_dataset

    out = tmp_path_factory.mktemp("synth_ntu")
    write_ntu_dataset(out, samples=120, classes=6, seed=7)
    return out


@pytest.fixture(scope="session")
def synth_pku(tmp_path_factory) -> Path:
    """A small synthetic PKU-MMD part I folder in the official layout (3 videos x 3 views)."""
    from asar_data.synth import write_pku_dataset

    out = tmp_path_factory.mktemp("synth_pku")
    write_pku_dataset(out, videos=3, classes=51, seed=3)
    return out


@pytest.fixture(scope="session")
def frames_workspace(tmp_path_factory, synth_ntu) -> Path:
    """A workspace holding the synthetic ntu60 raw store and its 50-frame store (read-only:
    copy it with `copy_workspace` before changing anything)."""
    from pipelines.downsample import downsample
    from pipelines.ingest import ingest_ntu
    from pipelines.workspace import Workspace

    root = tmp_path_factory.mktemp("frames_ws")
    ws = Workspace(str(root))
    ingest_ntu(ws, str(synth_ntu), workers=1)
    downsample(ws, "ntu60", workers=1)
    return root


@pytest.fixture
def workspace_copy(tmp_path, frames_workspace) -> Path:
    """A private copy of `frames_workspace` for a test that writes into it."""
    import shutil

    dst = tmp_path / "ws"
    shutil.copytree(frames_workspace, dst)
    return dst



# Tests run tiny models: one thread each avoids oversubscribing the cores (also in the
# subprocesses the kill/resume tests start).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
