"""ASAR on several processes with torch.distributed, as MoCo does it.

`DistributedASAR` fills the learner's three distributed hooks: keys are gathered from
every rank in rank order (no gradient), rank 0's random choices (the BN shuffle, the
active-sampling selection) are broadcast, and `_rank` reads the process group. With
those, every rank writes the same keys into the same queue slots, so the queue, its
pointer and the momentum encoder stay identical on every rank without being sent.

`setup` starts (or joins) the process group a `torchrun` launch describes in its
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): NCCL when the
rank trains on a GPU, gloo on the CPU. `wrap` puts the learner in
DistributedDataParallel, which averages the query encoder's gradients.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from asar_model.learner import ASAR

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group: rank, world size, rank on its machine."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    owns_group: bool  # started by `setup`, so `teardown` ends it

    @property
    def lead(self) -> bool:
        """Rank 0: the one that writes files."""
        return self.rank == 0


class DistributedASAR(ASAR):
    """The ASAR learner across the default process group (same arguments as `ASAR`)."""

    @torch.no_grad()
    def _all_gather(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate ``x`` (b, ...) over ranks in rank order -> (world * b, ...), no grad."""
        world = dist.get_world_size()
        if world == 1:
            return x
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x)
        return torch.cat(parts)

    @torch.no_grad()
    def _broadcast(self, x: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``x`` on every rank (``x`` itself is left as it was)."""
        y = x.contiguous().clone()
        dist.broadcast(y, src=0)
        return y

    def _rank(self) -> tuple[int, int]:
        return dist.get_rank(), dist.get_world_size()


def env_ranks() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from a torchrun environment, or None outside one."""
    if not all(k in os.environ for k in ENV_KEYS):
        return None
    return tuple(int(os.environ[k]) for k in ENV_KEYS)  # type: ignore[return-value]


def local_rank() -> int | None:
    """This process's rank on its machine when it is one of several, else None."""
    env = env_ranks()
    if env is not None:
        return env[2] if env[1] > 1 else None
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank()
    return None


def device_for(name: str | None, local_rank: int) -> torch.device:
    """The device rank ``local_rank`` trains on: cuda:LOCAL_RANK when CUDA is asked for or
    present ("auto"/None), else the CPU. A named GPU (``cuda:1``) is refused: several
    ranks cannot share it; choose the GPUs with CUDA_VISIBLE_DEVICES instead."""
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type != "cuda":
        return dev
    if dev.index is not None:
        raise ValueError(f"device {name} names one GPU, but each rank takes cuda:LOCAL_RANK: "
                         "give --device cuda (or auto) and pick GPUs with CUDA_VISIBLE_DEVICES")
    if not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but no CUDA device is available")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} "
                         "visible; start at most that many processes per machine")
    return torch.device("cuda", local_rank)


def setup(device: torch.device) -> Ranks | None:
    """Join the running process group, or start the one torchrun's environment describes.

    Returns None for a single process (no group, no torchrun environment, or a world of
    one): the caller then trains exactly as without torch.distributed.
    """
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        if world == 1:
            return None
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Ranks(dist.get_rank(), world, local, dist.get_backend(), False)
    env = env_ranks()
    if env is None or env[1] == 1:
        return None
    rank, world, local = env
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    return Ranks(rank, world, local, backend, True)


def teardown(ranks: Ranks | None) -> None:
    """End the process group if `setup` started it."""
    if ranks is not None and ranks.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks | None) -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if ranks is not None:
        dist.barrier()


def mean_over_ranks(x: torch.Tensor, ranks: Ranks | None) -> torch.Tensor:
    """The mean of ``x`` over ranks, a new tensor (``x`` itself unchanged)."""
    if ranks is None:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / ranks.world_size


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around the learner: query gradients averaged over ranks.

    Buffers are not broadcast before each forward: the queue and its pointer are
    identical on every rank by construction (every rank writes the same gathered keys),
    and the BN running statistics of rank 0 - the ones its checkpoints hold - are the
    same either way (a broadcast goes from rank 0, never to it). Gradients are views
    into DDP's buckets (no second copy).
    """
    import inspect
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # some 1x1 convolutions' weight gradients come back with other strides on
    # their size-1 dimensions than the bucket's; DDP copies them (a few bytes) and warns
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

    ids = [device.index] if device.type == "cuda" else None
    # torch 2.13 renames broadcast_buffers; both keep the parameters' sync at construction
    params = inspect.signature(DistributedDataParallel).parameters
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
               else {"broadcast_buffers": False})
    return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True,
                                   **no_sync)
