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
