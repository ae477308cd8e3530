"""Render slurm.conf, gres.conf, cgroup.conf and topology.conf from a Cluster and each node's hardware. Pure.

Logic lives here (hostlist folding, grouping nodes by hardware, version differences); the templates under
``templates/etc/slurm/`` only loop over ``key=value`` records. A node's :class:`~slurmkit.hardware.Hardware`
comes from :mod:`slurmkit.hardware` (declared, or from cached facts: ``hardware_source``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jinja2

from slurmkit import __version__, hostlist
from slurmkit.cluster import Cluster
from slurmkit.errors import ConfigError, Problem
from slurmkit.hardware import HardwareSource, declared_hardware
from slurmkit.resources import data_dir, jinja_env
from slurmkit.slurm_versions import Target, check_supported, resolve_target, settings_for

TEMPLATE_DIR = data_dir("templates")
CONFIG_FILES = ("slurm.conf", "gres.conf", "cgroup.conf", "topology.conf")

# What differs per Slurm release (with sources) is slurmkit.slurm_versions.DIFFERENCES; the target release comes
# from the nodes' facts (hardware_source resolves it) or the cluster file's pin: slurm_versions.resolve_target.


@dataclass
class Rendered:
    files: dict[str, str] = field(default_factory=dict)
    target: Target | None = None  # the Slurm release rendered for, and why (its note: a line for the user)

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write every file atomically (temp file + rename) into out_dir; returns the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in self.files.items():
            target = out / name
            tmp = target.with_name(f".{name}.tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            written.append(target)
        return written


def target_of(cluster: Cluster, hardware: HardwareSource = declared_hardware, version: str | None = None) -> Target:
    """The release to render for: ``version`` when given; else the one :func:`slurmkit.hardware.hardware_source`
    resolved from the nodes' facts (its ``slurm_target``); else the cluster file's pin, or the default."""
    if version is not None:
        return Target(version, "explicit")
    resolved = getattr(hardware, "slurm_target", None)
    if isinstance(resolved, Target):
        return resolved
    return resolve_target(cluster.slurm_pin, {})


def render_cluster(cluster: Cluster, hardware: HardwareSource = declared_hardware, version: str | None = None) -> Rendered:
    """Render all config files. ``hardware`` maps a node to its Hardware (declared, or from cached facts);
    the Slurm release is :func:`target_of` (``version`` forces one: golden files). A release slurmkit does not
    render for is a ConfigError naming the supported ones."""
    target = target_of(cluster, hardware, version)
    check_supported(target.release)
    ctx = build_context(cluster, hardware, target.release)
    env = environment()
    files = {}
    for name in CONFIG_FILES:
        if name == "topology.conf" and not ctx["switches"]:
            continue
        if name == "gres.conf" and not ctx["gres"]:
            continue
        files[name] = env.get_template(f"etc/slurm/{name}.j2").render(**ctx)
    return Rendered(files, target)


def environment() -> jinja2.Environment:
    """The configs' environment: templates/ with the ``kv`` filter (see :func:`slurmkit.resources.jinja_env`)."""
    return jinja_env(templates=True, filters={"kv": kv})


def kv(record: Mapping[str, Any]) -> str:
    """``{"NodeName": "n[1-2]", "CPUs": 8}`` -> ``NodeName=n[1-2] CPUs=8``; None values are left out."""
    return " ".join(f"{k}={v}" for k, v in record.items() if v is not None and v != "")


def names_of(cluster: Cluster, hardware: HardwareSource) -> dict[str, str]:
    """Inventory name -> Slurm name of every host: the map :func:`slurmkit.hardware.hardware_source` carries
    (``slurm_names``: own short hostnames from the facts), else each host's cluster-file name."""
    names = {h.name: h.name for h in cluster.hosts()}
    names.update(getattr(hardware, "slurm_names", None) or {})
    return names


def build_context(cluster: Cluster, hardware: HardwareSource, release: str | None = None) -> dict[str, Any]:
    """What the templates read. Each host is called by its Slurm name (:func:`names_of`); where that is not the
    cluster file's name, the cluster file's address (or name) is how Slurm reaches it: ``NodeAddr=``, and
    ``SlurmctldHost=name(address)``."""
    release = release or target_of(cluster, hardware).release
    names_map = names_of(cluster, hardware)
    differs = settings_for(release)
    problems: list[Problem] = []
    groups: dict[tuple, list[tuple[str, str | None]]] = {}
    order: list[tuple] = []
    for gi, group in enumerate(cluster.nodes):
        names = hostlist.expand(group.names)
        addrs = hostlist.expand(group.addresses) if group.addresses else [None] * len(names)
        for name, addr in zip(names, addrs):
            hw = hardware(name, group)
            if hw is None:
                problems.append(
                    Problem(
                        f"nodes[{gi}]",
                        f"no hardware for {name}: declare sockets, cores_per_socket, threads_per_core and memory_mb, "
                        "or run `slurmkit discover` to cache its facts",
                    )
                )
                continue
            key = (gi, hw)
            if key not in groups:
                groups[key] = []
                order.append(key)
            slurm = names_map.get(name, name)
            if slurm != name and addr is None:
                addr = name  # the cluster file's name is how it is reached
            groups[key].append((slurm, addr))
    if problems:
        raise ConfigError("render", problems)

    node_lines, gres_records = [], []
    for gi, hw in order:
        members = groups[(gi, hw)]
        for names_expr, addr_expr in _fold_pairs(members):
            node_lines.append(
                {
                    "NodeName": names_expr,
                    "NodeAddr": addr_expr,
                    "CPUs": hw.cpus,
                    "Sockets": hw.sockets,
                    "CoresPerSocket": hw.cores_per_socket,
                    "ThreadsPerCore": hw.threads_per_core,
                    "RealMemory": hw.memory_mb,
                    "Gres": ",".join(f"gpu:{g.type}:{g.count}" for g in hw.gpu_sets) or None,
                    "Feature": ",".join(hw.features) or None,
                    "Weight": hw.weight,
                    "State": "UNKNOWN",
                }
            )
        names_expr = hostlist.fold(n for n, _ in members)
        for gs in hw.gpu_sets:
            if hw.autodetect == "nvml":
                gres_records.append({"NodeName": names_expr, "AutoDetect": "nvml", "Name": "gpu", "Type": gs.type, "Count": gs.count})
            else:
                for i, dev in enumerate(gs.files):
                    cores = gs.cores[i] if i < len(gs.cores) else None
                    gres_records.append({"NodeName": names_expr, "Name": "gpu", "Type": gs.type, "File": dev, "Cores": cores})

    all_nodes = hostlist.fold(names_map.get(n, n) for n in cluster.compute_names)
    partitions = []
    for p in cluster.partitions:
        rec = {
            "PartitionName": p.name,
            "Nodes": all_nodes if p.nodes == "ALL" else hostlist.fold(names_map.get(n, n) for n in hostlist.expand(p.nodes)),
            "Default": "YES" if p.default else "NO",
            "MaxTime": p.max_time,
            "State": "UP",
        }
        rec.update({k: v for k, v in p.options.items()})
        partitions.append(rec)

    switches = topology_switches(cluster, names_map)
    cred = differs["cred"]
    settings: dict[str, Any] = {
        "ClusterName": cluster.cluster,
        "AuthType": "auth/munge",
        cred[0]: cred[1],
        "SlurmUser": "slurm",
        "StateSaveLocation": cluster.state_dir,
        "SlurmdSpoolDir": "/var/spool/slurmd",
        "SlurmctldPidFile": "/run/slurmctld.pid",
        "SlurmdPidFile": "/run/slurmd.pid",
        "SlurmctldLogFile": "/var/log/slurm/slurmctld.log",
        "SlurmdLogFile": "/var/log/slurm/slurmd.log",
        "ProctrackType": "proctrack/cgroup",
        "TaskPlugin": "task/cgroup,task/affinity",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory",
        "GresTypes": "gpu" if gres_records else None,
        "TopologyPlugin": "topology/tree" if switches else None,
        "ReturnToService": 2,
        "SlurmctldTimeout": 120,
        "SlurmdTimeout": 300,
        "MpiDefault": "none",
        "JobAcctGatherType": "jobacct_gather/cgroup",
        "AccountingStorageType": "accounting_storage/none",
        "MailProg": "/bin/true",
        # A simulated node claims more CPUs, memory and GPUs than the machine has; never on a real cluster.
        "SlurmdParameters": "config_overrides" if cluster.profile == "local" else None,
    }
    settings.update(cluster.slurm_conf)
    automount, plugin = differs["automount"], differs["cgroup_plugin"]
    cgroup = {
        **({automount[0]: automount[1]} if automount else {}),
        plugin[0]: plugin[1],
        "ConstrainCores": "yes",
        "ConstrainDevices": "yes",
        "ConstrainRAMSpace": "yes",
    }
    return {
        "header": f"Rendered by slurmkit {__version__} for Slurm {release} (profile {cluster.profile}). "
        "Edit the cluster file and re-run `slurmkit render`, not this file.",
        "slurm_version": release,
        "controllers": [_controller(h, names_map, getattr(hardware, "controller_addresses", None) or {})
                        for h in cluster.hosts() if h.role == "head"],
        "settings": settings,
        "nodes": node_lines,
        "partitions": partitions,
        "gres": gres_records,
        "switches": switches,
        "cgroup": cgroup,
    }


def _controller(head, names_map: Mapping[str, str], addresses: Mapping[str, str]) -> str:
    """``SlurmctldHost=`` of a head: its Slurm name, with an address where the name differs from the cluster
    file's (``dsg-head-1(10.0.0.1)``): the one the compute nodes reach it on
    (:func:`slurmkit.hardware.controller_addresses`), else the cluster file's."""
    slurm = names_map.get(head.name, head.name)
    return slurm if slurm == head.name else f"{slurm}({addresses.get(head.name, head.address)})"


def _fold_pairs(members: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """Fold names (and addresses) of one hardware group into as few NodeName lines as keep the pairing exact."""
    names = [n for n, _ in members]
    folded = hostlist.fold(names)
    if all(a is None for _, a in members):
        return [(folded, None)]
    members = [(n, n if a is None else a) for n, a in members]  # some named by address, some not
    addrs = [a for _, a in members]
    folded_addrs = hostlist.fold(addrs)
    # Slurm pairs the expansions of NodeName and NodeAddr in order; fold only when that order is preserved.
    if dict(zip(hostlist.expand(folded), hostlist.expand(folded_addrs))) == dict(members) and len(set(addrs)) == len(addrs):
        return [(folded, folded_addrs)]
    return [(n, a) for n, a in members]


def topology_switches(cluster: Cluster, names: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """topology.conf's switches; nodes by their Slurm names (``names``: inventory -> Slurm name; default: as
    the cluster file names them)."""
    t = cluster.topology
    if t is None:
        return []
    names = names or {}
    if t.switches is not None:
        return [
            {"SwitchName": s.name,
             "Nodes": hostlist.fold(names.get(n, n) for n in hostlist.expand(s.nodes)) if s.nodes else None,
             "Switches": s.switches}
            for s in t.switches
        ]
    computes = [names.get(n, n) for n in cluster.compute_names]
    leaves = []
    for i in range(0, len(computes), t.leaf_size):
        leaves.append({"SwitchName": f"{t.leaf_prefix}{i // t.leaf_size + 1}", "Nodes": hostlist.fold(computes[i : i + t.leaf_size])})
    if len(leaves) == 1:
        return leaves
    return leaves + [{"SwitchName": t.spine, "Switches": hostlist.fold(s["SwitchName"] for s in leaves)}]
