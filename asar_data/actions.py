"""Action class names, shipped as data (`asar_data/lists/actions_*.txt`).

- NTU RGB+D 120 (A001-A120) and NTU RGB+D (the first 60): the dataset authors' list.
- PKU-MMD (1-51, parts I and II): the release's action table.
- Synthetic stores (`synth*`, e.g. the demo's `synth60`): the names of the synthetic
  motions (`asar_data.synth.motions`), which describe what the generated skeletons do;
  they are numbered like NTU but are not NTU's actions.
- Anything else (an imported reference folder, an unknown name): "class 0", "class 1", ...
  (the label values as stored).

Label ``i`` (0-based, as stored) has the name at position ``i``.
"""
from __future__ import annotations

from functools import cache
from importlib import resources

_LISTS = {"ntu": "actions_ntu120.txt", "pku": "actions_pku_mmd.txt"}
_KINDS = {"ntu60": "ntu", "ntu120": "ntu", "ntu": "ntu",
          "pku1": "pku", "pku2": "pku", "pku": "pku", "pku-mmd": "pku", "pkummd": "pku"}


@cache
def official_names(kind: str) -> tuple[str, ...]:
    """The whole shipped list of a kind ("ntu": 120 names, "pku": 51), in label order."""
    text = resources.files("asar_data").joinpath("lists", _LISTS[kind]).read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.startswith("#"))


def known_names(dataset_or_kind: str) -> tuple[str, ...]:
    """Every name known for a dataset (ntu60 / ntu120 / pku1 / pku2 / synth*) or kind
    (ntu / pku); empty for anything else."""
    key = dataset_or_kind.lower()
    if key in _KINDS:
        return official_names(_KINDS[key])
    if key.startswith("synth"):
        from asar_data.synth.motions import CLASS_NAMES

        return CLASS_NAMES
    return ()


def action_names(dataset_or_kind: str, classes: int) -> list[str]:
    """``classes`` names for labels 0..classes-1 of a dataset or kind (see the module
    docstring); labels beyond the known list (or of an unknown dataset) get "class N"."""
    known = known_names(dataset_or_kind)
    return [known[i] if i < len(known) else f"class {i}" for i in range(classes)]
