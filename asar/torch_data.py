"""One side of a benchmark as a map-style `torch.utils.data.Dataset`."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from asar_data.streams import to_stream


class SplitDataset(Dataset):
    """(x (3, T, 25, 2) float32 metres, label) pairs of some samples of a 50-frame store.

    Reads a whole store chunk at a time and keeps the last one (samples of one chunk are
    neighbours in ``indices``, so a sequential pass reads each chunk once).
    """

    def __init__(self, store: Any, indices: np.ndarray, stream: str = "joint") -> None:
        self.store, self.indices, self.stream = store, np.asarray(indices, np.int64), stream
        self._chunk: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        size = self.store.chunk
        c = j // size
        if self._chunk is None or self._chunk[0] != c:
            self._chunk = (c, self.store.read(np.arange(c * size, min((c + 1) * size,
                                                                      len(self.store)))))
        x = self._chunk[1][j - c * size]
        return torch.from_numpy(np.ascontiguousarray(to_stream(x, self.stream))), \
            int(self.store.labels[j])
