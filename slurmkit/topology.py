"""Node and fabric topology from facts: GPUs, HCAs, rails, NUMA-local cores, switches. Pure.

Rail k of a node is the HCA paired with GPU k. Pairing reads the ``nvidia-smi topo -m`` matrix, closest
first (PIX, then PXB, PHB, NODE, SYS): at each distance every GPU still without an HCA gets one of its
own if one is free at that distance; a GPU that only finds HCAs already taken at that distance shares the
first of them (DGX-1: 4 HCAs for 8 GPUs), which is reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from slurmkit.errors import SlurmkitError
from slurmkit.facts._text import cpu_list, ranges
from slurmkit.facts.ibnet import parse_ibnetdiscover
from slurmkit.facts.models import NodeFacts

DISTANCES = ("PIX", "PXB", "PHB", "NODE", "SYS")
# Drivers before 2017 printed SOC where newer ones print SYS.
_ALIASES = {"SOC": "SYS"}


@dataclass
class TopologyFinding:
    """Something a person should know about a node's topology (its GPUs, HCAs, rails, management interface) or
    the fabric's: ``code`` says what (``rail-down``, ``hca-excluded``, ...). ``severity``: ``error`` (a rail
    cannot be used), ``warning``, ``info``."""

    node: str
    code: str
    message: str
    severity: str = "warning"
    rail: int | None = None
    hca: str | None = None
    expected: str | None = None
    found: str | None = None


@dataclass
class HcaInfo:
    """One HCA with its first port's state. ``usable`` is False when NCCL should not use it (``reasons``)."""

    name: str
    port: int | None = None
    state: str | None = None
    phys_state: str | None = None
    rate_gbps: float | None = None
    link_layer: str | None = None
    netdev: str | None = None
    usable: bool = True
    reasons: list[str] = field(default_factory=list)


@dataclass
class GpuInfo:
    """One GPU: nvidia-smi index, PCI bus id, NUMA node, NUMA-local CPUs and their Slurm core indexes."""

    index: int
    name: str | None = None
    pci_bus_id: str | None = None
    numa_node: int | None = None
    cpus: list[int] = field(default_factory=list)
    cores: list[int] | None = None


@dataclass
class Rail:
    """Rail ``rail`` = the HCA paired with GPU ``gpu`` at ``distance``; ``shared`` when another GPU has it too."""

    rail: int
    gpu: int
    hca: str
    distance: str
    usable: bool
    rate_gbps: float | None = None
    shared: bool = False


@dataclass
class NodeTopology:
    hostname: str
    gpus: list[GpuInfo] = field(default_factory=list)
    hcas: list[HcaInfo] = field(default_factory=list)
    rails: list[Rail] = field(default_factory=list)
    findings: list[TopologyFinding] = field(default_factory=list)

    def hca(self, name: str) -> HcaInfo | None:
        return next((h for h in self.hcas if h.name == name), None)


@dataclass
class Switch:
    """One switch from ibnetdiscover: ``nodes`` are host names behind it, ``children`` switch names."""

    name: str
    nodes: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- per node


def _hcas(facts: NodeFacts, allow_roce: bool, findings: list[TopologyFinding]) -> list[HcaInfo]:
    host = facts.hostname
    netdev = {(n.hca, n.port): n for n in facts.netdevs}
    out: dict[str, HcaInfo] = {}
    if facts.ib:
        for dev in facts.ib.devices:
            port = dev.ports[0] if dev.ports else None
            info = HcaInfo(name=dev.name)
            if port:
                info.port, info.state, info.phys_state = port.number, port.state, port.phys_state
                info.rate_gbps, info.link_layer = port.rate_gbps, port.link_layer
            out[dev.name] = info
        for name in facts.ib.failed_devices:
            info = out.setdefault(name, HcaInfo(name=name))
            if info.state is None:
                info.usable = False
                info.reasons.append("its state could not be read")
        for line in facts.ib.errors:
            findings.append(TopologyFinding(host, "ib-tool-error", f"InfiniBand tool reported: {line}", "warning"))
    if facts.topo:
        for label in facts.topo.nic_labels:
            name = facts.topo.nic_names.get(label, label)
            if name not in out:
                info = out[name] = HcaInfo(name=name)
                if facts.ib is not None and facts.ib.devices:
                    # The PCI matrix sees it, the InfiniBand tools do not: not a port NCCL can be sent to.
                    info.usable = False
                    info.reasons.append("not reported by the InfiniBand tools (ibstat/sysfs)")
    for info in out.values():
        link = netdev.get((info.name, info.port or 1))
        if link:
            info.netdev = link.netdev
        if info.state is not None and info.state != "ACTIVE":
            info.usable = False
            phys = f" ({info.phys_state})" if info.phys_state else ""
            info.reasons.append(f"port {info.port} is {info.state}{phys}")
        if info.link_layer == "Ethernet" and not allow_roce:
            info.usable = False
            info.reasons.append("link layer is Ethernet (RoCE not allowed)")
        if link and not link.up and info.link_layer == "Ethernet":
            info.usable = False
            info.reasons.append(f"netdev {link.netdev} is Down")
    if facts.ib is None and out:
        findings.append(
            TopologyFinding(host, "hca-state-unknown", "no ibstat/sysfs port facts: HCA states and rates unknown", "warning")
        )
    return sorted(out.values(), key=lambda h: _natural(h.name))


def _natural(name: str) -> tuple:
    head = name.rstrip("0123456789")
    tail = name[len(head) :]
    return (head, int(tail) if tail else -1)


def _cpu_to_core(facts: NodeFacts) -> dict[int, int] | None:
    """Map OS CPU id -> Slurm's logical core index (gres.conf ``Cores=``).

    Slurm numbers cores logically: core 0 is the first core of the first socket, core 1 the second (as
    ``lstopo -l`` shows ``Core L#``), hyperthreads excluded. With ``lscpu -p=CPU,CORE,SOCKET,NODE`` the
    cores are ordered by (socket, lowest CPU id of the core). With plain lscpu only, the usual Linux
    enumeration is checked, not assumed: C = sockets x cores per socket, CPUs 0..C-1 are the first threads
    and CPU c + k*C is a sibling of CPU c; that holds when every NUMA node's CPU list is a contiguous
    range of first threads plus the same range shifted by k*C. Then core(c) = c mod C. Otherwise None.
    """
    if facts.cpu_layout:
        first: dict[tuple[int, int], int] = {}
        for e in facts.cpu_layout:
            key = (e.socket, e.core)
            first[key] = min(first.get(key, e.cpu), e.cpu)
        order = sorted(first, key=lambda k: (k[0], first[k]))
        index = {k: i for i, k in enumerate(order)}
        return {e.cpu: index[(e.socket, e.core)] for e in facts.cpu_layout}
    cpu = facts.cpu
    if not cpu or not (cpu.sockets and cpu.cores_per_socket and cpu.threads_per_core):
        return None
    cores = cpu.sockets * cpu.cores_per_socket
    total = cores * cpu.threads_per_core
    if cpu.online and cpu.online != list(range(total)):
        return None
    numa = cpu.numa_cpus or ({n.node: n.cpus for n in facts.numa.nodes} if facts.numa else {})
    if not numa:
        return None
    for cpus in numa.values():
        primary = sorted(c for c in cpus if c < cores)
        if not primary or primary != list(range(primary[0], primary[-1] + 1)):
            return None
        expected = {c + k * cores for c in primary for k in range(cpu.threads_per_core)}
        if set(cpus) != expected:
            return None
    return {c: c % cores for c in range(total)}


def _numa_cpus(facts: NodeFacts) -> dict[int, list[int]]:
    if facts.numa:
        return {n.node: n.cpus for n in facts.numa.nodes}
    return dict(facts.cpu.numa_cpus) if facts.cpu else {}


def _bus_key(bus_id: str | None) -> str | None:
    # nvidia-smi prints an 8-digit PCI domain (00000000:19:00.0), sysfs a 4-digit one (0000:19:00.0)
    return bus_id.lower()[-12:] if bus_id else None


def _gpus(facts: NodeFacts, findings: list[TopologyFinding]) -> list[GpuInfo]:
    topo = facts.topo
    gpus: dict[int, GpuInfo] = {}
    for g in facts.gpus:
        if g.index is not None:
            gpus[g.index] = GpuInfo(index=g.index, name=g.name, pci_bus_id=g.pci_bus_id)
    if topo:
        for label in topo.gpu_labels:
            gpus.setdefault(int(label[3:]), GpuInfo(index=int(label[3:])))
    numa_cpus = _numa_cpus(facts)
    core_of = _cpu_to_core(facts)
    for gpu in gpus.values():
        label = f"GPU{gpu.index}"
        if topo and topo.numa_affinity.get(label) is not None:
            gpu.numa_node = topo.numa_affinity[label]
        elif _bus_key(gpu.pci_bus_id) in facts.pci_numa:
            gpu.numa_node = facts.pci_numa[_bus_key(gpu.pci_bus_id)]
        if topo and topo.cpu_affinity.get(label):
            gpu.cpus = cpu_list(topo.cpu_affinity[label])
        elif gpu.numa_node is not None and gpu.numa_node in numa_cpus:
            gpu.cpus = list(numa_cpus[gpu.numa_node])
        if core_of is not None and gpu.cpus and all(c in core_of for c in gpu.cpus):
            gpu.cores = sorted({core_of[c] for c in gpu.cpus})
    if gpus and core_of is None:
        findings.append(
            TopologyFinding(facts.hostname, "cores-unknown", "CPU -> core mapping not derivable: gres Cores= left out", "info")
        )
    return [gpus[i] for i in sorted(gpus)]


def _pair(facts: NodeFacts, gpus: list[GpuInfo], hcas: list[HcaInfo]) -> list[tuple[int, str, str, bool]]:
    """(gpu index, hca, distance, shared) for each GPU that has a candidate HCA in the topo matrix."""
    topo = facts.topo
    if topo is None:
        return []
    by_name = {h.name: h for h in hcas}
    # Ethernet HCAs excluded from NCCL are another network: never a rail. Down ones still are (a rail down).
    candidates = [
        lbl
        for lbl in topo.nic_labels
        if not any("Ethernet" in r for r in by_name.get(topo.nic_names.get(lbl, lbl), HcaInfo("")).reasons)
    ]

    def dist(gpu: int, label: str) -> str | None:
        code = topo.links.get(f"GPU{gpu}", {}).get(label)
        return _ALIASES.get(code, code)

    owner: dict[str, int] = {}  # label -> gpu, across levels
    pairs: dict[int, tuple[str, str, bool]] = {}
    for level in DISTANCES:
        free = [g.index for g in gpus if g.index not in pairs]
        cands = {
            g: sorted(
                (lbl for lbl in candidates if dist(g, lbl) == level and lbl not in owner),
                key=lambda lbl: (not by_name[topo.nic_names.get(lbl, lbl)].usable, topo.devices.index(lbl)),
            )
            for g in free
        }
        match: dict[str, int] = {}

        def augment(g: int, seen: set[str]) -> bool:
            for lbl in cands[g]:
                if lbl not in match:
                    match[lbl] = g
                    return True
            for lbl in cands[g]:
                if lbl not in seen:
                    seen.add(lbl)
                    if augment(match[lbl], seen):
                        match[lbl] = g
                        return True
            return False

        for g in free:
            augment(g, set())
        for lbl, g in match.items():
            owner[lbl] = g
            pairs[g] = (lbl, level, False)
        for g in free:
            if g in pairs:
                continue
            taken = [lbl for lbl in candidates if dist(g, lbl) == level and lbl in owner]
            if taken:
                pairs[g] = (taken[0], level, True)
    return [(g, topo.nic_names.get(lbl, lbl), level, shared) for g, (lbl, level, shared) in sorted(pairs.items())]


def node_topology(facts: NodeFacts, allow_roce: bool = False) -> NodeTopology:
    """GPUs, HCAs (with NCCL usability), rails and findings of one node.

    HCAs that are down, unreadable or Ethernet (unless ``allow_roce``) are excluded from NCCL use and
    reported; a rail whose HCA is excluded is an ``error`` finding.
    """
    host = facts.hostname
    findings: list[TopologyFinding] = []
    hcas = _hcas(facts, allow_roce, findings)
    gpus = _gpus(facts, findings)
    topo = NodeTopology(hostname=host, gpus=gpus, hcas=hcas, findings=findings)
    if gpus and facts.topo is None:
        findings.append(TopologyFinding(host, "no-topology", "no nvidia-smi topo matrix: GPU-HCA pairing unknown", "warning"))
    pairs = _pair(facts, gpus, hcas)
    rail_hcas = set()
    for gpu, hca_name, distance, shared in pairs:
        hca = topo.hca(hca_name) or HcaInfo(hca_name)
        rail_hcas.add(hca_name)
        topo.rails.append(
            Rail(rail=gpu, gpu=gpu, hca=hca_name, distance=distance, usable=hca.usable, rate_gbps=hca.rate_gbps,
                 shared=shared)
        )
        if not hca.usable:
            findings.append(
                TopologyFinding(host, "rail-unusable", f"rail {gpu} (GPU{gpu}) HCA {hca_name}: {'; '.join(hca.reasons)}",
                        "error", rail=gpu, hca=hca_name, expected="usable", found="; ".join(hca.reasons))
            )
        if shared:
            others = [g for g, h, _, _ in pairs if h == hca_name and g != gpu]
            findings.append(
                TopologyFinding(host, "rail-shared",
                        f"GPU{gpu} has no HCA of its own; it shares {hca_name} ({distance}) with "
                        + ", ".join(f"GPU{g}" for g in others), "warning", rail=gpu, hca=hca_name)
            )
        if distance in ("NODE", "SYS"):
            findings.append(
                TopologyFinding(host, "rail-far", f"GPU{gpu}'s closest HCA {hca_name} is at {distance}", "warning",
                        rail=gpu, hca=hca_name, expected="PIX/PXB/PHB", found=distance)
            )
    paired_gpus = {p[0] for p in pairs}
    for gpu in gpus:
        if facts.topo is not None and gpu.index not in paired_gpus:
            findings.append(TopologyFinding(host, "rail-missing", f"GPU{gpu.index} has no usable HCA", "error", rail=gpu.index))
    for hca in hcas:
        if not hca.usable:
            near = hca.name in rail_hcas
            findings.append(
                TopologyFinding(host, "hca-excluded", f"{hca.name} excluded from NCCL: {'; '.join(hca.reasons)}",
                        "warning" if near else "info", hca=hca.name, found="; ".join(hca.reasons))
            )
    return topo


# ---------------------------------------------------------------- across nodes


def check_rails(nodes: list[NodeTopology]) -> list[TopologyFinding]:
    """Rail k is consistent when every node has a usable HCA of the same rate on it.

    The expected rate of a rail is the most common rate among the nodes' usable HCAs on it (ties: the
    highest). Nodes without GPUs are not checked.
    """
    findings: list[TopologyFinding] = []
    gpu_nodes = [n for n in nodes if n.gpus]
    rail_ids = sorted({r.rail for n in gpu_nodes for r in n.rails})
    for k in rail_ids:
        rates = Counter(
            r.rate_gbps for n in gpu_nodes for r in n.rails if r.rail == k and r.usable and r.rate_gbps is not None
        )
        expected = max(rates.items(), key=lambda kv: (kv[1], kv[0]))[0] if rates else None
        exp_text = f"active at {_rate(expected)}" if expected is not None else "active"
        for node in gpu_nodes:
            rail = next((r for r in node.rails if r.rail == k), None)
            if rail is None:
                findings.append(TopologyFinding(node.hostname, "rail-missing", f"{node.hostname}: no HCA on rail {k}",
                                        "error", rail=k, expected=exp_text, found="none"))
                continue
            hca = node.hca(rail.hca)
            if not rail.usable:
                found = "; ".join(hca.reasons) if hca else "unusable"
                findings.append(TopologyFinding(node.hostname, "rail-down", f"{node.hostname}: rail {k} ({rail.hca}) {found}",
                                        "error", rail=k, hca=rail.hca, expected=exp_text, found=found))
            elif expected is not None and rail.rate_gbps is None:
                findings.append(TopologyFinding(node.hostname, "rail-rate-unknown",
                                        f"{node.hostname}: rail {k} ({rail.hca}) rate unknown", "warning",
                                        rail=k, hca=rail.hca, expected=exp_text, found="unknown"))
            elif expected is not None and rail.rate_gbps != expected:
                word = "slower" if rail.rate_gbps < expected else "faster"
                findings.append(TopologyFinding(node.hostname, f"rail-{word}",
                                        f"{node.hostname}: rail {k} ({rail.hca}) at {_rate(rail.rate_gbps)}, "
                                        f"expected {_rate(expected)}", "error" if word == "slower" else "warning",
                                        rail=k, hca=rail.hca, expected=exp_text, found=f"active at {_rate(rail.rate_gbps)}"))
    return findings


def _rate(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{int(value) if value == int(value) else value} Gb/s"


# ---------------------------------------------------------------- renderings


def _version(text: str) -> tuple[int, int]:
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise SlurmkitError(f"not a Slurm version: {text!r}") from None


def gres_records(node_topology: NodeTopology, gpu_type: str, slurm_version: str,
                 node_name: str | None = None) -> list[dict[str, str]]:
    """gres.conf records, one per GPU, in line order: ``{"Name": "gpu", "Type": "h100", "File": "/dev/nvidia0",
    "Cores": "0-55"}`` (``NodeName`` first when ``node_name`` is given). Data, not text: the template writes them.

    ``Cores`` lists Slurm's logical core indexes (not OS CPU ids, not hyperthreads) of the GPU's NUMA-local
    CPUs; it is left out when the CPU -> core mapping could not be derived. ``File`` uses the nvidia-smi
    index as the device minor, which holds when the driver numbers /dev/nvidiaN in PCI order (the default).

    Slurm versions: gres.conf(5) of 21.08 through 26.05 (22.05.8, 24.11.5 and 26.05.5's read as installed)
    define ``Name``/``Type``/``File``/``Cores`` this way (``CPUs`` is the pre-14.x name; ``MultipleFiles``,
    22.05 on, only matters for MIG, which is not rendered here), so every supported release from 21.08 renders
    the same records (:data:`slurmkit.slurm_versions.SAME_ON_ALL`); older ones are refused.
    """
    if _version(slurm_version) < (21, 8):
        raise SlurmkitError(f"gres.conf rendering needs Slurm 21.08 or newer, got {slurm_version}")
    records = []
    for gpu in node_topology.gpus:
        record = {"NodeName": node_name} if node_name else {}
        record.update(Name="gpu", Type=gpu_type, File=f"/dev/nvidia{gpu.index}")
        if gpu.cores:
            record["Cores"] = ranges(gpu.cores)
        records.append(record)
    return records


def gres_lines(node_topology: NodeTopology, gpu_type: str, slurm_version: str, node_name: str | None = None) -> list[str]:
    """:func:`gres_records` as gres.conf's ``key=value`` lines (``Name=gpu Type=h100 File=/dev/nvidia0 Cores=0-55``),
    for reading; rendering passes the records to the template."""
    return [" ".join(f"{k}={v}" for k, v in r.items())
            for r in gres_records(node_topology, gpu_type, slurm_version, node_name)]


def nccl_env(node_topology: NodeTopology, mgmt_ifname: str | None = None) -> dict[str, str]:
    """NCCL variables derived from the topology.

    ``NCCL_IB_HCA`` lists the usable rail HCAs in GPU order with NCCL's ``=`` prefix: without it NCCL
    matches names as prefixes, so ``mlx5_1`` would also select ``mlx5_10`` and ``mlx5_11``.
    ``NCCL_SOCKET_IFNAME`` (exact, ``=``) only when the management interface is given.
    """
    env: dict[str, str] = {}
    hcas: list[str] = []
    for rail in sorted(node_topology.rails, key=lambda r: r.gpu):
        if rail.usable and rail.hca not in hcas:
            hcas.append(rail.hca)
    if hcas:
        env["NCCL_IB_HCA"] = "=" + ",".join(hcas)
    if mgmt_ifname:
        env["NCCL_SOCKET_IFNAME"] = "=" + mgmt_ifname
    return env


def switches_from_ibnetdiscover(text: str) -> list[Switch]:
    """Switches of an ``ibnetdiscover`` output, named by their node description's host part
    (``MF0;CNTSN-POD229-QM97-IB-02:MQM9700/U1`` -> ``CNTSN-POD229-QM97-IB-02``), else by their id;
    ``nodes`` are the hosts of the HCA links (first word of ``"host mlx5_2"``), ``children`` linked switches."""
    parsed = parse_ibnetdiscover(text)
    names: dict[str, str] = {}
    for node in parsed:
        if node.kind == "Switch":
            desc = node.desc or ""
            host = desc.split(";", 1)[1] if ";" in desc else desc
            names[node.node_id] = host.split(":", 1)[0].strip() or node.node_id
    switches = []
    for node in parsed:
        if node.kind != "Switch":
            continue
        sw = Switch(name=names[node.node_id])
        for link in node.links:
            if link.remote_id.startswith("S-"):
                child = names.get(link.remote_id, link.remote_id)
                if child not in sw.children:
                    sw.children.append(child)
            elif link.remote_desc:
                host = link.remote_desc.split()[0]
                if host not in sw.nodes:
                    sw.nodes.append(host)
        switches.append(sw)
    return switches
