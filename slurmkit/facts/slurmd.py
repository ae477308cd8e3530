"""Parser for ``slurmd -C``."""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.models import SlurmdHardware


def parse_slurmd_c(text: str) -> SlurmdHardware | None:
    """``slurmd -C``: ``NodeName=... CPUs=... RealMemory=...`` (one line, or two with ``UpTime=`` apart in
    newer slurmd), preceded by notes such as ``slurmd: Considering each NUMA node as a socket``."""
    values: dict[str, str] = {}
    notes: list[str] = []
    for line in clean(text).split("\n"):
        line = line.strip()
        if not line:
            continue
        if line.startswith("slurmd:"):
            notes.append(line[len("slurmd:") :].strip())
            continue
        for key, value in re.findall(r"(\w+)=(\S+)", line):
            values[key] = value
    return SlurmdHardware(values=values, notes=notes) if values else None
