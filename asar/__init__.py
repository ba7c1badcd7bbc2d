"""asar: self-supervised skeleton action representation learning with ASAR (ICIP 2023).

The public Python API (the `asar-cli` commands are the other way in):

    import asar
    data = asar.open_dataset("ntu60", workdir="asar-work")      # a workspace's 50-frame store
    x, y = data.split("xview", "test")                           # arrays
    test = data.torch_dataset("xview", "test")                   # a torch Dataset
    encoder = asar.load_encoder("xview-joint", workdir="asar-work", dataset="ntu60")
    features = asar.embed(encoder, x)                            # (n, 256) float32

Importing it is cheap: torch, zarr and dask load when first used.
"""
from __future__ import annotations

from asar.api import Dataset, embed, load_encoder, open_dataset

__all__ = ["Dataset", "embed", "load_encoder", "open_dataset"]
