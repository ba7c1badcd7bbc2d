"""asar-cli: raw skeleton files -> zarr stores -> ASAR pre-training -> evaluation.

Thin click commands: parse options, pick a preset, call a stage in `pipelines/`,
render progress and results with rich. Heavy libraries (torch, dask, zarr) are
imported inside the commands that need them, so `asar-cli --help` is instant.
"""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

WORKDIR_HELP = (
    "Workspace holding every stage's output and manifest "
    "[default: $ASAR_WORKDIR, else ./asar-work]."
)


class UserError(click.ClickException):
    """An error the user can act on: printed without a traceback, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", fg="red", err=True)


def workdir_option(fn: Callable) -> Callable:
    return click.option(
        "--workdir", "-w", type=str, default=None, envvar="ASAR_WORKDIR",
        show_envvar=False, help=WORKDIR_HELP,
    )(fn)


def cluster_options(fn: Callable) -> Callable:
    fn = click.option(
        "--scheduler", type=str, default=None, metavar="ADDRESS",
        help="Run shards on an existing dask.distributed cluster (e.g. tcp://host:8786).",
    )(fn)
    fn = click.option(
        "--workers", type=click.IntRange(min=1), default=None,
        help="Worker processes of the local dask cluster [default: CPU count, max 8].",
    )(fn)
    return click.option("--force", is_flag=True, help="Redo the stage even if it is up to date.")(
        fn
    )


def friendly_errors(fn: Callable) -> Callable:
    """Turn expected failures (bad input, missing stages) into one red line, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from asar_data.storage import StorageError
        from pipelines.errors import NonFiniteLoss
        from pipelines.workspace import WorkspaceError

        try:
            return fn(*args, **kwargs)
        except (WorkspaceError, ValueError, FileNotFoundError, KeyError, NonFiniteLoss,
                StorageError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise UserError(str(msg)) from e

    return wrapper


def console(stderr: bool = True):
    """A rich console; wide when output is not a terminal (logs, pipes, CI)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def progress():
    from pipelines.progress import RichProgress

    return RichProgress(console())


def workspace(workdir: str | None):
    from pipelines.workspace import Workspace

    return Workspace(workdir)


def choose_dataset(ws: Any, requested: str | None) -> str:
    """The dataset a command acts on; asks when the workspace holds several and stdin is a TTY."""
    from pipelines.workspace import AmbiguousDataset

    try:
        return ws.choose_dataset(requested)
    except AmbiguousDataset as e:
        if sys.stdin.isatty():
            return click.prompt("Dataset", type=click.Choice(e.names))
        raise


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, str(v))
    console().print(table)


# ------------------------------------------------------------------ the group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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

    Without a dataset name, a command acts on the workspace's only dataset and its
    default benchmark (NTU-60 xview, NTU-120 xsub, PKU-MMD cs). `asar-cli demo`
    runs everything on a synthetic dataset; `asar-cli status` shows what is done.
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
@friendly_errors
def synth_ntu(out: str, samples: int, classes: int, seed: int, dataset: str) -> None:
    """NTU `SsssCcccPpppRrrrAaaa.skeleton` files of distinct articulated motions."""
    from asar_data.synth import write_ntu_dataset

    if dataset == "ntu60" and classes > 60:
        raise UserError("ntu60 has 60 action classes; use --dataset ntu120 for more")
    with progress().bar("synth ntu", total=samples, unit="files") as bar:
        summary = write_ntu_dataset(out, samples=samples, classes=classes, seed=seed,
                                    dataset=dataset, progress=lambda n: bar.update(completed=n))
    print_table("synthetic NTU dataset", [("folder", out), *_summary_rows(summary)])


@synth.command("pku")
@synth_options
@click.option("--videos", default=12, show_default=True, type=click.IntRange(min=1),
              help="Performances (each seen from the L, M and R views).")
@click.option("--classes", default=51, show_default=True, type=click.IntRange(1, 51),
              help="Action classes used in the videos.")
@friendly_errors
def synth_pku(out: str, videos: int, classes: int, seed: int) -> None:
    """PKU-MMD part I layout: long skeleton files, label files and the two split files."""
    from asar_data.synth import write_pku_dataset

    with progress().bar("synth pku", total=videos * 3, unit="files") as bar:
        summary = write_pku_dataset(out, videos=videos, classes=classes, seed=seed,
                                    progress=lambda n: bar.update(completed=n))
    print_table("synthetic PKU-MMD dataset", [("folder", out), *_summary_rows(summary)])


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


def _ingest_summary(result: Any) -> None:
    s = result.summary
    if result.action == "skip":
        console().print(f"[green]{result.dataset}[/]: up to date, nothing to do ({result.store})")
        return
    rows = [("dataset", result.dataset), ("store", result.store),
            ("samples", s.get("samples")), ("frames", s.get("frames"))]
    for key in ("files", "candidate_files", "missing_list_skipped", "ignored_files"):
        if key in s:
            rows.append((key.replace("_", " "), s[key]))
    by_action = s.get("problems_by_action", {})
    rows.append(("problems", ", ".join(f"{v} {k}" for k, v in sorted(by_action.items())) or "none"))
    if s.get("bytes") and s.get("seconds"):
        rows.append(("speed", f"{s['bytes'] / s['seconds'] / 1e6:.1f} MB/s"))
    rows.append(("seconds", s.get("seconds")))
    rows.append(("report", result.report))
    print_table(f"ingest {result.dataset}", rows)
    _print_problems(result.problems, result.report)


def _print_problems(problems: list[Any], report: str, examples: int = 3) -> None:
    """Skipped and repaired files grouped by reason, a few examples each (all in the report)."""
    import re

    groups: dict[tuple[str, str], list[Any]] = {}
    for p in problems:
        if p.action != "ignored":
            kind = re.sub(r"\d+|\"[^\"]*\"", "#", p.reason)  # group "line 3" with "line 7"
            groups.setdefault((p.action, kind), []).append(p)
    for (action, _), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(f"{p.file}" + (f" line {p.line}" if p.line else "")
                          for p in items[:examples])
        more = f" and {len(items) - examples} more" if len(items) > examples else ""
        console().print(f"  [yellow]{len(items)} {action}[/]: {items[0].reason} "
                        f"({shown}{more})")
    if groups:
        console().print(f"  every problem, with its line and reason: {report}")


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
@friendly_errors
def ingest_ntu_cmd(raw, dataset, keep_missing, max_bodies, shard_files, name, workdir, force,
                   workers, scheduler):
    """NTU RGB+D 60 / 120 `.skeleton` files -> ntu60 or ntu120 raw store."""
    from pipelines.ingest import ingest_ntu

    result = ingest_ntu(workspace(workdir), raw, dataset=dataset, bodies=max_bodies,
                        skip_missing=not keep_missing, workers=workers, scheduler=scheduler,
                        force=force, progress=progress(), shard_files=shard_files, name=name)
    _ingest_summary(result)


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
@friendly_errors
def ingest_pku_cmd(part, raw, skeletons, labels, split_cs, split_cv, workdir, force, workers,
                   scheduler):
    """PKU-MMD part I / II -> pku1 or pku2 raw store, one sample per labelled segment."""
    from pipelines.ingest import ingest_pku

    splits = {k: v for k, v in (("cs", split_cs), ("cv", split_cv)) if v}
    result = ingest_pku(workspace(workdir), raw, part=int(part), skeletons=skeletons,
                        labels=labels, split_files=splits, workers=workers, scheduler=scheduler,
                        force=force, progress=progress())
    _ingest_summary(result)


@ingest.command("reference")
@click.option("--data", required=True, help="(N, 3, T, 25, M) float32 .npy, e.g. train_data.npy.")
@click.option("--labels", required=True, help="Its (names, labels) pickle, e.g. train_label.pkl.")
@click.option("--name", required=True, help="Dataset name in the workspace.")
@click.option("--val-data", default=None, help="Test-side .npy (e.g. val_data.npy).")
@click.option("--val-labels", default=None, help="Test-side label pickle.")
@click.option("--classes", default=None, type=int,
              help="Number of classes [default: max label + 1].")
@workdir_option
@cluster_options
@friendly_errors
def ingest_reference_cmd(data, labels, name, val_data, val_labels, classes, workdir, force,
                         workers, scheduler):
    """A reference tools' preprocessed folder -> raw store NAME (benchmark `default`)."""
    from pipelines.ingest import ingest_reference

    result = ingest_reference(workspace(workdir), name, data, labels, val_data=val_data,
                              val_labels=val_labels, classes=classes, workers=workers,
                              scheduler=scheduler, force=force, progress=progress())
    _ingest_summary(result)


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
@friendly_errors
def downsample(dataset, frames, bodies, chunk, workdir, force, workers, scheduler):
    """Raw store -> the 50-frame training store, with every benchmark's split indices.

    The reference transform (pad to 300, centre on the spine, resize the valid
    frames to 50, rotate the shoulders onto x), vectorised over chunks of samples.
    """
    from pipelines.downsample import downsample as run

    ws = workspace(workdir)
    dataset = choose_dataset(ws, dataset)
    result = run(ws, dataset, frames=frames, bodies=bodies, chunk=chunk, workers=workers,
                 scheduler=scheduler, force=force, progress=progress())
    s = result.summary
    if result.action == "skip":
        console().print(f"[green]{dataset}[/]: up to date, nothing to do ({result.store})")
        return
    rows = [("dataset", dataset), ("store", result.store), ("samples", s["samples"]),
            ("frames", s["frames"]), ("samples with no body", s["empty_samples"])]
    rows += [(f"split {b}", f"{tr} train / {te} test") for b, (tr, te) in s["splits"].items()]
    rows.append(("seconds", s["seconds"]))
    print_table(f"downsample {dataset}", rows)


# ------------------------------------------------------------------ pretrain


def dataset_defaults(ws: Any, dataset: str) -> dict[str, Any]:
    """A dataset's benchmarks and default benchmark, from its ingest manifest."""
    from pipelines.workspace import WorkspaceError

    m = ws.raw(dataset).load_manifest()
    if m is None:
        raise WorkspaceError(
            f"no dataset {dataset!r} in workspace {ws.root}: run `asar-cli ingest ...` first"
        )
    return {"benchmarks": m.summary.get("benchmarks") or [],
            "default_benchmark": m.summary.get("default_benchmark"),
            "classes": m.summary.get("classes")}


def resolve_config(kind: str, ws: Any, preset: str | None, config: str | None,
                   dataset: str | None, benchmark: str | None, overrides: tuple[str, ...],
                   seed: int | None = None, deterministic: bool = False) -> dict[str, Any]:
    """The configuration a command runs with: preset or file, workspace defaults, overrides.

    Dataset: --dataset, else the preset's when the workspace has it, else the workspace's
    only dataset. Benchmark: --benchmark, else the preset's when the dataset has it, else
    the dataset's default. Preset: --preset / --config, else `<dataset>-<benchmark>`.
    """
    from pipelines.config import ConfigError, apply_overrides, load_preset, load_yaml, preset_names

    base: dict[str, Any] | None = None
    if preset and config:
        raise ConfigError("give --preset or --config, not both")
    if config:
        base = load_yaml(config)
    elif preset:
        base = load_preset(kind, preset)
    if dataset is None and base is not None and base.get("dataset") in ws.datasets():
        dataset = base["dataset"]
    dataset = choose_dataset(ws, dataset)
    info = dataset_defaults(ws, dataset)
    if benchmark is None:
        wanted = base.get("benchmark") if base is not None else None
        benchmark = wanted if wanted in info["benchmarks"] else info["default_benchmark"]
    if benchmark not in info["benchmarks"]:
        raise ConfigError(f"{dataset} has no benchmark {benchmark!r} "
                          f"(it has: {', '.join(info['benchmarks'])})")
    if base is None:
        name = f"{dataset}-{benchmark}"
        if name not in preset_names(kind):
            raise ConfigError(f"no {kind} preset for {dataset} {benchmark}: name one with "
                              f"--preset ({', '.join(preset_names(kind))}) or give --config FILE")
        base = load_preset(kind, name)
    cfg = apply_overrides(base, list(overrides))
    cfg["dataset"], cfg["benchmark"] = dataset, benchmark
    if seed is not None:
        cfg["seed"] = seed
    cfg.setdefault("seed", 0)
    if deterministic:
        cfg["deterministic"] = True
    return cfg


def config_options(fn: Callable) -> Callable:
    for opt in reversed([
        click.option("--preset", default=None,
                     help="A reference preset: ntu60-xsub, ntu60-xview, ntu120-xsub, ntu120-xset, "
                          "pku1-cs, pku2-cs [default: <dataset>-<benchmark>]."),
        click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
                     help="A YAML file with the preset keys, instead of --preset."),
        click.option("--dataset", default=None,
                     help="Dataset of the workspace [default: the preset's, or the only one]."),
        click.option("--benchmark", default=None,
                     help="xsub, xview, xset, cs, cv, default [default: the dataset's default]."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config key (dotted for nested keys, value read as YAML), "
                          "e.g. --set num_epoch=100 --set model_args.queue_size=16384. "
                          "Repeatable."),
        click.option("--seed", type=int, default=None, help="Random seed [default: 0]."),
    ]):
        fn = opt(fn)
    return fn


def launch_ranks(nproc: int, options: dict[str, Any]) -> int:
    """Start `nproc` ranks of this pretrain command with torchrun; returns its exit status."""
    import subprocess

    args = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), "-m", "cli", "pretrain"]
    for flag, key in (("--preset", "preset"), ("--config", "config_file"),
                      ("--dataset", "dataset"), ("--benchmark", "benchmark"),
                      ("--seed", "seed"), ("--device", "device"), ("--workdir", "workdir"),
                      ("--run-name", "run_name")):
        if options.get(key) is not None:
            args += [flag, str(options[key])]
    for item in options.get("overrides") or ():
        args += ["--set", item]
    args += [flag for flag, key in (("--deterministic", "deterministic"), ("--force", "force"))
             if options.get(key)]
    return subprocess.call(args)


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
@friendly_errors
def pretrain(preset, config_file, dataset, benchmark, overrides, seed, deterministic, run_name,
             device, nproc, workdir, force):
    """ASAR pre-training of the ST-GCN encoder on a benchmark's training split.

    Checkpoints after every epoch; the same command after a crash or kill resumes
    from the last one (on any number of processes). Writes config.yaml,
    checkpoint.pt, metrics.jsonl to the run folder; evaluate it with
    `asar-cli evaluate --weights RUN`.
    """
    if nproc > 1 and "RANK" not in os.environ:
        sys.exit(launch_ranks(nproc, dict(
            preset=preset, config_file=config_file, dataset=dataset, benchmark=benchmark,
            overrides=overrides, seed=seed, deterministic=deterministic, run_name=run_name,
            device=device, workdir=workdir, force=force)))
    from pipelines.pretrain import pretrain as run

    ws = workspace(workdir)
    cfg = resolve_config("pretrain", ws, preset, config_file, dataset, benchmark, overrides,
                         seed, deterministic)
    if device:
        cfg["device"] = device
    name = run_name or f"{cfg['benchmark']}-{cfg.get('stream', 'joint')}"
    result = run(ws, cfg, name, force=force, progress=progress())
    if os.environ.get("RANK", "0") != "0":
        return
    s = result.summary
    if result.action == "skip":
        console().print(f"[green]run {result.run_dir}[/] is complete - nothing to do")
    rows = [("dataset", result.dataset), ("benchmark", result.benchmark),
            ("run", result.run_dir), ("epochs", s.get("epochs")),
            ("final loss", f"{s['final_loss']:.4f}" if s.get("final_loss") is not None else "-"),
            ("samples/s", f"{s['samples_per_s']:.1f}" if s.get("samples_per_s") else "-"),
            ("checkpoint", s.get("checkpoint"))]
    print_table("pretrain", rows)


# ------------------------------------------------------------------ evaluate

PROTOCOL_PRESET = {"linear": "linear", "knn": "linear", "semi": "semi", "finetune": "finetune"}


def parse_weights(specs: tuple[str, ...], stream: str) -> Any:
    """--weights values: one file or run name, or `stream=FILE` per stream for --stream all."""
    if stream != "all":
        if len(specs) > 1:
            raise UserError("give one --weights (several only with --stream all)")
        return specs[0] if specs else None
    per: dict[str, str] = {}
    order = ["joint", "motion", "bone"]
    for i, spec in enumerate(specs):
        key, sep, value = spec.partition("=")
        if sep and key in order:
            per[key] = value
        elif i < len(order):
            per[order[i]] = spec
        else:
            raise UserError(f"--weights {spec!r}: use joint=FILE, motion=FILE, bone=FILE")
    return per


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
@click.option("--label-fraction", type=float, default=None,
              help="Fraction of training labels for --protocol semi (0.01 or 0.1).")
@click.option("--name", default=None,
              help="Result folder <workdir>/<dataset>/eval/<name> [default: from protocol, "
                   "stream and weights].")
@click.option("--device", default=None, help="auto (CUDA when present), cpu, cuda, ...")
@workdir_option
@click.option("--force", is_flag=True, help="Evaluate again even if the result is up to date.")
@friendly_errors
def evaluate(preset, config_file, dataset, benchmark, overrides, seed, weights, protocol, stream,
             knn_k, label_fraction, name, device, workdir, force):
    """Evaluate an encoder: linear protocol by default, top-1/top-5 on the test split.

    The frozen encoder runs once over the data (eval mode, no augmentation) and the
    linear layer trains on those features for the reference's 100 epochs: the same
    protocol in a fraction of the time. Results go to result.json and confusion.png.
    """
    from pipelines.evaluate import evaluate as run
    from pipelines.evaluate import resolve_weights

    ws = workspace(workdir)
    cfg = resolve_config(PROTOCOL_PRESET[protocol], ws, preset, config_file, dataset, benchmark,
                         overrides, seed)
    if device:
        cfg["device"] = device
    stream_name = stream or cfg.get("stream", "joint")
    spec = parse_weights(weights, stream_name)
    if isinstance(spec, dict):
        resolved = {k: resolve_weights(ws, cfg["dataset"], v) for k, v in spec.items()}
    else:
        resolved = resolve_weights(ws, cfg["dataset"], spec)
    result = run(ws, cfg, resolved, protocol, stream_name, name=name, k=knn_k,
                 label_fraction=label_fraction, force=force, progress=progress())
    title = (f"evaluate {protocol} {result.stream} - {result.dataset} {result.benchmark}"
             + (" (cached)" if result.action == "skip" else ""))
    rows = [("weights", result.result.get("weights") or "random init (seed "
             f"{cfg.get('seed', 0)})")]
    if result.streams:
        for s, sub in result.streams.items():
            acc = sub.result["accuracy"]
            rows.append((f"{s} top-1 / top-5", f"{acc['top1']:.2f} / {acc['top5']:.2f}"))
        rows.append(("3-stream ensemble", ""))
    rows += _accuracy_rows(result.result)
    rows.append(("results", result.eval_dir))
    print_table(title, rows)


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


@main.command()
@embedding_options
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The .npy file to write: (N, 256) float32 features.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of a random init.")
@workdir_option
@friendly_errors
def embed(dataset, weights, benchmark, split, stream, out, seed, workdir):
    """Write the pooled 256-d features of one split (the input of fc; encoder in eval mode)."""
    from pipelines.evaluate import embed as run
    from pipelines.evaluate import resolve_weights

    ws = workspace(workdir)
    dataset = choose_dataset(ws, dataset)
    benchmark = benchmark or dataset_defaults(ws, dataset)["default_benchmark"]
    labels = run(ws, dataset, benchmark, split, resolve_weights(ws, dataset, weights), out,
                 stream=stream, seed=seed, progress=progress())
    print_table("embed", [("dataset", dataset), ("benchmark", benchmark), ("split", split),
                          ("samples", len(labels)), ("features", out)])


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
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subset/t-SNE.")
@workdir_option
@friendly_errors
def tsne(dataset, weights, benchmark, split, stream, samples, out, seed, workdir):
    """Draw the t-SNE of the embeddings, coloured by class, to a PNG (like the paper's figure)."""
    from pipelines.evaluate import resolve_weights, tsne_figure

    ws = workspace(workdir)
    dataset = choose_dataset(ws, dataset)
    benchmark = benchmark or dataset_defaults(ws, dataset)["default_benchmark"]
    info = tsne_figure(ws, dataset, benchmark, resolve_weights(ws, dataset, weights), out,
                       stream=stream, samples=samples, seed=seed, split=split,
                       progress=progress())
    print_table("t-SNE", [("dataset", dataset), ("benchmark", benchmark), ("figure", out),
                          *[(k, v) for k, v in info.items() if not isinstance(v, list | dict)]])


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
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@workdir_option
@friendly_errors
def export_reference_cmd(dataset, benchmark, stage, out, workdir):
    """The reference tools' folder layout: .npy arrays and (names, labels) pickles."""
    from pipelines.export import export_reference

    counts = export_reference(workspace(workdir), dataset, benchmark, stage, out,
                              progress=progress())
    print_table(f"export {dataset} {benchmark} ({stage})",
                [("folder", out), ("train", counts["train"]), ("val", counts["val"])])


# ------------------------------------------------------------------ demo


@main.command()
@click.option("--small", is_flag=True, help="A reduced size (what CI runs): a quick smoke run.")
@workdir_option
@friendly_errors
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
@friendly_errors
def status(workdir):
    """Every stage output of the workspace: complete, partial, stale (why) or missing."""
    from rich.table import Table

    from pipelines.status import human_size, human_time, workspace_status

    ws = workspace(workdir)
    rows = workspace_status(ws)
    if not rows:
        console().print(f"workspace {ws.root} is empty: start with `asar-cli ingest ...` "
                        "or `asar-cli demo`")
        return
    colours = {"complete": "green", "partial": "yellow", "stale": "magenta", "missing": "red"}
    table = Table(title=f"workspace {ws.root}", title_justify="left")
    for col in ("dataset", "stage", "output", "state", "detail", "size", "updated"):
        table.add_column(col)
    for r in rows:
        out = os.path.relpath(r.output, ws.root) if "://" not in r.output else r.output
        table.add_row(r.dataset, r.stage, out, f"[{colours[r.state]}]{r.state}[/]", r.detail,
                      human_size(r.size), human_time(r.updated))
    console(stderr=False).print(table)


if __name__ == "__main__":
    main()
