"""The workspace: one folder (or URL prefix) holding every stage's output and manifest.

    <workdir>/<dataset>/raw.zarr            raw.manifest.json      ingest-report.csv
    <workdir>/<dataset>/frames50.zarr       frames50.manifest.json
    <workdir>/<dataset>/runs/<run>/         manifest.json, config.yaml, checkpoint.pt, ...
    <workdir>/<dataset>/eval/<name>/        manifest.json, result.json, confusion.png

The workdir comes from `--workdir`, else the ASAR_WORKDIR environment variable,
else `./asar-work`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from asar_data import storage
from asar_data.errors import AsarError
from pipelines.manifest import Manifest

DEFAULT_WORKDIR = "./asar-work"
WORKDIR_ENV = "ASAR_WORKDIR"


def default_workdir() -> str:
    return os.environ.get(WORKDIR_ENV) or DEFAULT_WORKDIR


class WorkspaceError(AsarError):
    """A user-facing problem with the workspace (missing stage output, ambiguous dataset)."""


@dataclass(frozen=True)
class Output:
    """A stage output and the manifest beside it."""

    store: str
    manifest: str

    def load_manifest(self) -> Manifest | None:
        return Manifest.load(self.manifest)


class Workspace:
    def __init__(self, root: str | None = None):
        self.root = storage.normalise(root or default_workdir())

    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def relative(self, location: str) -> str:
        """A location inside the workspace as a path relative to its root (manifests record
        these, so a workspace can be moved or copied)."""
        root = self.root.rstrip("/\\")
        if location.startswith(root + "/") or location.startswith(root + "\\"):
            return location[len(root) + 1:].replace("\\", "/")
        return location

    def resolve(self, recorded: str) -> str:
        """The location of a path recorded relative to the workspace root (absolute ones as is)."""
        if storage.is_url(recorded) or os.path.isabs(recorded):
            return recorded
        return self.path(*recorded.split("/"))

    def raw(self, dataset: str) -> Output:
        return Output(self.path(dataset, "raw.zarr"), self.path(dataset, "raw.manifest.json"))

    def frames(self, dataset: str, frames: int = 50) -> Output:
        stem = f"frames{frames}"
        return Output(self.path(dataset, f"{stem}.zarr"),
                      self.path(dataset, f"{stem}.manifest.json"))

    def ingest_report(self, dataset: str) -> str:
        return self.path(dataset, "ingest-report.csv")

    def run_dir(self, dataset: str, run: str) -> str:
        return self.path(dataset, "runs", run)

    def eval_dir(self, dataset: str, name: str) -> str:
        return self.path(dataset, "eval", name)

    def datasets(self) -> list[str]:
        """Datasets with an ingest manifest (complete or not), sorted."""
        return [d for d in storage.list_dirs(self.root) if storage.exists(self.raw(d).manifest)]

    def frames_outputs(self, dataset: str) -> list[tuple[int, Output]]:
        """(frame count, output) of every downsample output of a dataset."""
        out = []
        folder = self.path(dataset)
        for e in storage.list_files(folder) if storage.isdir(folder) else []:
            name = e.name
            if name.startswith("frames") and name.endswith(".manifest.json"):
                digits = name[len("frames"):-len(".manifest.json")]
                if digits.isdigit():
                    out.append((int(digits), self.frames(dataset, int(digits))))
        return sorted(out)

    def choose_dataset(self, requested: str | None) -> str:
        """The dataset a bare command acts on.

        The requested one if given; else the only dataset of the workspace; several
        raise a WorkspaceError listing them (the CLI turns it into a choice).
        """
        names = self.datasets()
        if requested:
            return requested
        if not names:
            raise WorkspaceError(
                f"no dataset in workspace {self.root}: run `asar-cli ingest ...` first "
                "(or `asar-cli demo` for the synthetic one)"
            )
        if len(names) > 1:
            raise AmbiguousDataset(names)
        return names[0]

    def complete_manifest(self, out: Output, what: str, command: str) -> Manifest:
        """The manifest of a complete output, or a WorkspaceError naming the command to run."""
        m = out.load_manifest()
        if m is None or not storage.exists(out.store):
            raise WorkspaceError(f"no {what} at {out.store}: run `{command}` first")
        if not m.complete:
            done, total = m.progress
            raise WorkspaceError(
                f"{what} at {out.store} is incomplete ({done} of {total} shards): "
                f"run `{command}` again to finish it"
            )
        return m


class AmbiguousDataset(WorkspaceError):
    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(
            "the workspace holds several datasets: " + ", ".join(names) + "; name one"
        )
