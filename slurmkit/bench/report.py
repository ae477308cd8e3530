"""Reports of saved bench results (:mod:`slurmkit.bench.results`): PNG plots, an HTML page, a text summary.

:func:`write_report` takes a run directory, or a results directory holding several runs, and writes
``report.html`` into it with its plots as PNG files in ``plots/`` beside it; the page also carries each plot as
base64 so that it stays whole when copied or mailed alone. For a results directory the page judges the latest
run and adds every run's sweep and the trend across runs.

Plots (matplotlib, Agg backend; no display is needed):

* ``busbw.png``: bus bandwidth vs message size (log2 axis), out-of-place solid and in-place dashed, one colour
  per run or node set, the expectation (verdict ``expect_gbps`` from ``min_size_bytes`` on) as a red line;
* ``latency.png``: time vs message size up to 1 MiB;
* ``node_sets.png`` (``nodes``/``pairs`` modes): one bar per node or pair, the judged busbw (the mean over the
  sizes >= ``min_size_bytes``, else at the largest size), below-threshold bars and culprits in red;
* ``history.png`` (several runs): the judged busbw of each run over time, pass/fail coloured.

The verdict read from ``meta.json`` is the plain dict of :mod:`slurmkit.bench.results`:
``{"passed": bool, "reasons": [str], "summary": str?, "expect_gbps": float?, "min_size_bytes": int?}``, with
culprits in ``meta["culprits"]`` (``{"node"|"nodes"|"link"|"pair": ..., "message": ...}``). A verdict judged
against a same-run baseline (``min_ratio``, ``baseline_gbps``, ``ratio``; no ``expect_gbps``) draws its
threshold as ``min_ratio`` times the baseline; each job's baseline step (``logs/*-baseline.log``) is drawn as
a line of its own in a single run's busbw plot and is left out of the judged values, each pair or node set
being compared with its own job's baseline.
"""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slurmkit.bench.results import BASELINE_SUFFIX, SavedRun, find_runs, load_run

if TYPE_CHECKING:  # pragma: no cover
    import pandas

REPORT = "report.html"
PLOTS = "plots"
SMALL_MAX_BYTES = 1024**2  # the latency plot's range
MAX_LEGEND = 12  # series beyond this share one colour cycle and lose their in-place line


@dataclass
class Report:
    """What :func:`build_report` computed: the page's path, its plots and the text summary."""

    html: Path
    plots: dict[str, Path] = field(default_factory=dict)
    text: str = ""


def human_bytes(size: float) -> str:
    """8 -> '8', 1024 -> '1K', 3 MiB -> '3M', 8 GiB -> '8G' (binary units, as nccl-tests sizes are)."""
    if size is None or (isinstance(size, float) and math.isnan(size)):
        return "-"
    value = float(size)
    for unit in ("", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:g}{unit}"
        value /= 1024
    return f"{size}"  # pragma: no cover


# --- what to plot -------------------------------------------------------------------------------------------


def _threshold(meta: dict[str, Any]) -> tuple[float | None, int | None]:
    """(busbw threshold in GB/s, minimum size): ``expect_gbps``, else ``min_ratio`` x the judged run's
    same-run baseline."""
    verdict = meta.get("verdict") or {}
    expect = verdict.get("expect_gbps")
    if expect is None and verdict.get("min_ratio") is not None and verdict.get("baseline_gbps") is not None:
        expect = float(verdict["min_ratio"]) * float(verdict["baseline_gbps"])
    min_size = verdict.get("min_size_bytes")
    return (float(expect) if expect is not None else None, int(min_size) if min_size is not None else None)


def _threshold_label(meta: dict[str, Any], expect: float) -> str:
    verdict = meta.get("verdict") or {}
    if verdict.get("expect_gbps") is None and verdict.get("min_ratio") is not None:
        return (f"expected >= {verdict['min_ratio']:g} x same-run baseline {verdict['baseline_gbps']:.2f} "
                f"= {expect:.2f} GB/s")
    return f"expected >= {expect:g} GB/s"


def _is_baseline(rows: pandas.DataFrame):
    return rows["log"].fillna("").astype(str).str.endswith(BASELINE_SUFFIX)


def _op_rows(saved: SavedRun, baseline: bool = False) -> pandas.DataFrame:
    """The rows of the run's collective (rows whose collective the log does not name count as it): the measured
    steps' rows, or with ``baseline`` the same-run baseline steps' rows."""
    rows = saved.rows
    if not rows.empty and "log" in rows:
        keep = _is_baseline(rows)
        rows = rows[keep if baseline else ~keep]
    op = saved.meta.get("op")
    if rows.empty or not op:
        return rows
    mask = rows["collective"].isna() | (rows["collective"] == op)
    return rows[mask.fillna(True).astype(bool)]


def _judged_value(rows: pandas.DataFrame, min_size: int | None) -> float | None:
    """Mean out-of-place busbw over sizes >= min_size (else at the largest size); None when nothing fits."""
    if rows.empty:
        return None
    sizes = rows["size_bytes"].dropna()
    if sizes.empty:
        return None
    floor = min_size if min_size is not None else int(sizes.max())
    sel = rows[rows["size_bytes"] >= floor]["oop_busbw_gbps"].dropna()
    return float(sel.mean()) if not sel.empty else None


def _culprit_nodes(meta: dict[str, Any]) -> set[str]:
    from slurmkit import hostlist

    nodes: set[str] = set()
    for c in meta.get("culprits") or []:
        for key in ("node", "nodes", "link", "pair"):
            value = c.get(key)
            if not value:
                continue
            items = value if isinstance(value, list) else [value]
            for item in items:
                expr = str(item).replace("<->", ",").replace(" ", "")
                if not expr:
                    continue
                try:
                    nodes.update(hostlist.expand(expr))
                except hostlist.HostlistError:  # a free-form name that is no hostlist
                    nodes.add(str(item))
    return nodes


def _set_nodes(node_set: str) -> set[str]:
    from slurmkit import hostlist

    if not node_set.strip():
        return set()
    try:
        return set(hostlist.expand(node_set))
    except hostlist.HostlistError:
        return {node_set}


def _series(runs: list[SavedRun], per_run: bool) -> list[tuple[str, pandas.DataFrame]]:
    """(label, rows sorted by size) per line to draw: one per run (sets averaged) or per node set / log run."""
    out: list[tuple[str, Any]] = []
    for saved in runs:
        rows = _op_rows(saved)
        if rows.empty:
            continue
        if per_run:
            agg = rows.groupby("size_bytes", as_index=False)[
                ["oop_busbw_gbps", "ip_busbw_gbps", "oop_time_us", "ip_time_us"]].mean()
            verdict = saved.meta.get("verdict")
            word = "" if verdict is None else (" PASS" if verdict.get("passed") else " FAIL")
            out.append((f"{saved.meta.get('time', saved.id)} {saved.meta.get('mode', '')}{word}", agg))
            continue
        keys = rows[["log", "run", "attempt", "node_set", "collective"]].drop_duplicates()
        multi_attempt = keys["attempt"].nunique() > 1
        multi_coll = keys["collective"].nunique(dropna=False) > 1
        for _, k in keys.iterrows():
            sel = rows[(rows["log"] == k["log"]) & (rows["run"] == k["run"])]
            label = k["node_set"] if isinstance(k["node_set"], str) and k["node_set"] else f"{k['log']} #{k['run']}"
            if multi_coll and isinstance(k["collective"], str):
                label += f" {k['collective']}"
            if multi_attempt:
                label += f" (attempt {k['attempt']})"
            out.append((label, sel.sort_values("size_bytes")))
        if not per_run and saved.meta.get("mode") == "cluster":
            base = _op_rows(saved, baseline=True)
            for (log, run), sel in base.groupby(["log", "run"], sort=True):
                node_set = sel["node_set"].iloc[0] if isinstance(sel["node_set"].iloc[0], str) else log
                out.append((f"same-run baseline ({node_set})", sel.sort_values("size_bytes")))
    return out


# --- plots ---------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _log2_bytes_axis(ax, sizes: list[int]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log", base=2)
    lo, hi = min(sizes), max(sizes)
    span = math.log2(hi) - math.log2(lo) if hi > lo else 0
    step = 1 if span <= 12 else 2 if span <= 24 else 4
    ax.xaxis.set_major_locator(LogLocator(base=2 ** step))
    ax.xaxis.set_minor_locator(LogLocator(base=2, subs=(1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: human_bytes(v)))
    ax.set_xlim(lo / 1.3, hi * 1.3)
    ax.set_xlabel("message size (bytes, 1K = 1024)")


def _finish(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_busbw(series, expect: float | None, min_size: int | None, title: str, path: Path,
               note: str = "", label: str | None = None) -> Path | None:
    """Bus bandwidth vs size, out-of-place solid, in-place dashed, expectation as a red line (``label``: its
    legend, default ``expected >= X GB/s``)."""
    if not series:
        return None
    threshold_label = label
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.6))
    many = len(series) > MAX_LEGEND
    cmap = plt.get_cmap("tab20" if len(series) > 10 else "tab10")
    sizes: list[int] = []
    for i, (label, rows) in enumerate(series):
        x = rows["size_bytes"].astype(float).to_numpy()
        sizes += [int(v) for v in x]
        color = cmap(i % cmap.N)
        ax.plot(x, rows["oop_busbw_gbps"].astype(float), "-o", ms=3, lw=1.6, color=color,
                label=label if not many else (label if i < MAX_LEGEND else None))
        if not many:
            ax.plot(x, rows["ip_busbw_gbps"].astype(float), "--", lw=1.1, color=color, alpha=0.8)
    if expect is not None:
        start = min_size if min_size is not None else max(sizes)
        ax.hlines(expect, max(start, min(sizes)) / 1.3 if start <= min(sizes) else start, max(sizes) * 1.3,
                  colors="red", linestyles="-", lw=2, label=(threshold_label or f"expected >= {expect:g} GB/s")
                  + (f" from {human_bytes(min_size)}" if min_size is not None else "") + note)
    _log2_bytes_axis(ax, sizes)
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="major", alpha=0.35)
    ax.set_title(title)
    _size_legend(ax, many)
    return _finish(fig, path)


def _size_legend(ax, many: bool) -> None:
    """The legend of a per-size chart: one entry per series, plus the line styles when both are drawn."""
    handles, labels = ax.get_legend_handles_labels()
    if not many:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], color="grey", ls="-"), Line2D([], [], color="grey", ls="--")]
        labels += ["out-of-place", "in-place"]
    ax.legend(handles, labels, loc="upper left", fontsize=8, ncol=1 if len(labels) <= 8 else 2, framealpha=0.9)


def plot_latency(series, title: str, path: Path) -> Path | None:
    """Time per call vs size for messages up to 1 MiB."""
    small = [(label, rows[rows["size_bytes"] <= SMALL_MAX_BYTES]) for label, rows in series]
    small = [(label, rows) for label, rows in small if not rows.empty and rows["oop_time_us"].notna().any()]
    if not small:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.8))
    many = len(small) > MAX_LEGEND
    cmap = plt.get_cmap("tab20" if len(small) > 10 else "tab10")
    sizes: list[int] = []
    highs: list[float] = []
    lows: list[float] = []
    for i, (label, rows) in enumerate(small):
        x = rows["size_bytes"].astype(float).to_numpy()
        sizes += [int(v) for v in x]
        color = cmap(i % cmap.N)
        oop = rows["oop_time_us"].astype(float)
        highs.append(float(oop.max()))
        lows.append(float(oop.min()))
        ax.plot(x, oop, "-o", ms=3, lw=1.6, color=color, label=label if i < MAX_LEGEND else None)
        if not many:
            ax.plot(x, rows["ip_time_us"].astype(float), "--", lw=1.1, color=color, alpha=0.8)
    _log2_bytes_axis(ax, sizes)
    if max(highs) > 20 * max(min(lows), 1e-9):
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_ylabel("time per call (µs)")
    ax.grid(True, which="major", alpha=0.35)
    ax.set_title(title)
    _size_legend(ax, many)
    return _finish(fig, path)


def node_set_values(saved: SavedRun) -> list[dict[str, Any]]:
    """Per node set (and attempt) of a run: ``{"label", "node_set", "attempt", "busbw_gbps", "below",
    "culprit"}``, in node-set order."""
    expect, min_size = _threshold(saved.meta)
    verdict = saved.meta.get("verdict") or {}
    min_ratio = verdict.get("min_ratio") if verdict.get("expect_gbps") is None else None
    rows = _op_rows(saved)
    base = _op_rows(saved, baseline=True)
    culprits = _culprit_nodes(saved.meta)
    out = []
    if rows.empty:
        return out
    keys = rows[["node_set", "attempt"]].drop_duplicates()
    multi_attempt = keys["attempt"].nunique() > 1
    for _, k in keys.iterrows():
        node_set = k["node_set"] if isinstance(k["node_set"], str) else "?"
        sel = rows[(rows["node_set"].fillna("?") == node_set) & (rows["attempt"] == k["attempt"])]
        value = _judged_value(sel, min_size)
        label = node_set + (f" (round {k['attempt']})" if multi_attempt else "")
        below = expect is not None and (value is None or value < expect)
        ratio = None
        if min_ratio is not None:
            logs = {str(log)[: -len(".log")] + BASELINE_SUFFIX for log in sel["log"].dropna().unique()}
            own = _judged_value(base[base["log"].isin(logs)], min_size) if not base.empty else None
            ratio = value / own if value is not None and own else None
            below = ratio is None or ratio < float(min_ratio)
        out.append({
            "label": label, "node_set": node_set, "attempt": int(k["attempt"]), "busbw_gbps": value,
            "ratio": ratio, "below": below, "culprit": bool(culprits & _set_nodes(node_set)),
        })
    return out


def plot_node_sets(saved: SavedRun, path: Path) -> Path | None:
    """One bar per node (``nodes``) or pair (``pairs``): the judged busbw; low ones and culprits in red."""
    values = node_set_values(saved)
    if len(values) < 1:
        return None
    expect, min_size = _threshold(saved.meta)
    plt = _pyplot()
    n = len(values)
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 1.0 + 0.6 * n)), 5.2))
    heights = [v["busbw_gbps"] or 0.0 for v in values]
    colors = ["#d62728" if (v["below"] or v["culprit"]) else "#1f77b4" for v in values]
    bars = ax.bar(range(n), heights, color=colors, edgecolor="black", linewidth=0.6)
    for bar, v in zip(bars, values):
        if v["culprit"]:
            bar.set_hatch("//")
        text = "no data" if v["busbw_gbps"] is None else f"{v['busbw_gbps']:.1f}"
        if v.get("ratio") is not None:
            text += f"\n{v['ratio']:.2f}x base"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    if expect is not None and not any(v.get("ratio") is not None for v in values):
        ax.axhline(expect, color="red", lw=2, label=f"expected >= {expect:g} GB/s")
    ax.set_xticks(range(n))
    ax.set_xticklabels([v["label"] for v in values], rotation=30 if n > 4 else 0, ha="right" if n > 4 else "center",
                       fontsize=8)
    what = "pair" if saved.meta.get("mode") == "pairs" else "node"
    where = f"mean over sizes >= {human_bytes(min_size)}" if min_size is not None else "at the largest size"
    ax.set_ylabel(f"bus bandwidth, out-of-place (GB/s)")
    ax.set_xlabel(f"{what} (node set)")
    ax.set_title(f"{saved.meta.get('op') or ''} busbw per {what} ({where})")
    top = max(heights + [expect or 0.0]) or 1.0
    ax.set_ylim(0, top * 1.15)
    ax.grid(True, axis="y", alpha=0.35)
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    handles += [Patch(facecolor="#1f77b4", edgecolor="black"), Patch(facecolor="#d62728", edgecolor="black"),
                Patch(facecolor="white", edgecolor="black", hatch="//")]
    labels += ["ok", "below expectation / culprit", "named culprit"]
    ax.legend(handles, labels, loc="upper right", fontsize=8, framealpha=0.9)
    return _finish(fig, path)


def history_values(runs: list[SavedRun]) -> list[dict[str, Any]]:
    """Per run, oldest first: ``{"id", "time", "mode", "busbw_gbps", "passed", "expect_gbps"}``."""
    out = []
    for saved in runs:
        expect, min_size = _threshold(saved.meta)
        rows = _op_rows(saved)
        verdict = saved.meta.get("verdict")
        out.append({
            "id": saved.id, "time": saved.meta.get("time"), "mode": saved.meta.get("mode"),
            "busbw_gbps": _judged_value(rows, min_size), "expect_gbps": expect,
            "passed": None if verdict is None else bool(verdict.get("passed")),
        })
    return out


def plot_history(runs: list[SavedRun], path: Path) -> Path | None:
    """The judged busbw of each run, in time order, green pass / red fail / grey not judged."""
    values = history_values(runs)
    if len(values) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, min(16.0, 2.0 + 0.8 * len(values))), 4.8))
    xs = list(range(len(values)))
    ys = [v["busbw_gbps"] if v["busbw_gbps"] is not None else float("nan") for v in values]
    ax.plot(xs, ys, "-", color="grey", lw=1, zorder=1)
    palette = {True: "#2ca02c", False: "#d62728", None: "#7f7f7f"}
    for x, y, v in zip(xs, ys, values):
        ax.scatter([x], [y], s=60, color=palette[v["passed"]], edgecolor="black", zorder=2)
    expects = [v["expect_gbps"] for v in values]
    for x, e in zip(xs, expects):
        if e is not None:
            ax.hlines(e, x - 0.35, x + 0.35, colors="red", lw=2, zorder=3)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{(v['time'] or '')[:10]}\n{(v['time'] or '')[11:16]} {v['mode']}" for v in values],
                       fontsize=8)
    ax.set_ylabel("judged busbw, out-of-place (GB/s)")
    ax.set_xlabel("run (UTC)")
    ax.set_ylim(bottom=0, top=max([y for y in ys if not math.isnan(y)] + [e or 0 for e in expects] + [1]) * 1.15)
    ax.set_title("bus bandwidth across runs")
    ax.grid(True, axis="y", alpha=0.35)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=c, markeredgecolor="black", label=lab)
               for c, lab in (("#2ca02c", "PASS"), ("#d62728", "FAIL"), ("#7f7f7f", "not judged"))]
    handles.append(Line2D([], [], color="red", lw=2, label="expected (per run)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    return _finish(fig, path)


# --- text and HTML -------------------------------------------------------------------------------------------


def _verdict_word(meta: dict[str, Any]) -> str:
    verdict = meta.get("verdict")
    if verdict is None:
        return "NOT JUDGED"
    return "PASS" if verdict.get("passed") else "FAIL"


def _culprit_text(c: dict[str, Any]) -> str:
    who = next((str(c[k]) for k in ("node", "nodes", "link", "pair") if c.get(k)), "")
    parts = [p for p in (who, c.get("message") or c.get("reason") or "") if p]
    if c.get("busbw_gbps") is not None:
        parts.append(f"{float(c['busbw_gbps']):.2f} GB/s")
    return ": ".join(parts[:2]) + (f" ({parts[2]})" if len(parts) > 2 else "")


def text_summary(runs: list[SavedRun], html: Path | None = None) -> str:
    """The terminal summary: the latest run's verdict, reasons, culprits and busbw; the others in one line each."""
    latest = runs[-1]
    meta = latest.meta
    lines = []
    word = _verdict_word(meta)
    nodes = meta.get("node_set") or "?"
    lines.append(f"{word}  {meta.get('id')}: {meta.get('mode')} / {meta.get('engine')} / {meta.get('op')}"
                 f" on {len(meta.get('nodes') or [])} node(s) {nodes}")
    verdict = meta.get("verdict") or {}
    if verdict.get("summary"):
        lines.append(f"  {verdict['summary']}")
    for reason in verdict.get("reasons") or []:
        lines.append(f"  - {reason}")
    for c in meta.get("culprits") or []:
        lines.append(f"  culprit: {_culprit_text(c)}")
    rows = _op_rows(latest)
    if not rows.empty and rows["size_bytes"].notna().any():
        largest = int(rows["size_bytes"].max())
        at = rows[rows["size_bytes"] == largest]
        oop, ip = at["oop_busbw_gbps"].mean(), at["ip_busbw_gbps"].mean()
        lines.append(f"  busbw at {human_bytes(largest)}: out-of-place {oop:.2f} GB/s, in-place {ip:.2f} GB/s"
                     + (f" (mean of {at['node_set'].nunique()} node sets)" if at["node_set"].nunique() > 1 else ""))
    if meta.get("mode") in ("nodes", "pairs"):
        vals = [v for v in node_set_values(latest) if v["busbw_gbps"] is not None]
        if vals:
            worst = min(vals, key=lambda v: v["busbw_gbps"])
            lines.append(f"  lowest {'pair' if meta.get('mode') == 'pairs' else 'node'}: {worst['label']}"
                         f" {worst['busbw_gbps']:.2f} GB/s")
    if len(runs) > 1:
        lines.append(f"  history: {len(runs)} runs")
        for v in history_values(runs):
            bw = "-" if v["busbw_gbps"] is None else f"{v['busbw_gbps']:.2f} GB/s"
            word = {True: "PASS", False: "FAIL", None: "-"}[v["passed"]]
            lines.append(f"    {v['time']}  {v['mode'] or '':8} {word:4}  {bw}")
    if html is not None:
        lines.append(f"  report: {html}")
    return "\n".join(lines) + "\n"


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>slurmkit bench report: {{ meta.id }}</title>
<style>
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
        color: #222; padding: 0 16px; }
 h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 1.8em; }
 .verdict { padding: 14px 20px; border-radius: 6px; color: white; }
 .verdict.pass { background: #2e7d32; } .verdict.fail { background: #c62828; } .verdict.none { background: #757575; }
 .verdict .word { font-size: 2em; font-weight: bold; letter-spacing: 0.05em; }
 .verdict ul { margin: 8px 0 0 0; }
 table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; }
 th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
 th { background: #f3f3f3; } td.l, th.l { text-align: left; }
 tr.bad td { background: #fde0e0; }
 figure { margin: 16px 0; } figure img { max-width: 100%; border: 1px solid #eee; }
 figcaption { font-size: 0.85em; color: #555; }
 code { background: #f4f4f4; padding: 1px 4px; }
</style></head>
<body>
<h1>slurmkit bench report</h1>
<div class="verdict {{ vclass }}" id="verdict">
 <div class="word">{{ word }}</div>
 <div>{{ meta.mode }} mode &middot; {{ meta.engine }} &middot; {{ meta.op }} &middot;
  {{ (meta.nodes or [])|length }} node(s) <code style="color:#222">{{ meta.node_set or "?" }}</code> &middot;
  {{ meta.time }}{% if meta.cluster %} &middot; cluster {{ meta.cluster }}{% endif %}</div>
 {% if verdict and verdict.summary %}<div>{{ verdict.summary }}</div>{% endif %}
 {% if verdict and verdict.reasons %}<ul>{% for r in verdict.reasons %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
 {% if culprits %}<div id="culprits"><b>Culprit{{ "s" if culprits|length > 1 }}:</b>
  {% for c in culprits %}{{ c }}{% if not loop.last %}; {% endif %}{% endfor %}</div>{% endif %}
</div>
{% if runs|length > 1 %}<p>Results directory with {{ runs|length }} runs; the verdict above is the latest run's
(<code>{{ meta.id }}</code>).</p>{% endif %}

<h2>Plots</h2>
{% for fig in figures %}
<figure><img src="data:image/png;base64,{{ fig.data }}" alt="{{ fig.caption }}" data-file="{{ fig.file }}">
<figcaption>{{ fig.caption }} (<a href="{{ fig.file }}">{{ fig.file }}</a>)</figcaption></figure>
{% endfor %}

{% if node_sets %}
<h2>Per {{ "pair" if meta.mode == "pairs" else "node" }}</h2>
<table><tr><th class="l">node set</th><th>round</th><th>busbw (GB/s)</th><th class="l">status</th></tr>
{% for v in node_sets %}<tr class="{{ 'bad' if v.below or v.culprit }}"><td class="l">{{ v.node_set }}</td>
<td>{{ v.attempt }}</td><td>{{ "%.2f"|format(v.busbw_gbps) if v.busbw_gbps is not none else "-" }}</td>
<td class="l">{{ "culprit" if v.culprit else ("below expectation" if v.below else "ok") }}</td></tr>{% endfor %}
</table>
{% endif %}

{% if history|length > 1 %}
<h2>Runs</h2>
<table><tr><th class="l">time (UTC)</th><th class="l">run</th><th class="l">mode</th><th class="l">verdict</th>
<th>judged busbw (GB/s)</th><th>expected (GB/s)</th></tr>
{% for v in history %}<tr class="{{ 'bad' if v.passed == false }}"><td class="l">{{ v.time }}</td>
<td class="l">{{ v.id }}</td><td class="l">{{ v.mode }}</td>
<td class="l">{{ {True: "PASS", False: "FAIL"}.get(v.passed, "-") }}</td>
<td>{{ "%.2f"|format(v.busbw_gbps) if v.busbw_gbps is not none else "-" }}</td>
<td>{{ v.expect_gbps if v.expect_gbps is not none else "-" }}</td></tr>{% endfor %}
</table>
{% endif %}

<h2>Sweep</h2>
{% for t in tables %}
<details {{ "open" if loop.first }}><summary><b>{{ t.title }}</b>{% if t.errors %} &mdash;
 <span style="color:#c62828">{{ t.errors|length }} error(s)</span>{% endif %}</summary>
{% for e in t.errors %}<div style="color:#c62828">line {{ e.line }}: {{ e.message }}</div>{% endfor %}
<table class="sweep"><tr><th>size</th><th>bytes</th><th>count</th><th class="l">type</th>
<th>oop time (µs)</th><th>oop algbw (GB/s)</th><th>oop busbw (GB/s)</th><th>oop #wrong</th>
<th>ip time (µs)</th><th>ip algbw (GB/s)</th><th>ip busbw (GB/s)</th><th>ip #wrong</th></tr>
{% for r in t.rows %}<tr class="{{ 'bad' if r.bad }}">{% for c in r.cells %}<td{% if loop.index == 4 %} class="l"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table></details>
{% endfor %}

<h2>Metadata</h2>
<table>{% for k, v in meta_rows %}<tr><th class="l">{{ k }}</th><td class="l">{{ v }}</td></tr>{% endfor %}</table>
<h3>Logs</h3>
<ul>{% for log in meta.logs or [] %}<li><a href="{{ log.href }}">{{ log.file }}</a> &middot;
 {{ log.node_set or "nodes unknown" }} &middot; attempt {{ log.attempt }} &middot; {{ log.runs }} run(s),
 {{ log.failed_runs }} failed</li>{% endfor %}</ul>
<p style="color:#777;font-size:0.8em">Written by slurmkit {{ meta.versions.slurmkit if meta.versions else "" }}.</p>
</body></html>
"""


def _cell(value: Any, fmt: str = "{:g}") -> str:
    if value is None:
        return "-"
    try:
        import pandas as pd

        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):
        pass
    return fmt.format(value)


def _tables(runs: list[SavedRun], base: Path) -> list[dict[str, Any]]:
    tables = []
    for saved in runs:
        errors_by = {(r["source"], r["run"]): r.get("errors", []) for r in saved.meta.get("runs", [])}
        rows = saved.rows
        if rows.empty:
            continue
        prefix = f"{saved.id}: " if len(runs) > 1 else ""
        for (log, run), sel in rows.groupby(["log", "run"], sort=False):
            first = sel.iloc[0]
            title = (f"{prefix}{first['collective'] if isinstance(first['collective'], str) else 'collective ?'}"
                     f" on {first['node_set'] if isinstance(first['node_set'], str) else '?'}"
                     f" &middot; {_cell(first['nranks'])} ranks &middot; logs/{log} run {run}"
                     f" &middot; attempt {_cell(first['attempt'])}")
            out_rows = []
            for _, r in sel.iterrows():
                wrong = any((not _isna(r[c])) and r[c] > 0 for c in ("oop_wrong", "ip_wrong"))
                out_rows.append({"bad": wrong, "cells": [
                    human_bytes(int(r["size_bytes"])), _cell(r["size_bytes"], "{:d}"), _cell(r["count"], "{:d}"),
                    _cell(r["dtype"], "{}"), _cell(r["oop_time_us"]), _cell(r["oop_algbw_gbps"], "{:.2f}"),
                    _cell(r["oop_busbw_gbps"], "{:.2f}"), _cell(r["oop_wrong"], "{:d}"), _cell(r["ip_time_us"]),
                    _cell(r["ip_algbw_gbps"], "{:.2f}"), _cell(r["ip_busbw_gbps"], "{:.2f}"),
                    _cell(r["ip_wrong"], "{:d}"),
                ]})
            tables.append({"title": title, "rows": out_rows,
                           "errors": errors_by.get((f"logs/{log}", int(run)), [])})
    return tables


def _isna(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _meta_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(k, meta.get(k)) for k in ("id", "time", "cluster", "mode", "engine", "op", "node_set")]
    rows += [(f"sweep: {k}", v) for k, v in (meta.get("sweep") or {}).items()]
    rows += [(f"version: {k}", v) for k, v in (meta.get("versions") or {}).items() if v is not None]
    env = meta.get("environment") or {}
    rows += [(f"env: {k}", v) for k, v in env.items()] or [("environment", "no NCCL_* variables set")]
    verdict = meta.get("verdict") or {}
    rows += [(f"verdict: {k}", v) for k, v in verdict.items()
             if k in ("profile", "op", "expect_gbps", "min_size_bytes", "measured_gbps", "statistic",
                      "baseline_measure", "baseline_gbps", "ratio", "min_ratio")]
    return [(k, "-" if v is None else str(v)) for k, v in rows]


def write_report(path: str | os.PathLike) -> Path:
    """Write ``report.html`` (and ``plots/*.png``) for a run directory or a results directory; return its path.

    Raises :class:`slurmkit.bench.results.NoResults` (exit code 2) when ``path`` holds no saved run.
    """
    return build_report(path).html


def build_report(path: str | os.PathLike) -> Report:
    """:func:`write_report`, returning the plots and the text summary as well."""
    from slurmkit.resources import jinja_env

    root = Path(path)
    runs = [load_run(p) for p in find_runs(root)]
    latest = runs[-1]
    meta = latest.meta
    expect, min_size = _threshold(meta)
    plots_dir = root / PLOTS
    plots_dir.mkdir(exist_ok=True)
    for old in plots_dir.glob("*.png"):
        old.unlink()

    several = len(runs) > 1
    series = _series(runs, per_run=True) if several else _series(runs, per_run=False)
    what = f"{meta.get('op') or 'collective'} bus bandwidth vs message size"
    scope = f"{len(runs)} runs" if several else f"{meta.get('mode')} mode, {meta.get('engine')}, {meta.get('id')}"
    plots: dict[str, Path] = {}
    captions: dict[str, str] = {}
    made = plot_busbw(series, expect, min_size, f"{what}\n{scope}", plots_dir / "busbw.png",
                      note=" (latest run)" if several else "",
                      label=_threshold_label(meta, expect) if expect is not None else None)
    if made:
        plots["busbw"], captions["busbw"] = made, "Bus bandwidth vs message size: out-of-place solid, in-place dashed."
    made = plot_latency(series, f"{meta.get('op') or ''} time per call, messages up to 1M\n{scope}",
                        plots_dir / "latency.png")
    if made:
        plots["latency"], captions["latency"] = made, "Latency of small messages (time per call)."
    if meta.get("mode") in ("nodes", "pairs"):
        made = plot_node_sets(latest, plots_dir / "node_sets.png")
        if made:
            plots["node_sets"] = made
            captions["node_sets"] = f"Bus bandwidth per {'pair' if meta.get('mode') == 'pairs' else 'node'}."
    if several:
        made = plot_history(runs, plots_dir / "history.png")
        if made:
            plots["history"], captions["history"] = made, "Judged bus bandwidth across runs."

    html_path = root / "report.html"
    figures = [{"file": f"{PLOTS}/{p.name}", "caption": captions[k],
                "data": base64.b64encode(p.read_bytes()).decode("ascii")} for k, p in plots.items()]
    rel = os.path.relpath(latest.path, root)
    logs = [dict(log, href=os.path.normpath(os.path.join(rel, log["file"]))) for log in meta.get("logs") or []]
    env = jinja_env(autoescape=True, strict=False)  # HTML: names from logs escaped
    tables = _tables(runs if several else [latest], root)
    for t in tables:
        t["title"] = _markup(t["title"])
    html = env.from_string(_TEMPLATE).render(
        meta=dict(meta, logs=logs), verdict=meta.get("verdict"), word=_verdict_word(meta),
        vclass={"PASS": "pass", "FAIL": "fail"}.get(_verdict_word(meta), "none"),
        culprits=[_culprit_text(c) for c in meta.get("culprits") or []],
        runs=runs, figures=figures, tables=tables, meta_rows=_meta_rows(meta),
        node_sets=node_set_values(latest) if meta.get("mode") in ("nodes", "pairs") else [],
        history=history_values(runs),
    )
    html_path.write_text(html, encoding="utf-8")
    return Report(html=html_path, plots=plots, text=text_summary(runs, html_path))


def _markup(text: str):
    from markupsafe import Markup, escape

    # Only the &middot; separators are markup; the rest (names from logs) is escaped.
    return Markup("&middot;").join(escape(part) for part in text.split("&middot;"))
