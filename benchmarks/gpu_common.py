"""What the GPU check's sections share: sizes, the budgeted section, the run's context
(options, device, preset, data) and the stage's training step.

Used by benchmarks/gpu_check.py and its section modules (gpu_correctness, gpu_throughput,
gpu_distributed).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from runkit import ROOT, Clock, child_env

GOALS = {"epoch_s": 6.0, "projected_300_epochs_s": 1800.0, "data_wait_share": 0.05}
PRESETS = ROOT / "pipelines" / "presets"
PRESET = "ntu60-xview"
DATASET = "synth60"


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is (``FULL`` on a GPU, ``QUICK`` for a CPU smoke run)."""

    batch: int
    queue: int
    base_samples: int      # synthetic files made with the CLI
    classes: int
    epoch_samples: int     # the tiled training split (NTU-60 xview: 37,646)
    test_samples: int      # its test split (18,932)
    warm_steps: int
    timed_steps: int
    compare_steps: int     # bf16 / compile against float32
    active_steps: int      # compiled active-sampling steps against eager
    ddp_epochs: int
    ddp_batch: int
    linear_epochs: int
    budget_s: float
    learning: tuple[str, ...] = ()


FULL = Sizes(batch=128, queue=32768, base_samples=256, classes=60, epoch_samples=37646,
             test_samples=18932, warm_steps=3, timed_steps=20, compare_steps=20,
             active_steps=5, ddp_epochs=40, ddp_batch=64, linear_epochs=100, budget_s=520,
             learning=("--synthetic", "--classes", "60", "--samples", "6000", "--epochs", "100",
                       "--active-epoch", "50", "--batch-size", "128"))
QUICK = Sizes(batch=4, queue=32, base_samples=40, classes=6, epoch_samples=32, test_samples=16,
              warm_steps=1, timed_steps=2, compare_steps=3, active_steps=2, ddp_epochs=3,
              ddp_batch=8, linear_epochs=5, budget_s=100, learning=("--quick",))


@dataclass
class Section:
    """One section's items: each a dict with a status (ok, fail, error, skipped, info)."""

    name: str
    clock: Clock
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.allowance_s = round(self.clock.left(), 1)

    def item(self, name: str, fn: Callable[[], dict[str, Any]], estimate_s: float = 0.0,
             needs: str | None = None) -> dict[str, Any] | None:
        """Run one measurement unless it no longer fits or ``needs`` says why it cannot."""
        left = self.clock.left()
        why = needs or (f"needs about {estimate_s:.0f} s, {max(left, 0):.0f} s of the "
                        "section's budget left" if left < estimate_s else None)
        if why:
            self.items[name] = {"status": "skipped", "summary": f"skipped: {why}"}
            print(f"[{self.name}] {name}: skipped - {why}", flush=True)
            return None
        t0 = time.perf_counter()
        print(f"[{self.name}] {name} ...", flush=True)
        try:
            res = fn()
        except Exception as e:  # any failure is a finding: recorded, and the script goes on
            res = {"status": "error", "summary": f"{type(e).__name__}: {e}"[:300],
                   "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc(limit=12)[-4000:]}
        res.setdefault("status", "ok")
        res["seconds"] = round(time.perf_counter() - t0, 2)
        self.items[name] = res
        print(f"[{self.name}] {name}: {res['status']} - {res.get('summary', '')} "
              f"({res['seconds']} s)", flush=True)
        return res

    def record(self) -> dict[str, Any]:
        states = {i["status"] for i in self.items.values()}
        status = ("error" if "error" in states else "fail" if "fail" in states
                  else "skipped" if states == {"skipped"} else
                  "partial" if "skipped" in states else "ok")
        return {"status": status, "seconds": round(time.perf_counter() - self.t0, 1),
                "allowance_s": self.allowance_s, "items": self.items}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||a|| in float64 (0 for two zero tensors)."""
    a, b = a.double().cpu(), b.double().cpu()
    den = a.norm().item()
    num = (a - b).norm().item()
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" \
        else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """TF32 off for matmuls and cuDNN convolutions (the comparison is float32 arithmetic)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def where(path: str) -> str:
    """A file name relative to the repository when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return Path(path).name


class Context:
    """Options, device, sizes, the preset, the data and what sections hand on to others."""

    def __init__(self, args: argparse.Namespace):
        import yaml

        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.sizes = QUICK if args.quick else FULL
        self.out = Path(args.out).resolve()
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu_check-")).resolve()
        self.logs = self.work / "logs"
        self.env = child_env({"OMP_NUM_THREADS": str(args.threads)} if args.threads else None)
        self.cfg = yaml.safe_load((PRESETS / "pretrain" / f"{PRESET}.yaml").read_text())
        self.linear_cfg = yaml.safe_load((PRESETS / "linear" / f"{PRESET}.yaml").read_text())
        self.backend = args.compile_backend or ("inductor" if self.cuda else "eager")
        self.base_x: torch.Tensor | None = None      # (n, 3, 50, 25, 2) float32, CPU
        self.base_y: torch.Tensor | None = None
        self.data_from = "none"
        self.classes = self.sizes.classes
        self.ws: Path | None = None                  # the setup's CLI workspace
        self.workspace_ok = False
        self.prep: Any = None                        # the learning data's background job
        self.shared: dict[str, Any] = {}             # trainers handed from section to section

    # model and optimiser from the preset ---------------------------------------------------
    def model_args(self, **override: Any) -> dict[str, Any]:
        args = dict(self.cfg.get("model_args") or {})
        args.pop("base_encoder", None)
        args["queue_size"] = self.sizes.queue
        args.update(override)
        return args

    @property
    def active_epoch(self) -> int:
        return int(self.cfg["model_args"].get("active_epoch", 150))

    def learner(self, seed: int = 0, device: torch.device | str | None = None,
                cls: type | None = None, **override: Any) -> torch.nn.Module:
        from asar_model.learner import ASAR

        torch.manual_seed(seed)
        model = (cls or ASAR)(**self.model_args(**override))
        return model.to(device or self.device).train()

    def batch(self, n: int, seed: int = 0) -> torch.Tensor:
        """n samples of the base data (repeated if needed), on the CPU."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, len(self.base_x), (n,), generator=g)
        return self.base_x[idx].clone()

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


class Trainer:
    """The stage's loop body: two augmented views, the learner's step, SGD (preset's)."""

    def __init__(self, ctx: Context, model: torch.nn.Module, amp: bool = False,
                 backend: str | None = None, seed: int = 0,
                 wrap: Callable[[torch.nn.Module], Any] | None = None):
        cfg = ctx.cfg
        self.device = next(model.parameters()).device
        self.model = model
        self.opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                   lr=float(cfg["base_lr"]), momentum=float(cfg["momentum"]),
                                   weight_decay=float(cfg["weight_decay"]),
                                   nesterov=bool(cfg.get("nesterov", False)))
        fn = wrap(model) if wrap is not None else model
        self.fn = torch.compile(fn, backend=backend) if backend else fn
        self.amp = amp
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        feeder = cfg.get("train_feeder_args") or {}
        self.pad = int(feeder.get("temperal_padding_ratio", 6))
        self.shear = float(feeder.get("shear_amplitude", 0.5))
        self.stream = cfg.get("stream", "joint")

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from asar_data.augment import normal_augment
        from asar_data.streams import to_stream

        return tuple(to_stream(normal_augment(x, self.gen, padding_ratio=self.pad,
                                              shear_amplitude=self.shear), self.stream)
                     for _ in range(2))

    def forward(self, v1: torch.Tensor, v2: torch.Tensor, epoch: int) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss, _ = self.fn(v1, v2, epoch=epoch, generator=self.gen)
        return loss

    def update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def step(self, x: torch.Tensor, epoch: int) -> torch.Tensor:
        v1, v2 = self.views(x)
        loss = self.forward(v1, v2, epoch)
        self.update(loss)
        return loss.detach().float()


def random_data(ctx: Context) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    n = ctx.sizes.base_samples
    ctx.base_x = torch.randn(n, 3, 50, 25, 2, generator=g) * 0.3
    ctx.base_y = torch.randint(0, ctx.sizes.classes, (n,), generator=g)
    ctx.classes = ctx.sizes.classes
    ctx.data_from = "random (no CLI dataset)"
    return {"status": "info", "summary": "random data stand in for the synthetic store"}


def ensure_data(ctx: Context) -> None:
    """Random data when the setup section made none (not run, or failed)."""
    if ctx.base_x is None:
        random_data(ctx)
