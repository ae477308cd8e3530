"""Parsers for ``lscpu`` (plain and ``-J``), ``lscpu -p=CPU,CORE,SOCKET,NODE``, ``numactl -H`` and
the sysfs NUMA node of PCI devices."""

from __future__ import annotations

import json
import re

from slurmkit.facts._text import clean, cpu_list
from slurmkit.facts.errors import FactsParseError
from slurmkit.facts.models import CpuInfo, CpuLayoutEntry, NumaInfo, NumaNode


LSCPU_JSON_COMMAND = "lscpu -J"
NUMACTL_COMMAND = "numactl -H"


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _cpus(value: str, key: str) -> list[int]:
    """A CPU list of lscpu's; a garbled one (a word that is no number, a range past any machine) is a
    FactsParseError."""
    try:
        if any(int(hi) - int(lo) > 1 << 20 for lo, hi in re.findall(r"(\d+)-(\d+)", value)):
            raise ValueError
        return cpu_list(value)
    except ValueError:
        raise FactsParseError("lscpu", 0, f"{key}: {value[:80]!r} is no CPU list") from None


def _cpuinfo_from_fields(fields: dict[str, str]) -> CpuInfo:
    info = CpuInfo(
        cpus=_int(fields.get("CPU(s)")),
        online=_cpus(fields.get("On-line CPU(s) list", ""), "On-line CPU(s) list"),
        sockets=_int(fields.get("Socket(s)")),
        cores_per_socket=_int(fields.get("Core(s) per socket")),
        threads_per_core=_int(fields.get("Thread(s) per core")),
        model_name=fields.get("Model name"),
    )
    for key, value in fields.items():
        m = re.fullmatch(r"NUMA node(\d+) CPU\(s\)", key)
        if m:
            info.numa_cpus[int(m.group(1))] = _cpus(value, key)
    return info


def parse_lscpu(text: str) -> CpuInfo | None:
    """Plain ``lscpu``: ``Field:   value`` lines. A partial paste (only topology lines) is accepted."""
    fields: dict[str, str] = {}
    for line in clean(text).split("\n"):
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    return _cpuinfo_from_fields(fields) if fields else None


def parse_lscpu_json(text: str) -> CpuInfo | None:
    """``lscpu -J``: ``{"lscpu": [{"field": "CPU(s):", "data": "224"}, ...]}``.

    Newer util-linux nests entries under ``children`` (e.g. the model lines under "Vendor ID:"); both
    shapes are read.
    """
    text = clean(text).strip()
    if not text:
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactsParseError(LSCPU_JSON_COMMAND, exc.lineno, f"not JSON: {exc.msg} (output cut short?)") from None
    except RecursionError:
        raise FactsParseError(LSCPU_JSON_COMMAND, 0, "JSON nested too deeply for lscpu -J") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("lscpu", []), list):
        raise FactsParseError(LSCPU_JSON_COMMAND, 0, 'no {"lscpu": [...]} object')
    fields: dict[str, str] = {}
    todo = list(reversed(doc.get("lscpu", [])))
    while todo:  # depth-first, in order, without recursion
        entry = todo.pop()
        if not isinstance(entry, dict):
            raise FactsParseError(LSCPU_JSON_COMMAND, 0, f"an entry that is no object: {str(entry)[:60]!r}")
        key = str(entry.get("field", "")).rstrip(":").strip()
        if key and entry.get("data") is not None:
            fields.setdefault(key, str(entry["data"]))
        children = entry.get("children", [])
        if isinstance(children, list):
            todo.extend(reversed(children))
    return _cpuinfo_from_fields(fields)


def parse_lscpu_parsable(text: str) -> list[CpuLayoutEntry]:
    """``lscpu -p=CPU,CORE,SOCKET,NODE``: ``#`` comment lines, then ``cpu,core,socket,node`` per CPU."""
    out = []
    for line in clean(text).split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = line.split(",")
        if len(cells) < 3 or not all(c.isdigit() for c in cells[:3]):
            continue
        node = _int(cells[3]) if len(cells) > 3 else None
        out.append(CpuLayoutEntry(cpu=int(cells[0]), core=int(cells[1]), socket=int(cells[2]), node=node))
    return out


def parse_numactl_hardware(text: str) -> NumaInfo | None:
    """``numactl -H``: ``node N cpus: ...``, ``node N size: X MB``, ``node N free: X MB`` and distances.
    A CPU or distance that is no number (garbled output) raises :class:`FactsParseError`."""
    info = NumaInfo()
    nodes: dict[int, NumaNode] = {}
    in_distances = False
    columns: list[int] = []
    for no, line in enumerate(clean(text).split("\n"), 1):
        try:
            m = re.match(r"^node (\d+) cpus:(.*)$", line)
            if m:
                n = int(m.group(1))
                nodes[n] = NumaNode(node=n, cpus=[int(c) for c in m.group(2).split()])
                info.nodes.append(nodes[n])
                continue
            m = re.match(r"^node (\d+) (size|free): (\d+) MB", line)
            if m and int(m.group(1)) in nodes:
                setattr(nodes[int(m.group(1))], f"{m.group(2)}_mb", int(m.group(3)))
                continue
            if line.startswith("node distances:"):
                in_distances = True
                continue
            if in_distances:
                if line.startswith("node "):
                    columns = [int(c) for c in line.split()[1:]]
                    continue
                m = re.match(r"^\s*(\d+):\s*(.*)$", line)
                if m:
                    info.distances[int(m.group(1))] = dict(zip(columns, (int(v) for v in m.group(2).split())))
        except ValueError:
            raise FactsParseError(NUMACTL_COMMAND, no, f"{line.strip()[:80]!r}: a word that is no number") from None
    return info if info.nodes else None


# The collect command for PCI NUMA nodes (kept beside its parser; also in slurmkit.facts.COMMANDS):
SYSFS_PCI_NUMA_COMMAND = 'for f in /sys/bus/pci/devices/*/numa_node; do [ -r "$f" ] && echo "$f: $(cat "$f")"; done; true'
_PCI_NUMA = re.compile(r"^/sys/bus/pci/devices/([^/]+)/numa_node: ?(-?\d+)\s*$")


def parse_sysfs_pci_numa(text: str) -> dict[str, int | None]:
    """Lines ``/sys/bus/pci/devices/0000:19:00.0/numa_node: 0``: PCI address -> NUMA node.

    The kernel prints -1 when the platform does not say (one-node machines, many VMs): that is None.
    """
    out: dict[str, int | None] = {}
    for line in clean(text).split("\n"):
        m = _PCI_NUMA.match(line.strip())
        if m:
            node = int(m.group(2))
            out[m.group(1).lower()] = node if node >= 0 else None
    return out
