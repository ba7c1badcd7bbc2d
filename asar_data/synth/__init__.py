"""Synthetic skeleton datasets written in the real raw formats (NTU `.skeleton`, PKU-MMD).

Articulated motions of a 25-joint body (one per action class, see `motions.py`),
per-subject bodies and styles, Kinect cameras and sensor noise, formatted exactly like
the official files, deterministically for a seed.
"""
from .common import SynthSummary
from .motions import CLASS_NAMES, LIBRARY, MUTUAL_IDS
from .ntu import plan_ntu, write_ntu_dataset
from .pku import pku_class_names, write_pku_dataset, write_pku_skeletons_for_labels

__all__ = [
    "CLASS_NAMES", "LIBRARY", "MUTUAL_IDS", "SynthSummary", "pku_class_names", "plan_ntu",
    "write_ntu_dataset", "write_pku_dataset", "write_pku_skeletons_for_labels",
]
