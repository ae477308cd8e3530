"""Where a node's hardware comes from: the cluster file's declaration, else the facts `slurmkit discover` cached.

Pure: no SSH (``slurmkit.discovery`` collects the facts; this module never imports paramiko or fabric). It reads
and writes the facts cache beside the cluster file and holds:

- :class:`Hardware`, what slurm.conf and gres.conf need to know about one node (the record ``render`` uses);
- :func:`declared_hardware` (the cluster file alone) and :func:`hardware_from_facts` (a cached record);
- :func:`check_declared`, declared hardware that the cached facts contradict;
- :func:`slurm_names`, what Slurm calls each host (its own short hostname where discovery found it), and
  :func:`check_names`, names that cannot work (a mismatch where names must stay as written, duplicates);
- :func:`hardware_source`, the one entry point for rendering: it reads each compute node's cached record once,
  refuses contradictions (a :class:`~slurmkit.errors.ConfigError` listing each with its path in the cluster
  file) and gives the hardware of each node. ``render``, ``bootstrap``, ``support-bundle`` and ``demo`` use it,
  so none of them pushes a config that ``render`` refuses;
- the NCCL environment the same facts imply (management interface, rail HCAs) per group and for a job.

A cache record (``.slurmkit/facts/<host>.json``, written by :func:`slurmkit.discovery.collect`) is::

    {"host": ..., "time": "2025-01-01T12:00:00+00:00", "commands": {name: shell command},
     "outputs": {name: stdout}, "stderr": {name: stderr, only where non-empty}, "facts": NodeFacts.to_dict()}
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from slurmkit import hostlist
from slurmkit.cluster import Cluster, NodeGroup
from slurmkit.errors import ConfigError, Problem, SlurmkitError
from slurmkit.facts import NodeFacts, facts_from_outputs
from slurmkit.paths import StateDir
from slurmkit.slurm_versions import Target, resolve_target
from slurmkit.topology import TopologyFinding, gres_records, nccl_env, node_topology

# ---------------------------------------------------------------- the record render uses


@dataclass(frozen=True)
class GpuSet:
    """The GPUs of one type on a node: its GRES type, device files and per-GPU ``Cores=`` (None: unknown)."""

    type: str | None
    count: int
    files: tuple[str, ...]
    cores: tuple[str | None, ...]


@dataclass(frozen=True)
class Hardware:
    """What slurm.conf and gres.conf need to know about one node.

    ``gpu_type``/``gpu_count``/``gpu_files``/``gpu_cores`` are the node's first (or only) GPU type; a node with
    several types (a ``gpus:`` list) has the others in ``extra_gpus``. :attr:`gpu_sets` lists them all."""

    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory_mb: int
    gpu_type: str | None = None
    gpu_count: int = 0
    gpu_files: tuple[str, ...] = ()
    gpu_cores: tuple[str | None, ...] = ()  # per GPU: Slurm core index list local to it (from facts), or None
    autodetect: str = "off"
    features: tuple[str, ...] = ()
    weight: int | None = None
    extra_gpus: tuple[GpuSet, ...] = ()

    @property
    def cpus(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core

    @property
    def gpu_sets(self) -> tuple[GpuSet, ...]:
        """Every GPU type of the node, first the one in ``gpu_type``; () without GPUs."""
        if not self.gpu_count:
            return self.extra_gpus
        return (GpuSet(self.gpu_type, self.gpu_count, self.gpu_files, self.gpu_cores), *self.extra_gpus)

    @property
    def gpu_total(self) -> int:
        return sum(g.count for g in self.gpu_sets)


def _hardware(group: NodeGroup, sets: list[GpuSet], autodetect: str, **cpu: Any) -> Hardware:
    first = sets[0] if sets else None
    return Hardware(
        **cpu,
        gpu_type=first.type if first else None,
        gpu_count=first.count if first else 0,
        gpu_files=first.files if first else (),
        gpu_cores=first.cores if first else (),
        autodetect=autodetect,
        features=tuple(group.features),
        weight=group.weight,
        extra_gpus=tuple(sets[1:]),
    )


def _declared_sets(group: NodeGroup) -> list[GpuSet]:
    return [GpuSet(t.type, t.count, tuple(t.device_files()), (None,) * t.count) for t in group.gpu_types]


def declared_gpus_text(group: NodeGroup) -> str:
    """``gtx970:1, gtx1060:1``: the declared types and counts, for messages."""
    return ", ".join(f"{t.type}:{t.count}" for t in group.gpu_types)


HardwareSource = Callable[[str, NodeGroup], "Hardware | None"]


def declared_hardware(name: str, group: NodeGroup) -> Hardware | None:
    """Hardware from the cluster file alone; None when the group leaves it to discovery."""
    if not group.hardware_declared:
        return None
    types = group.gpu_types
    return _hardware(group, _declared_sets(group), types[0].autodetect if types else "off",
                     sockets=group.sockets, cores_per_socket=group.cores_per_socket,
                     threads_per_core=group.threads_per_core, memory_mb=group.memory_mb)


# ---------------------------------------------------------------- the facts cache beside the cluster file


def facts_dir(cluster_file: Path) -> Path:
    """The facts cache of a cluster file: ``.slurmkit/facts/`` beside it (see :class:`slurmkit.paths.StateDir`)."""
    return StateDir.of(cluster_file).facts_dir


def read_facts(cluster_file: Path, host: str) -> dict[str, Any] | None:
    """The cached record of ``host``; None when it has none. A file that is not a record (cut short, edited by
    hand) is a ConfigError naming it."""
    p = StateDir.of(cluster_file).facts_file(host)
    try:
        record = json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        why = f"not JSON: {exc}"
    else:
        if isinstance(record, dict):
            return record
        why = "not a JSON object"
    raise ConfigError(str(p), [Problem("", f"not a facts record ({why}); re-run `slurmkit discover --limit {host}` "
                                           "or delete the file")])


def write_facts(cluster_file: Path, host: str, record: dict[str, Any]) -> Path:
    """Write one host's record atomically (temp file + rename); returns its path."""
    p = StateDir.of(cluster_file).facts_file(host)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, p)
    return p


def cached_records(cluster: Cluster, cluster_file: Path, names: list[str] | None = None) -> dict[str, dict]:
    """The cached records of the cluster's hosts (or ``names``) that have one, each file read once."""
    out = {}
    for name in names if names is not None else [h.name for h in cluster.hosts()]:
        record = read_facts(cluster_file, name)
        if record is not None:
            out[name] = record
    return out


# ---------------------------------------------------------------- facts -> hardware


def node_facts(record: Mapping[str, Any]) -> NodeFacts:
    """The parsed facts of a cache record (re-parsed from its raw outputs when it holds no parsed form)."""
    if record.get("facts") is not None:
        return NodeFacts.from_dict(record["facts"])
    return facts_from_outputs(record.get("host", "?"), record.get("outputs", {}))


_VENDOR_WORDS = {"nvidia", "tesla", "geforce", "quadro"}
_JOINED = {"rtx", "gtx", "titan"}


def gpu_type_from_name(name: str | None) -> str | None:
    """A Slurm GRES type from nvidia-smi's GPU name: ``NVIDIA H100 80GB HBM3`` -> ``h100``,
    ``NVIDIA A100-SXM4-80GB`` -> ``a100``, ``NVIDIA B300 SXM6 AC`` -> ``b300``,
    ``NVIDIA GeForce RTX 4090`` -> ``rtx_4090``. None when nothing is left of the name."""
    if not name:
        return None
    words = [w for w in re.split(r"\s+", name.strip()) if w.lower() not in _VENDOR_WORDS]
    if not words:
        return None
    first = words[0].split("-")[0].lower()
    if first in _JOINED and len(words) > 1:
        first = f"{first}_{words[1].split('-')[0].lower()}"
    first = re.sub(r"[^a-z0-9_.]", "", first)
    return first or None


@dataclass
class FoundHardware:
    """What the facts say, before any rounding: ``memory_mb`` is slurmd's RealMemory (else numactl's total)."""

    sockets: int | None = None
    cores_per_socket: int | None = None
    threads_per_core: int | None = None
    memory_mb: int | None = None
    memory_source: str | None = None
    gpu_count: int = 0
    gpu_names: list[str] = field(default_factory=list)


def found_hardware(facts: NodeFacts) -> FoundHardware:
    """CPU layout from ``slurmd -C`` (what slurmd will register with), else lscpu; memory from slurmd's
    RealMemory, else the sum of numactl's node sizes; GPUs from nvidia-smi (or the topo matrix)."""
    found = FoundHardware()
    s = facts.slurmd
    if s and s.sockets_per_board and s.cores_per_socket and s.threads_per_core:
        found.sockets = s.sockets
        found.cores_per_socket, found.threads_per_core = s.cores_per_socket, s.threads_per_core
    elif facts.cpu and facts.cpu.sockets and facts.cpu.cores_per_socket and facts.cpu.threads_per_core:
        found.sockets = facts.cpu.sockets
        found.cores_per_socket, found.threads_per_core = facts.cpu.cores_per_socket, facts.cpu.threads_per_core
    if s and s.real_memory_mb:
        found.memory_mb, found.memory_source = s.real_memory_mb, "slurmd -C RealMemory"
    elif facts.numa and facts.numa.nodes and all(n.size_mb for n in facts.numa.nodes):
        found.memory_mb, found.memory_source = sum(n.size_mb for n in facts.numa.nodes), "numactl -H node sizes"
    indexes = {g.index for g in facts.gpus if g.index is not None}
    if facts.topo:
        indexes |= {int(label[3:]) for label in facts.topo.gpu_labels}
    found.gpu_count = max(len(indexes), len(facts.gpus))
    found.gpu_names = [g.name for g in facts.gpus if g.name]
    return found


def memory_to_declare(found_mb: int) -> int:
    """RealMemory for slurm.conf: the found value rounded down to a whole GiB (1024 MB).

    Not slurmd's value as is: a node whose configured RealMemory exceeds what it reports is INVAL, and MemTotal
    moves by some MB across kernels, drivers and reboots, and between otherwise identical nodes (which would
    then each need a NodeName line of their own). Rounding down keeps a group on one line and never claims
    more than the node has. Below 1 GiB the value is kept.
    """
    return found_mb if found_mb < 1024 else found_mb // 1024 * 1024


def hardware_from_facts(record: Mapping[str, Any], group: NodeGroup, slurm_version: str) -> Hardware | None:
    """The Hardware of one node from its cached facts record; None when the facts lack the CPU layout or memory.

    GPUs: the count and ``/dev/nvidiaN`` files from nvidia-smi's indexes, ``Cores=`` per GPU from its NUMA-local
    cores (see :func:`slurmkit.topology.gres_records`); the type from the group's ``gpus.type`` when declared (it
    wins), else from the GPU name. Device files the group declares (``gpus.files``, one per GPU found) win over
    ``/dev/nvidiaN``: the local cluster's simulated GPUs are ``/dev/slurmkit/<name>/nvidiaN``. Where the facts
    show no GPU, the group's declared ``gpus`` are used as given (simulated GPUs of the local cluster).
    A declared list of several types: the facts' GPUs, in index order, go to the types in list order (declared
    files kept, ``Cores=`` from the facts); a different total is a SlurmkitError naming both counts.
    Features and weight come from the group.

    Replayed GPU facts on a local node (``tests/live/replay.py``) name CPUs the VM does not have: their
    ``Cores=`` are left out by :mod:`slurmkit.topology` itself, since the node's real CPU layout
    (``lscpu -p``) does not cover them (slurmd would reject cores it does not have).
    """
    facts = node_facts(record)
    found = found_hardware(facts)
    if None in (found.sockets, found.cores_per_socket, found.threads_per_core, found.memory_mb):
        return None
    types = group.gpu_types
    declared = types[0] if len(types) == 1 else None
    autodetect = types[0].autodetect if types else "off"
    cpu = dict(sockets=found.sockets, cores_per_socket=found.cores_per_socket,
               threads_per_core=found.threads_per_core, memory_mb=memory_to_declare(found.memory_mb))
    topo = node_topology(facts) if found.gpu_count else None
    if topo is not None and topo.gpus and len(types) > 1:
        # Several declared types: the facts' GPUs in index order are given to the types in the list's order
        # (the first ``count`` to the first type, ...); the declared files are kept, Cores= from the facts.
        records = gres_records(topo, types[0].type, slurm_version)
        if len(records) != group.gpu_count:
            raise SlurmkitError(f"{facts.hostname}: has {len(records)} GPU(s), its node group declares "
                                f"{group.gpu_count} ({declared_gpus_text(group)}); fix gpus: in the cluster file")
        sets, at = [], 0
        for t in types:
            mine = records[at : at + t.count]
            at += t.count
            files = tuple(t.device_files()) if t.files else tuple(r["File"] for r in mine)
            sets.append(GpuSet(t.type, t.count, files, tuple(r.get("Cores") for r in mine)))
        return _hardware(group, sets, autodetect, **cpu)
    if len(types) > 1:
        return _hardware(group, _declared_sets(group), autodetect, **cpu)
    gpu_type, gpu_count, gpu_files, gpu_cores = None, 0, (), ()
    if topo is not None and topo.gpus:
        names = sorted(set(found.gpu_names))
        gpu_type = declared.type if declared else gpu_type_from_name(names[0] if names else None)
        if gpu_type is None:
            raise SlurmkitError(
                f"{facts.hostname}: nvidia-smi gave no GPU name to take a GRES type from; "
                "declare gpus: {type: ..., count: ...} for its node group"
            )
        # gres_records holds the version-dependent gres.conf form; File= and Cores= are taken from it
        records = gres_records(topo, gpu_type, slurm_version)
        gpu_count = len(records)
        gpu_files = tuple(r["File"] for r in records)
        if declared and declared.files and len(declared.device_files()) == gpu_count:
            gpu_files = tuple(declared.device_files())
        gpu_cores = tuple(r.get("Cores") for r in records)
    elif declared:
        gpu_type, gpu_count = declared.type, declared.count
        gpu_files, gpu_cores = tuple(declared.device_files()), (None,) * declared.count
    sets = [GpuSet(gpu_type, gpu_count, gpu_files, gpu_cores)] if gpu_count else []
    return _hardware(group, sets, autodetect, **cpu)


# ---------------------------------------------------------------- declared vs found


def check_declared(cluster: Cluster, facts: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Declared hardware that contradicts a node's cached facts (records by host), one problem per host and key:
    ``nodes[0].cores_per_socket: us-east-node-3 has 48, declared 56``.

    Sockets, cores and threads must be equal (slurmd registers with what it finds); declared memory may be less
    than found, not more (the node would be INVAL); a declared GPU count must equal nvidia-smi's. A GPU type is
    a name the cluster file chooses and is not checked; with several declared types (a ``gpus:`` list) the total
must equal nvidia-smi's count (``nodes[0].gpus: n1 has 1, declared 2 (gtx970:1, gtx1060:1)``): which GPU is of
which type is the list's order, not checked against the GPU names. The local profile simulates GPUs without nvidia-smi, so
    there a node with no GPU facts is not held against its declared GPUs.
    """
    problems: list[Problem] = []
    for gi, group in enumerate(cluster.nodes):
        for name in hostlist.expand(group.names):
            record = facts.get(name)
            if record is None:
                continue
            found = found_hardware(node_facts(record))
            for key in ("sockets", "cores_per_socket", "threads_per_core"):
                want, have = getattr(group, key), getattr(found, key)
                if want is not None and have is not None and want != have:
                    problems.append(Problem(f"nodes[{gi}].{key}", f"{name} has {have}, declared {want}"))
            if group.memory_mb is not None and found.memory_mb is not None and group.memory_mb > found.memory_mb:
                problems.append(Problem(
                    f"nodes[{gi}].memory_mb",
                    f"{name} has {found.memory_mb}, declared {group.memory_mb} "
                    f"(more than its {found.memory_source}; declare at most {memory_to_declare(found.memory_mb)})",
                ))
            if group.gpu_types:
                simulated = cluster.profile == "local" and found.gpu_count == 0
                listed = isinstance(group.gpus, list)
                if not simulated and found.gpu_count != group.gpu_count:
                    problems.append(Problem(f"nodes[{gi}].gpus" if listed else f"nodes[{gi}].gpus.count",
                                            f"{name} has {found.gpu_count}, declared {group.gpu_count}"
                                            + (f" ({declared_gpus_text(group)})" if listed else "")))
            elif found.gpu_count and group.hardware_declared:
                problems.append(Problem(f"nodes[{gi}].gpus", f"{name} has {found.gpu_count} GPU(s), declared none"))
    return problems


def refuse_contradictions(cluster: Cluster, cluster_file: Path, records: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ConfigError (source: the cluster file) listing every :func:`check_declared` problem; None if none."""
    problems = check_declared(cluster, records)
    if problems:
        raise ConfigError(str(cluster_file), problems)


def slurm_target(cluster: Cluster, cluster_file: Path,
                 records: Mapping[str, Mapping[str, Any]] | None = None) -> Target:
    """The Slurm release to render for (see :func:`slurmkit.slurm_versions.resolve_target`): the one every host's
    cached facts show (installed, else the apt candidate), checked against the cluster file's pin
    (``slurm_version``); the oldest of a supported upgrade pair; the pin or 22.05 when no facts show any.
    ``records``: host -> cached record, else every host's is read. ConfigError (source: the cluster file) on a
    pin the nodes contradict, unsupported or mixed releases."""
    if records is None:
        records = cached_records(cluster, cluster_file)
    return resolve_target(cluster.slurm_pin, {h: node_facts(r) for h, r in records.items()}, cluster.head_names,
                          str(cluster_file))


def hardware_source(cluster: Cluster, cluster_file: Path,
                    records: Mapping[str, Mapping[str, Any]] | None = None) -> HardwareSource:
    """The hardware of each compute node for rendering: declared where its group gives it, else from the host's
    cached facts (None when neither). This is how every command that renders gets its hardware.

    Reads each host's cached record once (or takes ``records``, by host, already read by the caller), and first
    refuses declared hardware that those facts contradict: ConfigError naming the cluster file, one problem per
    host and key with its path (``nodes[0].cores_per_socket: node-3 has 48, declared 56``), the same as
    ``slurmkit validate`` and ``render`` print. Then resolves the Slurm release from the same facts
    (:func:`slurm_target`; its errors are ConfigErrors too): the returned source carries it as
    ``slurm_target``, which :func:`slurmkit.render.render_cluster` renders for. Last, the names: the source
    carries :func:`slurm_names` as ``slurm_names`` (what render calls each host) and
    :func:`controller_addresses` as ``controller_addresses``, after :func:`check_names`
    refused what would not work (ConfigError naming host, inventory name and hostname), so bootstrap refuses
    before it pushes anything.
    """
    if records is None:
        records = cached_records(cluster, cluster_file)
    compute = set(cluster.compute_names)
    refuse_contradictions(cluster, cluster_file, {h: r for h, r in records.items() if h in compute})
    refuse_bad_names(cluster, cluster_file, records)
    target = slurm_target(cluster, cluster_file, records)

    def source(name: str, group: NodeGroup) -> Hardware | None:
        hw = declared_hardware(name, group)
        if hw is not None:
            return hw
        record = records.get(name)
        return None if record is None else hardware_from_facts(record, group, target.release)

    source.slurm_target = target  # type: ignore[attr-defined]
    source.slurm_names = slurm_names(cluster, records)  # type: ignore[attr-defined]
    source.controller_addresses = controller_addresses(cluster, records)  # type: ignore[attr-defined]
    return source


# ---------------------------------------------------------------- what Slurm calls each host

# A Slurm node name as slurmkit renders one: letters, digits, - and _ (no dot: Slurm's daemons compare their
# short hostname; no hostlist or slurm.conf syntax: brackets, commas, blanks, =, #, parentheses).
SLURM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def found_hostname(record: Mapping[str, Any] | None) -> str | None:
    """The host's own short hostname in its cached record; None without a record, or in one cached before
    discovery asked for it."""
    if record is None:
        return None
    if isinstance(record.get("facts"), dict):  # read as is: no need to rebuild every fact for one name
        return record["facts"].get("short_hostname")
    return node_facts(record).short_hostname


def slurm_names(cluster: Cluster, records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Inventory name -> Slurm name (NodeName, SlurmctldHost) of every host, heads first. Pure.

    With ``slurm_names: hostname`` (the default) a host's Slurm name is its own short hostname where its cached
    record (``records``, by inventory name) holds one: slurmd finds its NodeName, and slurmctld itself among the
    SlurmctldHosts, by that name, so a host known by an IP address or an alias is still found. Otherwise (no
    facts, or ``slurm_names: as-written``) it is the cluster file's name. The cluster file's name or address
    stays the way to reach the host (NodeAddr). Bootstrap's verify, job and bench node lists and the support
    bundle translate with this map (:func:`inventory_names` the other way); :func:`check_names` says when it
    cannot work."""
    out = {}
    for h in cluster.hosts():
        found = found_hostname(records.get(h.name)) if cluster.slurm_names == "hostname" else None
        out[h.name] = found or h.name
    return out


def inventory_names(names: Mapping[str, str]) -> dict[str, str]:
    """Slurm name -> inventory name: the inverse of a :func:`slurm_names` map (one :func:`check_names` passed)."""
    return {slurm: inv for inv, slurm in names.items()}


def controller_addresses(cluster: Cluster, records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Head (inventory name) -> the address the compute nodes reach its slurmctld on (``SlurmctldHost=name(addr)``
    where the Slurm name is not the cluster file's). Pure.

    The cluster file's address is how slurmkit reaches a head, often a public or management address the compute
    nodes have no route to (a dstack fleet's ``proxy_jump`` host; the local cluster's heads). So where the head's
    cached facts list its IPv4 addresses (``ip -o -4 addr``), the one whose network holds the most compute nodes'
    addresses (their cluster-file addresses and the addresses their own facts list) is taken; the cluster file's
    address when it is on such a network too, or when no network of the head holds a compute node."""
    computes: list[ipaddress.IPv4Address] = []
    for h in cluster.hosts():
        if h.role != "compute":
            continue
        if is_ip(h.address):
            computes.append(ipaddress.ip_address(h.address))
        record = records.get(h.name)
        if record is not None:
            computes += [ipaddress.ip_address(a.address) for a in node_facts(record).ipv4
                         if a.scope != "host" and is_ip(a.address)]
    out = {}
    for h in cluster.hosts():
        if h.role != "head":
            continue
        out[h.name] = h.address
        record = records.get(h.name)
        if record is None:
            continue
        counts: dict[str, int] = {}
        for a in node_facts(record).ipv4:
            if a.scope == "host" or a.prefixlen is None or not is_ip(a.address):
                continue
            net = ipaddress.ip_network(f"{a.address}/{a.prefixlen}", strict=False)
            counts.setdefault(a.address, sum(1 for c in set(computes) if c in net and str(c) != a.address))
        most = max(counts.values(), default=0)
        if most and counts.get(h.address, 0) < most:
            out[h.name] = next(a for a, n in counts.items() if n == most)
    return out


def _where(cluster: Cluster, name: str) -> str:
    if name in cluster.head_names:
        return "heads" if isinstance(cluster.heads, str) else "heads.names"
    for gi, g in enumerate(cluster.nodes):
        if name in hostlist.expand(g.names):
            return f"nodes[{gi}].names"
    return ""


def _host_text(h) -> str:
    return h.address if h.address == h.name else f"{h.address} (inventory name {h.name})"


def check_names(cluster: Cluster, records: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Why the Slurm names of :func:`slurm_names` would not work, one problem per host (path: its place in the
    cluster file), each naming the host's address, its inventory name and the hostname it reported. Pure.

    - ``slurm_names: as-written`` and a host's hostname differs from its inventory name (slurmd would not find
      its NodeName, slurmctld would refuse to run: "This host ... not a valid controller");
    - a hostname that cannot be a Slurm node name (:data:`SLURM_NAME_RE`; ``localhost``, which Slurm reads as
      any host);
    - two hosts with one Slurm name (two machines answering to one NodeName).
    """
    problems: list[Problem] = []
    hosts = cluster.hosts()
    as_written = cluster.slurm_names == "as-written"
    for h in hosts:
        found = found_hostname(records.get(h.name))
        if found is None:
            continue
        if as_written and found != h.name:
            problems.append(Problem(_where(cluster, h.name), (
                f"host {h.address}: inventory name {h.name}, its hostname is {found}; with slurm_names: as-written "
                "the names must be the hosts' own short hostnames (slurmd and slurmctld find themselves in "
                f"slurm.conf by them): rename the host (hostnamectl set-hostname {h.name}) or its entry, or leave "
                f"slurm_names out to call it {found} in Slurm")))
        elif not as_written and (not SLURM_NAME_RE.match(found) or found.lower() == "localhost"):
            problems.append(Problem(_where(cluster, h.name), (
                f"host {h.address}: inventory name {h.name}, its hostname {found!r} cannot be a Slurm node name "
                "(letters, digits, - and _; not localhost): give the host a hostname of its own "
                f"(hostnamectl set-hostname {h.name}) and re-run `slurmkit discover --limit {h.name}`")))
    names = slurm_names(cluster, records)
    by_slurm: dict[str, list] = {}
    for h in hosts:
        by_slurm.setdefault(names[h.name], []).append(h)
    for slurm, same in by_slurm.items():
        if len(same) < 2:
            continue
        listed = ", ".join(_host_text(h) for h in same)
        for h in same[1:]:
            problems.append(Problem(_where(cluster, h.name), (
                f"host {_host_text(h)} has hostname {slurm}, as {_host_text(same[0])} does: Slurm would call "
                f"{len(same)} hosts ({listed}) {slurm}; give each host a hostname of its own (or list a machine "
                "once) and re-run `slurmkit discover`")))
    return problems


def refuse_bad_names(cluster: Cluster, cluster_file: Path, records: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ConfigError (source: the cluster file) listing every :func:`check_names` problem; None if none."""
    problems = check_names(cluster, records)
    if problems:
        raise ConfigError(str(cluster_file), problems)


# ---------------------------------------------------------------- management network, NCCL env per group


def nccl_exports(env: Mapping[str, str]) -> list[str]:
    """``export NAME='value'`` lines, always single-quoted (``NCCL_IB_HCA='=mlx5_0,...'`` reads better so)."""
    return [f"export {k}='" + v.replace("'", "'\\''") + "'" for k, v in env.items()]


def is_ip(text: str) -> bool:
    """True when ``text`` is an IPv4 or IPv6 address (not a host name)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def mgmt_interface(facts: NodeFacts, address: str | None) -> str | None:
    """The management interface of a node: the network slurmkit reaches it on, which NCCL's bootstrap
    sockets (``NCCL_SOCKET_IFNAME``) should use too.

    1. ``address`` (the cluster file's address for the host) is an IP address that one of the node's
       interfaces holds (``ip -o -4 addr show``): that interface.
    2. Otherwise (the host is known by name only, or by an address it does not hold itself, e.g. behind NAT):
       the interface of the node's route to the first head (``ip -o route get`` to the head's name as the
       node resolves it); not when that route is the node's own (``local``, ``lo``: the first head itself).
    3. Otherwise None: nothing derived, nothing set.
    """
    if address and is_ip(address):
        held = [a.ifname for a in facts.ipv4 if a.address == address]
        if held:
            return held[0]
    route = facts.head_route
    if route and route.dev and route.kind == "unicast" and route.dev != "lo":
        return route.dev
    return None


@dataclass
class GroupNccl:
    """The NCCL environment of one node group: per host with facts, the management interface they agree on
    (None when they do not, or it is unknown on some) and the findings about it."""

    hosts: list[str]
    env: dict[str, dict[str, str]]
    mgmt_ifname: str | None
    findings: list[TopologyFinding]


def group_nccl(names: list[str], records: Mapping[str, Mapping[str, Any]], addresses: Mapping[str, str],
               label: str = "", allow_roce: bool = False) -> GroupNccl:
    """NCCL env of each host of a group that has a cached record (see :func:`slurmkit.topology.nccl_env`).

    ``NCCL_SOCKET_IFNAME`` is set only when every such host has the same management interface
    (:func:`mgmt_interface`); when they name different ones it is left out and a ``mgmt-ifname-differs``
    warning names them; when some host's is unknown it is left out with a ``mgmt-ifname-unknown`` info. Pure.
    """
    hosts = [n for n in names if n in records]
    facts = {n: node_facts(records[n]) for n in hosts}
    ifnames = {n: mgmt_interface(facts[n], addresses.get(n)) for n in hosts}
    by_name: dict[str | None, list[str]] = {}
    for n, i in ifnames.items():
        by_name.setdefault(i, []).append(n)
    findings = []
    where = f"{label}: " if label else ""
    chosen = None
    if hosts and None in by_name:
        findings.append(TopologyFinding(
            hostlist.fold(by_name[None]), "mgmt-ifname-unknown",
            f"{where}management interface of {hostlist.fold(by_name[None])} not found in its "
            "facts (ip -o -4 addr / ip -o route get): NCCL_SOCKET_IFNAME not set", "info"))
    elif len(by_name) > 1:
        parts = "; ".join(f"{i} on {hostlist.fold(hs)}" for i, hs in sorted(by_name.items()))
        findings.append(TopologyFinding(
            hostlist.fold(hosts), "mgmt-ifname-differs",
            f"{where}management interface names differ ({parts}): NCCL_SOCKET_IFNAME not set", "warning", found=parts))
    elif by_name:
        chosen = next(iter(by_name))
    env = {n: nccl_env(node_topology(facts[n], allow_roce=allow_roce), chosen) for n in hosts}
    return GroupNccl(hosts=hosts, env=env, mgmt_ifname=chosen, findings=findings)


@dataclass
class JobNccl:
    """What a job exports: ``env`` (empty when unknown or ambiguous) and, when something is worth a line on
    stderr, ``note``."""

    env: dict[str, str]
    note: str | None = None
    partition: str | None = None
    nodes: list[str] = field(default_factory=list)


def job_nccl_env(cluster: Cluster, records: Mapping[str, Mapping[str, Any]], partition: str | None = None,
                 allow_roce: bool = False) -> JobNccl:
    """The NCCL environment for a job on ``partition`` (None: the cluster file's default partition, or its only
    one), from cached facts. Pure.

    The partition's nodes (``ALL`` = every compute node) -> their node groups -> each group's env
    (:func:`group_nccl`, over all the group's cached hosts) for the partition's hosts. Exported only when
    every host of the partition that has facts has the same env, and every group in the partition has facts
    for at least one host; otherwise nothing, with a one-line ``note``. No facts cached at all: nothing, no note.
    """
    parts = cluster.partitions
    if partition is None:
        chosen = [p for p in parts if p.default] or (parts if len(parts) == 1 else [])
    else:
        chosen = [p for p in parts if p.name == partition]
    if not chosen:
        if not records:
            return JobNccl({})
        what = f"partition {partition}" if partition else "the default partition"
        return JobNccl({}, f"NCCL env not exported: {what} is not in the cluster file", partition)
    part = chosen[0]
    nodes = cluster.compute_names if part.nodes.strip().upper() == "ALL" else hostlist.expand(part.nodes)
    addresses = {h.name: h.address for h in cluster.hosts()}
    result = JobNccl({}, None, part.name, nodes)
    if not any(n in records for n in nodes):
        return result
    envs: dict[str, list[str]] = {}
    missing: list[str] = []
    for gi, group in enumerate(cluster.nodes):
        members = hostlist.expand(group.names)
        in_part = [n for n in members if n in nodes]
        if not in_part:
            continue
        g = group_nccl(members, records, addresses, f"nodes[{gi}]", allow_roce)
        if not g.hosts:
            missing += in_part
        for n in in_part:
            if n in g.env:
                envs.setdefault(json.dumps(g.env[n], sort_keys=True), []).append(n)
    if missing:
        result.note = (f"NCCL env not exported: no cached facts for {hostlist.fold(missing)} in partition "
                       f"{part.name} (run slurmkit discover)")
    elif len(envs) > 1:
        kinds = " vs ".join(f"{hostlist.fold(hs)}: {_env_text(json.loads(e))}" for e, hs in envs.items())
        result.note = (f"NCCL env not exported: partition {part.name} spans nodes with different NCCL envs "
                       f"({kinds})")
    elif envs:
        result.env = json.loads(next(iter(envs)))
    return result


def _env_text(env: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items()) or "none"
