"""Progress reporting that stages call and the CLI renders (on stderr).

Stages take a `Progress`; the default one is silent, the CLI passes a rich one (or a
silent one for `--quiet`). A bar has a level: the runner opens one ``run`` bar for a
whole stage run (epoch k of N with the run's ETA, for pre-training), and work inside a
shard opens ``step`` bars below it (the steps of one epoch), which disappear when done.
"""
from __future__ import annotations

from typing import Any, Literal

Level = Literal["run", "step"]


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

    def bar(self, description: str, total: int | None, completed: int = 0, unit: str = "",
            level: Level = "step") -> Bar:
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
    """Bars and notes on a rich console: one live display holds every open bar."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._live: Any = None
        self._open = 0

    def _display(self) -> Any:
        if self._live is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RP

            self._live = RP(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=self.console, transient=False,
            )
            self._live.start()
        return self._live

    def bar(self, description: str, total: int | None, completed: int = 0, unit: str = "",
            level: Level = "step") -> Bar:
        self._open += 1
        return _RichBar(self, description, total, completed, unit, level)

    def _closed(self) -> None:
        self._open -= 1
        if self._open == 0 and self._live is not None:
            self._live.stop()
            self._live = None

    def note(self, message: str) -> None:
        self.console.print(message)


class _RichBar(Bar):
    def __init__(self, owner: RichProgress, description: str, total: int | None,
                 completed: int, unit: str, level: Level) -> None:
        self._owner = owner
        self._p = owner._display()
        self._level = level
        self._fields: dict[str, Any] = {}
        self._task = self._p.add_task(description, total=total, completed=completed,
                                      unit=unit, info="")

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
        if self._task is None:
            return
        if self._level == "step":  # a shard's inner bar: gone once done
            self._p.remove_task(self._task)
        self._task = None
        self._owner._closed()
