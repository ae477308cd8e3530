"""Cluster files from what users already have: a Lambda 1CC node list (+ SSH config), a dstack SSH fleet, a
TensorPool cluster id. Each importer is pure (text in, cluster-file dict out) and its result passes validation.

Names and addresses: each importer keeps what the user gave as the way to reach a host (a dstack fleet's IPs
as ``addresses``; a 1CC node list's or TensorPool's names, resolved by SSH config or DNS, as the names). The
names it writes may be placeholders (``<fleet>-node-N`` for a fleet of IPs): with ``slurm_names: hostname``, the
default, Slurm calls each host by the short hostname ``slurmkit discover`` finds on it
(:func:`slurmkit.hardware.slurm_names`), and the address (or, with none, the cluster file's name) becomes its
``NodeAddr``, which the head and the nodes must be able to reach.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from slurmkit import hostlist
from slurmkit.cluster import load_yaml
from slurmkit.errors import ConfigError, Problem

LAMBDA_RE = re.compile(r"^(?P<prefix>[a-z0-9][a-z0-9-]*?)-(?P<role>head|node)-(?P<num>\d+)$")


def _sanitize(name: str) -> str:
    out = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return out[:40] or "cluster"


def _gpus(gpu_type: str | None, gpus_per_node: int | None) -> dict[str, Any] | None:
    if not gpus_per_node:
        return None
    return {"type": gpu_type or "gpu", "count": gpus_per_node}


def from_lambda_nodes(
    text: str,
    source: str,
    ssh_config: dict[str, dict[str, Any]] | None = None,
    ssh_config_path: str | None = None,
    gpu_type: str = "h100",
    gpus_per_node: int = 8,
    rails: int = 8,
) -> dict[str, Any]:
    """A Lambda 1-Click Cluster node list (one name per line: ``<cluster>-head-N`` / ``<cluster>-node-N``).

    ``ssh_config`` maps each host name to its resolved OpenSSH settings (``user``, ``identityfile``,
    ``proxyjump``), as :func:`read_ssh_config` returns. A 1CC is 8 H100 SXM GPUs and 8 InfiniBand rails per node.
    """
    heads, nodes, prefixes, problems = [], [], set(), []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = LAMBDA_RE.match(line)
        if not m:
            problems.append(Problem(f"line {lineno}", f"{line!r} is not a 1CC node name (<cluster>-head-N or <cluster>-node-N)"))
            continue
        prefixes.add(m["prefix"])
        (heads if m["role"] == "head" else nodes).append(line)
    if len(prefixes) > 1:
        problems.append(Problem("", f"names from several clusters: {', '.join(sorted(prefixes))}; give one cluster's list"))
    if not heads and not problems:
        problems.append(Problem("", "no head node (<cluster>-head-N) in the list: a 1CC has 3 head nodes"))
    if not nodes and not problems:
        problems.append(Problem("", "no compute node (<cluster>-node-N) in the list"))
    if problems:
        raise ConfigError(source, problems)
    ssh: dict[str, Any] = {"user": "ubuntu"}
    if ssh_config:
        head_cfg = ssh_config.get(heads[0], {})
        node_cfg = ssh_config.get(nodes[0], {})
        if head_cfg.get("user"):
            ssh["user"] = head_cfg["user"]
        ident = head_cfg.get("identityfile") or node_cfg.get("identityfile")
        if ident:
            ssh["identity_file"] = ident[0] if isinstance(ident, list) else ident
        if node_cfg.get("proxyjump"):
            ssh["proxy_jump"] = node_cfg["proxyjump"]
    if "proxy_jump" not in ssh:
        # On a 1CC the compute nodes are private; the head nodes are the jump hosts.
        ssh["proxy_jump"] = f"{ssh['user']}@{heads[0]}"
    if ssh_config_path:
        ssh["config_file"] = ssh_config_path
    data = {
        "cluster": _sanitize(prefixes.pop()),
        "ssh": ssh,
        "heads": hostlist.fold(heads),
        "nodes": [{"names": hostlist.fold(nodes), "gpus": {"type": gpu_type, "count": gpus_per_node}, "rails": rails}],
        "partitions": [{"name": "gpu", "nodes": "ALL", "default": True}],
    }
    return data


def from_dstack_fleet(text: str, source: str, gpu_type: str | None = None, gpus_per_node: int | None = None) -> dict[str, Any]:
    """A dstack SSH fleet (``type: fleet`` with ``ssh_config.hosts``). The ``proxy_jump`` host, when given, becomes
    the Slurm controller (head); otherwise the first host is the head and the others compute nodes.

    The hosts' ``hostname`` values (usually IPs) are kept as addresses; the names (``<fleet>-head-1``,
    ``<fleet>-node-N``) are placeholders that discovery replaces with the hosts' own hostnames in Slurm."""
    fleet, _ = load_yaml(text, source)
    if not isinstance(fleet, dict) or not isinstance(fleet.get("ssh_config"), dict):
        raise ConfigError(source, [Problem("ssh_config", "a dstack SSH fleet needs an ssh_config mapping with hosts")])
    sc = fleet["ssh_config"]
    problems: list[Problem] = []
    hosts = sc.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise ConfigError(source, [Problem("ssh_config.hosts", "must be a non-empty list of hosts")])
    user, ident, port = sc.get("user"), sc.get("identity_file"), sc.get("port", 22)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append(Problem("ssh_config.port", f"{port!r} is no TCP port (1-65535)"))
    if user is not None and not isinstance(user, str):
        problems.append(Problem("ssh_config.user", f"{user!r} is no user name"))
    if ident is not None and not isinstance(ident, str):
        problems.append(Problem("ssh_config.identity_file", f"{ident!r} is no file name"))
    addrs = []
    for i, h in enumerate(hosts):
        if isinstance(h, str):
            addrs.append(h)
            continue
        if not isinstance(h, dict) or "hostname" not in h:
            problems.append(Problem(f"ssh_config.hosts[{i}]", "must be a hostname or a mapping with hostname"))
            continue
        addrs.append(str(h["hostname"]))
        for key, common in (("user", user), ("identity_file", ident), ("port", port)):
            if key in h and h[key] != common:
                problems.append(Problem(f"ssh_config.hosts[{i}].{key}", f"{h[key]!r} differs from ssh_config.{key} {common!r}; slurmkit uses one {key} for all hosts"))
    if not user:
        problems.append(Problem("ssh_config.user", "required: the user slurmkit logs in as"))
    pj = sc.get("proxy_jump")
    if pj is not None and (not isinstance(pj, dict) or "hostname" not in pj):
        problems.append(Problem("ssh_config.proxy_jump", "must be a mapping with hostname (and user, port, identity_file)"))
    if pj is None and len(addrs) < 2:
        problems.append(Problem("ssh_config.hosts", "one host and no proxy_jump: need a head and at least one compute node"))
    if problems:
        raise ConfigError(source, problems)
    name = _sanitize(str(fleet.get("name") or Path(source).stem))
    ssh: dict[str, Any] = {"user": user}
    if ident:
        ssh["identity_file"] = ident
    if port != 22:
        ssh["port"] = int(port)
    if pj:
        jump_user = pj.get("user", user)
        jump = f"{jump_user}@{pj['hostname']}" + (f":{pj['port']}" if pj.get("port") not in (None, 22) else "")
        ssh["proxy_jump"] = jump
        heads = {"names": f"{name}-head-1", "addresses": str(pj["hostname"])}
        computes = addrs
    else:
        heads = {"names": f"{name}-head-1", "addresses": addrs[0]}
        computes = addrs[1:]
    group: dict[str, Any] = {"names": f"{name}-node-[1-{len(computes)}]", "addresses": ",".join(computes)}
    if gpus_per_node:
        group["gpus"] = _gpus(gpu_type, gpus_per_node)
    return {
        "cluster": name,
        "ssh": ssh,
        "heads": heads,
        "nodes": [group],
        "partitions": [{"name": "gpu" if gpus_per_node else "batch", "nodes": "ALL", "default": True}],
    }


def from_tensorpool(cluster_id: str, workers: int, user: str = "ubuntu", identity_file: str | None = None,
                    gpu_type: str | None = None, gpus_per_node: int | None = None) -> dict[str, Any]:
    """A TensorPool multi-node cluster: ``<id>-jumphost`` is the login and controller node, workers
    ``<id>-0`` .. ``<id>-(N-1)`` have private addresses only and are reached through the jumphost."""
    problems = []
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", cluster_id or ""):
        problems.append(Problem("--tensorpool", f"{cluster_id!r} is not a TensorPool cluster id (letters, digits, - and _)"))
    if workers < 1:
        problems.append(Problem("--workers", "must be >= 1"))
    if problems:
        raise ConfigError("tensorpool", problems)
    ssh: dict[str, Any] = {"user": user, "proxy_jump": f"{user}@{cluster_id}-jumphost"}
    if identity_file:
        ssh["identity_file"] = identity_file
    group: dict[str, Any] = {"names": f"{cluster_id}-[0-{workers - 1}]"}
    if gpus_per_node:
        group["gpus"] = _gpus(gpu_type, gpus_per_node)
    return {
        "cluster": _sanitize(cluster_id),
        "ssh": ssh,
        "heads": f"{cluster_id}-jumphost",
        "nodes": [group],
        "partitions": [{"name": "gpu" if gpus_per_node else "batch", "nodes": "ALL", "default": True}],
    }
