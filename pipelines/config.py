"""Configuration as data: presets, config files, `--set key=value` overrides, and the schema
every resolved configuration is checked against before any work.

A preset is a YAML file in `pipelines/presets/<kind>/` (package data) named
`<dataset>-<benchmark>` (the six reference configs); `--config FILE.yaml` reads any file
of the same keys, the reference implementation's own config files included; each
`--set a.b=value` replaces one (dotted, nested) key, the value read as YAML.
`resolve_config` picks the preset, fills in the workspace's dataset and benchmark,
applies the overrides and validates the result with `validate_config`: an unknown key is
refused with a did-you-mean, a wrong type or range names the key, the value and what is
allowed; keys of the reference configs that mean nothing here (paths, feeders, logging)
are dropped with a warning. The resolved configuration is saved with every run.
"""
from __future__ import annotations

import copy
import difflib
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from asar_data.errors import AsarError

PRESETS = Path(__file__).resolve().parent / "presets"
# Keys that change how fast a run goes, not what it computes: left out of fingerprints.
RUNTIME_KEYS = ("device", "compile", "memory_budget_gb", "log_every", "tensorboard")


class ConfigError(AsarError, ValueError):
    """A bad preset name, config file, override or configuration value."""


class ConfigWarning(UserWarning):
    """A configuration key that is ignored or was reinterpreted (reference config files)."""


# -- files and overrides -------------------------------------------------------------------
class ConfigParams:
    """What stage parameters holding a resolved ``config`` read from it (a mixin)."""

    config: Mapping[str, Any]

    @property
    def dataset(self) -> str:
        return str(self.config["dataset"])

    @property
    def benchmark(self) -> str:
        return str(self.config["benchmark"])

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def frames(self) -> int:
        return int(self.config.get("frames", 50))


def preset_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (PRESETS / kind).glob("*.yaml"))


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    return data


def load_preset(kind: str, name: str) -> dict[str, Any]:
    path = PRESETS / kind / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"no {kind} preset {name!r}; presets: {', '.join(preset_names(kind))}"
        )
    return load_yaml(path)


def set_key(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """cfg[a][b] = value for dotted key `a.b` (intermediate mappings created)."""
    parts = dotted.split(".")
    node = cfg
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted}: {p} is a value, not a section")
        node = child
    node[parts[-1]] = value


def get_key(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of cfg with each `key=value` applied (the value read as YAML)."""
    out = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set takes key=value, got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item}: value is not valid YAML "
                              f"({' '.join(str(e).split())})") from e
        set_key(out, key, value)
    return out


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of base with override's keys replaced, nested sections merged key by key."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


# -- resolution ----------------------------------------------------------------------------
def dataset_defaults(ws: Any, dataset: str) -> dict[str, Any]:
    """A dataset's benchmarks, default benchmark and classes, from its ingest manifest."""
    from pipelines.workspace import WorkspaceError

    m = ws.raw(dataset).load_manifest()
    if m is None:
        raise WorkspaceError(
            f"no dataset {dataset!r} in workspace {ws.root}: run `asar-cli ingest ...` first"
        )
    return {"benchmarks": m.summary.get("benchmarks") or [],
            "default_benchmark": m.summary.get("default_benchmark"),
            "classes": m.summary.get("classes")}


def resolve_config(kind: str, ws: Any, preset: str | None, config: str | None,
                   dataset: str | None, benchmark: str | None, overrides: tuple[str, ...],
                   seed: int | None = None, deterministic: bool = False, *,
                   device: str | None = None,
                   choose: Callable[[list[str]], str] | None = None,
                   warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The validated configuration a command runs with: preset or file, workspace
    defaults, overrides, then `validate_config`.

    Dataset: ``dataset``, else the preset's when the workspace has it, else the workspace's
    only one (``choose(names)`` picks when it holds several; without it the ambiguity is an
    error). Benchmark: ``benchmark``, else the preset's when the dataset has it, else the
    dataset's default. Preset: ``preset`` / ``config``, else `<dataset>-<benchmark>`.
    ``device`` (the --device option) replaces the config's. Each warning (ignored keys,
    reinterpreted values) goes to ``warn`` (default: `warnings.warn`, `ConfigWarning`).
    """
    from pipelines.workspace import AmbiguousDataset

    base: dict[str, Any] | None = None
    if preset and config:
        raise ConfigError("give --preset or --config, not both")
    if config:
        base = load_yaml(config)
    elif preset:
        base = load_preset(kind, preset)
    if dataset is None and base is not None and base.get("dataset") in ws.datasets():
        dataset = base["dataset"]
    try:
        dataset = ws.choose_dataset(dataset)
    except AmbiguousDataset as e:
        if choose is None:
            raise
        dataset = choose(e.names)
    info = dataset_defaults(ws, dataset)
    if benchmark is None:
        wanted = base.get("benchmark") if base is not None else None
        benchmark = wanted if wanted in info["benchmarks"] else info["default_benchmark"]
    if benchmark not in info["benchmarks"]:
        raise ConfigError(f"{dataset} has no benchmark {benchmark!r} "
                          f"(it has: {', '.join(info['benchmarks'])})")
    if base is None:
        name = f"{dataset}-{benchmark}"
        if name not in preset_names(kind):
            raise ConfigError(f"no {kind} preset for {dataset} {benchmark}: name one with "
                              f"--preset ({', '.join(preset_names(kind))}) or give --config FILE")
        base = load_preset(kind, name)
    cfg = apply_overrides(base, list(overrides))
    cfg["dataset"], cfg["benchmark"] = dataset, benchmark
    if seed is not None:
        cfg["seed"] = seed
    cfg.setdefault("seed", 0)
    if deterministic:
        cfg["deterministic"] = True
    if device:
        cfg["device"] = device
    cfg, notes = validate_config(cfg, kind)
    for note in notes:
        if warn is None:
            warnings.warn(note, ConfigWarning, stacklevel=2)
        else:
            warn(note)
    return cfg


# -- the schema ----------------------------------------------------------------------------
class _Refused(Exception):
    """A value a rule does not allow (turned into a ConfigError naming the key)."""


@dataclass(frozen=True)
class Rule:
    """What one key allows: ``accept(value)`` returns the value (normalised) or refuses it."""

    allowed: str                       # in words, for the error message

    def accept(self, value: Any) -> Any:
        raise NotImplementedError


def _word(v: Any) -> str:
    """A value as YAML writes it: true, false, null, 0.5, joint."""
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    return str(v)


def _shown(v: Any) -> str:
    """A value in an error message: text quoted, the rest as YAML writes it."""
    return repr(v) if isinstance(v, str) else _word(v)


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return ""


def _in_bounds(v: float, lo: float | None, hi: float | None, lo_open: bool,
               hi_open: bool) -> bool:
    return ((lo is None or (v > lo if lo_open else v >= lo))
            and (hi is None or (v < hi if hi_open else v <= hi)))


@dataclass(frozen=True)
class Int(Rule):
    lo: int | None = None
    hi: int | None = None
    nullable: bool = False

    def accept(self, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        if (isinstance(value, bool) or not isinstance(value, int)
                or not _in_bounds(value, self.lo, self.hi, False, False)):
            raise _Refused
        return value


def integer(lo: int | None = None, hi: int | None = None, nullable: bool = False,
            note: str = "") -> Int:
    words = f"an integer{_bounds(lo, hi, False, False)}" + (" or null" if nullable else "")
    return Int(words + (f" ({note})" if note else ""), lo, hi, nullable)


@dataclass(frozen=True)
class Float(Rule):
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def accept(self, value: Any) -> Any:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)    # YAML 1.1 reads `1e-4` (no dot) as text; the reference has it
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not _in_bounds(value, self.lo, self.hi, self.lo_open, self.hi_open)):
            raise _Refused
        return value


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, note: str = "") -> Float:
    words = f"a number{_bounds(lo, hi, lo_open, hi_open)}" + (f" ({note})" if note else "")
    return Float(words, lo, hi, lo_open, hi_open)


@dataclass(frozen=True)
class Choice(Rule):
    values: tuple[Any, ...] = ()

    def accept(self, value: Any) -> Any:
        # bool is an int in Python: True must not pass for 1, nor 1 for True
        if not any(value == v and type(value) is type(v) for v in self.values):
            raise _Refused
        return value


def one_of(*values: Any, note: str = "") -> Choice:
    words = " or ".join(", ".join(_word(v) for v in values).rsplit(", ", 1))
    return Choice(("one of " if len(values) > 2 else "") + words
                  + (f" ({note})" if note else ""), values)


BOOL = one_of(True, False)


@dataclass(frozen=True)
class Items(Rule):
    """A list whose every item the ``item`` rule accepts."""

    item: Rule | None = None

    def accept(self, value: Any) -> Any:
        if not isinstance(value, list):
            raise _Refused
        return [self.item.accept(v) for v in value]


@dataclass(frozen=True)
class Text(Rule):
    def accept(self, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise _Refused
        return value


@dataclass(frozen=True)
class Device(Rule):
    """auto, cpu, cuda, cuda:N; a reference config's GPU list ``[0]`` is read as cuda:0."""

    def accept(self, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            return value
        if isinstance(value, list) and value and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            return f"cuda:{value[0]}" if len(value) == 1 else "cuda"
        raise _Refused


# Sections are dicts of key -> Rule or nested section.
Schema = dict[str, Any]

STREAM = one_of("joint", "motion", "bone")
GRAPH: Schema = {
    "layout": one_of("ntu-rgb+d"),
    "strategy": one_of("spatial", "uniform", "distance"),
    "max_hop": integer(1),
    "dilation": integer(1),
}
# asar_model.stgcn.Model's constructor (the encoder every protocol builds)
ENCODER: Schema = {
    "in_channels": one_of(3, note="the x, y, z channels of the stores"),
    "hidden_channels": integer(1),
    "hidden_dim": integer(1),
    "num_class": integer(1),
    "dropout": number(0, 1, hi_open=True),
    "graph_args": GRAPH,
    "edge_importance_weighting": BOOL,
}
# asar_model.learner.ASAR's own arguments (pre-training only)
LEARNER: Schema = {
    "feature_dim": integer(1),
    "queue_size": integer(1),
    "momentum": number(0, 1),
    "Temperature": number(0, lo_open=True),
    "relabel_temperature": number(0, lo_open=True),
    "topk": integer(0, note="0: plain MoCo targets"),
    "active_epoch": integer(0),
    "kmeans_tol": number(0),
    "kmeans_iters": integer(1),
    "kmeans_check_every": integer(0, nullable=True, note="null: every iteration on the CPU, "
                                                         "never on accelerators"),
    "mlp": BOOL,
    "key_init": one_of("independent", "copy"),
    "pretrain": one_of(True, note="the learner is for pre-training"),
}
FEEDER: Schema = {
    "shear_amplitude": number(note="<= 0: no shear"),
    "temperal_padding_ratio": integer(note="<= 0: no temporal crop"),
}
COMMON: Schema = {
    "dataset": Text("a dataset name"),
    "benchmark": Text("a benchmark name"),
    "seed": integer(0),
    "frames": integer(1, note="the frames<N>.zarr store to read"),
    "optimizer": one_of("SGD", note="the only optimiser here"),
    "base_lr": number(0, lo_open=True),
    "momentum": number(0, 1),
    "nesterov": BOOL,
    "weight_decay": number(0),
    "step": Items("a list of epochs (integers >= 0), e.g. [250]", integer(0)),
    "batch_size": integer(1),
    "num_epoch": integer(1),
    "device": Device("auto, cpu, cuda or cuda:N"),
    "amp": one_of(False, "bf16", True, note="true = bf16"),
    "memory_budget_gb": number(0, lo_open=True),
}
PRETRAIN: Schema = {
    **COMMON,
    "stream": STREAM,
    "model_args": {**LEARNER, **ENCODER},
    "train_feeder_args": FEEDER,
    "save_interval": integer(0, note="epochs between kept snapshots; 0: none"),
    "compile": BOOL,
    "log_every": integer(1),
    "tensorboard": BOOL,
    "deterministic": BOOL,
}
EVALUATION: Schema = {
    **COMMON,
    "stream": one_of("joint", "motion", "bone", "all"),
    "model_args": ENCODER,
    "ignore_weights": Items("a list of parameter name prefixes", Text("a name")),
    "test_batch_size": integer(1),
    "eval_interval": integer(note="<= 0: only after the last epoch"),
    "drop_last": BOOL,
}
# One schema per configuration kind: pretrain and the evaluation presets (knn uses linear's).
SCHEMAS: dict[str, Schema] = {
    "pretrain": PRETRAIN,
    "linear": EVALUATION,
    "semi": {**EVALUATION, "train_feeder_args": FEEDER,
             "label_fraction": number(0, 1, lo_open=True)},
    "finetune": {**EVALUATION, "train_feeder_args": FEEDER},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "pretrain": ("base_lr", "weight_decay", "batch_size", "num_epoch"),
    "linear": ("base_lr", "batch_size", "num_epoch"),
    "semi": ("base_lr", "batch_size", "num_epoch"),
    "finetune": ("base_lr", "batch_size", "num_epoch"),
}

# Keys of the reference implementation's configs (and its processors' options) that mean
# nothing here: dropped with a warning, a hint where there is something to do instead.
REFERENCE_ONLY: dict[str, str] = {
    "work_dir": "outputs go to the workspace, --workdir",
    "config": "", "phase": "", "save_result": "", "start_epoch": "a run resumes by itself",
    "use_gpu": "see device", "log_interval": "", "save_log": "", "print_log": "",
    "pavi_log": "", "num_worker": "", "debug": "", "show_topk": "",
    "feeder": "", "train_feeder": "data comes from the workspace's stores",
    "test_feeder": "", "test_feeder_args": "",
    "model": "the learner is ASAR on asar_model's ST-GCN",
    "mining_epoch": "", "topk": "relabeling's neighbours are model_args.topk",
    "weights": "", "train_feeder_args.data_path": "", "train_feeder_args.label_path": "",
    "train_feeder_args.mmap": "", "train_feeder_args.debug": "",
    "model_args.base_encoder": "the encoder is asar_model's ST-GCN",
}
IGNORED: dict[str, dict[str, str]] = {
    "pretrain": {**REFERENCE_ONLY, "weights": "pre-training starts from the reference init",
                 "ignore_weights": "", "test_batch_size": "", "eval_interval": ""},
    "linear": {**REFERENCE_ONLY, "weights": "give --weights", "save_interval": "",
               "train_feeder_args": "linear evaluation does not augment",
               **{f"model_args.{k}": "" for k in LEARNER}},
}
IGNORED["semi"] = IGNORED["finetune"] = {
    k: v for k, v in IGNORED["linear"].items() if k != "train_feeder_args"}


def validate_config(cfg: Mapping[str, Any], kind: str) -> tuple[dict[str, Any], list[str]]:
    """Check a resolved configuration of ``kind`` (pretrain, linear, semi, finetune).

    Returns (the configuration to run with: keys that mean nothing here dropped, GPU lists
    read as devices, numbers written as text read as numbers; warnings, one line each).
    Raises ConfigError (one line) for an unknown key (with a did-you-mean), a value of the
    wrong type or range, a missing required key, or keys that contradict each other.
    """
    if kind not in SCHEMAS:
        raise ConfigError(f"unknown configuration kind {kind!r}: {', '.join(SCHEMAS)}")
    schema, ignored = SCHEMAS[kind], IGNORED[kind]
    dropped: list[str] = []
    out = _check_section(cfg, schema, ignored, "", dropped, kind)
    for key in REQUIRED[kind]:
        if key not in out:
            raise ConfigError(f"configuration key {key} is missing ({schema[key].allowed}): "
                              f"add it to the config file or --set {key}=...")
    _check_together(out, kind)
    notes = []
    if dropped:
        hints = [f"{k}: {ignored[k]}" for k in dropped if ignored[k]]
        notes.append(f"ignored configuration keys that mean nothing here: {', '.join(dropped)}"
                     + (f". {'; '.join(hints)}" if hints else ""))
    gpus = cfg.get("device")
    if isinstance(gpus, list) and len(gpus) > 1:
        notes.append(f"device {gpus}: one process trains on one GPU (device cuda); to train "
                     f"on {len(gpus)} GPUs give --nproc {len(gpus)} (pick them with "
                     f"CUDA_VISIBLE_DEVICES={','.join(map(str, gpus))})")
    return out, notes


def _check_section(values: Mapping[str, Any], schema: Schema, ignored: Mapping[str, str],
                   prefix: str, dropped: list[str], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if name in ignored:
            dropped.append(name)
            continue
        rule = schema.get(key) if isinstance(key, str) else None
        if rule is None:
            raise ConfigError(_unknown(name, kind))
        if isinstance(rule, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"configuration key {name} must be a section of keys "
                                  f"({', '.join(rule)}), not {value!r}")
            out[key] = _check_section(value, rule, ignored, f"{name}.", dropped, kind)
            continue
        try:
            out[key] = rule.accept(value)
        except _Refused:
            raise ConfigError(f"configuration key {name}: {_shown(value)} is not allowed; "
                              f"expected {rule.allowed}") from None
    return out


def _check_together(cfg: Mapping[str, Any], kind: str) -> None:
    """Keys that are fine alone but contradict each other."""
    if kind != "pretrain":
        return
    args = cfg.get("model_args") or {}
    queue, batch = args.get("queue_size", 32768), cfg["batch_size"]
    if queue < batch:
        raise ConfigError(f"model_args.queue_size {queue} is smaller than batch_size {batch}: "
                          "every step enqueues a whole batch of keys")
    if args.get("topk", 5) > queue:
        raise ConfigError(f"model_args.topk {args['topk']} is larger than "
                          f"model_args.queue_size {queue}")


def known_keys(kind: str) -> list[str]:
    """Every dotted key a configuration of ``kind`` may hold (ignored ones included)."""
    def walk(schema: Schema, prefix: str) -> list[str]:
        names = []
        for k, v in schema.items():
            names.append(prefix + k)
            if isinstance(v, dict):
                names += walk(v, f"{prefix}{k}.")
        return names

    return walk(SCHEMAS[kind], "") + list(IGNORED[kind])


def _unknown(name: str, kind: str) -> str:
    """The one-line refusal of an unknown key, with the closest known keys: a near spelling
    in the same section first, else the same name in another section (``queue_size`` for
    ``model_args.queue_size``)."""
    known = known_keys(kind)
    section, _, leaf = name.rpartition(".")
    here = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == section}
    close = [here[m] for m in difflib.get_close_matches(leaf, here, n=2, cutoff=0.75)]
    if not close:
        elsewhere = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] != section}
        close = [elsewhere[m] for m in difflib.get_close_matches(leaf, elsewhere, n=1,
                                                                 cutoff=0.85)]
    msg = f"unknown configuration key {name!r} in a {kind} configuration"
    if close:
        return msg + f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    takes = [k for k, full in here.items() if full not in IGNORED[kind]]
    return msg + f"; {section or 'the top level'} takes: {', '.join(takes)}"
