"""Stream one split of a 50-frame store into batches of torch tensors on a device.

Two sources with one interface, `batches(batch_size, generator, drop_last)`:

- `ResidentSource`: the whole split copied to the device once (NTU-60 xview's
  training split is about 1.1 GB); each epoch is a permutation drawn on the device.
- `StreamedSource`: for splits over the memory budget. Store chunks are read by a
  background thread (prefetch), their order shuffled each epoch, and samples
  shuffled within a window of chunks (chunk-level shuffling, bounded memory).

Both draw every random choice from the generator they are given, so an epoch is
reproducible from its seed.

Several ranks (`rank`, `world_size`): every rank draws the same order from the same
generator and takes its contiguous block of `batch_size // world_size` rows of each
global batch of `batch_size`, so the global batches are those of a single process
whatever the number of ranks.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from asar_data.frames_store import FramesStore

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, 3, T, 25, 2) float32, (B,) int64


def split_bytes(store: FramesStore, n: int) -> int:
    return n * int(np.prod(store.data.shape[1:])) * 4


def rank_rows(batch_size: int, rank: int = 0, world_size: int = 1) -> slice:
    """The rows of a global batch that rank ``rank`` of ``world_size`` takes: a block of
    ``batch_size // world_size``, ranks in order."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} does not split evenly over {world_size} "
                         f"ranks: choose a multiple of {world_size}")
    b = batch_size // world_size
    return slice(rank * b, (rank + 1) * b)


def _check_shard(drop_last: bool, world_size: int) -> None:
    if world_size > 1 and not drop_last:
        raise ValueError("drop_last=False with several ranks would give them unequal last "
                         "batches: use drop_last=True")


class ResidentSource:
    """All samples of the split on the device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    @classmethod
    def from_store(cls, store: FramesStore, indices: np.ndarray, device: torch.device
                   ) -> ResidentSource:
        x = torch.from_numpy(store.read(indices))
        y = torch.from_numpy(store.labels[indices].astype(np.int64))
        return cls(x.to(device), y.to(device))

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                drop_last: bool = True, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Batches of ``batch_size`` in a random order (``rank``'s rows of each, see above)."""
        rows = rank_rows(batch_size, rank, world_size)
        _check_shard(drop_last, world_size)
        n = len(self.x)
        if generator is None:
            order = torch.arange(n, device=self.x.device)
        else:
            order = torch.randperm(n, generator=generator, device=generator.device)
            order = order.to(self.x.device)
        stop = (n // batch_size) * batch_size if drop_last else n
        for a in range(0, stop, batch_size):
            idx = order[a:a + batch_size]
            if world_size > 1:
                idx = idx[rows]
            yield self.x[idx], self.y[idx]


class StreamedSource:
    """Chunks of the split read ahead in a thread, shuffled by chunk and within a window."""

    def __init__(self, store: FramesStore, indices: np.ndarray, device: torch.device,
                 window_chunks: int = 8, prefetch: int = 4):
        self.store = store
        self.indices = np.sort(np.asarray(indices, np.int64))
        self.device = device
        self.window_chunks = window_chunks
        self.prefetch = prefetch
        chunk = store.chunk
        ids = self.indices // chunk
        self.chunk_ids, starts = np.unique(ids, return_index=True)
        self.members = np.split(self.indices, starts[1:])

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.members[k]
        x = torch.from_numpy(self.store.read(idx))
        y = torch.from_numpy(self.store.labels[idx].astype(np.int64))
        if self.device.type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def _chunks(self, order: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def reader() -> None:
            try:
                for k in order:
                    if stop.is_set():
                        return
                    q.put(self._load(k))
            except BaseException as e:  # surfaced in the consumer
                q.put(e)
            q.put(None)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            while (item := q.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while t.is_alive():  # drain so the reader can exit
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(timeout=0.01)

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                drop_last: bool = True, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Batches of ``batch_size`` (``rank``'s rows of each, see above). Every rank reads
        every chunk (the window shuffle needs them all) and moves only its rows."""
        rows = rank_rows(batch_size, rank, world_size)
        _check_shard(drop_last, world_size)
        cpu_gen = None
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator,
                                     device=generator.device).item())
            cpu_gen = torch.Generator().manual_seed(seed)
        n_chunks = len(self.chunk_ids)
        order = (torch.randperm(n_chunks, generator=cpu_gen).tolist() if cpu_gen is not None
                 else list(range(n_chunks)))
        carry_x: list[torch.Tensor] = []
        carry_y: list[torch.Tensor] = []
        window_x: list[torch.Tensor] = []
        window_y: list[torch.Tensor] = []

        def drain(final: bool) -> Iterator[Batch]:
            nonlocal carry_x, carry_y
            if not carry_x and not window_x:
                return
            x = torch.cat(carry_x + window_x)
            y = torch.cat(carry_y + window_y)
            window_x.clear()
            window_y.clear()
            if cpu_gen is not None:
                perm = torch.randperm(len(x), generator=cpu_gen)
                x, y = x[perm], y[perm]
            full = (len(x) // batch_size) * batch_size
            lo, hi = (rows.start, rows.stop) if world_size > 1 else (0, batch_size)
            for a in range(0, full, batch_size):
                yield (x[a + lo:a + hi].to(self.device, non_blocking=True),
                       y[a + lo:a + hi].to(self.device, non_blocking=True))
            rest_x, rest_y = x[full:], y[full:]
            if final:
                if len(rest_x) and not drop_last:
                    yield rest_x.to(self.device), rest_y.to(self.device)
                carry_x, carry_y = [], []
            else:
                carry_x, carry_y = [rest_x], [rest_y]

        for i, (x, y) in enumerate(self._chunks(order)):
            window_x.append(x)
            window_y.append(y)
            if (i + 1) % self.window_chunks == 0:
                yield from drain(final=False)
        yield from drain(final=True)


def make_source(store: FramesStore, indices: np.ndarray, device: torch.device,
                budget_bytes: int) -> ResidentSource | StreamedSource:
    """Resident when the split fits `budget_bytes`, else streamed."""
    if split_bytes(store, len(indices)) <= budget_bytes:
        return ResidentSource.from_store(store, indices, device)
    return StreamedSource(store, indices, device)
