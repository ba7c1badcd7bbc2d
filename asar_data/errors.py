"""The one base class of expected failures, shared by every room.

An expected failure is caused by what the user gave or by the machine (a bad file, a
bad option, a missing stage output, a lock held by another run, a full disk), never
by a bug. The CLI prints its message as one line and exits with status 2; anything
else is unexpected: one line with the path of a crash log, exit status 1. So raise an
`AsarError` (or a subclass) only where the message tells the user what to do.
"""
from __future__ import annotations


class AsarError(Exception):
    """An expected failure: its message names the file or option and what to do."""
