"""Benchmarks: which samples train and which test, derived from per-sample metadata.

One raw store serves every benchmark of its dataset; nothing here copies data.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

NTU60_XSUB_TRAIN_SUBJECTS = (
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,
)
NTU120_XSUB_TRAIN_SUBJECTS = NTU60_XSUB_TRAIN_SUBJECTS + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89,
    91, 92, 93, 94, 95, 97, 98, 100, 103,
)
NTU60_XVIEW_TRAIN_CAMERAS = (2, 3)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset name means: its kind, classes, benchmarks and the default benchmark."""

    name: str
    kind: str  # "ntu" | "pku" | "reference"
    classes: int
    benchmarks: tuple[str, ...]
    default_benchmark: str
    long_crop: str  # how a sample longer than 300 frames is cut: "first" | "centre"


DATASETS: dict[str, DatasetSpec] = {
    "ntu60": DatasetSpec("ntu60", "ntu", 60, ("xsub", "xview"), "xview", "first"),
    "ntu120": DatasetSpec("ntu120", "ntu", 120, ("xsub", "xset"), "xsub", "first"),
    "pku1": DatasetSpec("pku1", "pku", 51, ("cs", "cv"), "cs", "centre"),
    "pku2": DatasetSpec("pku2", "pku", 51, ("cs", "cv"), "cs", "centre"),
}



def ntu_split(meta: Mapping[str, np.ndarray], dataset: str, benchmark: str) -> np.ndarray:
    """Boolean (N,) mask of training samples of an NTU benchmark; the rest test.

    meta: per-sample int arrays `subject`, `camera`, `setup`.
    """
    if dataset == "ntu60" and benchmark == "xsub":
        return np.isin(meta["subject"], NTU60_XSUB_TRAIN_SUBJECTS)
    if dataset == "ntu60" and benchmark == "xview":
        return np.isin(meta["camera"], NTU60_XVIEW_TRAIN_CAMERAS)
    if dataset == "ntu120" and benchmark == "xsub":
        return np.isin(meta["subject"], NTU120_XSUB_TRAIN_SUBJECTS)
    if dataset == "ntu120" and benchmark == "xset":
        return meta["setup"] % 2 == 0
    raise ValueError(f"{dataset} has no benchmark {benchmark!r}")


def list_split(
    keys: np.ndarray, train: list[str], test: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(train mask, test mask) of samples whose key (e.g. PKU-MMD video `0002-L`) is listed.

    A sample in neither list is in neither split.
    """
    return np.isin(keys, list(train)), np.isin(keys, list(test))


def split_indices(
    meta: Mapping[str, np.ndarray],
    benchmark: str,
    ntu_dataset: str | None = None,
    lists: Mapping[str, Mapping[str, list[str]]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), int64, ascending, of one benchmark.

    NTU benchmarks (`ntu_dataset` ntu60 or ntu120) come from the name metadata;
    PKU-MMD benchmarks from the official split files' video lists (`lists`, kept
    with the raw store); the `default` benchmark of an imported reference folder
    from the file a sample came from (`source_split`: 0 train, 1 test).
    """
    if benchmark == "default" and "source_split" in meta:
        src = np.asarray(meta["source_split"])
        return np.flatnonzero(src == 0), np.flatnonzero(src == 1)
    if ntu_dataset is not None and benchmark in ("xsub", "xview", "xset"):
        train = ntu_split(meta, ntu_dataset, benchmark)
        return np.flatnonzero(train), np.flatnonzero(~train)
    if lists and benchmark in lists:
        train, test = list_split(
            np.asarray(meta["video"]), lists[benchmark]["train"], lists[benchmark]["test"]
        )
        return np.flatnonzero(train), np.flatnonzero(test)
    raise ValueError(f"no benchmark {benchmark!r} for this dataset")
