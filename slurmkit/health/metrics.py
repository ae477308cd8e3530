"""Prometheus metrics of a cluster (``slurmkit exporter``): Slurm's nodes, GPUs and jobs, the health checks' last
results, the latest bench run's busbw. Pure builders of metric families (over parsed Slurm records, the health
state and a bench ``meta.json``) and a collector that gathers them at each scrape.

Metrics (every label set bounded by the cluster: nodes, states, partitions, check ids, benched node sets; no job
ids, no users):

* ``slurmkit_nodes{state}``: nodes by state, one of ``drained`` (DRAIN in the flags), ``down``, or Slurm's base
  state lower-cased (``idle``, ``allocated``, ``mixed``, ...);
  ``slurmkit_node_state{node,state}``: 1 for each node's state (the same words), with
  ``slurmkit_node_drained_by_slurmkit{node,reason_kind}`` (1 where the reason starts with ``slurmkit:``; kind
  ``bench`` or ``health``).
* ``slurmkit_gpus{state}``: GPUs (from each node's Gres) ``allocated`` (AllocTRES ``gres/gpu``; where that is
  not known, every GPU of an ALLOCATED node), ``drained`` (the unallocated GPUs of drained or down nodes) and
  ``idle`` (the rest).
* ``slurmkit_jobs{state,partition}``: jobs by state and partition.
* ``slurmkit_health_check_ok{node,check}``: 1 passed, 0 failed, each check's last result (``.slurmkit/health``);
  ``slurmkit_health_failing_checks{node}``.
* ``slurmkit_bench_busbw_gbps{mode,node_set}`` and ``slurmkit_bench_ratio{mode,node_set}`` (with a same-run
  baseline) of the latest bench run; ``slurmkit_bench_passed``, ``slurmkit_bench_timestamp_seconds``.
* ``slurmkit_scrape_ok{source}``: 0 when a source (``slurm_nodes``, ``slurm_jobs``, ``health``, ``bench``) could
  not be read at this scrape (its metrics are then left out, not reported as zero).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily

from slurmkit.health.policy import drained_by

_GPU_IN_GRES = re.compile(r"(?:^|,)gpu(?::[^:,()]+)?:(\d+)")
_GPU_IN_TRES = re.compile(r"(?:^|,)gres/gpu=(\d+)")


def gres_gpus(gres: str | None) -> int:
    """GPUs in a Gres string: ``gpu:8``, ``gpu:h100:8(S:0-1)``, ``gpu:a:2,gpu:b:2`` -> 8, 8, 4; ``(null)`` 0."""
    return sum(int(m) for m in _GPU_IN_GRES.findall(gres or ""))


def tres_gpus(tres: str | None) -> int | None:
    """``gres/gpu=N`` of an AllocTRES string (0 when it names no GPU; None when there is no string)."""
    if tres is None:
        return None
    m = _GPU_IN_TRES.search(tres)
    return int(m.group(1)) if m else 0


def node_state(node) -> str:
    if node.is_drained:
        return "drained"
    if node.is_down:
        return "down"
    return (node.state or "unknown").lower()


def node_families(nodes: Iterable, alloc_tres: Mapping[str, str | None] | None = None) -> list[GaugeMetricFamily]:
    """``nodes``: :class:`slurmkit.slurm.parsers.NodeInfo`; ``alloc_tres``: node -> its AllocTRES (when known)."""
    nodes = list(nodes)
    alloc_tres = alloc_tres or {}
    by_state = Counter(node_state(n) for n in nodes)
    fam = GaugeMetricFamily("slurmkit_nodes", "Slurm nodes by state", labels=["state"])
    for state, count in sorted(by_state.items()):
        fam.add_metric([state], count)
    per = GaugeMetricFamily("slurmkit_node_state", "1 for each node's current Slurm state", labels=["node", "state"])
    ours = GaugeMetricFamily("slurmkit_node_drained_by_slurmkit",
                             "1 for a node drained with a slurmkit: reason", labels=["node", "reason_kind"])
    gpus = Counter({"allocated": 0, "idle": 0, "drained": 0})
    for n in nodes:
        state = node_state(n)
        per.add_metric([n.name, state], 1)
        kind = drained_by(n.reason)
        if state in ("drained", "down") and kind:
            ours.add_metric([n.name, kind.split(":", 1)[1]], 1)
        total = gres_gpus(n.gres)
        alloc = tres_gpus(alloc_tres.get(n.name))
        if alloc is None:
            alloc = total if n.state == "ALLOCATED" else 0
        alloc = min(alloc, total)
        gpus["allocated"] += alloc
        gpus["drained" if state in ("drained", "down") else "idle"] += total - alloc
    g = GaugeMetricFamily("slurmkit_gpus", "GPUs by state (from the nodes' Gres and AllocTRES)", labels=["state"])
    for state in ("allocated", "idle", "drained"):
        g.add_metric([state], gpus[state])
    return [fam, per, ours, g]


def job_families(jobs: Iterable) -> list[GaugeMetricFamily]:
    """``jobs``: :class:`slurmkit.slurm.parsers.JobInfo` (``squeue``'s: pending and running ones)."""
    fam = GaugeMetricFamily("slurmkit_jobs", "Slurm jobs by state and partition", labels=["state", "partition"])
    for (state, part), count in sorted(Counter((j.state.lower(), j.partition or "") for j in jobs).items()):
        fam.add_metric([state, part], count)
    return [fam]


def health_families(states: Mapping[str, Any]) -> list[GaugeMetricFamily]:
    """``states``: node -> :class:`slurmkit.health.policy.NodeState` (the kept health state)."""
    ok = GaugeMetricFamily("slurmkit_health_check_ok", "Each health check's last result per node (1 passed)",
                           labels=["node", "check"])
    failing = GaugeMetricFamily("slurmkit_health_failing_checks", "Failing checks of each node's last health run",
                                labels=["node"])
    for node in sorted(states):
        st = states[node]
        for check, passed in sorted(st.checks.items()):
            ok.add_metric([node, check], 1 if passed else 0)
        failing.add_metric([node], len(st.last))
    return [ok, failing]


def bench_figures(meta: Mapping[str, Any]) -> list[tuple[str, float | None, float | None]]:
    """(node set, busbw GB/s, ratio) of each judged run of a bench run's ``meta.json``, the last per node set. A
    verdict run's source (``logs/<label>.log``) is matched to the saved log (``logs/<label>-<job id>.log``)
    through the sweep's jobs, else to a saved log of the same name."""
    logs = {lg.get("file"): lg.get("node_set") or ",".join(lg.get("nodes") or []) for lg in meta.get("logs") or []}
    by_label = {}
    for job in (meta.get("sweep") or {}).get("jobs") or []:
        saved = f"logs/{job.get('label')}-{job.get('job_id')}.log"
        if saved in logs:
            by_label[f"logs/{job.get('label')}.log"] = logs[saved]
    out: dict[str, tuple[float | None, float | None]] = {}
    for run in (meta.get("verdict") or {}).get("runs") or []:
        src = run.get("source")
        node_set = by_label.get(src) or logs.get(src)
        if node_set and (run.get("busbw_gbps") is not None or run.get("ratio") is not None):
            out[node_set] = (run.get("busbw_gbps"), run.get("ratio"))
    return [(ns, bw, r) for ns, (bw, r) in out.items()]


def bench_families(meta: Mapping[str, Any]) -> list[GaugeMetricFamily]:
    mode = str(meta.get("mode") or "")
    bw = GaugeMetricFamily("slurmkit_bench_busbw_gbps", "The latest bench run's judged busbw per node set (GB/s)",
                           labels=["mode", "node_set"])
    ratio = GaugeMetricFamily("slurmkit_bench_ratio", "The latest bench run's busbw over its same-run baseline",
                              labels=["mode", "node_set"])
    for node_set, gbps, r in bench_figures(meta):
        if gbps is not None:
            bw.add_metric([mode, node_set], gbps)
        if r is not None:
            ratio.add_metric([mode, node_set], r)
    out = [bw, ratio]
    verdict = meta.get("verdict") or {}
    if "passed" in verdict:
        out.append(GaugeMetricFamily("slurmkit_bench_passed", "1 when the latest bench run passed",
                                     value=1 if verdict["passed"] else 0))
    try:
        when = datetime.strptime(str(meta.get("time")), "%Y-%m-%dT%H:%M:%SZ")
        from datetime import timezone

        out.append(GaugeMetricFamily("slurmkit_bench_timestamp_seconds", "When the latest bench run started",
                                     value=when.replace(tzinfo=timezone.utc).timestamp()))
    except ValueError:
        pass
    return out


def latest_bench_meta(bench_dir: Path) -> dict | None:
    """The latest saved run's meta.json under ``bench_dir`` (None when there is none)."""
    from slurmkit.bench.results import NoResults, find_runs

    try:
        runs = find_runs(bench_dir)
    except NoResults:
        return None
    return json.loads((runs[-1] / "meta.json").read_text(encoding="utf-8"))


@dataclass
class Sources:
    """Where a scrape reads from; each returns its data or raises (then ``slurmkit_scrape_ok{source}`` is 0)."""

    nodes: Callable[[], tuple[list, Mapping[str, str | None]]]
    jobs: Callable[[], list]
    health: Callable[[], Mapping[str, Any]]
    bench: Callable[[], dict | None]
    errors: list[str] = field(default_factory=list)


class Collector:
    """A prometheus_client collector: reads every source at each scrape."""

    def __init__(self, sources: Sources):
        self.sources = sources

    def collect(self):
        ok = GaugeMetricFamily("slurmkit_scrape_ok", "1 when the source was read at this scrape", labels=["source"])
        steps = (("slurm_nodes", lambda: node_families(*self.sources.nodes())),
                 ("slurm_jobs", lambda: job_families(self.sources.jobs())),
                 ("health", lambda: health_families(self.sources.health())),
                 ("bench", lambda: (lambda m: bench_families(m) if m else [])(self.sources.bench())))
        for name, build in steps:
            try:
                families = build()
            except Exception as exc:  # a source down: said in slurmkit_scrape_ok, the others still served
                self.sources.errors.append(f"{name}: {exc}")
                del self.sources.errors[:-20]
                ok.add_metric([name], 0)
                continue
            ok.add_metric([name], 1)
            yield from families
        yield ok
