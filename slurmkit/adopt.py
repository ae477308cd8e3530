"""Adopt a running Slurm cluster: its slurm.conf (+ gres.conf, topology.conf) -> a cluster-file dict. Pure.

``adopt(conf, gres, switches)`` returns an :class:`Adopted`: the cluster-file dict (the model in
:mod:`slurmkit.cluster`), the findings (inconsistencies the originals contain) and the ``not_kept`` lines (what
the model cannot hold, each naming the original's file:line). Settings the model does not own are kept verbatim
in ``slurm_conf:`` and partition ``options:``. :func:`compare` reads two sets of configs through
:mod:`slurmkit.slurm.conf` and lists where Slurm would read them differently (nodes, GRES, partitions,
controllers, switches); :func:`round_trip` renders the adopted file and compares it with the originals.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from slurmkit import hostlist
from slurmkit.cluster import NAME_RE, dump_cluster, parse_cluster
from slurmkit.slurm import conf as sc

# slurm.conf keys the model owns (rendered from the cluster file), so not copied into slurm_conf:
_OWNED = {"clustername", "statesavelocation"}
_NAME_OK = re.compile(r"^[A-Za-z0-9_.-]+$")
_PART_OK = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class Adopted:
    data: dict[str, Any]
    findings: list[str] = field(default_factory=list)
    not_kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # kept, worth saying: a controller that is also a compute node

    def text(self, sources: list[str] | None = None) -> str:
        """The cluster file: a header naming the sources, findings and what was not kept, then the YAML."""
        head = ["# Adopted by `slurmkit init` from " + (", ".join(sources) if sources else "a running cluster's configs") + "."]
        if self.findings:
            head.append("# Findings in the originals:")
            head += [f"#   {_one_line(f)}" for f in self.findings]
        if self.notes:
            head.append("# Notes:")
            head += [f"#   {_one_line(n)}" for n in self.notes]
        if self.not_kept:
            head.append("# Not kept (the cluster file cannot hold these; re-add them by hand if they matter):")
            head += [f"#   {_one_line(n)}" for n in self.not_kept]
        return "\n".join(head) + "\n" + dump_cluster(self.data)


def _one_line(s: str) -> str:
    return " ".join(s.split())


def cluster_name(raw: str | None) -> str:
    """A name the model accepts (lowercase, ``[a-z0-9_-]``, at most 40) for Slurm's ClusterName."""
    name = re.sub(r"[^a-z0-9_-]+", "-", (raw or "").lower()).strip("-_")[:40].strip("-_")
    return name if name and re.match(NAME_RE, name) else "adopted"


def adopt(
    conf: sc.SlurmConf,
    gres: list[sc.GresLine] | None = None,
    switches: list[sc.SwitchDef] | None = None,
    *,
    ssh_user: str = "root",
) -> Adopted:
    out = Adopted({})
    out.findings += conf.findings
    if switches is not None:
        out.findings += sc.topology_findings(switches, conf)
    raw_name = conf.setting("ClusterName")
    name = cluster_name(raw_name)
    slurm_conf: dict[str, str] = {}
    if raw_name and raw_name != name:
        slurm_conf["ClusterName"] = raw_name  # applied last by render: Slurm keeps the original name
    data: dict[str, Any] = {"cluster": name, "ssh": {"user": ssh_user}}

    # ---- controllers (in order); a controller that is also a compute node is kept as both (a note says so)
    ctl = [c for c in conf.controllers]
    if not ctl:
        raise sc.SlurmConfError(f"{conf.source}: no SlurmctldHost or ControlMachine: nothing to adopt as the head")
    names = [c.name for c in ctl]
    if len(set(names)) != len(names):
        out.findings.append(f"{conf.source}: a controller is listed twice: {', '.join(names)}")
        ctl = [c for i, c in enumerate(ctl) if c.name not in names[:i]]
        names = [c.name for c in ctl]
    if any(c.addr for c in ctl):
        data["heads"] = {"names": ",".join(names), "addresses": ",".join(c.addr or c.name for c in ctl)}
    else:
        data["heads"] = ",".join(names)
    heads = set(names)
    both = [n for n in conf.nodes if n in heads]
    for n in both:
        out.notes.append(f"{conf.nodes[n].where}: {n} is a controller and a compute node: kept as both (in heads and "
                         "in nodes; slurmctld and slurmd run on it)")

    # ---- compute nodes (controllers that are also compute nodes included), grouped by identical hardware
    groups: dict[tuple, list[sc.Node]] = {}
    for node in conf.nodes.values():
        key, extra = _node_key(node, gres, out)
        groups.setdefault(key, []).append(node)
    computes = list(conf.nodes)
    if not computes:
        raise sc.SlurmConfError(f"{conf.source}: no compute node (no NodeName line): nothing to adopt")
    data["nodes"] = [_group(key, members) for key, members in groups.items()]

    # ---- partitions
    parts = []
    defined = set(computes)
    seen_parts: set[str] = set()
    defaults = [p for p in conf.partitions if p.default]
    for p in conf.partitions:
        if p.name in seen_parts:
            out.not_kept.append(f"{p.where}: PartitionName={p.name} again: the first definition is kept")
            continue
        seen_parts.add(p.name)
        if p.default and p is not defaults[-1]:
            out.not_kept.append(f"{p.where}: PartitionName={p.name} Default=YES: the last partition with Default=YES ({defaults[-1].name}) is the default, as slurmctld reads it")
            p = dataclasses.replace(p, default=False)
        if not _PART_OK.match(p.name):
            out.not_kept.append(f"{p.where}: PartitionName={p.name}: a name the cluster file does not accept")
            continue
        if p.nodes is None:
            out.not_kept.append(f"{p.where}: PartitionName={p.name} has no Nodes= (an empty partition)")
            continue
        rec: dict[str, Any] = {"name": p.name}
        if p.nodes.upper() == "ALL":
            rec["nodes"] = "ALL"
        else:
            wanted = sc._expand(p.nodes, p.where)
            kept = [n for n in wanted if n in defined]
            if not kept:
                out.not_kept.append(f"{p.where}: PartitionName={p.name}: none of its nodes is a compute node in the cluster file")
                continue
            rec["nodes"] = hostlist.fold(kept)
        if p.default:
            rec["default"] = True
        if p.max_time is not None:
            rec["max_time"] = p.max_time
        opts = {("State" if k.lower() == "state" else k): v for k, v in p.options.items()}
        if opts:
            rec["options"] = opts
        parts.append(rec)
    if parts:
        data["partitions"] = parts
    else:
        out.not_kept.append(f"{conf.source}: no partition could be kept; the cluster file's default (batch, all nodes) applies")

    # ---- settings
    ssl = conf.settings.get("statesavelocation")
    if ssl:
        data["state_dir"] = ssl[1]
    for k, (key, value, where) in conf.settings.items():
        if k in _OWNED:
            continue
        slurm_conf[key] = value
    for rec in conf.other_lines:
        out.not_kept.append(f"{rec.where}: " + " ".join(f"{k}={v}" for k, v in rec.pairs))
    if len(conf.files) > 1:
        out.not_kept.append(f"{conf.source}: include lines are flattened (their settings are in slurm_conf): {', '.join(conf.files[1:])}")

    # ---- topology
    if switches:
        topo = _topology(switches, set(computes), out)
        if topo:
            data["topology"] = {"switches": topo}
    if slurm_conf:
        data["slurm_conf"] = slurm_conf
    out.data = data
    out.not_kept += _controller_addresses(conf, ctl, data)
    out.not_kept += _rendered_defaults(conf, data)
    out.not_kept = list(dict.fromkeys(out.not_kept))  # one line per original line, not per node
    return out


def _controller_addresses(conf: sc.SlurmConf, ctl: list[sc.Controller], data: dict[str, Any]) -> list[str]:
    """SlurmctldHost=name(address) lines whose address the rendered slurm.conf does not carry (it is kept as the
    head's SSH address, heads.addresses; render decides the controller address from the nodes' networks)."""
    from slurmkit.errors import ConfigError
    from slurmkit.render import render_cluster

    if not any(c.addr for c in ctl):
        return []
    try:
        rendered = sc.parse_slurm_conf(render_cluster(parse_cluster(dump_cluster(data), "adopted")).files["slurm.conf"], "rendered")
    except (ConfigError, sc.SlurmConfError):
        return []
    got = {c.name: c.addr for c in rendered.controllers}
    return [
        f"{conf.source}: SlurmctldHost={c.name}({c.addr}): the address is kept for SSH (heads.addresses); "
        f"render writes SlurmctldHost={c.name}" + (f"({got[c.name]})" if got.get(c.name) else "")
        for c in ctl if c.addr and got.get(c.name) != c.addr
    ]


# Rendered from the cluster file itself (its heads, state_dir, GPUs, topology), not slurmkit defaults.
_FROM_MODEL = {"clustername", "statesavelocation", "grestypes", "topologyplugin"}
# Settings render writes with the value Slurm 22.05 takes when they are left out (slurm.conf(5) of 22.05): no change.
_SLURM_DEFAULTS = {
    "authtype": "auth/munge", "credtype": "cred/munge", "cryptotype": "crypto/munge", "slurmctldtimeout": "120",
    "slurmdtimeout": "300", "mpidefault": "none", "slurmdspooldir": "/var/spool/slurmd",
    "proctracktype": "proctrack/cgroup", "accountingstoragetype": "accounting_storage/none",
}


def _rendered_defaults(conf: sc.SlurmConf, data: dict[str, Any]) -> list[str]:
    """The settings render writes that the original leaves to Slurm's defaults: a real change when the adopted
    file is rendered (re-add the original's behaviour in slurm_conf if it matters)."""
    from slurmkit.errors import ConfigError
    from slurmkit.hardware import declared_hardware
    from slurmkit.render import build_context

    try:
        settings = build_context(parse_cluster(dump_cluster(data), "adopted"), declared_hardware)["settings"]
    except ConfigError:
        return []  # the caller's own check (validate) reports it
    return [
        f"{conf.source}: no {k}=: render writes slurmkit's {k}={v} (the original left it to Slurm's default)"
        for k, v in settings.items()
        if v is not None and k.lower() not in _FROM_MODEL and k.lower() not in conf.settings
        and _SLURM_DEFAULTS.get(k.lower()) != str(v)
    ]


class _Named:
    """A node seen through its NodeName line (messages name the line's hostlist, once per line)."""

    def __init__(self, node: sc.Node):
        self._node = node

    def __getattr__(self, k: str) -> Any:
        if k == "name":
            return self._node.line_names or self._node.name
        return getattr(self._node, k)


def _node_key(node: sc.Node, gres: list[sc.GresLine] | None, out: Adopted) -> tuple[tuple, None]:
    w = node.where
    node = _Named(node)
    if node.cpus != node.sockets * node.cores_per_socket * node.threads_per_core:
        out.not_kept.append(f"{w}: NodeName={node.name} CPUs={node.cpus}: render writes CPUs={node.sockets * node.cores_per_socket * node.threads_per_core} (Sockets*CoresPerSocket*ThreadsPerCore)")
    for k, v in node.other.items():
        out.not_kept.append(f"{w}: NodeName={node.name} {k}={v}")
    if node.state and node.state.upper() != "UNKNOWN":
        out.not_kept.append(f"{w}: NodeName={node.name} State={node.state}: render writes State=UNKNOWN")
    if node.weight == 0:
        out.not_kept.append(f"{w}: NodeName={node.name} Weight=0: the cluster file takes a weight of 1 or more")
    feats = tuple(f for f in node.features if _NAME_OK.match(f))
    for f in node.features:
        if f not in feats:
            out.not_kept.append(f"{w}: NodeName={node.name} Feature {f!r}: a name the cluster file does not accept")
    gpus = [g for g in node.gres if g.name == "gpu" and g.count > 0]
    for g in node.gres:
        if g.name == "gpu" and g.count == 0:
            out.not_kept.append(f"{w}: NodeName={node.name} Gres=gpu{':' + g.type if g.type else ''}:0 (no GPUs)")
        elif g.name != "gpu":
            out.not_kept.append(f"{w}: NodeName={node.name} Gres={g.name}{':' + g.type if g.type else ''}:{g.count}: only gpu GRES are in the cluster file")
    gpu: tuple | None = None
    autodetect = sc.autodetect_of(gres or [], node._node.name)
    auto = "nvml" if (autodetect or "").lower() == "nvml" else "off"
    if gpus and autodetect and auto == "off" and autodetect.lower() != "off":
        out.not_kept.append(f"{w}: NodeName={node.name} AutoDetect={autodetect}: only nvml or off are in the cluster file")
    kept: list[tuple] = []
    several = len(gpus) > 1
    at = 0  # several types without files: the next default device index
    for g in gpus:
        lines = [x for x in sc.gres_of(gres or [], node._node.name) if x.name == "gpu" and (
            x.type == g.type or (not several and (g.type is None or x.type is None)))]
        files = tuple(f for x in lines for f in x.files)
        gtype = g.type or next((x.type for x in lines if x.type), None)
        if gtype is None or not _NAME_OK.match(gtype):
            out.not_kept.append(f"{w}: NodeName={node.name} Gres=gpu:{g.count} has no (usable) type: adopted as type 'gpu'")
            gtype = "gpu"
        if any(k[0] == gtype for k in kept):
            out.not_kept.append(f"{w}: NodeName={node.name} Gres=gpu:{gtype}:{g.count}: type {gtype} given twice: the first kept")
            continue
        if files and len(files) != g.count:
            out.not_kept.append(f"{w}: NodeName={node.name}: {len(files)} gres.conf File= device(s) for gpu"
                                f"{':' + gtype if several else ''} count {g.count}: files left to the default")
            files = ()
        for x in lines:
            if x.cores:
                out.not_kept.append(f"{x.where}: {x.cores_key}={x.cores} (GPU affinity): the cluster file cannot declare it")
        if not files and auto == "off" and several:
            # the cluster file needs each type's files when there are several: the next /dev/nvidiaN in order
            files = tuple(f"/dev/nvidia{i}" for i in range(at, at + g.count))
            out.not_kept.append(f"{w}: NodeName={node.name} gpu:{gtype}: no gres.conf File= for it: "
                                f"render writes File={hostlist.fold(files)}")
        elif not files and auto == "off" and gres is None:
            out.not_kept.append(f"{w}: NodeName={node.name}: no gres.conf read: render writes File=/dev/nvidia[0-{g.count - 1}]")
        at += g.count
        kept.append((gtype, g.count, hostlist.fold(files) if files else None, auto))
    if kept:
        gpu = tuple(kept)
    key = (node.sockets, node.cores_per_socket, node.threads_per_core, node.memory_mb, gpu, feats, node.weight, node.addr is not None)
    return key, None


def _group(key: tuple, members: list[sc.Node]) -> dict[str, Any]:
    sockets, cores, threads, memory, gpu, feats, weight, has_addr = key
    names = [m.name for m in members]
    g: dict[str, Any] = {"names": hostlist.fold(names)}
    if has_addr and any(m.addr != m.name for m in members):
        addrs = [m.addr or m.name for m in members]
        folded_n, folded_a = hostlist.fold(names), hostlist.fold(addrs)
        if len(set(addrs)) == len(addrs) and dict(zip(hostlist.expand(folded_n), hostlist.expand(folded_a))) == dict(zip(names, addrs)):
            g["addresses"] = folded_a
        else:
            g["names"], g["addresses"] = ",".join(names), ",".join(addrs)
    if gpu:
        types = []
        for gtype, count, files, auto in gpu:
            t: dict[str, Any] = {"type": gtype, "count": count}
            if files:
                t["files"] = files
            if auto != "off":
                t["autodetect"] = auto
            types.append(t)
        g["gpus"] = types[0] if len(types) == 1 else types  # several GPU types: the list form
    g.update({"sockets": sockets, "cores_per_socket": cores, "threads_per_core": threads, "memory_mb": memory})
    if feats:
        g["features"] = list(feats)
    if weight:
        g["weight"] = weight
    return g


def _topology(switches: list[sc.SwitchDef], computes: set[str], out: Adopted) -> list[dict[str, str]] | None:
    kept: list[dict[str, Any]] = []
    names = {s.name for s in switches}
    dropped: set[str] = set()
    for s in switches:
        for k, v in s.other.items():
            out.not_kept.append(f"{s.where}: SwitchName={s.name} {k}={v}")
        if not _NAME_OK.match(s.name):
            out.not_kept.append(f"{s.where}: SwitchName={s.name}: a name the cluster file does not accept")
            dropped.add(s.name)
            continue
        nodes = [n for n in (s.nodes or []) if n in computes]
        subs = [n for n in (s.switches or []) if n in names]
        if nodes and subs:
            out.not_kept.append(f"{s.where}: SwitchName={s.name} has both Nodes= and Switches=: kept its nodes only")
            subs = []
        if not nodes and not subs:
            out.not_kept.append(f"{s.where}: SwitchName={s.name}: nothing left under it (its nodes are not compute nodes here)")
            dropped.add(s.name)
            continue
        kept.append({"name": s.name, "nodes": nodes, "switches": subs, "where": s.where})
    result = []
    for s in kept:
        subs = [n for n in s["switches"] if n not in dropped]
        if s["switches"] and not subs:
            out.not_kept.append(f"{s['where']}: SwitchName={s['name']}: none of its switches is kept")
            continue
        rec = {"name": s["name"]}
        if s["nodes"]:
            rec["nodes"] = hostlist.fold(s["nodes"])
        else:
            rec["switches"] = ",".join(subs)
        result.append(rec)
    under = {n for s in kept for n in s["nodes"]}
    orphans = sorted(computes - under)
    if orphans:
        out.not_kept.append(f"topology.conf: {hostlist.fold(orphans)} under no switch (the cluster file requires every node under one): topology not kept")
        return None
    return result or None


# ------------------------------------------------------------------------------------------------- comparing


@dataclass
class Configs:
    """Configs as Slurm reads them: slurm.conf, and gres.conf / topology.conf where present."""

    conf: sc.SlurmConf
    gres: list[sc.GresLine] | None = None
    switches: list[sc.SwitchDef] | None = None

    @classmethod
    def from_texts(cls, files: dict[str, str]) -> "Configs":
        conf = sc.parse_slurm_conf(files["slurm.conf"], "slurm.conf")
        gres = sc.parse_gres_conf(files["gres.conf"], "gres.conf") if "gres.conf" in files else None
        topo = sc.parse_topology_conf(files["topology.conf"], "topology.conf") if "topology.conf" in files else None
        return cls(conf, gres, topo)


def reading(c: Configs) -> dict[str, Any]:
    """What Slurm makes of the configs, as comparable values (nodes, partitions, controllers, switches)."""
    nodes = {}
    for n in c.conf.nodes.values():
        lines = sc.gres_of(c.gres or [], n.name)
        nodes[n.name] = {
            "cpus": n.cpus, "sockets": n.sockets, "cores": n.cores_per_socket, "threads": n.threads_per_core,
            "memory": n.memory_mb, "gres": sorted((g.name, g.type or "", g.count) for g in n.gres),
            "files": sorted((x.name or "", x.type or "", f) for x in lines for f in x.files),
            "affinity": sorted((x.name or "", x.type or "", x.cores or "") for x in lines if x.cores),
            "features": sorted(n.features), "weight": n.weight,
        }
    parts = {}
    for p in c.conf.partitions:
        parts[p.name] = {
            "nodes": sorted(c.conf.partition_nodes(p)), "default": p.default, "max_time": (p.max_time or "INFINITE").upper().replace("UNLIMITED", "INFINITE"),
            "options": {k.lower(): v for k, v in p.options.items() if not (k.lower() == "state" and v.upper() == "UP")},
        }
    switches = {s.name: (sorted(s.nodes or []), sorted(s.switches or [])) for s in (c.switches or [])}
    return {"nodes": nodes, "partitions": parts, "controllers": [x.name for x in c.conf.controllers], "switches": switches}


def compare(a: Configs, b: Configs) -> list[str]:
    """Where Slurm would read ``b`` differently from ``a``: one line per difference."""
    ra, rb = reading(a), reading(b)
    diffs = []
    if ra["controllers"] != rb["controllers"]:
        diffs.append(f"controllers: {ra['controllers']} -> {rb['controllers']}")
    for what in ("nodes", "partitions", "switches"):
        xa, xb = ra[what], rb[what]
        for k in xa.keys() - xb.keys():
            diffs.append(f"{what}: {k} missing")
        for k in xb.keys() - xa.keys():
            diffs.append(f"{what}: {k} added")
        for k in xa.keys() & xb.keys():
            if xa[k] != xb[k]:
                if isinstance(xa[k], dict):
                    for f in xa[k]:
                        if xa[k][f] != xb[k].get(f):
                            diffs.append(f"{what}: {k} {f}: {xa[k][f]!r} -> {xb[k].get(f)!r}")
                else:
                    diffs.append(f"{what}: {k}: {xa[k]!r} -> {xb[k]!r}")
    return sorted(diffs)


def round_trip(original: Configs, adopted: Adopted) -> list[str]:
    """Render the adopted cluster file and compare Slurm's reading of it with the originals'."""
    from slurmkit.render import render_cluster

    cluster = parse_cluster(dump_cluster(adopted.data), "adopted cluster file")
    rendered = render_cluster(cluster)
    return compare(original, Configs.from_texts(rendered.files))
