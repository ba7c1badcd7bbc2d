"""asar-cli: raw skeleton files -> zarr stores -> ASAR pre-training -> evaluation.

Thin click commands: parse options, call a stage in `pipelines/`, render the result.
Results (tables, summaries; one JSON object with `--json`) go to stdout; progress and
notes to stderr (`--quiet` hides them). Heavy libraries (torch, dask, zarr) are imported
inside the commands that need them, so `asar-cli --help` is instant.

Errors: an expected failure (`asar_data.errors.AsarError`, a full disk, a read-only
workspace) is one red line and exit status 2; anything else is a bug: one line with the
path of a crash log holding the traceback, exit status 1.
"""
from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from pipelines.config import dataset_defaults, resolve_config

WORKDIR_HELP = (
    "Workspace holding every stage's output and manifest "
    "[default: $ASAR_WORKDIR, else ./asar-work]."
)
# OS errors a user can act on (free space, fix permissions): one line, not a crash
EXPECTED_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                  errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


class UserError(click.ClickException):
    """An error the user can act on: printed without a traceback, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", fg="red", err=True)


class Crash(click.ClickException):
    """A bug: one line naming the crash log, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", fg="red", err=True)


def crash_log(exc: BaseException) -> str:
    """Write the traceback of an unexpected exception to a log file; returns its path."""
    import tempfile
    import time
    import traceback

    text = (f"asar-cli {' '.join(sys.argv[1:])}\n{time.ctime()}\n\n"
            + "".join(traceback.format_exception(exc)))
    for folder in (os.path.join(os.path.expanduser("~"), ".cache", "asar", "crashes"),
                   tempfile.gettempdir()):
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"crash-{time.strftime('%Y%m%d-%H%M%S')}-"
                                        f"{os.getpid()}.log")
            with open(path, "w") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return "(no crash log: nowhere to write it)"


class AsarGroup(click.Group):
    """The command group: keeps the raw arguments (to relaunch under torchrun) and turns
    exceptions into the error policy above."""

    raw_args: list[str] = []

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:
        AsarGroup.raw_args = list(sys.argv[1:] if args is None else args)
        return super().main(args, *a, **kw)

    def invoke(self, ctx: click.Context) -> Any:
        from asar_data.errors import AsarError

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except AsarError as e:
            raise UserError(str(e)) from e
        except OSError as e:
            if e.errno in EXPECTED_ERRNO:
                where = f" {e.filename}" if e.filename else ""
                raise UserError(f"cannot use{where}: {e.strerror}; free some space, fix the "
                                "permissions or choose another --workdir / --out") from e
            raise Crash(_crash_line(e)) from e
        except Exception as e:
            raise Crash(_crash_line(e)) from e


def _crash_line(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return (f"unexpected {type(e).__name__}{': ' + first if first else ''} (a bug; the "
            f"traceback is in {crash_log(e)} - please report it)")


# ------------------------------------------------------------------ shared options


def workdir_option(fn: Callable) -> Callable:
    return click.option(
        "--workdir", "-w", type=str, default=None, envvar="ASAR_WORKDIR",
        show_envvar=False, help=WORKDIR_HELP,
    )(fn)


def output_options(fn: Callable) -> Callable:
    """--json (one machine-readable object on stdout) and --quiet (no progress)."""
    fn = click.option("--quiet", "-q", is_flag=True,
                      help="No progress bars or notes on stderr (errors still show).")(fn)
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object with the result on stdout, nothing "
                             "else.")(fn)


def wait_option(fn: Callable) -> Callable:
    return click.option("--wait", is_flag=True,
                        help="When another run is writing the same output, wait for it "
                             "instead of stopping.")(fn)


def cluster_options(fn: Callable) -> Callable:
    fn = click.option(
        "--scheduler", type=str, default=None, metavar="ADDRESS",
        help="Run shards on an existing dask.distributed cluster (e.g. tcp://host:8786).",
    )(fn)
    fn = click.option(
        "--workers", type=click.IntRange(min=1), default=None,
        help="Local worker processes (forked) [default: CPU count, max 8].",
    )(fn)
    fn = wait_option(fn)
    return click.option("--force", is_flag=True, help="Redo the stage even if it is up to date.")(
        fn
    )


def console(stderr: bool = True):
    """A rich console; wide when output is not a terminal (logs, pipes, CI)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def progress(quiet: bool = False):
    from pipelines.progress import Progress, RichProgress

    return Progress() if quiet else RichProgress(console())


def workspace(workdir: str | None):
    from pipelines.workspace import Workspace

    return Workspace(workdir)


def dataset_prompt() -> Callable[[list[str]], str] | None:
    """Asks which of several datasets when stdin is a TTY; None (an error then) otherwise."""
    if not sys.stdin.isatty():
        return None
    return lambda names: click.prompt("Dataset", type=click.Choice(names))


def choose_dataset(ws: Any, requested: str | None) -> str:
    """The dataset a command acts on; asks when the workspace holds several and stdin is a TTY."""
    from pipelines.workspace import AmbiguousDataset

    try:
        return ws.choose_dataset(requested)
    except AmbiguousDataset as e:
        ask = dataset_prompt()
        if ask is None:
            raise
        return ask(e.names)


def warn(note: str) -> None:
    """One yellow line on stderr (configuration keys ignored or reinterpreted)."""
    if os.environ.get("RANK", "0") == "0":  # once under torchrun
        click.secho(f"warning: {note}", fg="yellow", err=True)


def emit(as_json: bool, data: Any, title: str, rows: list[tuple[str, Any]]) -> None:
    """The result of a command on stdout: a two-column table, or ``data`` as JSON."""
    if as_json:
        click.echo(json.dumps(data, default=str))
        return
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, str(v))
    console(stderr=False).print(table)


def note(quiet: bool, message: str) -> None:
    if not quiet:
        console().print(message)


# ------------------------------------------------------------------ the group


@click.group(cls=AsarGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="asar", prog_name="asar-cli")
def main() -> None:
    """Self-supervised skeleton action representation learning with ASAR.

    Stages, each caching its output in a workspace (--workdir) and skipped when
    nothing it depends on changed:

    \b
      asar-cli ingest ntu --raw DIR       raw .skeleton files -> <dataset>/raw.zarr
      asar-cli downsample                 raw store -> 50-frame store (frames50.zarr)
      asar-cli pretrain                   ASAR pre-training of an ST-GCN encoder
      asar-cli evaluate --weights CKPT    linear / k-NN / semi-supervised / fine-tune
      asar-cli report                     one HTML page of every run and evaluation

    Without a dataset name, a command acts on the workspace's only dataset and its
    default benchmark (NTU-60 xview, NTU-120 xsub, PKU-MMD cs). `asar-cli demo`
    runs everything on a synthetic dataset; `asar-cli status` shows what is done.
    Results go to stdout (--json for one JSON object), progress to stderr (--quiet).
    """


# ------------------------------------------------------------------ synth


@main.group()
def synth() -> None:
    """Write a synthetic dataset in the exact raw formats of NTU RGB+D or PKU-MMD."""


def synth_options(fn: Callable) -> Callable:
    fn = click.option("--seed", default=0, show_default=True, type=int,
                      help="Same seed, same bytes.")(fn)
    return click.option("--out", required=True, type=click.Path(file_okay=False),
                        help="Folder to write.")(fn)


@synth.command("ntu")
@synth_options
@click.option("--samples", default=1200, show_default=True, type=click.IntRange(min=1),
              help="Sample files to write.")
@click.option("--classes", default=10, show_default=True, type=click.IntRange(1, 120),
              help="Action classes (distinct motions; A050-A060 are two-person).")
@click.option("--dataset", type=click.Choice(["ntu60", "ntu120"]), default="ntu60",
              show_default=True, help="Name ranges (setups, subjects, actions) to draw from.")
def synth_ntu(out: str, samples: int, classes: int, seed: int, dataset: str) -> None:
    """NTU `SsssCcccPpppRrrrAaaa.skeleton` files of distinct articulated motions."""
    from asar_data.synth import write_ntu_dataset

    if dataset == "ntu60" and classes > 60:
        raise UserError("ntu60 has 60 action classes; use --dataset ntu120 for more")
    with progress().bar("synth ntu", total=samples, unit="files") as bar:
        summary = write_ntu_dataset(out, samples=samples, classes=classes, seed=seed,
                                    dataset=dataset, progress=lambda n: bar.update(completed=n))
    emit(False, None, "synthetic NTU dataset", [("folder", out), *_summary_rows(summary)])


@synth.command("pku")
@synth_options
@click.option("--videos", default=12, show_default=True, type=click.IntRange(min=1),
              help="Performances (each seen from the L, M and R views).")
@click.option("--classes", default=51, show_default=True, type=click.IntRange(1, 51),
              help="Action classes used in the videos.")
def synth_pku(out: str, videos: int, classes: int, seed: int) -> None:
    """PKU-MMD part I layout: long skeleton files, label files and the two split files."""
    from asar_data.synth import write_pku_dataset

    with progress().bar("synth pku", total=videos * 3, unit="files") as bar:
        summary = write_pku_dataset(out, videos=videos, classes=classes, seed=seed,
                                    progress=lambda n: bar.update(completed=n))
    emit(False, None, "synthetic PKU-MMD dataset", [("folder", out), *_summary_rows(summary)])


def _summary_rows(summary: Any) -> list[tuple[str, Any]]:
    from dataclasses import asdict, is_dataclass

    d = asdict(summary) if is_dataclass(summary) else dict(summary)
    return [(k.replace("_", " "), v) for k, v in d.items()
            if not isinstance(v, list | dict | tuple)]


# ------------------------------------------------------------------ ingest


@main.group()
def ingest() -> None:
    """Parse raw files into a raw zarr store (<workdir>/<dataset>/raw.zarr).

    Parallel over shards of files, resumable after a kill, skipped when the raw
    files and options are unchanged. Bad files never stop the stage: each is listed
    with its line and reason in <workdir>/<dataset>/ingest-report.csv.
    """


def _ingest_summary(result: Any, as_json: bool, quiet: bool) -> None:
    s = result.summary
    dataset = result.dataset
    if result.action == "skip" and not as_json:
        note(quiet, f"[green]{dataset}[/]: up to date, nothing to do ({result.output})")
    rows = [("dataset", dataset), ("store", result.output),
            ("samples", s.get("samples")), ("frames", s.get("frames"))]
    for key in ("files", "candidate_files", "missing_list_skipped", "ignored_files"):
        if key in s:
            rows.append((key.replace("_", " "), s[key]))
    by_action = s.get("problems_by_action", {})
    rows.append(("problems", ", ".join(f"{v} {k}" for k, v in sorted(by_action.items())) or "none"))
    if s.get("bytes") and s.get("seconds"):
        rows.append(("speed", f"{s['bytes'] / s['seconds'] / 1e6:.1f} MB/s"))
    rows.append(("seconds", s.get("seconds")))
    report = result.report
    rows.append(("report", report))
    emit(as_json, result.to_json(), f"ingest {dataset}", rows)
    if not as_json:
        _print_problems(result.problems, report)


def _print_problems(problems: list[Any], report: str, examples: int = 3) -> None:
    """Skipped and repaired files grouped by reason, a few examples each (all in the report)."""
    import re

    groups: dict[tuple[str, str], list[Any]] = {}
    for p in problems:
        if p.action != "ignored":
            kind = re.sub(r"\d+|\"[^\"]*\"", "#", p.reason)  # group "line 3" with "line 7"
            groups.setdefault((p.action, kind), []).append(p)
    out = console(stderr=False)
    for (action, _), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(f"{p.file}" + (f" line {p.line}" if p.line else "")
                          for p in items[:examples])
        more = f" and {len(items) - examples} more" if len(items) > examples else ""
        out.print(f"  [yellow]{len(items)} {action}[/]: {items[0].reason} ({shown}{more})")
    if groups:
        out.print(f"  every problem, with its line and reason: {report}")


@ingest.command("ntu")
@click.option("--raw", "raw", required=True,
              help="Folder of NTU .skeleton files (searched recursively; a path or URL).")
@click.option("--dataset", type=click.Choice(["ntu60", "ntu120"]), default=None,
              help="Which dataset [default: detected from the file names].")
@click.option("--keep-missing", is_flag=True,
              help="Keep the samples on the official missing-skeleton list (skipped by default).")
@click.option("--max-bodies", default=4, show_default=True, type=click.IntRange(2, 8),
              help="Bodies kept per frame, in file order (the models use the first two).")
@click.option("--shard-files", default=256, show_default=True, type=click.IntRange(min=1),
              help="Files per shard (the unit of parallel work and of resume).")
@click.option("--name", default=None,
              help="Store the dataset under another name [default: ntu60 / ntu120].")
@workdir_option
@cluster_options
@output_options
def ingest_ntu_cmd(raw, dataset, keep_missing, max_bodies, shard_files, name, workdir, force,
                   wait, workers, scheduler, as_json, quiet):
    """NTU RGB+D 60 / 120 `.skeleton` files -> ntu60 or ntu120 raw store."""
    from pipelines.ingest import ingest_ntu

    result = ingest_ntu(workspace(workdir), raw, dataset=dataset, bodies=max_bodies,
                        skip_missing=not keep_missing, workers=workers, scheduler=scheduler,
                        force=force, progress=progress(quiet or as_json),
                        shard_files=shard_files, name=name, wait=wait)
    _ingest_summary(result, as_json, quiet)


@ingest.command("pku")
@click.option("--part", type=click.Choice(["1", "2"]), required=True, help="PKU-MMD part.")
@click.option("--raw", "raw", default=None,
              help="Folder in the official layout (skeleton folder, label folder, split files).")
@click.option("--skeletons", default=None, help="Skeleton folder (e.g. PKU_Skeleton_Renew/).")
@click.option("--labels", default=None, help="Label folder (e.g. Train_Label_PKU_final/).")
@click.option("--split-cs", default=None, help="Cross-subject split file.")
@click.option("--split-cv", default=None, help="Cross-view split file.")
@workdir_option
@cluster_options
@output_options
def ingest_pku_cmd(part, raw, skeletons, labels, split_cs, split_cv, workdir, force, wait,
                   workers, scheduler, as_json, quiet):
    """PKU-MMD part I / II -> pku1 or pku2 raw store, one sample per labelled segment."""
    from pipelines.ingest import ingest_pku

    splits = {k: v for k, v in (("cs", split_cs), ("cv", split_cv)) if v}
    result = ingest_pku(workspace(workdir), raw, part=int(part), skeletons=skeletons,
                        labels=labels, split_files=splits, workers=workers, scheduler=scheduler,
                        force=force, progress=progress(quiet or as_json), wait=wait)
    _ingest_summary(result, as_json, quiet)


@ingest.command("reference")
@click.option("--data", required=True, help="(N, 3, T, 25, M) float32 .npy, e.g. train_data.npy.")
@click.option("--labels", required=True, help="Its (names, labels) pickle, e.g. train_label.pkl.")
@click.option("--name", required=True, help="Dataset name in the workspace.")
@click.option("--val-data", default=None, help="Test-side .npy (e.g. val_data.npy).")
@click.option("--val-labels", default=None, help="Test-side label pickle.")
@click.option("--classes", default=None, type=click.IntRange(min=1),
              help="Number of classes [default: max label + 1].")
@workdir_option
@cluster_options
@output_options
def ingest_reference_cmd(data, labels, name, val_data, val_labels, classes, workdir, force,
                         wait, workers, scheduler, as_json, quiet):
    """A reference tools' preprocessed folder -> raw store NAME (benchmark `default`)."""
    from pipelines.ingest import ingest_reference

    result = ingest_reference(workspace(workdir), name, data, labels, val_data=val_data,
                              val_labels=val_labels, classes=classes, workers=workers,
                              scheduler=scheduler, force=force,
                              progress=progress(quiet or as_json), wait=wait)
    _ingest_summary(result, as_json, quiet)


# ------------------------------------------------------------------ downsample


@main.command()
@click.argument("dataset", required=False)
@click.option("--frames", default=50, show_default=True, type=click.IntRange(min=1),
              help="Frames per sample after resizing.")
@click.option("--bodies", type=click.Choice(["first-two", "denoise"]), default="first-two",
              show_default=True,
              help="first-two: the first two bodies of each frame (reference); denoise: track "
                   "bodies by ID and keep the two real actors (CTR-GCN style).")
@click.option("--chunk", default=256, show_default=True, type=click.IntRange(min=1),
              help="Samples per zarr chunk (and per task).")
@workdir_option
@cluster_options
@output_options
def downsample(dataset, frames, bodies, chunk, workdir, force, wait, workers, scheduler,
               as_json, quiet):
    """Raw store -> the 50-frame training store, with every benchmark's split indices.

    The reference transform (pad to 300, centre on the spine, resize the valid
    frames to 50, rotate the shoulders onto x), vectorised over chunks of samples.
    """
    from pipelines.downsample import downsample as run

    ws = workspace(workdir)
    dataset = choose_dataset(ws, dataset)
    result = run(ws, dataset, frames=frames, bodies=bodies, chunk=chunk, workers=workers,
                 scheduler=scheduler, force=force, progress=progress(quiet or as_json),
                 wait=wait)
    s = result.summary
    if result.skipped and not as_json:
        note(quiet, f"[green]{dataset}[/]: up to date, nothing to do ({result.output})")
    rows = [("dataset", dataset), ("store", result.output), ("samples", s.get("samples")),
            ("frames", s.get("frames")), ("samples with no body", s.get("empty_samples"))]
    rows += [(f"split {b}", f"{tr} train / {te} test")
             for b, (tr, te) in s.get("splits", {}).items()]
    rows.append(("seconds", s.get("seconds")))
    emit(as_json, result.to_json(), f"downsample {dataset}", rows)


# ------------------------------------------------------------------ pretrain


def config_options(fn: Callable) -> Callable:
    for opt in reversed([
        click.option("--preset", default=None,
                     help="A reference preset: ntu60-xsub, ntu60-xview, ntu120-xsub, ntu120-xset, "
                          "pku1-cs, pku2-cs [default: <dataset>-<benchmark>]."),
        click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
                     help="A YAML file with the preset keys (ours or a reference config "
                          "file), instead of --preset."),
        click.option("--dataset", default=None,
                     help="Dataset of the workspace [default: the preset's, or the only one]."),
        click.option("--benchmark", default=None,
                     help="xsub, xview, xset, cs, cv, default [default: the dataset's default]."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config key (dotted for nested keys, value read as YAML), "
                          "e.g. --set num_epoch=100 --set model_args.queue_size=16384. "
                          "Repeatable; unknown keys are refused."),
        click.option("--seed", type=int, default=None, help="Random seed [default: 0]."),
    ]):
        fn = opt(fn)
    return fn


def launch_ranks(nproc: int, extra: list[str]) -> int:
    """Start `nproc` ranks of this very command with torchrun; returns its exit status.

    The ranks run `python -P -m asar` with the user's own arguments (less --nproc, plus
    ``extra``): -P keeps the working directory off sys.path, so a user's `cli.py`,
    `configs/` or `pipelines/` there cannot shadow ours.
    """
    import subprocess

    args, skip = [], False
    for a in AsarGroup.raw_args:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        # torchrun's parser would read a bare --run as its own --run-path
        args.append("--run-name" if a == "--run" else
                    "--run-name=" + a[6:] if a.startswith("--run=") else a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(nproc), "--no-python", sys.executable, "-P", "-m", "asar", *args, *extra]
    return subprocess.call(cmd)


@main.command()
@config_options
@click.option("--deterministic", is_flag=True,
              help="Deterministic algorithms (CPU runs then repeat exactly, resumed or not).")
@click.option("--run", "--run-name", "run_name", default=None,
              help="Run name: <workdir>/<dataset>/runs/<run> [default: <benchmark>-<stream>].")
@click.option("--device", default=None, help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes (one per GPU) for DistributedDataParallel, started with torchrun; "
                   "the global batch stays batch_size.")
@workdir_option
@click.option("--force", is_flag=True, help="Start the run afresh even if it exists.")
@wait_option
@output_options
def pretrain(preset, config_file, dataset, benchmark, overrides, seed, deterministic, run_name,
             device, nproc, workdir, force, wait, as_json, quiet):
    """ASAR pre-training of the ST-GCN encoder on a benchmark's training split.

    Checkpoints after every epoch; the same command after a crash or kill resumes
    from the last one (on any number of processes). Writes config.yaml,
    checkpoint.pt, metrics.jsonl to the run folder; evaluate it with
    `asar-cli evaluate --weights RUN`.
    """
    ws = workspace(workdir)
    cfg = resolve_config("pretrain", ws, preset, config_file, dataset, benchmark, overrides,
                         seed, deterministic, device=device, choose=dataset_prompt(), warn=warn)
    if nproc > 1 and "RANK" not in os.environ:  # checked above, before starting the ranks
        sys.exit(launch_ranks(nproc, [] if dataset else ["--dataset", cfg["dataset"]]))
    from pipelines.pretrain import pretrain as run

    default = f"{cfg['benchmark']}-{cfg.get('stream', 'joint')}"
    name = run_name if run_name is not None else default
    result = run(ws, cfg, name, force=force, progress=progress(quiet or as_json), wait=wait)
    if os.environ.get("RANK", "0") != "0":
        return
    s = result.summary
    if result.skipped and not as_json:
        note(quiet, f"[green]run {result.output}[/] is complete - nothing to do")
    rows = [("dataset", result.dataset), ("benchmark", result.benchmark),
            ("run", result.output), ("epochs", s.get("epochs")),
            ("final loss", f"{s['final_loss']:.4f}" if s.get("final_loss") is not None else "-"),
            ("samples/s", f"{s['samples_per_s']:.1f}" if s.get("samples_per_s") else "-"),
            ("checkpoint", s.get("checkpoint"))]
    emit(as_json, result.to_json(), "pretrain", rows)


# ------------------------------------------------------------------ evaluate

PROTOCOL_PRESET = {"linear": "linear", "knn": "linear", "semi": "semi", "finetune": "finetune"}


def _accuracy_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    acc = result.get("accuracy", result)
    rows = [("top-1 (final)", f"{acc['top1']:.2f}"), ("top-5 (final)", f"{acc['top5']:.2f}")]
    if acc.get("best_top1") is not None:
        rows.append(("best top-1 over evaluations (reference's number, chosen on test)",
                     f"{acc['best_top1']:.2f} (epoch {acc.get('best_epoch')})"))
    return rows


@main.command()
@config_options
@click.option("--weights", "weights", multiple=True, metavar="FILE|RUN",
              help="Encoder weights: a checkpoint file (ours or the reference's) or the name of "
                   "a pretrain run of the workspace. Omit for a random-init baseline. With "
                   "--stream all: joint=FILE motion=FILE bone=FILE.")
@click.option("--protocol", type=click.Choice(["linear", "knn", "semi", "finetune"]),
              default="linear", show_default=True,
              help="linear: frozen encoder + new fc (the headline number); knn: cosine k-NN on "
                   "frozen features; semi: fine-tune on a class-balanced label fraction; "
                   "finetune: all weights trained.")
@click.option("--stream", type=click.Choice(["joint", "motion", "bone", "all"]), default=None,
              help="Input stream [default: the preset's, joint]; all = the three streams and "
                   "their score-average ensemble.")
@click.option("--k", "knn_k", default=20, show_default=True, type=click.IntRange(min=1),
              help="Neighbours for --protocol knn.")
@click.option("--label-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Fraction of training labels for --protocol semi (0.01 or 0.1).")
@click.option("--name", default=None,
              help="Result folder <workdir>/<dataset>/eval/<name> [default: from protocol, "
                   "stream, benchmark and weights].")
@click.option("--device", default=None, help="auto (CUDA when present), cpu, cuda, ...")
@workdir_option
@click.option("--force", is_flag=True, help="Evaluate again even if the result is up to date.")
@wait_option
@output_options
def evaluate(preset, config_file, dataset, benchmark, overrides, seed, weights, protocol, stream,
             knn_k, label_fraction, name, device, workdir, force, wait, as_json, quiet):
    """Evaluate an encoder: linear protocol by default, top-1/top-5 on the test split.

    The frozen encoder runs once over the data (eval mode, no augmentation) and the
    linear layer trains on those features for the reference's 100 epochs: the same
    protocol in a fraction of the time. Results go to result.json and confusion.png.
    """
    from pipelines.evaluate import evaluate as run
    from pipelines.evaluate import resolve_weights, weights_spec

    ws = workspace(workdir)
    cfg = resolve_config(PROTOCOL_PRESET[protocol], ws, preset, config_file, dataset, benchmark,
                         overrides, seed, device=device, choose=dataset_prompt(), warn=warn)
    stream_name = stream or cfg.get("stream", "joint")
    spec = weights_spec(weights, stream_name)
    if isinstance(spec, dict):
        resolved = {k: resolve_weights(ws, cfg["dataset"], v) for k, v in spec.items()}
    else:
        resolved = resolve_weights(ws, cfg["dataset"], spec)
    result = run(ws, cfg, resolved, protocol, stream_name, name=name, k=knn_k,
                 label_fraction=label_fraction, force=force,
                 progress=progress(quiet or as_json), wait=wait)
    title = (f"evaluate {protocol} {result.stream} - {result.dataset} {result.benchmark}"
             + (" (cached)" if result.skipped else ""))
    rows = [("weights", result.result.get("weights") or "random init (seed "
             f"{cfg.get('seed', 0)})")]
    if "streams" in result.details:
        for s, sub in result.streams.items():
            acc = sub.result["accuracy"]
            rows.append((f"{s} top-1 / top-5", f"{acc['top1']:.2f} / {acc['top5']:.2f}"))
        rows.append(("3-stream ensemble", ""))
    rows += _accuracy_rows(result.result)
    rows.append(("results", result.eval_dir))
    emit(as_json, result.to_json(), title, rows)


def embedding_options(fn: Callable) -> Callable:
    """DATASET, --weights, --benchmark, --split, --stream: which features of which encoder."""
    for opt in reversed([
        click.argument("dataset", required=False),
        click.option("--weights", default=None, metavar="FILE|RUN",
                     help="Encoder weights (file or run name) [default: random init]."),
        click.option("--benchmark", default=None,
                     help="Benchmark [default: the dataset's default]."),
        click.option("--split", type=click.Choice(["train", "test"]), default="test",
                     show_default=True, help="Which side of the benchmark."),
        click.option("--stream", type=click.Choice(["joint", "motion", "bone"]),
                     default="joint", show_default=True, help="Input stream."),
    ]):
        fn = opt(fn)
    return fn


def _default_benchmark(ws: Any, dataset: str) -> str:

    return dataset_defaults(ws, dataset)["default_benchmark"]


@main.command()
@embedding_options
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The .npy file to write: (N, 256) float32 features.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of a random init.")
@workdir_option
def embed(dataset, weights, benchmark, split, stream, out, seed, workdir):
    """Write the pooled 256-d features of one split (the input of fc; encoder in eval mode)."""
    from pipelines.evaluate import embed as run
    from pipelines.evaluate import resolve_weights

    ws = workspace(workdir)
    dataset = choose_dataset(ws, dataset)
    benchmark = benchmark or _default_benchmark(ws, dataset)
    labels = run(ws, dataset, benchmark, split, resolve_weights(ws, dataset, weights), out,
                 stream=stream, seed=seed, progress=progress())
    emit(False, None, "embed", [("dataset", dataset), ("benchmark", benchmark),
                                ("split", split), ("samples", len(labels)), ("features", out)])


def _samples(value: str) -> int:
    """--samples: a count >= 10, or 0 / all for the whole split."""
    if str(value).lower() in ("all", "0"):
        return 0
    if not str(value).isdigit() or int(value) < 10:
        raise click.BadParameter(f"{value!r} is not 0, all, or a count of at least 10")
    return int(value)


@main.command()
@embedding_options
@click.option("--samples", default="all", show_default=True,
              callback=lambda ctx, param, value: _samples(value),
              help="Points drawn (seeded) from the split; 0 or all: the whole split.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="The PNG to write (its 2-D coordinates and sample names beside it) "
                   "[default: <workdir>/<dataset>/figures/tsne-<weights>-<benchmark>-<split>"
                   ".png, which the report shows].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subset/t-SNE.")
@workdir_option
def tsne(dataset, weights, benchmark, split, stream, samples, out, seed, workdir):
    """Draw the t-SNE of the embeddings, coloured by class, to a PNG (like the paper's figure)."""
    from pipelines.evaluate import resolve_weights, tsne_figure, weights_stem

    ws = workspace(workdir)
    dataset = choose_dataset(ws, dataset)
    benchmark = benchmark or _default_benchmark(ws, dataset)
    location = resolve_weights(ws, dataset, weights)
    if out is None:
        out = ws.path(dataset, "figures", f"tsne-{weights_stem(location, seed)}-{benchmark}-"
                                          f"{split}-{stream}.png")
    info = tsne_figure(ws, dataset, benchmark, location, out, stream=stream, samples=samples,
                       seed=seed, split=split, progress=progress())
    emit(False, None, "t-SNE", [("dataset", dataset), ("benchmark", benchmark),
                                *[(k, v) for k, v in info.items()
                                  if not isinstance(v, list | dict)]])


# ------------------------------------------------------------------ export


@main.group()
def export() -> None:
    """Write stores in other tools' layouts."""


@export.command("reference")
@click.argument("dataset")
@click.option("--benchmark", required=True,
              type=click.Choice(["xsub", "xview", "xset", "cs", "cv", "default"]),
              help="Which train/test split to write.")
@click.option("--stage", default="raw", show_default=True,
              help="raw (300-frame train_data.npy) or frames50 (train_position.npy).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder to write (replaced whole when it is an earlier export).")
@workdir_option
@click.option("--force", is_flag=True, help="Write again even if the export is up to date.")
@wait_option
@output_options
def export_reference_cmd(dataset, benchmark, stage, out, workdir, force, wait, as_json, quiet):
    """The reference tools' folder layout: .npy arrays and (names, labels) pickles."""
    from pipelines.export import export_reference

    result = export_reference(workspace(workdir), dataset, benchmark, stage, out,
                              progress=progress(quiet or as_json), force=force, wait=wait)
    s = result.summary
    emit(as_json, result.to_json(), f"export {dataset} {benchmark} ({stage})",
         [("folder", result.output), ("train", s.get("train")), ("val", s.get("val"))])


# ------------------------------------------------------------------ report


@main.command("report")
@click.argument("dataset", required=False)
@workdir_option
@click.option("--force", is_flag=True, help="Build the page again even if it is up to date.")
@wait_option
@output_options
def report_cmd(dataset, workdir, force, wait, as_json, quiet):
    """One self-contained HTML page of the workspace (or of DATASET): every run with its
    curves, every evaluation with its confusion matrix, the ensembles and t-SNE figures.

    Rebuilt only when a run or an evaluation changed; open the printed file in a browser.
    """
    from pipelines.report import report

    result = report(workspace(workdir), dataset, force=force,
                    progress=progress(quiet or as_json), wait=wait)
    s = result.summary
    emit(as_json, result.to_json(), "report" + (" (cached)" if result.skipped else ""),
         [("page", result.page), ("runs", s.get("runs")), ("evaluations", s.get("evaluations")),
          ("size", f"{(s.get('bytes') or 0) / 1e6:.2f} MB")])


# ------------------------------------------------------------------ demo


@main.command()
@click.option("--small", is_flag=True, help="A reduced size (what CI runs): a quick smoke run.")
@workdir_option
def demo(small, workdir):
    """The whole pipeline on the embedded synthetic dataset, in one workspace.

    Writes synthetic NTU files, ingests and downsamples them, pre-trains ASAR and
    plain MoCo (relabeling and active sampling off), and evaluates both and a
    random-init encoder with the linear protocol on the same test split. Ends with
    the accuracy table (also in <workdir>/demo.json). A second run reuses every
    cached stage.
    """
    import time

    from pipelines.demo import run_demo

    ws = workspace(workdir)
    t0 = time.perf_counter()
    rows = run_demo(ws, small=small, progress=progress())
    from rich.table import Table

    table = Table(title=f"demo: linear evaluation, synthetic NTU-60 xview ({ws.root})",
                  title_justify="left")
    for col in ("encoder", "top-1 %", "top-5 %", "best top-1 % (reference's)"):
        table.add_column(col)
    for r in rows:
        best = "-" if r.best_top1 is None else f"{r.best_top1:.2f}"
        table.add_row(r.encoder, f"{r.top1:.2f}", f"{r.top5:.2f}", best)
    console(stderr=False).print(table)
    console().print(f"demo finished in {time.perf_counter() - t0:.0f} s; "
                    f"table in {ws.path('demo.json')}")


# ------------------------------------------------------------------ status


@main.command()
@workdir_option
@output_options
def status(workdir, as_json, quiet):
    """Every stage output of the workspace: complete, running, stopped, partial, stale, missing."""
    from rich.table import Table

    from pipelines.status import human_size, human_time, workspace_status

    ws = workspace(workdir)
    rows = workspace_status(ws)
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps({"workspace": ws.root, "outputs": [asdict(r) for r in rows]},
                              default=str))
        return
    if not rows:
        console(stderr=False).print(f"workspace {ws.root} is empty: start with "
                                    "`asar-cli ingest ...` or `asar-cli demo`")
        return
    colours = {"complete": "green", "running": "cyan", "partial": "yellow",
               "stopped": "yellow", "stale": "magenta", "missing": "red"}
    table = Table(title=f"workspace {ws.root}", title_justify="left")
    for col in ("dataset", "stage", "output", "state", "detail", "size", "updated"):
        table.add_column(col)
    for r in rows:
        out = os.path.relpath(r.output, ws.root) if "://" not in r.output else r.output
        table.add_row(r.dataset, r.stage, out, f"[{colours.get(r.state, 'white')}]{r.state}[/]",
                      r.detail, human_size(r.size), human_time(r.updated))
    console(stderr=False).print(table)


if __name__ == "__main__":
    main()
