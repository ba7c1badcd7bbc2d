"""Errors stages raise for the CLI to show as one line (no traceback)."""
from __future__ import annotations

from asar_data.errors import AsarError


class NonFiniteLoss(AsarError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
