"""Parser for ``nvidia-smi topo -m`` / ``topo -mp``.

Handles: tab- or space-separated cells (space-padded output is tabs expanded), the ANSI-underlined header
of newer drivers, CRLF, the ``NIC Legend`` of newer drivers (``NIC9: mlx5_10``, which may skip names) and
older drivers that name the NIC columns by HCA (``mlx5_0``) with no legend.

Output that nvidia-smi cannot have printed whole raises :class:`FactsParseError`: a matrix row with fewer cells
than the header has devices, a cell that is no link code of the legend, a device of the header without its row
(the output was cut), a ``NIC#`` column without its ``NIC Legend`` entry.
"""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.errors import FactsParseError
from slurmkit.facts.models import TopoMatrix

COMMAND = "nvidia-smi topo -m"
# The legend's codes (SOC: the name of SYS before driver 384); "X" is a device with itself.
_LINK = re.compile(r"^(X|SYS|SOC|NODE|PHB|PXB|PIX|NV\d+)$")

# Header titles after the device columns; data cells never contain spaces, so rows split on whitespace.
_TRAILERS = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")
_LEGEND_NIC = re.compile(r"^\s*(NIC\d+):\s*(\S+)\s*$")


def parse_topo_matrix(text: str) -> TopoMatrix | None:
    """Parse the matrix, its affinity columns and the NIC legend. Empty text (no nvidia-smi) gives None."""
    lines = clean(text).split("\n")
    start = next((i for i, ln in enumerate(lines) if re.search(r"\bGPU0\b", ln)), None)
    if start is None:
        return None
    header = lines[start]
    trailers = []
    for title in _TRAILERS:
        if title in header:
            trailers.append((header.index(title), title))
            header = header.replace(title, " ")
    trailers = [t for _, t in sorted(trailers)]
    devices = header.split()

    links: dict[str, dict[str, str]] = {}
    cpu_affinity: dict[str, str | None] = {}
    numa_affinity: dict[str, int | None] = {}
    in_matrix = True
    last = start + 1
    for no, line in enumerate(lines[start + 1 :], start + 2):
        tokens = line.split()
        if not tokens or tokens[0] not in devices:
            if tokens and tokens[0].startswith("Legend"):
                break
            if tokens and in_matrix:
                raise FactsParseError(COMMAND, no, f"matrix row of unknown device {tokens[0]!r}")
            in_matrix = in_matrix and not tokens
            continue
        label, cells = tokens[0], tokens[1:]
        last = no
        if len(cells) < len(devices) or (label.startswith("GPU") and trailers and len(cells) == len(devices)):
            raise FactsParseError(COMMAND, no, f"row {label} has {len(cells)} cells, the header names "
                                               f"{len(devices)} devices" + (" and affinity columns" if trailers else ""))
        for dev, cell in zip(devices, cells):
            if not _LINK.match(cell):
                raise FactsParseError(COMMAND, no, f"row {label}, column {dev}: {cell!r} is no link code")
        links[label] = dict(zip(devices, cells[: len(devices)]))
        extra = dict(zip(trailers, cells[len(devices) :]))
        if label.startswith("GPU"):
            cpu = extra.get("CPU Affinity")
            cpu_affinity[label] = None if cpu in (None, "N/A") else cpu
            numa = extra.get("NUMA Affinity")
            numa_affinity[label] = int(numa) if numa is not None and numa.isdigit() else None

    missing = [d for d in devices if d not in links]
    if missing:
        raise FactsParseError(COMMAND, last, f"matrix ends after this line: no row for {', '.join(missing)} "
                                             "(output cut short?)")
    nic_names = {}
    for line in lines:
        m = _LEGEND_NIC.match(line)
        if m:
            nic_names[m.group(1)] = m.group(2)
    unnamed = [d for d in devices if re.match(r"^NIC\d+$", d) and d not in nic_names]
    if unnamed:
        raise FactsParseError(COMMAND, 0, f"no NIC Legend entry for {', '.join(unnamed)} (output cut short?)")
    for label in devices:
        if not label.startswith("GPU") and label not in nic_names:
            nic_names[label] = label  # old drivers: the column is named by the HCA itself
    return TopoMatrix(
        devices=devices, nic_names=nic_names, links=links, cpu_affinity=cpu_affinity, numa_affinity=numa_affinity
    )
