"""--deterministic holds on a busy machine: thread teams keep the size asked for."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# BatchNorm's backward splits its reductions by the OpenMP team's size: its gradient's
# digest tells which team size ran it. Prints (omp_get_dynamic, digest).
CHILD = """
import ctypes, hashlib, os, sys
import torch
import torch.nn.functional as F
if sys.argv[1] == "deterministic":
    from asar_model.determinism import make_deterministic
    make_deterministic()
torch.set_num_threads(int(sys.argv[2]))
g = torch.Generator().manual_seed(0)
x = torch.randn(64, 32, 50, 25, generator=g).requires_grad_()
y = F.batch_norm(x, None, None, training=True)
(grad,) = torch.autograd.grad((y * y.detach()).sum(), x)
try:
    dynamic = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY).omp_get_dynamic()
except OSError:
    dynamic = -1   # another OpenMP runtime
print(dynamic, hashlib.sha256(grad.numpy().tobytes()).hexdigest())
"""


def child(mode: str, threads: int, **env: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_DYNAMIC", "MKL_DYNAMIC")}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(threads)], cwd=REPO,
                         env={**base, "OMP_NUM_THREADS": "2", **env}, capture_output=True,
                         text=True, timeout=300, check=True)
    dynamic, digest = out.stdout.split()
    return int(dynamic), digest


@pytest.mark.slow
def test_deterministic_mode_keeps_thread_teams_fixed_when_openmp_may_shrink_them():
    """With OMP_DYNAMIC=true, libgomp gives a parallel region `cpus - load average`
    threads, so the numbers followed the machine's load (and oneDNN's convolution
    backward hung waiting for threads never started); make_deterministic turns it off."""
    dynamic, fixed = child("deterministic", 2, OMP_DYNAMIC="true")
    if dynamic == -1:
        pytest.skip("torch does not use GNU OpenMP here")
    assert dynamic == 0
    assert fixed == child("plain", 2)[1]                      # the numbers of a 2-thread team


def test_make_deterministic_sets_deterministic_kernels_and_fixed_teams():
    code = ("import os, torch\n"
            "from asar_model.determinism import make_deterministic\n"
            "make_deterministic()\n"
            "print(torch.are_deterministic_algorithms_enabled(), "
            "torch.backends.mkldnn.deterministic, torch.backends.cudnn.benchmark, "
            "os.environ['OMP_DYNAMIC'], os.environ['MKL_DYNAMIC'])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    assert out.stdout.split() == ["True", "True", "False", "FALSE", "FALSE"]
