"""The support bundle's findings and their severity rules (pure): from the evidence collected on hosts and from
Slurm (:class:`HostEvidence`, :class:`SlurmEvidence`) to :class:`Diagnosis` objects, and SUMMARY.txt.

Classification (by the support SLA's levels; the bundle's severity is the highest found)
---------------------------------------------------------------------------------------
Severity 1 -- services down or unusable:
  * controller down: ``scontrol ping`` on the first head answers no controller UP (or cannot reach any),
    or the first head itself cannot be reached over SSH;
  * no node usable: not one compute node is reachable, runs slurmd, and is in a Slurm state that takes jobs.
Severity 2 -- severely limited:
  * a compute node down: Slurm reports it not ready (``NodeInfo.is_ready``: down, failed, not responding (``*``),
    refused (INVAL), not registered (UNKNOWN), powering up or down, rebooting); or its slurmd
    is not running (seen on the host itself, so a stopped slurmd counts at once, before Slurm's SlurmdTimeout,
    300 s by default, marks it not responding); or the host is unreachable over SSH;
  * a node drained by slurmkit (its reason starts ``slurmkit:``, :func:`slurmkit.health.policy.drained_by`):
    ``slurmkit health`` found a check failing there (``slurmkit:gpu-count 7/8``) or ``bench --drain`` named it
    the slow node (``slurmkit:bench busbw ...``); the evidence names the check and the reason's detail, and the
    node's last result in the health history beside the cluster file when there is one;
  * nodes drained: more than one drained node, or any drained node whose reason does not name maintenance
    (nodes drained by slurmkit are their own finding, above, but count as drained nodes here);
  * the primary controller down while a backup answers (failed over: high risk), munged not running on a host;
  * a rail down: a compute node of a group with ``rails: N`` shows fewer than N InfiniBand ports ACTIVE;
  * bench failing: the latest saved bench run's verdict did not pass.
Severity 3 -- minor:
  * exactly one node drained, with a reason that names maintenance (``maint``), and no other node drained;
  * config drift: a host's /etc/slurm/<file> differs from what ``render_cluster`` gives for the cluster file.
No finding: the bundle says so ("no incident").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from slurmkit.cluster import Cluster
from slurmkit.health.policy import drain_detail, drained_by
from slurmkit.slurm.state import for_maintenance


@dataclass
class Diagnosis:
    """One thing the support bundle found wrong: its severity (1 most severe), a title, the evidence lines that
    show it, and the hosts it concerns. (Not :class:`slurmkit.topology.TopologyFinding`, a note about a node's
    hardware.)"""

    severity: int
    title: str
    evidence: list[str]
    hosts: list[str] = field(default_factory=list)


@dataclass
class HostEvidence:
    """What the bundle saw on one host. ``daemons``: name -> running; ``etc_slurm``: file -> text (None absent)."""

    host: str
    role: str
    error: str | None = None
    daemons: dict[str, bool] = field(default_factory=dict)
    etc_slurm: dict[str, str | None] = field(default_factory=dict)
    ib_active: int | None = None  # InfiniBand ports ACTIVE (None: no ibstat)
    ib_ports: list[str] = field(default_factory=list)  # "mlx5_0/1 DOWN" for evidence


@dataclass
class SlurmEvidence:
    """Slurm's view from the first head: ``scontrol ping`` text and controllers, nodes (None when unknown)."""

    ping_text: str = ""
    controllers: list = field(default_factory=list)
    nodes: list | None = None
    error: str | None = None


def _health_line(name: str, last: dict) -> str:
    """The node's last health result (:func:`slurmkit.health.policy.last_results`) as one evidence line."""
    when = last.get("time")
    try:
        stamp = datetime.fromtimestamp(float(when), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError):
        stamp = "time unknown"
    if last.get("ok"):
        return f"{name}: last health run {stamp}: every check passed"
    failing = [f"{c.get('id')} {c.get('message', '')}".strip() for c in last.get("failing") or [] if isinstance(c, dict)]
    return f"{name}: last health run {stamp}: failing " + ("; ".join(failing) or "(checks not recorded)")


def classify(cluster: Cluster, slurm: SlurmEvidence, hosts: dict[str, HostEvidence], rendered: dict[str, str],
             bench: dict | None = None, health: dict[str, dict] | None = None) -> list[Diagnosis]:
    """The findings of a support bundle, by the rules in this module's docstring; most severe first. ``health``:
    node -> its last health result (:func:`slurmkit.health.policy.last_results` of the kept history), or None."""
    out: list[Diagnosis] = []
    primary = cluster.head_names[0]
    ph = hosts.get(primary)
    computes = cluster.compute_names
    # --- controllers
    if ph is not None and ph.error:
        out.append(Diagnosis(1, "controller down: the first head cannot be reached", [f"{primary}: {ph.error}"], [primary]))
    else:
        up = [c for c in slurm.controllers if c.up]
        ev = [ln for ln in slurm.ping_text.splitlines() if ln.strip()] or ([slurm.error] if slurm.error else [])
        for h in cluster.head_names:
            e = hosts.get(h)
            if e and not e.error and e.daemons.get("slurmctld") is False:
                ev.append(f"{h}: slurmctld is not running")
        if not up:
            out.append(Diagnosis(1, "controller down: no slurmctld answers", ev or ["scontrol ping printed nothing"],
                               cluster.head_names))
        elif not any(c.primary for c in up):
            out.append(Diagnosis(2, "primary controller down; a backup has taken over", ev, [primary]))
        else:
            down_backups = [c.host for c in slurm.controllers if not c.up]
            if down_backups:
                out.append(Diagnosis(2, "backup controller down", ev, down_backups))
    # --- compute nodes
    nodes = {n.name: n for n in (slurm.nodes or [])}
    usable, down, drained = [], {}, {}
    for name in computes:
        e = hosts.get(name)
        why = []
        if e is None or e.error:
            why.append(f"unreachable over SSH: {e.error if e else 'not collected'}")
        elif e.daemons.get("slurmd") is False:
            why.append("slurmd is not running on the host")
        n = nodes.get(name)
        if n is not None:
            if not n.is_ready:  # what a node state means: slurmkit.slurm.state
                why.append(f"Slurm reports {n.state_text}" + (f" (reason: {n.reason})" if n.reason else ""))
            if n.is_drained:
                drained[name] = n
        if why:
            down[name] = why
        elif name not in drained and (slurm.nodes is None or n is not None):
            usable.append(name)
    if computes and not usable:
        ev = [f"{n}: {'; '.join(w)}" for n, w in down.items()] + \
             [f"{n}: drained (reason: {d.reason or 'none'})" for n, d in drained.items() if n not in down]
        out.append(Diagnosis(1, "no compute node usable", ev or ["Slurm reports no usable node"], computes))
    if down:
        out.append(Diagnosis(2, f"{len(down)} compute node(s) down",
                           [f"{n}: {'; '.join(w)}" for n, w in down.items()], list(down)))
    only_drained = {n: d for n, d in drained.items() if n not in down}
    ours = {n: d for n, d in only_drained.items() if drained_by(d.reason)}
    if ours:
        ev = []
        for n, d in ours.items():
            detail = drain_detail(d.reason)
            check, _, rest = detail.partition(" ")
            who = "bench" if drained_by(d.reason) == "slurmkit:bench" else f"health check {check}"
            ev.append(f"{n}: drained by slurmkit ({who}): {detail} ({d.state_text}, reason: {d.reason})")
            if health and n in health:
                ev.append(_health_line(n, health[n]))
        out.append(Diagnosis(2, f"{len(ours)} node(s) drained by slurmkit", ev, list(ours)))
    only_drained = {n: d for n, d in only_drained.items() if n not in ours}
    if only_drained:
        ev = [f"{n}: {d.state_text} (reason: {d.reason or 'none'})" for n, d in only_drained.items()]
        if len(drained) == 1 and for_maintenance(next(iter(drained.values()))):
            out.append(Diagnosis(3, "one node drained for maintenance", ev, list(only_drained)))
        else:
            out.append(Diagnosis(2, f"{len(only_drained)} node(s) drained", ev, list(only_drained)))
    # --- munge, rails
    no_munge = [h for h, e in hosts.items() if not e.error and e.daemons.get("munged") is False]
    if no_munge:
        out.append(Diagnosis(2, "munged not running (Slurm authentication fails there)",
                           [f"{h}: munged is not running" for h in no_munge], no_munge))
    rail_ev, rail_hosts = [], []
    for name in computes:
        e = hosts.get(name)
        rails = cluster.group_of(name).rails
        if e and not e.error and rails and e.ib_active is not None and e.ib_active < rails:
            rail_ev.append(f"{name}: {e.ib_active} of {rails} rails ACTIVE ({', '.join(e.ib_ports)})")
            rail_hosts.append(name)
    if rail_hosts:
        out.append(Diagnosis(2, "InfiniBand rail down", rail_ev, rail_hosts))
    # --- bench
    if bench is not None:
        verdict = bench.get("verdict") or {}
        if verdict and verdict.get("passed") is False:
            out.append(Diagnosis(2, f"bench failing (run {bench.get('id', '?')})",
                               [str(r) for r in verdict.get("reasons", [])] or [str(verdict.get("summary", ""))],
                               list(bench.get("nodes", []))))
    # --- config drift
    drift_ev, drift_hosts = [], []
    for h, e in hosts.items():
        if e.error:
            continue
        for fname, want in rendered.items():
            have = e.etc_slurm.get(fname)
            if fname in e.etc_slurm and have != want:
                if have is None:
                    drift_ev.append(f"{h}: /etc/slurm/{fname} is missing")
                else:
                    diff = [ln for ln in difflib.unified_diff(want.splitlines(), have.splitlines(), "rendered",
                                                              f"{h}:/etc/slurm/{fname}", lineterm="", n=0)
                            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
                    drift_ev.append(f"{h}: /etc/slurm/{fname} differs from the rendered one: " + " | ".join(diff[:4]))
                drift_hosts.append(h)
    if drift_ev:
        out.append(Diagnosis(3, "config drift", drift_ev, sorted(set(drift_hosts))))
    out.sort(key=lambda f: f.severity)
    return out


def summary_text(cluster: str, findings: list[Diagnosis], when: str) -> str:
    """SUMMARY.txt: the overall severity, then each finding with its evidence."""
    top = min((f.severity for f in findings), default=None)
    lines = [f"slurmkit support bundle: cluster {cluster}, {when}",
             f"Overall: Severity {top}" if top else "Overall: no incident found", ""]
    for f in findings:
        lines.append(f"[Severity {f.severity}] {f.title}" + (f" ({', '.join(f.hosts)})" if f.hosts else ""))
        lines += [f"    - {e}" for e in f.evidence]
    return "\n".join(lines) + "\n"

