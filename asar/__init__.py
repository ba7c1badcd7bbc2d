"""asar: self-supervised skeleton action representation learning with ASAR (ICIP 2023).

The public Python API (the `asar-cli` commands are the other way in). Filled in by
issue 14; see the README's "Python API" section.
"""
from __future__ import annotations
