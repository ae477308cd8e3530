"""Parser for ``nvidia-smi topo -m`` / ``topo -mp``.

Handles: tab- or space-separated cells (space-padded output is tabs expanded), the ANSI-underlined header
of newer drivers, CRLF, the ``NIC Legend`` of newer drivers (``NIC9: mlx5_10``, which may skip names) and
older drivers that name the NIC columns by HCA (``mlx5_0``) with no legend.
"""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.models import TopoMatrix

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
    for line in lines[start + 1 :]:
        tokens = line.split()
        if not tokens or tokens[0] not in devices:
            if tokens and tokens[0].startswith("Legend"):
                break
            continue
        label, cells = tokens[0], tokens[1:]
        links[label] = dict(zip(devices, cells[: len(devices)]))
        extra = dict(zip(trailers, cells[len(devices) :]))
        if label.startswith("GPU"):
            cpu = extra.get("CPU Affinity")
            cpu_affinity[label] = None if cpu in (None, "N/A") else cpu
            numa = extra.get("NUMA Affinity")
            numa_affinity[label] = int(numa) if numa is not None and numa.isdigit() else None

    nic_names = {}
    for line in lines:
        m = _LEGEND_NIC.match(line)
        if m:
            nic_names[m.group(1)] = m.group(2)
    for label in devices:
        if not label.startswith("GPU") and label not in nic_names:
            nic_names[label] = label  # old drivers: the column is named by the HCA itself
    return TopoMatrix(
        devices=devices, nic_names=nic_names, links=links, cpu_affinity=cpu_affinity, numa_affinity=numa_affinity
    )
