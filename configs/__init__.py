"""YAML presets mirroring the reference configs: `pretrain/<name>.yaml`, `linear/<name>.yaml`."""
from pathlib import Path

PRESETS = Path(__file__).resolve().parent
