"""Settings under which a training run repeats bit for bit, whatever else the machine runs.

``torch.use_deterministic_algorithms`` alone leaves a load-dependent path open on the
CPU: OpenMP may size each parallel region's thread team at run time (``OMP_DYNAMIC``:
GNU libgomp then gives a region ``cpus - load average`` threads) and MKL may use fewer
threads than asked (``MKL_DYNAMIC``). torch's BatchNorm and oneDNN's convolution backward
split their reductions by the team's size, so a busy machine changed the numbers (and
oneDNN's backward, whose threads wait for each other, hung). Teams of the asked size
close it; nothing else changes (same kernels and numbers, no measurable slowdown). On
torch 2.13 CPU: results do not depend on buffer alignment (MKL GEMM, oneDNN, reductions),
nor on load at a fixed team size.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch

# OpenMP runtimes torch may be built with, by soname: dlopen returns the loaded one.
OPENMP_RUNTIMES = ("libgomp.so.1", "libiomp5.so", "libomp.so", "libgomp.so")


def make_deterministic() -> None:
    """Deterministic kernels, and thread teams whose size never follows the machine's load.

    Call before training (the thread-team setting applies to parallel regions started
    from the calling thread; child processes inherit it through the environment). The
    thread count itself must stay the same between runs: reductions split by it.
    """
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.mkldnn.deterministic = True   # oneDNN: no implementations with atomics
    fixed_thread_teams()


def fixed_thread_teams() -> None:
    """OpenMP and MKL keep every team at the set thread count (``*_DYNAMIC`` false), in this
    process and, through the environment, in the processes it starts."""
    os.environ["OMP_DYNAMIC"] = "FALSE"
    os.environ["MKL_DYNAMIC"] = "FALSE"
    for name in OPENMP_RUNTIMES:
        lib = _loaded(name)
        if lib is not None and hasattr(lib, "omp_set_dynamic"):
            lib.omp_set_dynamic(0)
    mkl = _loaded(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    if mkl is not None and hasattr(mkl, "MKL_Set_Dynamic"):   # MKL is linked into torch
        mkl.MKL_Set_Dynamic(0)   # the C API (lower-case mkl_set_dynamic takes a pointer)


def _loaded(name: str) -> ctypes.CDLL | None:
    """The shared library ``name`` if this process has (or can load) it, else None."""
    try:
        return ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return None
