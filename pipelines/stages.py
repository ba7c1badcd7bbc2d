"""Every stage declaration by name (status checks each output's code version against it).

Kept free of heavy imports: the declaration modules import torch, zarr and dask only
inside their functions, so `asar-cli status` stays fast.
"""
from __future__ import annotations

from typing import Any

from pipelines.downsample import Downsample
from pipelines.evaluate import Evaluate
from pipelines.export import Export
from pipelines.ingest import Ingest
from pipelines.pretrain import Pretrain
from pipelines.report import Report

ALL: dict[str, Any] = {s.name: s for s in (Ingest(), Downsample(), Pretrain(), Evaluate(),
                                          Export(), Report())}
