"""Pre-training on several ranks: gloo on the CPU, two ranks, as torchrun would start them.

One spawned two-rank session (module fixture) runs the learner step by step and two
pretrain runs (one whole, one stopped after its first epoch); the tests read what it
recorded. torchrun itself resumes the stopped run through the CLI.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from asar_data.augment import normal_augment
from asar_data.frames_store import FramesStore
from asar_data.loader import ResidentSource, StreamedSource, rank_rows
from asar_model.distributed import DistributedASAR, device_for, wrap
from asar_model.training import Augmentation
from pipelines.config import apply_overrides, load_preset
from pipelines.pretrain import load_checkpoint, pretrain
from pipelines.progress import RecordingProgress
from pipelines.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
WORLD = 2
TINY_MODEL = [
    "model_args.hidden_channels=4", "model_args.hidden_dim=16", "model_args.queue_size=64",
    "batch_size=16", "save_interval=0",
]
# epoch 3 samples actively; the key encoder starts as a copy (MoCo's start), so the tiny
# model's loss falls from the first epochs (an independent start is ~flat that early)
RUN = TINY_MODEL + ["num_epoch=3", "model_args.active_epoch=2", "model_args.key_init=copy"]
LEARNER = dict(feature_dim=32, queue_size=64, hidden_channels=4, hidden_dim=16, topk=3,
               active_epoch=1)
LEARNER_STEPS = (0, 0, 1, 1)  # the epoch of each step: two queue writes, two active samplings
SESSION_TIMEOUT_S = 240
# the CLI's default run name: torchrun's parser takes a `--run` after the script for an
# abbreviation of its own --run-path and stops, so the torchrun test leaves it out
RUN_NAME = "xview-joint"


def run_config() -> dict:
    """The config `asar-cli pretrain --deterministic --set ...RUN` resolves to."""
    cfg = apply_overrides(load_preset("pretrain", "ntu60-xview"), RUN)
    cfg.update({"dataset": "ntu60", "benchmark": "xview", "seed": 0, "deterministic": True})
    return cfg


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the two-rank session


class RecordingASAR(DistributedASAR):
    """Keeps the keys of its last step (this rank's samples, in order)."""

    def key_forward(self, im_k, generator=None):
        k = super().key_forward(im_k, generator)
        self.last_keys = k.clone()
        return k


class StopRun(Exception):
    pass


@contextlib.contextmanager
def patched(module, name: str, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def global_batch(step: int) -> torch.Tensor:
    return torch.randn(16, 3, 20, 25, 2, generator=torch.Generator().manual_seed(step))


def learner_steps(rank: int) -> dict:
    """The learner in DDP for a few steps; what each rank holds after each."""
    torch.manual_seed(0)
    model = RecordingASAR(**LEARNER)
    rows = rank_rows(16, rank, WORLD)
    local = global_batch(99)[rows]
    model.encoder_k.eval()  # BN on running stats: a sample's key cannot depend on its batch
    shuffled = model.key_forward(local, torch.Generator().manual_seed(5))
    alone = F.normalize(model.encoder_k(local), dim=1)
    model.encoder_k.train()
    ddp = wrap(model, torch.device("cpu"))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1,
                          momentum=0.9)
    steps = []
    for i, epoch in enumerate(LEARNER_STEPS):
        x = global_batch(i)[rows]
        ptr = int(model.queue_ptr)
        loss, _ = ddp(x, x.flip(2), epoch=epoch, generator=torch.Generator().manual_seed(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps.append({
            "q": torch.cat([p.detach().flatten() for p in model.encoder_q.parameters()]),
            "k": torch.cat([p.detach().flatten() for p in model.encoder_k.parameters()]),
            "queue": model.queue.clone(), "ptr_before": ptr, "ptr": int(model.queue_ptr),
            "keys": model.last_keys,
        })
    return {"shuffled": shuffled, "alone": alone, "steps": steps}


def session(rank: int, port: int, out: str, whole: str, stopped: str) -> None:
    """One rank: the learner steps, a whole pretrain run, a run stopped after epoch 1."""
    import asar_model.training as stage
    from asar_data import storage

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # as torchrun's OMP_NUM_THREADS=1: the same floating-point sums
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    try:
        torch.save(learner_steps(rank), f"{out}/learner{rank}.pt")
        writes: list[list[str]] = []

        def spy(name):
            real = getattr(storage, name)

            def call(location, *args, **kwargs):
                writes.append([name, str(location)])
                return real(location, *args, **kwargs)
            return call

        names = ("write_bytes", "write_text", "remove", "makedirs")
        with contextlib.ExitStack() as stack:
            for name in names:
                stack.enter_context(patched(storage, name, spy(name)))
            pretrain(Workspace(whole), run_config(), RUN_NAME)

        real_lr = stage.learning_rate

        def stop_after_first_epoch(cfg, epoch):  # called as each epoch starts
            if epoch >= 1:
                raise StopRun
            return real_lr(cfg, epoch)

        with patched(stage, "learning_rate", stop_after_first_epoch), \
                contextlib.suppress(StopRun):
            pretrain(Workspace(stopped), run_config(), RUN_NAME)
        Path(out, f"writes{rank}.json").write_text(json.dumps(writes))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, frames_workspace) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp")
    paths = {name: root / name for name in ("whole", "stopped", "stopped_copy")}
    for name in ("whole", "stopped"):
        shutil.copytree(frames_workspace, paths[name])
    t0 = time.perf_counter()
    ctx = mp.spawn(session, args=(free_port(), str(root), str(paths["whole"]),
                                  str(paths["stopped"])), nprocs=WORLD, join=False)
    deadline = time.monotonic() + SESSION_TIMEOUT_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the two-rank session ran over {SESSION_TIMEOUT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
    print(f"two-rank session: {time.perf_counter() - t0:.1f} s")
    shutil.copytree(paths["stopped"], paths["stopped_copy"])  # before torchrun resumes it
    return {"root": root, **paths}


@pytest.fixture
def one_thread():
    """One intra-op thread, as each rank has: on shared cores OpenMP's spinning threads
    make the in-process runs several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rank_record(two_ranks, rank: int) -> dict:
    return torch.load(two_ranks["root"] / f"learner{rank}.pt", weights_only=True)


# ---------------------------------------------------------------- learner across ranks


def test_ranks_hold_identical_encoders_and_queue_after_every_step(two_ranks):
    r0, r1 = (rank_record(two_ranks, r)["steps"] for r in range(WORLD))
    assert len(r0) == len(LEARNER_STEPS)
    for a, b in zip(r0, r1, strict=True):
        assert torch.equal(a["q"], b["q"]) and torch.equal(a["k"], b["k"])
        assert torch.equal(a["queue"], b["queue"]) and a["ptr"] == b["ptr"]
    assert not torch.equal(r0[0]["q"], r0[-1]["q"])  # they did train


def test_queue_takes_rank_0_keys_then_rank_1_keys_at_the_pointer(two_ranks):
    r0, r1 = (rank_record(two_ranks, r)["steps"] for r in range(WORLD))
    for step, (a, b) in enumerate(zip(r0, r1, strict=True)):
        if LEARNER_STEPS[step] >= LEARNER["active_epoch"]:
            continue  # active sampling picks among the keys and the old entries
        slots = (a["ptr_before"] + torch.arange(16)) % LEARNER["queue_size"]
        assert torch.equal(a["queue"][:, slots].T, torch.cat([a["keys"], b["keys"]]))
        assert a["ptr"] == (a["ptr_before"] + 16) % LEARNER["queue_size"]


def test_shuffled_key_forward_returns_each_rank_its_own_keys(two_ranks):
    for rank in range(WORLD):
        rec = rank_record(two_ranks, rank)
        torch.testing.assert_close(rec["shuffled"], rec["alone"], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the pretrain stage


def test_only_rank_0_writes_the_run_folder(two_ranks):
    w0, w1 = (json.loads((two_ranks["root"] / f"writes{r}.json").read_text()) for r in (0, 1))
    assert w1 == []
    written = {Path(loc).name for _, loc in w0}
    assert {"config.yaml", "checkpoint.pt", "metrics.jsonl", "manifest.json"} <= written
    run_dir = two_ranks["whole"] / "ntu60" / "runs" / RUN_NAME
    assert load_checkpoint(str(run_dir / "checkpoint.pt"))["epoch"] == 3
    assert [m["world_size"] for m in metrics(run_dir)] == [2, 2, 2]


def test_two_rank_loss_falls_as_the_single_process_loss_does(two_ranks, workspace_copy,
                                                               one_thread):
    """Same global batches and augmentations; the ranks differ only in BN statistics
    (8 samples a rank), the key shuffle and dropout masks. Before active sampling (epochs
    1-2) both losses fall, and every epoch's loss agrees within 10%."""
    one = metrics(Path(pretrain(Workspace(str(workspace_copy)), run_config(), RUN_NAME).run_dir))
    two = metrics(two_ranks["whole"] / "ntu60" / "runs" / RUN_NAME)
    print("1 process:", [round(m["loss"], 4) for m in one])
    print("2 ranks:  ", [round(m["loss"], 4) for m in two])
    for run in (one, two):
        assert run[1]["loss"] < run[0]["loss"]
    for a, b in zip(one, two, strict=True):
        assert abs(b["loss"] - a["loss"]) < 0.1 * a["loss"]


def test_nproc_relaunch_resumes_a_two_rank_run_to_the_uninterrupted_result(two_ranks,
                                                                            tmp_path):
    """`asar-cli pretrain --nproc 2` relaunches itself under torchrun, from a folder whose
    decoy cli.py, configs/ and pipelines/ must not be imported by the ranks."""
    stopped = two_ranks["stopped"] / "ntu60" / "runs" / RUN_NAME
    assert [m["epoch"] for m in metrics(stopped)] == [1]
    for decoy in ("cli.py", "configs/__init__.py", "pipelines/__init__.py"):
        path = tmp_path / decoy
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("raise SystemExit('decoy imported')\n")
    args = ["pretrain", "--nproc", str(WORLD), "--deterministic", "--workdir",
            str(two_ranks["stopped"])]
    for item in RUN:
        args += ["--set", item]
    cmd = [str(Path(sys.executable).parent / "asar-cli"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its two workers
        raise
    assert proc.returncode == 0, err[-3000:]
    assert "resuming" in err and "2 ranks (gloo, cpu)" in err
    whole = two_ranks["whole"] / "ntu60" / "runs" / RUN_NAME
    assert [m["loss"] for m in metrics(stopped)] == [m["loss"] for m in metrics(whole)]
    a = load_checkpoint(str(stopped / "checkpoint.pt"))
    b = load_checkpoint(str(whole / "checkpoint.pt"))
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])


def test_one_process_resumes_a_two_rank_checkpoint(two_ranks, one_thread):
    progress = RecordingProgress()
    ws = Workspace(str(two_ranks["stopped_copy"]))
    result = pretrain(ws, run_config(), RUN_NAME, progress=progress)
    assert result.action == "resume"
    assert any("resuming" in n and "after epoch 1" in n for n in progress.notes)
    run_dir = Path(result.run_dir)
    got = metrics(run_dir)
    assert [m["epoch"] for m in got] == [1, 2, 3] and "world_size" not in got[1]
    whole = metrics(two_ranks["whole"] / "ntu60" / "runs" / RUN_NAME)
    assert (got[0]["loss"], got[0]["world_size"]) == (whole[0]["loss"], 2)  # epoch 1 is kept
    for a, b in zip(got[1:], whole[1:], strict=True):
        assert abs(a["loss"] - b["loss"]) < 0.1 * b["loss"]
    assert load_checkpoint(str(run_dir / "checkpoint.pt"))["epoch"] == 3


# ---------------------------------------------------------------- data and devices


def test_rank_blocks_of_each_batch_make_up_the_single_process_batch(frames_workspace):
    store = FramesStore(str(frames_workspace / "ntu60" / "frames50.zarr"))
    idx = store.split("xview", "train")
    sources = [ResidentSource.from_store(store, idx, torch.device("cpu")),
               StreamedSource(store, idx, torch.device("cpu"), window_chunks=1)]
    for source in sources:
        whole = list(source.batches(16, torch.Generator().manual_seed(4)))
        parts = [list(source.batches(16, torch.Generator().manual_seed(4), rank=r,
                                     world_size=WORLD)) for r in range(WORLD)]
        assert len(whole) == len(parts[0]) == len(parts[1]) == len(idx) // 16
        for i, (x, y) in enumerate(whole):
            assert parts[0][i][0].shape[0] == 8
            assert torch.equal(torch.cat([p[i][0] for p in parts]), x)
            assert torch.equal(torch.cat([p[i][1] for p in parts]), y)


def test_rank_block_augmentation_matches_the_single_process_augmentation():
    x = global_batch(7)
    want = normal_augment(x, torch.Generator().manual_seed(1), padding_ratio=6,
                          shear_amplitude=0.5)
    for rank in range(WORLD):
        rows = rank_rows(16, rank, WORLD)
        got = Augmentation(6, 0.5)(x[rows], torch.Generator().manual_seed(1), rows, 16)
        assert torch.equal(got, want[rows])


def test_batch_that_does_not_split_over_the_ranks_is_refused():
    with pytest.raises(ValueError, match="multiple of 3"):
        rank_rows(16, 0, 3)
    source = ResidentSource(torch.zeros(20, 1), torch.zeros(20, dtype=torch.long))
    with pytest.raises(ValueError, match="drop_last=True"):
        next(source.batches(8, None, drop_last=False, rank=1, world_size=2))
    assert rank_rows(16, 1, 2) == slice(8, 16)


def test_ranks_take_cuda_local_rank_and_a_named_gpu_is_refused():
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES"):
        device_for("cuda:1", 0)
    assert device_for("cpu", 1) == torch.device("cpu")
    want = torch.device("cuda", 1) if torch.cuda.device_count() > 1 else None
    if want is not None:
        assert device_for("auto", 1) == want
    elif not torch.cuda.is_available():
        assert device_for("auto", 1) == torch.device("cpu")
