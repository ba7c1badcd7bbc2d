"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)`` only.

The file I/O half of `asar_model.checkpoint` (which works on loaded objects): a
pre-training run's own checkpoint, and any weights file a user names.
"""
from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

from asar_data import storage

CHECKPOINT_FORMAT = "asar-pretrain/1"


def save_checkpoint(location: str, state: dict[str, Any]) -> None:
    """torch.save ``state`` to ``location`` atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    storage.write_bytes(location, buf.getvalue())


def load_checkpoint(location: str) -> dict[str, Any]:
    """A checkpoint of ours (restricted unpickling: tensors and plain containers only)."""
    import torch

    return torch.load(io.BytesIO(storage.read_bytes(location)), map_location="cpu",
                      weights_only=True)


def read_weights(location: str) -> dict[str, Any]:
    """The state_dict-like object in a weights file (ours or the reference's), loaded with
    weights_only=True; a missing file, a folder or an unreadable file raise a
    `CheckpointError` naming it."""
    import torch

    from asar_model.checkpoint import CheckpointError, as_mapping

    if not storage.is_url(location) and os.path.isdir(location):
        raise CheckpointError(f"--weights {location} is a folder: give a checkpoint file "
                              "(e.g. runs/<run>/checkpoint.pt) or a run name")
    try:
        data = storage.read_bytes(location)
    except FileNotFoundError as e:
        raise CheckpointError(f"weights file {location} not found") from e
    except IsADirectoryError as e:
        raise CheckpointError(f"--weights {location} is a folder: give a checkpoint "
                              "file") from e
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{location} cannot be read as a weights file (torch.load with "
                              f"weights_only=True refused it: {first})") from e
    return as_mapping(obj, location)


def load_encoder(location: str, model_args: Mapping[str, Any] | None = None,
                 num_class: int | None = None, seed: int | None = None) -> tuple[Any, Any]:
    """(An ST-GCN encoder with the file's ``encoder_q`` weights, the `LoadReport`).

    The new ``fc`` (Linear(hidden_dim, num_class)) keeps the reference init (seeded by
    ``seed``). Raises `CheckpointError` naming the file and the offending keys.
    """
    from asar_model.checkpoint import build_encoder, load_state

    model = build_encoder(model_args, num_class, seed)
    return model, load_state(model, read_weights(location), location)
