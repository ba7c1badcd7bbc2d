"""The report stage: one self-contained HTML page of a workspace (or of one dataset).

Every run (key settings, epochs done, final loss, its loss / learning-rate / relabel
weight curves), every evaluation (protocol, stream, benchmark, final and best top-1 /
top-5, labelled as the CLI labels them), the 3-stream ensembles, the confusion matrices
and the t-SNE figures of the workspace, with the state of every store. Figures are
embedded as data URIs, so the page needs no network and no other file.

It is a cached stage like the others: its inputs are the manifests of everything it
shows, so it is rebuilt when a run or an evaluation changes (an epoch more, a new
result) and skipped otherwise. Output: `<workdir>/report/report.html` for the whole
workspace, `<workdir>/<dataset>/report/report.html` for one dataset.
"""
from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asar_data import storage
from pipelines.config import get_key
from pipelines.fingerprint import digest, package_version
from pipelines.manifest import Manifest
from pipelines.runner import Options, Run, Stage, StageResult, execute
from pipelines.stage import Input
from pipelines.workspace import Output, Workspace

PAGE = "report.html"
RUN_KEYS = ("batch_size", "base_lr", "step", "model_args.queue_size", "model_args.topk",
            "model_args.active_epoch", "stream", "seed")


def manifest_state(location: str) -> str:
    """A fingerprint of what a manifest says now: the output's identity and how far it got."""
    m = Manifest.load(location)
    if m is None:
        return "missing"
    return digest(m.fingerprint, str(m.complete), str(sorted(m.shards_done)), str(m.finished))


@dataclass(frozen=True)
class ReportParams:
    """dataset: one dataset of the workspace, or None for all of them."""

    dataset: str | None = None


class Report(Stage[ReportParams]):
    name, version, output_kind = "report", 1, "atomic"

    def output(self, ws: Workspace, p: ReportParams) -> Output:
        return ws.report(p.dataset)

    def command(self, p: ReportParams) -> str:
        return f"report {p.dataset or 'workspace'}"

    def fingerprint_params(self, p: ReportParams) -> dict[str, Any]:
        return {"dataset": p.dataset}

    def inputs(self, ws: Workspace, p: ReportParams, state: dict[str, Any]) -> dict[str, Input]:
        datasets = [p.dataset] if p.dataset else ws.datasets()
        state["datasets"] = datasets
        found: dict[str, Input] = {}
        for ds in datasets:
            outs = [ws.raw(ds)] + [o for _, o in ws.frames_outputs(ds)]
            outs += [ws.run(ds, n) for n in ws.names(ds, "runs")]
            outs += [ws.evaluation(ds, n) for n in ws.names(ds, "eval")]
            for o in outs:
                if storage.exists(o.manifest):
                    rel = ws.relative(o.manifest)
                    found[rel] = Input(rel, manifest_state(o.manifest), "manifest")
            for fig in _figure_files(ws, ds):
                found[ws.relative(fig)] = Input(ws.relative(fig), _file_state(fig), "file")
        return found

    def run_shard(self, run: Run[ReportParams], shard: int) -> None:
        datasets = run.state["datasets"]
        with run.progress.bar("report", total=max(len(datasets), 1), unit="datasets") as bar:
            sections = []
            for ds in datasets:
                sections.append(dataset_section(run.ws, ds, run.state))
                bar.advance(1)
        page = render_page(run.ws, sections)
        storage.write_text(storage.join(run.where, PAGE), page)
        run.state["bytes"] = len(page.encode())

    def finish(self, run: Run[ReportParams]) -> dict[str, Any]:
        s = run.state
        return {"page": storage.join(run.output.store, PAGE), "bytes": s["bytes"],
                "runs": s.get("runs", 0), "evaluations": s.get("evaluations", 0),
                "datasets": len(s["datasets"])}

    def details(self, run: Run[ReportParams], summary: Mapping[str, Any]) -> dict[str, Any]:
        return {"page": storage.join(run.output.store, PAGE)}


def _file_state(location: str) -> str:
    from pipelines.fingerprint import file_fingerprint

    return file_fingerprint(location)


def _figure_files(ws: Workspace, dataset: str) -> list[str]:
    """PNG figures kept in the dataset's `figures/` folder (t-SNE figures)."""
    folder = ws.path(dataset, "figures")
    if not storage.isdir(folder):
        return []
    return [storage.join(folder, e.name) for e in storage.list_files(folder)
            if e.name.endswith(".png")]


# -- gathering ------------------------------------------------------------------------------
def _png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _esc(v: Any) -> str:
    return html.escape("-" if v is None else str(v))


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f}"


def dataset_section(ws: Workspace, ds: str, state: dict[str, Any]) -> str:
    """The HTML of one dataset: stores, runs with curves, evaluations with figures."""
    from pipelines.status import workspace_status

    rows = [r for r in workspace_status(ws) if r.dataset == ds]
    parts = [f"<h2>{_esc(ds)}</h2>", _table(
        ["stage", "output", "state", "detail"],
        [[r.stage, ws.relative(r.output), f'<span class="{r.state}">{_esc(r.state)}</span>',
          _esc(r.detail)] for r in rows], raw_cols={2})]
    parts.append(runs_section(ws, ds, state))
    parts.append(evaluations_section(ws, ds, state))
    figures = _figure_files(ws, ds)
    if figures:
        parts.append("<h3>t-SNE and other figures</h3>")
        for fig in figures:
            parts.append(_figure(storage.read_bytes(fig), ws.relative(fig)))
    return "\n".join(parts)


def runs_section(ws: Workspace, ds: str, state: dict[str, Any]) -> str:
    import yaml

    from pipelines.pretrain import read_metrics

    names = [n for n in ws.names(ds, "runs") if storage.exists(ws.run(ds, n).manifest)]
    if not names:
        return "<h3>Pre-training runs</h3><p>none yet</p>"
    body, figures = [], []
    for name in names:
        out = ws.run(ds, name)
        m = Manifest.load(out.manifest)
        cfg_loc = storage.join(out.store, "config.yaml")
        cfg = yaml.safe_load(storage.read_text(cfg_loc)) if storage.exists(cfg_loc) else {}
        records = read_metrics(out.store)
        done, total = m.progress if m else (0, 0)
        final = records[-1]["loss"] if records else None
        settings = ", ".join(f"{k.split('.')[-1]} {get_key(cfg, k)}" for k in RUN_KEYS
                             if get_key(cfg, k) is not None)
        body.append([name, cfg.get("benchmark"), f"{done}/{total}",
                     "complete" if m and m.complete else "unfinished",
                     "-" if final is None else f"{final:.4f}", settings])
        if records:
            figures.append(_figure(run_curves_png(records, f"{ds} / {name}"),
                                   f"run {name}: loss, learning rate and relabel weight"))
    state["runs"] = state.get("runs", 0) + len(names)
    return "\n".join(["<h3>Pre-training runs</h3>",
                      _table(["run", "benchmark", "epochs", "state", "final loss",
                              "key settings"], [[_esc(c) for c in r] for r in body]),
                      *figures])


def evaluations_section(ws: Workspace, ds: str, state: dict[str, Any]) -> str:
    names = [n for n in ws.names(ds, "eval")
             if storage.exists(storage.join(ws.eval_dir(ds, n), "result.json"))]
    if not names:
        return "<h3>Evaluations</h3><p>none yet</p>"
    rows, figures = [], []
    for name in names:
        folder = ws.eval_dir(ds, name)
        result = json.loads(storage.read_text(storage.join(folder, "result.json")))
        acc = result.get("accuracy", {})
        best = acc.get("best_top1")
        weights = result.get("weights")
        if isinstance(weights, Mapping):
            weights = ", ".join(f"{s}: {_weights_name(w)}" for s, w in weights.items())
        else:
            weights = _weights_name(weights)
        streams = result.get("streams")
        if streams:
            per = "; ".join(f"{s} {_pct(v.get('top1'))}" for s, v in streams.items())
            weights = f"{weights} (streams: {per})"
        rows.append([name, result.get("protocol"), result.get("stream"),
                     result.get("benchmark"), weights, _pct(acc.get("top1")),
                     _pct(acc.get("top5")),
                     "-" if best is None else f"{best:.2f} (epoch {acc.get('best_epoch')})"])
        png = storage.join(folder, "confusion.png")
        if storage.exists(png):
            figures.append(_figure(storage.read_bytes(png), f"evaluation {name}: confusion"))
    state["evaluations"] = state.get("evaluations", 0) + len(names)
    header = ["evaluation", "protocol", "stream", "benchmark", "weights", "top-1 (final)",
              "top-5 (final)", "best top-1 over evaluations (reference's number, chosen on "
              "test)"]
    return "\n".join(["<h3>Evaluations</h3>",
                      _table(header, [[_esc(c) for c in r] for r in rows]), *figures])


def _weights_name(location: Any) -> str:
    if not location:
        return "random init"
    parts = str(location).replace("\\", "/").split("/")
    if len(parts) >= 3 and parts[-3] == "runs":
        return f"run {parts[-2]}" + ("" if parts[-1] == "checkpoint.pt" else f" ({parts[-1]})")
    return parts[-1]


def run_curves_png(records: list[dict[str, Any]], title: str) -> bytes:
    """Loss, learning rate and relabel weight per epoch of one run, as a PNG."""
    from pipelines.figures import curves_figure, png_bytes

    return png_bytes(curves_figure(records, title))


# -- rendering ------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], raw_cols: set[int] | None = None) -> str:
    """An HTML table; cells are escaped by the caller."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: bytes, caption: str) -> str:
    return (f'<figure><img src="{_png(png)}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #1a1a1a; background: #fff; padding: 0 1em; }
h1 { border-bottom: 3px solid #2a6fdb; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; width: 100%; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef3fb; }
figure { display: inline-block; margin: 1em; max-width: 48%; vertical-align: top; }
img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
.complete { color: #1b7f3b; } .running { color: #1a5fb4; } .stale { color: #a51d8f; }
.partial, .stopped { color: #c06000; } .missing { color: #c01c28; }
.meta { color: #666; font-size: 13px; }
"""


def render_page(ws: Workspace, sections: list[str]) -> str:
    made = time.strftime("%Y-%m-%d %H:%M:%S")
    body = "\n".join(sections) or "<p>The workspace is empty: start with asar-cli ingest.</p>"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>asar report - {_esc(ws.root)}</title><style>{STYLE}</style></head>"
            f"<body><h1>asar report</h1><p class=\"meta\">workspace {_esc(ws.root)} - made "
            f"{made} by asar {_esc(package_version())}</p>\n{body}\n</body></html>\n")


def report(ws: Workspace, dataset: str | None = None, force: bool = False, progress: Any = None,
           wait: bool = False) -> StageResult:
    """Build (or skip, when nothing it shows changed) the workspace's HTML report."""
    if dataset is not None:
        from pipelines.workspace import check_name

        check_name("dataset", dataset)
    return execute(Report(), ws, ReportParams(dataset), Options(force=force, wait=wait),
                   progress)
