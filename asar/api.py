"""The public Python API: a workspace's datasets as arrays or torch datasets, encoders
from any supported checkpoint, and their embeddings.

    import asar
    data = asar.open_dataset("ntu60", workdir="asar-work")      # the 50-frame store
    x, y = data.split("xview", "test")                           # (n, 3, 50, 25, 2), (n,)
    encoder = asar.load_encoder("xview-joint", workdir="asar-work", dataset="ntu60")
    features = asar.embed(encoder, x)                            # (n, 256) float32
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Dataset:
    """A dataset's complete 50-frame store in a workspace (`open_dataset`).

    ``labels`` (N,) int64 0-based; ``names`` (N,) sample names; ``benchmarks`` the splits it
    holds; ``classes`` how many action classes; ``action_names`` their names.
    """

    name: str
    location: str
    store: Any                          # asar_data.frames_store.FramesStore

    @property
    def benchmarks(self) -> list[str]:
        return self.store.benchmarks

    @property
    def labels(self) -> np.ndarray:
        return self.store.labels.astype(np.int64)

    @property
    def names(self) -> np.ndarray:
        return self.store.names

    @property
    def classes(self) -> int:
        return int(self.store.attrs.get("classes") or int(self.labels.max()) + 1)

    @property
    def action_names(self) -> list[str]:
        from pipelines.evaluate import store_action_names

        return store_action_names(self.store, self.classes)

    def __len__(self) -> int:
        return len(self.store)

    def indices(self, benchmark: str, side: str) -> np.ndarray:
        """Sample indices (ascending int64) of one side ("train" | "test") of a benchmark."""
        from asar_data.errors import AsarError

        if benchmark not in self.benchmarks:
            raise AsarError(f"{self.name} has no benchmark {benchmark!r} "
                            f"(it has: {', '.join(self.benchmarks)})")
        if side not in ("train", "test"):
            raise AsarError(f"side must be train or test, not {side!r}")
        return np.sort(self.store.split(benchmark, side))

    def split(self, benchmark: str, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(x (n, 3, T, 25, 2) float32 metres, y (n,) int64) of one side of a benchmark."""
        idx = self.indices(benchmark, side)
        return self.store.read(idx), self.labels[idx]

    def torch_dataset(self, benchmark: str, side: str, stream: str = "joint") -> Any:
        """A `torch.utils.data.Dataset` of (x (3, T, 25, 2) float32, label) pairs, read
        from the store a chunk at a time (bounded memory); ``stream`` joint/motion/bone."""
        from asar.torch_data import SplitDataset

        return SplitDataset(self.store, self.indices(benchmark, side), stream)


def _workspace(workdir: str | None) -> Any:
    from pipelines.workspace import Workspace

    return Workspace(workdir)


def open_dataset(name: str | None = None, workdir: str | None = None,
                 frames: int = 50) -> Dataset:
    """The complete ``frames``-frame store of dataset ``name`` in the workspace ``workdir``
    (default: $ASAR_WORKDIR, else ./asar-work; the only dataset when ``name`` is None)."""
    from asar_data.frames_store import FramesStore

    ws = _workspace(workdir)
    name = ws.choose_dataset(name)
    out = ws.frames(name, frames)
    ws.complete_manifest(out, f"{frames}-frame store of {name}",
                         f"asar-cli downsample {name}" + ("" if frames == 50
                                                          else f" --frames {frames}"))
    return Dataset(name, out.store, FramesStore(out.store))


def load_encoder(weights: str | None, workdir: str | None = None, dataset: str | None = None,
                 model_args: Mapping[str, Any] | None = None, num_class: int | None = None,
                 seed: int = 0) -> Any:
    """An ST-GCN encoder (eval mode) from a checkpoint file (ours, the reference's, or a bare
    encoder's; read with weights_only=True, strictly) or a run name of ``dataset`` in the
    workspace; None gives the reference-initialised random encoder. ``model_args`` as in
    the presets (default: the reference's quarter-width ST-GCN)."""
    from asar_model.checkpoint import build_encoder
    from pipelines.checkpoints import load_encoder as load

    if weights is None:
        return build_encoder(model_args, num_class, seed).eval()
    location = weights
    if dataset is not None:
        from pipelines.evaluate import resolve_weights

        location = resolve_weights(_workspace(workdir), dataset, weights)
    return load(location, model_args, num_class, seed)[0].eval()


def embed(encoder: Any, x: Any, batch_size: int = 256, device: str | None = None,
          stream: str = "joint") -> np.ndarray:
    """Pooled features (N, D) float32 of ``x`` (N, 3, T, 25, 2) metres, encoder in eval mode."""
    import torch

    from asar_model.training import encode, pick_device

    dev = pick_device(device)
    encoder = encoder.to(dev)
    x = torch.as_tensor(np.asarray(x, np.float32))
    batches = ((x[a:a + batch_size].to(dev), torch.zeros(len(x[a:a + batch_size]),
                                                          dtype=torch.long))
               for a in range(0, len(x), batch_size))
    feats, _ = encode(encoder, batches, stream)
    return feats.cpu().numpy()
