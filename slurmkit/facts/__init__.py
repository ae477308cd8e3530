"""Hardware facts: the commands to run on a node and the pure parsers of their outputs.

``COMMANDS`` maps a name to a shell command (the same on every host; ``discovery.collect`` adds the per-host
``ROUTE_TO_HEAD`` one); each prints nothing and exits 0 when its tool or path is
missing (no GPU, no InfiniBand is a fact, not an error). ``facts_from_outputs`` turns the outputs, keyed
by the same names, into :class:`NodeFacts`.
"""

from __future__ import annotations

from slurmkit.facts.cpu import (
    SYSFS_PCI_NUMA_COMMAND,
    parse_lscpu,
    parse_lscpu_json,
    parse_lscpu_parsable,
    parse_numactl_hardware,
    parse_sysfs_pci_numa,
)
from slurmkit.facts.ib import SYSFS_IB_COMMAND, parse_ibdev2netdev, parse_ibstat, parse_ibstatus, parse_sysfs_ib
from slurmkit.facts.errors import FactsParseError
from slurmkit.facts.hostname import HOSTNAME_COMMAND, parse_hostname
from slurmkit.facts.ibnet import parse_ibnetdiscover
from slurmkit.facts.net import parse_ip_addr, parse_ip_route_get, route_to_host_command
from slurmkit.facts.models import (
    CpuInfo,
    CpuLayoutEntry,
    Gpu,
    IbDevice,
    IbPort,
    IbReport,
    Ipv4Address,
    NetdevLink,
    NodeFacts,
    NumaInfo,
    NumaNode,
    NvsmiTable,
    RouteInfo,
    SlurmdHardware,
    SlurmVersions,
    TopoMatrix,
)
from slurmkit.facts.nvsmi import gpus_from_query, parse_nvsmi_list, parse_nvsmi_query
from slurmkit.facts.slurmd import parse_slurmd_c
from slurmkit.facts.slurmver import (
    CANDIDATE_COMMAND as SLURM_CANDIDATE_COMMAND,
    PACKAGES_COMMAND as SLURM_PACKAGES_COMMAND,
    VERSION_COMMAND as SLURM_VERSION_COMMAND,
    parse_apt_policy,
    parse_dpkg_query,
    parse_slurm_version,
    slurm_versions,
)
from slurmkit.facts.topo import parse_topo_matrix

NVSMI_QUERY_FIELDS = "index,name,pci.bus_id,uuid,memory.total,driver_version"


def _if_tool(tool: str, command: str) -> str:
    return f"command -v {tool} >/dev/null 2>&1 && {command} || true"


COMMANDS: dict[str, str] = {
    "nvidia_smi_query": _if_tool("nvidia-smi", f"nvidia-smi --query-gpu={NVSMI_QUERY_FIELDS} --format=csv"),
    "nvidia_smi_list": _if_tool("nvidia-smi", "nvidia-smi -L"),
    "nvidia_smi_topo": _if_tool("nvidia-smi", "nvidia-smi topo -m"),
    # stderr merged: a failing ibstat (exit 255) prints its ibpanic line there, after the devices it read
    "ibstat": _if_tool("ibstat", "ibstat 2>&1"),
    "ibdev2netdev": _if_tool("ibdev2netdev", "ibdev2netdev"),
    "sysfs_ib": SYSFS_IB_COMMAND,
    "lscpu": _if_tool("lscpu", "lscpu"),
    "lscpu_layout": _if_tool("lscpu", "lscpu -p=CPU,CORE,SOCKET,NODE"),
    "numactl": _if_tool("numactl", "numactl -H"),
    "sysfs_pci_numa": SYSFS_PCI_NUMA_COMMAND,
    "slurmd": _if_tool("slurmd", "slurmd -C"),
    "ip_addr": _if_tool("ip", "ip -o -4 addr show"),
    # The Slurm installed (daemons' -V, dpkg) or, where none is, what apt would install (see facts.slurmver)
    "slurm_version": SLURM_VERSION_COMMAND,
    "slurm_packages": SLURM_PACKAGES_COMMAND,
    "slurm_candidate": SLURM_CANDIDATE_COMMAND,
    # The host's own short hostname: its Slurm NodeName / SlurmctldHost (see slurmkit.hardware.slurm_names)
    "hostname": HOSTNAME_COMMAND,
}
# Per host, added by discovery.collect: the route to the first head (route_to_host_command), under this name.
ROUTE_TO_HEAD = "ip_route_head"


def _merge_ib(primary: IbReport, secondary: IbReport) -> IbReport | None:
    """ibstat/ibstatus first; sysfs adds devices they did not print (e.g. the one ibstat panicked on)."""
    if not primary.devices and not primary.errors:
        return secondary if secondary.devices else None
    known = {d.name for d in primary.devices}
    primary.devices.extend(d for d in secondary.devices if d.name not in known)
    return primary


def facts_from_outputs(hostname: str, outputs: dict[str, str]) -> NodeFacts:
    """Run the parser for each output present (keys as in :data:`COMMANDS`; ``ibstatus`` and ``lscpu_json``
    are accepted too). Missing or empty outputs leave their facts empty; a truncated or garbled one raises
    :class:`FactsParseError` (its host left for the caller to fill in)."""

    def out(name: str) -> str:
        return outputs.get(name) or ""

    facts = NodeFacts(hostname=hostname)
    table = parse_nvsmi_query(out("nvidia_smi_query"))
    facts.gpus = gpus_from_query(table) or parse_nvsmi_list(out("nvidia_smi_list"))
    listed = {g.index: g for g in parse_nvsmi_list(out("nvidia_smi_list"))}
    for gpu in facts.gpus:
        if gpu.index in listed and gpu is not listed[gpu.index]:
            gpu.mig_devices = listed[gpu.index].mig_devices
    facts.topo = parse_topo_matrix(out("nvidia_smi_topo"))
    ib = parse_ibstat(out("ibstat"))
    if not ib.devices and not ib.errors:
        ib = parse_ibstatus(out("ibstatus"))
    facts.ib = _merge_ib(ib, parse_sysfs_ib(out("sysfs_ib")))
    facts.netdevs = parse_ibdev2netdev(out("ibdev2netdev"))
    facts.cpu = parse_lscpu(out("lscpu")) or parse_lscpu_json(out("lscpu_json"))
    facts.cpu_layout = parse_lscpu_parsable(out("lscpu_layout"))
    facts.numa = parse_numactl_hardware(out("numactl"))
    facts.pci_numa = parse_sysfs_pci_numa(out("sysfs_pci_numa"))
    facts.slurmd = parse_slurmd_c(out("slurmd"))
    facts.ipv4 = parse_ip_addr(out("ip_addr"))
    facts.head_route = parse_ip_route_get(out(ROUTE_TO_HEAD))
    facts.slurm = slurm_versions(out("slurm_version"), out("slurm_packages"), out("slurm_candidate"))
    facts.short_hostname = parse_hostname(out("hostname"))
    return facts


__all__ = [
    "COMMANDS",
    "NVSMI_QUERY_FIELDS",
    "CpuInfo",
    "CpuLayoutEntry",
    "FactsParseError",
    "Gpu",
    "IbDevice",
    "IbPort",
    "IbReport",
    "Ipv4Address",
    "NetdevLink",
    "NodeFacts",
    "NumaInfo",
    "NumaNode",
    "NvsmiTable",
    "ROUTE_TO_HEAD",
    "RouteInfo",
    "SlurmdHardware",
    "SlurmVersions",
    "TopoMatrix",
    "facts_from_outputs",
    "gpus_from_query",
    "parse_hostname",
    "parse_ibdev2netdev",
    "parse_ibnetdiscover",
    "parse_ibstat",
    "parse_ibstatus",
    "parse_ip_addr",
    "parse_ip_route_get",
    "parse_lscpu",
    "parse_lscpu_json",
    "parse_lscpu_parsable",
    "parse_numactl_hardware",
    "parse_nvsmi_list",
    "parse_nvsmi_query",
    "parse_slurmd_c",
    "parse_sysfs_ib",
    "parse_sysfs_pci_numa",
    "parse_topo_matrix",
    "parse_apt_policy",
    "parse_dpkg_query",
    "parse_slurm_version",
    "slurm_versions",
    "route_to_host_command",
]
