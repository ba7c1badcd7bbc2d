"""Progress reporting that stages call and the CLI renders.

Stages take a `Progress`; the default one is silent, the CLI passes a rich one.
"""
from __future__ import annotations

from typing import Any


class Bar:
    """A silent progress bar."""

    def advance(self, n: int = 1, **fields: Any) -> None:
        pass

    def update(self, completed: int | None = None, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Silent progress: override `bar` and `note` to show it."""

    def bar(self, description: str, total: int | None, completed: int = 0, unit: str = "") -> Bar:
        return Bar()

    def note(self, message: str) -> None:
        pass


class RecordingProgress(Progress):
    """Keeps the notes it is given (for tests and summaries)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


class RichProgress(Progress):
    """Progress bars and notes on a rich console."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)

    def bar(self, description: str, total: int | None, completed: int = 0, unit: str = "") -> Bar:
        return _RichBar(self.console, description, total, completed, unit)

    def note(self, message: str) -> None:
        self.console.print(message)


class _RichBar(Bar):
    def __init__(self, console: Any, description: str, total: int | None, completed: int,
                 unit: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RP

        self._fields: dict[str, Any] = {}
        self._p = RP(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
        )
        self._p.start()
        self._task = self._p.add_task(description, total=total, completed=completed, info="")

    def _info(self, fields: dict[str, Any]) -> str:
        self._fields.update(fields)
        return "  ".join(f"{k} {v}" for k, v in self._fields.items())

    def advance(self, n: int = 1, **fields: Any) -> None:
        self._p.update(self._task, advance=n, info=self._info(fields))

    def update(self, completed: int | None = None, **fields: Any) -> None:
        kw: dict[str, Any] = {"info": self._info(fields)}
        if completed is not None:
            kw["completed"] = completed
        self._p.update(self._task, **kw)

    def close(self) -> None:
        self._p.stop()
