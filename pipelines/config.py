"""Configuration as data: presets, config files and `--set key=value` overrides.

A preset is a YAML file in `pipelines/presets/<kind>/` (package data) named
`<dataset>-<benchmark>` (the six
reference configs); `--config FILE.yaml` reads any file of the same keys; each
`--set a.b=value` replaces one (dotted, nested) key, the value read as YAML. The
resolved configuration is saved with every run.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from asar_data.errors import AsarError

PRESETS = Path(__file__).resolve().parent / "presets"
# keys that change how fast a run goes, not what it computes: left out of fingerprints
RUNTIME_KEYS = ("device", "compile", "memory_budget_gb", "log_every", "tensorboard")


class ConfigError(AsarError, ValueError):
    """A bad preset name, config file or override."""


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
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
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


def apply_overrides(cfg: dict[str, Any], overrides: list[str], known: dict | None = None
                    ) -> dict[str, Any]:
    """A copy of cfg with each `key=value` applied; a key unknown to `known` is refused."""
    out = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set takes key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set takes key=value, got {item!r}")
        if known is not None and get_key(known, key, _MISSING) is _MISSING:
            raise ConfigError(f"unknown configuration key {key!r} (--set {item})")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item}: value is not valid YAML ({e})") from e
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


_MISSING = object()


def validate_config(cfg: dict[str, Any], kind: str) -> list[str]:
    """Refuse a configuration that cannot run (ConfigError naming the key); returns
    warnings. Placeholder checks until the full schema lands."""
    for key in ("num_epoch", "batch_size"):
        if key in cfg and (not isinstance(cfg[key], int) or isinstance(cfg[key], bool)
                           or cfg[key] < 1):
            raise ConfigError(f"{key} must be a whole number of at least 1, not {cfg[key]!r}")
    return []


# -- resolution: preset or file, workspace defaults, overrides ------------------------------
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
                   dataset: str | None, benchmark: str | None, overrides: tuple[str, ...] = (),
                   seed: int | None = None, deterministic: bool = False,
                   choose: Any = None) -> dict[str, Any]:
    """The configuration a command runs with: preset or file, workspace defaults, overrides.

    Dataset: --dataset, else the preset's when the workspace has it, else the workspace's
    only dataset (``choose(requested)`` picks, default `Workspace.choose_dataset`).
    Benchmark: --benchmark, else the preset's when the dataset has it, else the dataset's
    default. Preset: --preset / --config, else `<dataset>-<benchmark>`.
    """
    choose = choose or ws.choose_dataset
    base: dict[str, Any] | None = None
    if preset and config:
        raise ConfigError("give --preset or --config, not both")
    if config:
        base = load_yaml(config)
    elif preset:
        base = load_preset(kind, preset)
    if dataset is None and base is not None and base.get("dataset") in ws.datasets():
        dataset = base["dataset"]
    dataset = choose(dataset)
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
    return cfg
