"""Encoder weights from checkpoint files: ours, the reference's, or a bare encoder's.

Three layouts are recognised, all read with ``torch.load(weights_only=True)``:

- ours: ``{"format": "asar-pretrain/1", "epoch", "model": ASAR state_dict, ...}``;
- the reference's: a state_dict with ``encoder_q.*`` keys (SkeletonCLR / ASAR
  learners), optionally with ``encoder_k.*``, ``queue``, ``labels`` (the reference
  ASAR's (K,) buffer, in ours too), ``queue_ptr`` and the MLP head
  ``encoder_q.fc.{0,2}.*`` (or a linear ``encoder_q.fc.*``), optionally nested under a
  ``model`` or ``state_dict`` key, ``module.`` prefixes (DataParallel) allowed;
- a bare encoder state_dict (keys without ``encoder_q.``): our ``embed`` or fine-tune
  outputs, a supervised reference ST-GCN.

Loading is strict. The keys that may be absent from the file and the keys the file may
hold without them being used are listed below as data (`ALLOWED_MISSING`,
`ALLOWED_UNUSED_OUTSIDE`, `HEAD_KEY`); anything else missing, unexpected or of the
wrong shape raises a `CheckpointError` naming the file and the keys.

The ``A`` buffer (the fixed NTU adjacency, (3, 25, 25)) is in the reference
state_dict and in ours: when present it must equal the model's own graph (a different
one means another graph layout), when absent the model's own is used.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from asar_data.errors import AsarError
from asar_model.stgcn import Model, reference_init

PRETRAIN_FORMAT = "asar-pretrain/1"
ENCODER_PREFIX = "encoder_q."
# Keys (relative to the encoder) the file need not hold: the new classifier, the fixed graph.
ALLOWED_MISSING = (r"fc\.(weight|bias)", r"A")
# Keys outside encoder_q a learner checkpoint may hold and an evaluation ignores.
ALLOWED_UNUSED_OUTSIDE = (r"encoder_k\..+", r"queue", r"labels", r"queue_ptr")
# The file's own head (pre-training MLP fc.0/fc.2, or a trained linear fc): never loaded.
HEAD_KEY = r"fc\.(\d+\.)?(weight|bias)"
# Model constructor arguments in a config's model_args (the learner's others are ignored).
ENCODER_ARGS = ("in_channels", "hidden_channels", "hidden_dim", "num_class", "dropout",
                "graph_args", "edge_importance_weighting")
A_TOLERANCE = 1e-6


class CheckpointError(AsarError, ValueError):
    """A weights file that cannot be read, or does not fit the encoder; names file and keys."""


@dataclass(frozen=True)
class LoadReport:
    """What `load_state` took from a checkpoint (`pipelines.checkpoints.load_encoder` reads
    the file)."""

    source: str
    layout: str                      # "asar-pretrain" | "reference" | "encoder"
    loaded: tuple[str, ...]          # encoder keys set from the file
    ignored: tuple[str, ...]         # file keys deliberately not used
    kept: tuple[str, ...]            # encoder keys left as initialised (the new fc, maybe A)
    epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: source, layout, counts and the ignored groups."""
        groups = sorted({_group(k) for k in self.ignored})
        epoch = f" (epoch {self.epoch})" if self.epoch is not None else ""
        ignored = f"; ignored {len(self.ignored)} ({', '.join(groups)})" if groups else ""
        kept = f"; new: {', '.join(self.kept)}" if self.kept else ""
        return (f"{self.source}: {self.layout}{epoch} layout, loaded {len(self.loaded)} "
                f"encoder tensors{ignored}{kept}")


def _group(key: str) -> str:
    """A short group name for an ignored key: ``encoder_k.*``, ``queue``, ``encoder_q.fc.*``."""
    if key.startswith("encoder_k."):
        return "encoder_k.*"
    if re.fullmatch(r"(encoder_q\.)?fc\..*", key):
        return key.split("fc.")[0] + "fc.*"
    return key


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(re.fullmatch(p, key) for p in patterns)


def as_mapping(obj: Any, name: str) -> dict[str, Any]:
    """A loaded weights object as a dict; anything but a mapping is refused naming ``name``."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{name} holds a {type(obj).__name__}, not a state_dict")
    return dict(obj)


def unwrap(obj: Mapping[str, Any], name: str) -> tuple[dict[str, torch.Tensor], str, int | None]:
    """(state_dict, layout, epoch) of a loaded file: unnest ``model``/``state_dict``, drop
    ``module.`` prefixes, and tell our pre-training checkpoints from other files."""
    layout, epoch = "", None
    if obj.get("format") == PRETRAIN_FORMAT:
        layout, epoch = "asar-pretrain", int(obj.get("epoch", 0))
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    odd = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if odd:
        raise CheckpointError(f"{name} is not a state_dict: non-tensor entries {', '.join(odd)}")
    sd = {k.removeprefix("module."): v for k, v in obj.items()}
    if not layout:
        layout = "reference" if any(k.startswith(ENCODER_PREFIX) for k in sd) else "encoder"
    return sd, layout, epoch


def split_encoder(sd: Mapping[str, torch.Tensor], layout: str
                  ) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str], list[str]]:
    """(encoder tensors keyed relative to the encoder, their names in the file, ignored file
    keys, unexpected file keys).

    Learner layouts keep ``encoder_q.*`` and may hold `ALLOWED_UNUSED_OUTSIDE`; any other
    key outside ``encoder_q`` is unexpected. The file's head (`HEAD_KEY`) is always ignored.
    """
    learner = layout != "encoder"
    enc: dict[str, torch.Tensor] = {}
    names: dict[str, str] = {}
    ignored: list[str] = []
    unexpected: list[str] = []
    for key, value in sd.items():
        rel = key.removeprefix(ENCODER_PREFIX) if learner else key
        if learner and rel == key:
            (ignored if _matches(key, ALLOWED_UNUSED_OUTSIDE) else unexpected).append(key)
        elif re.fullmatch(HEAD_KEY, rel):
            ignored.append(key)
        else:
            enc[rel], names[rel] = value, key
    return enc, names, ignored, unexpected


def check_fit(model: Model, enc: Mapping[str, torch.Tensor], names: Mapping[str, str],
              name: str, unexpected: list[str] | None = None) -> list[str]:
    """Raise unless ``enc`` fits ``model`` (fc excluded); returns the model keys kept as they are.

    Errors list every unexpected key (by its name in the file), every missing key and
    every shape mismatch at once; an ``A`` that differs from the model's graph is refused.
    """
    own = {k: v for k, v in model.state_dict().items() if not re.fullmatch(HEAD_KEY, k)}
    problems = []
    unexpected = list(unexpected or []) + [names[k] for k in enc if k not in own]
    if unexpected:
        problems.append(f"unexpected keys in {name}: {', '.join(unexpected)}")
    missing = [k for k in own if k not in enc and not _matches(k, ALLOWED_MISSING)]
    if missing:
        problems.append(f"keys missing from {name}: {', '.join(missing)}")
    shapes = [f"{names[k]} {tuple(v.shape)} (model {tuple(own[k].shape)})"
              for k, v in enc.items() if k in own and v.shape != own[k].shape]
    if shapes:
        problems.append(f"wrong shapes in {name}: {', '.join(shapes)}")
    a = enc.get("A")
    if a is not None and "A" in own and a.shape == own["A"].shape and not torch.allclose(
            a.float(), own["A"], atol=A_TOLERANCE):
        problems.append(f"{names['A']} in {name} is not this model's graph adjacency "
                        "(another graph layout or strategy?)")
    if problems:
        raise CheckpointError("; ".join(problems))
    return [k for k in model.state_dict() if k not in enc]


def build_encoder(model_args: Mapping[str, Any] | None = None, num_class: int | None = None,
                  seed: int | None = None) -> Model:
    """A reference-initialised ST-GCN from a config's ``model_args`` (learner keys dropped).

    ``seed`` makes the initialisation reproducible without touching torch's global stream.
    """
    args = {k: v for k, v in dict(model_args or {}).items() if k in ENCODER_ARGS}
    if num_class is not None:
        args["num_class"] = int(num_class)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return reference_init(Model(**args))


def load_state(model: Model, obj: Mapping[str, Any], name: str) -> LoadReport:
    """Load a checkpoint object (any recognised layout) into ``model``, strictly; fc untouched."""
    sd, layout, epoch = unwrap(obj, name)
    enc, names, ignored, unexpected = split_encoder(sd, layout)
    kept = check_fit(model, enc, names, name, unexpected)
    own = model.state_dict()
    with torch.no_grad():
        for k, v in enc.items():
            own[k].copy_(v)
    return LoadReport(name, layout, tuple(enc), tuple(ignored), tuple(kept), epoch)


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, shapes, bytes) of a module."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
