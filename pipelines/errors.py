"""Errors stages raise for the CLI to show as one line (no traceback)."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
