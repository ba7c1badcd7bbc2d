"""The stages of the pipeline and their revisions (bump a revision when its output changes).

Kept free of heavy imports so that `asar-cli status` can check code versions fast.
"""
from __future__ import annotations

from pipelines.stage import Stage

INGEST = Stage("ingest", version=2)  # 2: the shards are the store
DOWNSAMPLE = Stage("downsample", version=2)  # 2: frames store v2 (xarray layout)
PRETRAIN = Stage("pretrain", version=1)
EVALUATE = Stage("evaluate", version=1)

ALL = {s.name: s for s in (INGEST, DOWNSAMPLE, PRETRAIN, EVALUATE)}
