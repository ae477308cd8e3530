"""Parsers for ``nvidia-smi --query-gpu=... --format=csv`` and ``nvidia-smi -L``."""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.errors import FactsParseError
from slurmkit.facts.models import Gpu, NvsmiTable

QUERY_COMMAND = "nvidia-smi --query-gpu=... --format=csv"

_HEADER_UNIT = re.compile(r"^(?P<name>[^\[]+?)\s*\[(?P<unit>[^\]]+)\]$")


def parse_nvsmi_query(text: str) -> NvsmiTable:
    """``nvidia-smi --query-gpu=F1,F2 --format=csv``: header ``F1 [unit], F2``, one row per GPU.

    Units in the header (``memory.used [MiB]``) are stripped from the field name and from each value
    (``1718 MiB`` -> ``1718``). Empty text (no nvidia-smi) gives an empty table. A row with another number of
    fields than the header (a line cut short or garbled) raises :class:`FactsParseError`.
    """
    lines = [(no, ln) for no, ln in enumerate(clean(text).split("\n"), 1) if ln.strip()]
    if not lines:
        return NvsmiTable(fields=[], units={}, rows=[])
    fields: list[str] = []
    units: dict[str, str] = {}
    for raw in lines[0][1].split(","):
        raw = raw.strip()
        m = _HEADER_UNIT.match(raw)
        name = m.group("name") if m else raw
        fields.append(name)
        if m:
            units[name] = m.group("unit")
    rows = []
    for no, line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(fields):
            raise FactsParseError(QUERY_COMMAND, no, f"{len(cells)} fields, the header names {len(fields)}")
        row = {}
        for name, cell in zip(fields, cells):
            unit = units.get(name)
            if unit and cell.endswith(" " + unit):
                cell = cell[: -len(unit) - 1]
            row[name] = cell
        rows.append(row)
    return NvsmiTable(fields=fields, units=units, rows=rows)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def gpus_from_query(table: NvsmiTable) -> list[Gpu]:
    """Turn a query table into GPUs; fields the query did not ask for stay None."""
    gpus = []
    for row in table.rows:
        gpus.append(
            Gpu(
                index=_int_or_none(row.get("index")),
                name=row.get("name"),
                pci_bus_id=row.get("pci.bus_id"),
                uuid=row.get("uuid"),
                memory_total_mib=_int_or_none(row.get("memory.total")),
                driver_version=row.get("driver_version"),
            )
        )
    return gpus


_GPU_L = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>[^)]+)\)\s*$")
_MIG_L = re.compile(r"^\s+MIG (?P<profile>\S+)\s+Device\s+(?P<dev>\d+): \(UUID: (?P<uuid>[^)]+)\)\s*$")


def parse_nvsmi_list(text: str) -> list[Gpu]:
    """``nvidia-smi -L``: ``GPU 0: NAME (UUID: GPU-...)`` lines, each followed by its MIG devices, if any."""
    gpus: list[Gpu] = []
    for line in clean(text).split("\n"):
        m = _GPU_L.match(line)
        if m:
            gpus.append(Gpu(index=int(m["index"]), name=m["name"], uuid=m["uuid"]))
            continue
        m = _MIG_L.match(line)
        if m and gpus:
            gpus[-1].mig_devices.append(m["profile"])
    return gpus
