"""Typed facts about one node, as parsed from command outputs. Every class is JSON-serialisable.

A value a command did not print is ``None`` (or an empty list), never a guess.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field


@dataclass
class Gpu:
    """One GPU as nvidia-smi reports it. ``index`` is nvidia-smi's index (None when not queried)."""

    index: int | None = None
    name: str | None = None
    pci_bus_id: str | None = None
    uuid: str | None = None
    memory_total_mib: int | None = None
    driver_version: str | None = None
    mig_devices: list[str] = field(default_factory=list)


@dataclass
class NvsmiTable:
    """``nvidia-smi --query-gpu=... --format=csv``: field names (units stripped), units, rows of strings."""

    fields: list[str]
    units: dict[str, str]
    rows: list[dict[str, str]]


@dataclass
class TopoMatrix:
    """``nvidia-smi topo -m`` (or ``-mp``).

    ``devices`` are the matrix labels in column order (``GPU0``, ``NIC0`` or, in old drivers, ``mlx5_0``);
    ``nic_names`` maps a NIC label to its HCA name (identity for old drivers that name columns by HCA);
    ``links[row][col]`` is the printed code (``X``, ``NV18``, ``PIX``, ``PXB``, ``PHB``, ``NODE``, ``SYS``);
    ``cpu_affinity``/``numa_affinity`` are per GPU label, as printed (``None`` for N/A or absent).
    """

    devices: list[str]
    nic_names: dict[str, str]
    links: dict[str, dict[str, str]]
    cpu_affinity: dict[str, str | None]
    numa_affinity: dict[str, int | None]

    @property
    def gpu_labels(self) -> list[str]:
        return [d for d in self.devices if d.startswith("GPU")]

    @property
    def nic_labels(self) -> list[str]:
        return [d for d in self.devices if not d.startswith("GPU")]


@dataclass
class IbPort:
    """One HCA port. ``state`` is normalised to sysfs words (``ACTIVE``, ``DOWN``, ``INIT``, ``ARMED``)."""

    number: int
    state: str | None = None
    phys_state: str | None = None
    rate_gbps: float | None = None
    link_layer: str | None = None
    base_lid: str | None = None
    sm_lid: str | None = None


@dataclass
class IbDevice:
    """One RDMA device (HCA) with its ports, from ibstat, ibstatus or sysfs (``source``)."""

    name: str
    ports: list[IbPort] = field(default_factory=list)
    ca_type: str | None = None
    firmware: str | None = None
    node_guid: str | None = None
    source: str | None = None


@dataclass
class IbReport:
    """Devices read by one tool, plus its error lines (``ibpanic: ...``) and devices it failed to read."""

    devices: list[IbDevice] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_devices: list[str] = field(default_factory=list)


@dataclass
class NetdevLink:
    """One ``ibdev2netdev`` line: ``mlx5_0 port 1 ==> enp25s0np0 (Up)``."""

    hca: str
    port: int
    netdev: str
    up: bool


@dataclass
class Ipv4Address:
    """One line of ``ip -o -4 addr show``: the address on link ``ifname`` (``@peer`` suffix dropped)."""

    index: int
    ifname: str
    address: str
    prefixlen: int | None = None
    scope: str | None = None
    label: str | None = None


@dataclass
class RouteInfo:
    """``ip -o route get ADDRESS``: the interface (``dev``) and source address the host would use for it."""

    destination: str
    kind: str = "unicast"
    dev: str | None = None
    via: str | None = None
    src: str | None = None


@dataclass
class CpuInfo:
    """``lscpu`` (plain or ``-J``) topology lines; ``numa_cpus`` maps NUMA node -> CPU ids."""

    cpus: int | None = None
    online: list[int] = field(default_factory=list)
    sockets: int | None = None
    cores_per_socket: int | None = None
    threads_per_core: int | None = None
    model_name: str | None = None
    numa_cpus: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class CpuLayoutEntry:
    """One line of ``lscpu -p=CPU,CORE,SOCKET,NODE`` (``node`` None when lscpu leaves it empty)."""

    cpu: int
    core: int
    socket: int
    node: int | None


@dataclass
class NumaNode:
    """One node of ``numactl -H``."""

    node: int
    cpus: list[int]
    size_mb: int | None = None
    free_mb: int | None = None


@dataclass
class NumaInfo:
    nodes: list[NumaNode] = field(default_factory=list)
    distances: dict[int, dict[int, int]] = field(default_factory=dict)


@dataclass
class SlurmdHardware:
    """``slurmd -C``: the ``key=value`` pairs (all kept in ``values``) and slurmd's notes (``slurmd: ...``)."""

    values: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def _int(self, key: str) -> int | None:
        v = self.values.get(key)
        return int(v) if v is not None and v.isdigit() else None

    @property
    def node_name(self) -> str | None:
        return self.values.get("NodeName")

    @property
    def cpus(self) -> int | None:
        return self._int("CPUs")

    @property
    def sockets(self) -> int | None:
        """Sockets of the node as Slurm counts them: Boards x SocketsPerBoard."""
        per_board = self.sockets_per_board
        return None if per_board is None else per_board * (self._int("Boards") or 1)

    @property
    def sockets_per_board(self) -> int | None:
        return self._int("SocketsPerBoard")

    @property
    def cores_per_socket(self) -> int | None:
        return self._int("CoresPerSocket")

    @property
    def threads_per_core(self) -> int | None:
        return self._int("ThreadsPerCore")

    @property
    def real_memory_mb(self) -> int | None:
        return self._int("RealMemory")


@dataclass
class SlurmVersions:
    """The Slurm of one host (upstream versions, ``22.05.8``): what each daemon's ``-V`` printed, the installed
    packages (dpkg), and what the package manager would install (``apt-cache policy`` Candidate)."""

    daemons: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, str] = field(default_factory=dict)

    @property
    def installed(self) -> list[str]:
        """Every distinct version installed on the host (daemons first, then packages), in that order."""
        out: list[str] = []
        for v in list(self.daemons.values()) + list(self.packages.values()):
            if v not in out:
                out.append(v)
        return out

    @property
    def candidate(self) -> str | None:
        """What the package manager would install (slurmd's candidate, else slurmctld's); None if unknown."""
        for name in ("slurmd", "slurmctld"):
            if name in self.candidates:
                return self.candidates[name]
        return next(iter(self.candidates.values()), None)


@dataclass
class NodeFacts:
    """Everything collected from one host. A missing tool leaves its part empty: that is a fact, not an error.

    ``hostname`` is the name the cluster file gives the host (the record's key); ``short_hostname`` the host's
    own name, as it reports it (``/proc/sys/kernel/hostname`` up to the first dot), None in records cached
    before discovery asked for it."""

    hostname: str
    gpus: list[Gpu] = field(default_factory=list)
    topo: TopoMatrix | None = None
    ib: IbReport | None = None
    netdevs: list[NetdevLink] = field(default_factory=list)
    cpu: CpuInfo | None = None
    cpu_layout: list[CpuLayoutEntry] = field(default_factory=list)
    numa: NumaInfo | None = None
    slurmd: SlurmdHardware | None = None
    pci_numa: dict[str, int | None] = field(default_factory=dict)
    ipv4: list[Ipv4Address] = field(default_factory=list)
    head_route: RouteInfo | None = None
    slurm: SlurmVersions | None = None  # absent from records cached before it existed: None
    short_hostname: str | None = None  # likewise

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NodeFacts:
        return _build(cls, data)


def _build(tp, value):
    """Rebuild a (nested) dataclass value from its ``asdict`` form after a JSON round trip."""
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(tp) if f.name in value})
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value)
    if origin is list:
        return [_build(args[0], v) for v in value]
    if origin is dict:
        return {_build(args[0], k): _build(args[1], v) for k, v in value.items()}
    if tp is int and isinstance(value, str):  # JSON turns int dict keys into strings
        return int(value)
    return value
