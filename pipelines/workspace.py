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
import string
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


NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._+=-")


def _is_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and set(name) <= NAME_CHARS


def check_name(kind: str, name: str) -> str:
    """A dataset, run or evaluation name, checked to be a name and not a path.

    Letters, digits and ``. _ + = -``, not starting with a dot (temporary and hidden
    folders start with one): ``..``, ``/abs``, ``a/b`` and the empty name are refused.
    """
    if not isinstance(name, str) or not _is_name(name):
        raise WorkspaceError(
            f"{kind} name {name!r} is not a plain name: use letters, digits and . _ + = - "
            "(no slashes, no leading dot); it names a folder inside the workspace")
    return name


@dataclass(frozen=True)
class Output:
    """A stage output (a store or a folder), its manifest and its lock.

    ``what`` names it in messages ("raw store of ntu60").
    """

    store: str
    manifest: str
    lock: str = ""
    what: str = ""

    @property
    def location(self) -> str:
        return self.store

    def load_manifest(self) -> Manifest | None:
        return Manifest.load(self.manifest)


class Workspace:
    def __init__(self, root: str | None = None):
        self.root = storage.normalise(root or default_workdir())
        if not storage.is_url(self.root) and os.path.exists(self.root) and \
                not os.path.isdir(self.root):
            raise WorkspaceError(f"workspace {self.root} is a file, not a folder: give "
                                 "--workdir a folder (it is created when missing)")

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
        d = check_name("dataset", dataset)
        return Output(self.path(d, "raw.zarr"), self.path(d, "raw.manifest.json"),
                      self.path(d, "raw.lock"), f"the raw store of {d}")

    def frames(self, dataset: str, frames: int = 50) -> Output:
        d, stem = check_name("dataset", dataset), f"frames{int(frames)}"
        return Output(self.path(d, f"{stem}.zarr"), self.path(d, f"{stem}.manifest.json"),
                      self.path(d, f"{stem}.lock"), f"the {int(frames)}-frame store of {d}")

    def ingest_report(self, dataset: str) -> str:
        return self.path(check_name("dataset", dataset), "ingest-report.csv")

    def run_dir(self, dataset: str, run: str) -> str:
        return self.path(check_name("dataset", dataset), "runs", check_name("run", run))

    def run(self, dataset: str, run: str) -> Output:
        """A pre-training run folder; its lock lies beside it (the folder may be replaced)."""
        d = self.run_dir(dataset, run)
        return Output(d, storage.join(d, "manifest.json"), d + ".lock",
                      f"pre-training run {run} of {dataset}")

    def eval_dir(self, dataset: str, name: str) -> str:
        return self.path(check_name("dataset", dataset), "eval", check_name("evaluation", name))

    def evaluation(self, dataset: str, name: str) -> Output:
        """An evaluation folder (swapped in whole); its lock lies beside it."""
        d = self.eval_dir(dataset, name)
        return Output(d, storage.join(d, "manifest.json"), d + ".lock",
                      f"evaluation {name} of {dataset}")

    def dataset_folders(self) -> list[str]:
        """Every folder of the workspace that can be a dataset (complete or not), sorted."""
        return [d for d in storage.list_dirs(self.root) if _is_name(d)]

    def names(self, dataset: str, kind: str) -> list[str]:
        """Run (``kind="runs"``) or evaluation (``"eval"``) names of a dataset: their
        folders and the locks of ones being written for the first time."""
        folder = self.path(check_name("dataset", dataset), kind)
        if not storage.isdir(folder):
            return []
        found = set(storage.list_dirs(folder))
        found |= {e.name[:-len(".lock")] for e in storage.list_files(folder)
                  if e.name.endswith(".lock")}
        return sorted(n for n in found if _is_name(n))

    def report(self, dataset: str | None = None) -> Output:
        """The HTML report of the workspace, or of one dataset (a folder swapped in whole)."""
        d = self.path("report") if dataset is None else self.path(check_name("dataset", dataset),
                                                                  "report")
        return Output(d, storage.join(d, "manifest.json"), d + ".lock",
                      "the report" + ("" if dataset is None else f" of {dataset}"))

    def datasets(self) -> list[str]:
        """Datasets with an ingest manifest (complete or not), sorted."""
        return [d for d in self.dataset_folders() if storage.exists(self.raw(d).manifest)]

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
        if requested:
            return check_name("dataset", requested)
        names = self.datasets()
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
